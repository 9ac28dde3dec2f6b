//! Gradient spellings measured in the runtime (`tune`): every spelling trains a
//! network the same way in ONNX Runtime, the measurements are cached and reused, and
//! a damaged cache is measured again rather than trusted.

use crate::common;

use srgraph::autodiff::{ConvSpelling, InputGrad, Spellings, WeightGrad};
use srgraph::compiler::{compile, TrainConfig};
use srgraph::data::{load_hwc, random_pair, to_batch};
use srgraph::models::{Arch, ModelConfig, Norm};
use srgraph::runtime::ort::{Device, OrtTrainer};
use srgraph::runtime::{Runtime, Trainer};
use srgraph::tune::{cache_path, conv_shapes, spellings, Target};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// WDSR-A's convs widen (32 -> 64) and narrow (64 -> 32) and its tail has 5x5 and
/// 3x3 kernels: every case of both gradients.
fn wdsr_a() -> (ModelConfig, TrainConfig) {
    let c = ModelConfig {
        blocks: 2,
        filters: 16,
        expansion: 4,
        norm: Norm::Weight,
        seed: 3,
        scale: 2,
        ..ModelConfig::new(Arch::WdsrA)
    };
    let t = TrainConfig {
        batch: 4,
        patch: 32,
        ..TrainConfig::default()
    };
    (c, t)
}

/// Three steps on T91 patches under each of the four spellings forced on every conv,
/// in ONNX Runtime: the losses and the parameters after them agree with the rule's to
/// float32 rounding.
#[test]
fn every_spelling_takes_the_same_steps_in_onnx_runtime() {
    let (c, t) = wdsr_a();
    let dir = common::data_dir().join("T91");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let images: Vec<_> = files.iter().take(4).map(|p| load_hwc(p).unwrap()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let batches: Vec<_> = (0..3)
        .map(|_| {
            let pairs: Vec<_> = images
                .iter()
                .map(|im| random_pair(im, 32, 2, &mut rng).unwrap())
                .collect();
            let lr: Vec<_> = pairs.iter().map(|p| p.0.clone()).collect();
            let hr: Vec<_> = pairs.iter().map(|p| p.1.clone()).collect();
            (to_batch(&lr).into_dyn(), to_batch(&hr).into_dyn())
        })
        .collect();
    let run = |spellings: Spellings| {
        let graphs = compile(&c, &TrainConfig { spellings, ..t.clone() }).unwrap();
        let mut ort = OrtTrainer::new(&graphs.train_step, Device::Cpu, 2).unwrap();
        let losses: Vec<f32> = batches
            .iter()
            .enumerate()
            .map(|(i, (lr, hr))| ort.step(lr.clone(), hr.clone(), 1e-3, i as u64 + 1).unwrap())
            .collect();
        (losses, ort.values().unwrap())
    };
    let (rule_losses, rule_values) = run(Spellings::default());
    for input in [InputGrad::ConvTranspose, InputGrad::FlippedConv] {
        for weight in [WeightGrad::ShiftInput, WeightGrad::ShiftOutputGrad] {
            let (losses, values) = run(Spellings::forced(ConvSpelling { input, weight }));
            for (a, b) in losses.iter().zip(&rule_losses) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs(),
                    "{input:?} {weight:?}: loss {a} against {b}"
                );
            }
            for ((name, a), (_, b)) in values.iter().zip(&rule_values) {
                let err = common::rel_err(a.as_f32().unwrap(), b.as_f32().unwrap());
                assert!(err <= 1e-4, "{input:?} {weight:?}: {name} differs by {err:e}");
            }
        }
    }
}

/// The first call measures every conv shape and caches the faster spellings; the
/// second reads them without measuring; a damaged cache is measured again.
#[test]
fn measured_spellings_are_cached_and_reused() {
    let (c, t) = wdsr_a();
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tune-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let target = Target {
        runtime: Runtime::Ort(Device::Cpu),
        threads: 1,
    };
    let shapes = conv_shapes(&c, &t).unwrap();
    assert!(shapes.len() >= 4, "{shapes:?}");
    let first = spellings(&c, &t, &target, &cache, true).unwrap();
    assert_eq!(first.measured.len(), shapes.len(), "one spelling per conv shape");
    let path = cache_path(&cache, &target);
    let text = std::fs::read_to_string(&path).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    for e in file["convs"].as_array().unwrap() {
        // The choice is the faster of what was timed.
        let seconds: std::collections::HashMap<String, f64> = e["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_f64().unwrap()))
            .collect();
        let input = e["input"].as_str().unwrap();
        let other = if input == "flipped-conv" {
            "conv-transpose"
        } else {
            "flipped-conv"
        };
        if let (Some(chosen), Some(rival)) = (seconds.get(input), seconds.get(other)) {
            assert!(chosen <= rival, "{e}: chose the slower input gradient");
        }
    }
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let second = spellings(&c, &t, &target, &cache, true).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified,
        "a cached network is not measured again"
    );
    // Reading only (a data-parallel rank) gives the same.
    assert_eq!(spellings(&c, &t, &target, &cache, false).unwrap(), first);

    std::fs::write(&path, b"{\"target\": 3").unwrap();
    let again = spellings(&c, &t, &target, &cache, true).unwrap();
    assert_eq!(again.measured.len(), shapes.len());
    assert!(serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path).unwrap()).is_ok());
}

/// `srgraph train` measures on its first run and not on the next; `--no-tune` never does.
#[test]
fn train_tunes_once_and_no_tune_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = common::data_dir().join("Set5/HR");
    let data = data.to_str().unwrap();
    let cache_s = cache.to_str().unwrap();
    let train = |out: &str, extra: &[&str]| {
        let run = (common::QuickTrain::new("wdsr-b", data))
            .set("--engine", "ort")
            .set("--steps", "2")
            .set("--cache", cache_s)
            .set("--out", out);
        let o = extra.iter().fold(run, |run, f| run.flag(f)).run(dir.path());
        assert!(o.status.success(), "{}", common::text(&o));
        common::text(&o)
    };
    let no_tune = train("a", &["--no-tune"]);
    assert!(!no_tune.contains("tuned"), "{no_tune}");
    assert!(!cache.join("spellings").exists(), "--no-tune measured");
    let first = train("b", &[]);
    assert!(first.contains("tuned"), "{first}");
    let second = train("c", &[]);
    assert!(!second.contains("tuned"), "the second run measured again: {second}");
}
