//! Bring your own weights: checkpoints written by the reference implementations
//! themselves (tools/oracles/interop_fixtures.py, with PyTorch in a throw-away venv; the
//! fixtures and PyTorch's own output on a real picture are committed) imported by
//! srgraph, run in tract and in ONNX Runtime, and compared to PyTorch's output;
//! export and import again, bit for bit; fine-tuning from them; and the files
//! that must be refused.

use crate::common::{data_dir, fails_with, srgraph, text};
use ndarray::{s, ArrayD};
use serde_json::Value;
use srgraph::interop::{self, Hints};
use srgraph::onnx::Model;
use srgraph::runtime::ort::{Device, OrtModel};
use srgraph::runtime::tract::run_once;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/interop")
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("manifest.json")).unwrap()).unwrap()
}

/// The flags the manifest asks for, as hints (only --res-scale is ever needed).
fn hints(case: &Value) -> Hints {
    let flags: Vec<&str> = case["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let mut h = Hints::default();
    for pair in flags.chunks(2) {
        match pair {
            ["--res-scale", v] => h.res_scale = Some(v.parse().unwrap()),
            other => panic!("the test does not know the flags {other:?}"),
        }
    }
    h
}

/// The input every case was run on: a crop of a real picture, [1, 3, 12, 12] in 0..255.
fn input(case: &Value) -> ArrayD<f32> {
    let i = &case["input"];
    let rgb = srgraph::data::load_rgb(&data_dir().join(i["picture"].as_str().unwrap())).unwrap();
    let (t, l, n) = (
        i["top"].as_u64().unwrap() as usize,
        i["left"].as_u64().unwrap() as usize,
        i["size"].as_u64().unwrap() as usize,
    );
    rgb.slice(s![.., .., t..t + n, l..l + n]).to_owned().into_dyn()
}

fn reference(case: &Value) -> ArrayD<f32> {
    ndarray_npy::read_npy(fixtures().join(case["reference"].as_str().unwrap())).unwrap()
}

/// max |a - b| as a fraction of the reference output's range.
fn error_of_range(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let (lo, hi) = b.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / (hi - lo)
}

fn import(case: &Value) -> (interop::StateDict, interop::Detected, Vec<u8>) {
    let path = fixtures().join(case["file"].as_str().unwrap());
    let (state, d) = interop::load(&path, &hints(case)).unwrap_or_else(|e| panic!("{}: {e:#}", case["file"]));
    let onnx = interop::inference_model(&state, &d, &path.display().to_string()).unwrap();
    (state, d, onnx)
}

#[test]
fn every_layout_gives_the_reference_frameworks_output_in_tract_and_onnx_runtime() {
    let m = manifest();
    let cases = m["cases"].as_array().unwrap();
    assert!(cases.len() >= 12, "the manifest lists every layout at x2, x3 and x4");
    for case in cases {
        let name = case["file"].as_str().unwrap();
        let (state, d, onnx) = import(case);
        // What detection found is what the reference code was built with.
        let c = &d.config;
        assert_eq!(c.arch.name(), case["arch"].as_str().unwrap(), "{name}");
        assert_eq!(c.scale as u64, case["scale"].as_u64().unwrap(), "{name}");
        assert_eq!(c.blocks as u64, case["blocks"].as_u64().unwrap(), "{name}");
        assert_eq!(c.filters as u64, case["filters"].as_u64().unwrap(), "{name}");
        if let Some(w) = case["wide"].as_u64() {
            assert_eq!(c.wide() as u64, w, "{name}");
        }
        if let Some(l) = case["low_rank"].as_u64() {
            assert_eq!(c.low_rank() as u64, l, "{name}");
        }
        assert_eq!(d.layout.name(), case["layout"].as_str().unwrap(), "{name}");
        match case["wrapper"].as_str() {
            Some(w) => assert!(
                state.wrapper.as_deref().unwrap_or("").contains(w),
                "{name}: {:?}",
                state.wrapper
            ),
            None => assert_eq!(state.wrapper, None, "{name}"),
        }

        let x = input(case);
        let want = reference(case);
        let by_tract = run_once(&onnx, vec![x.clone()]).unwrap().remove(0);
        let by_ort = OrtModel::new(&onnx, Device::Cpu, 2).unwrap().run(x).unwrap();
        let (et, eo) = (error_of_range(&by_tract, &want), error_of_range(&by_ort, &want));
        println!("{name}: max error {et:.2e} (tract), {eo:.2e} (ONNX Runtime) of the output's range");
        assert!(et <= 1e-3 && eo <= 1e-3, "{name}: {et} (tract), {eo} (ORT)");
    }
}

/// The metadata and initialisers of an .onnx, to compare two models bit for bit.
fn initialisers(onnx: &[u8]) -> Vec<(String, Vec<u32>)> {
    let m = Model::from_bytes(onnx).unwrap();
    let mut v: Vec<(String, Vec<u32>)> = m
        .graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            srgraph::ir::Op::Const(t) => Some((n.name.clone(), t.as_f32()?.iter().map(|x| x.to_bits()).collect())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[test]
fn export_then_import_gives_the_same_model_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for case in manifest()["cases"].as_array().unwrap() {
        let name = case["file"].as_str().unwrap();
        let (_, d, onnx) = import(case);
        let model = dir.path().join("model.onnx");
        std::fs::write(&model, &onnx).unwrap();
        // From the inference model: its folded weights unfolded back to the training form.
        let (mstate, md) = interop::load(&model, &Hints::default()).unwrap();
        assert_eq!(md.config, d.config, "{name}");
        let layout = match case["layout"].as_str().unwrap() {
            "basicsr" => interop::ExportLayout::BasicSr,
            "edsr-pytorch" => interop::ExportLayout::EdsrPytorch,
            _ => interop::ExportLayout::Official,
        };
        let e = interop::export_state(&md.config, &md.values, layout).unwrap();
        let meta = md.config.metadata();
        let st = dir.path().join("exported.safetensors");
        std::fs::write(&st, interop::to_safetensors(&e.tensors, meta).unwrap()).unwrap();
        let (state2, d2) = interop::load(&st, &Hints::default()).unwrap();
        assert_eq!(d2.config, d.config, "{name}");
        let again = interop::inference_model(&state2, &d2, "again").unwrap();
        assert_eq!(initialisers(&again), initialisers(&onnx), "{name}: not bit for bit");
        let _ = mstate;
    }
}

#[test]
fn the_cli_imports_exports_and_refuses_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fx = |f: &str| fixtures().join(f).display().to_string();

    // Detection is printed, with what was assumed.
    let o = srgraph(&["import", &fx("wdsr-a_x2_b2f8w20_hook.pt"), "-o", "a.onnx"], d);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("wdsr-a x2, 2 blocks, 8 filters") && out.contains("assumed   RGB mean"),
        "{out}"
    );
    let meta = text(&srgraph(&["inspect", "a.onnx"], d));
    assert!(
        meta.contains("import_layout = official-wdsr") && meta.contains("imported_from = "),
        "{meta}"
    );
    // The old command's name still works, and its architecture argument is a check.
    let o = srgraph(
        &[
            "import-checkpoint",
            &fx("wdsr-a_x2_b2f8w20_hook.pt"),
            "wdsr-b",
            "-o",
            "b.onnx",
        ],
        d,
    );
    fails_with(&o, "it is wdsr-a, not wdsr-b");
    assert!(!d.join("b.onnx").exists());
    let o = srgraph(
        &[
            "import",
            &fx("edsr-pytorch_x4_b2f8.pt"),
            "--blocks",
            "3",
            "-o",
            "b.onnx",
        ],
        d,
    );
    fails_with(&o, "its weights give blocks 2, not --blocks 3");

    // Export to the reference names, and the file says how to build the network that loads it.
    let o = srgraph(&["export", "a.onnx", "-o", "a.safetensors"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("block_feats=20"), "{}", text(&o));
    let o = srgraph(&["export", "a.onnx", "--layout", "basicsr", "-o", "x.safetensors"], d);
    fails_with(&o, "is not an EDSR");
    let o = srgraph(&["export", "a.onnx", "-o", "a.safetensors"], d);
    fails_with(&o, "--force");

    // Never run pickled code; a truncated file and a non-checkpoint get clear errors; nothing is written.
    for (file, needle) in [
        ("malicious_os_system.pth", "posix.system"),
        ("malicious_os_system_legacy.pth", "never runs code"),
        ("truncated_half.pt", "is not a checkpoint srgraph can read"),
        ("not_a_checkpoint.pth", "none of a PyTorch .pth/.pt"),
    ] {
        fails_with(&srgraph(&["import", &fx(file), "-o", "bad.onnx"], d), needle);
        assert!(!d.join("bad.onnx").exists(), "{file}");
    }
    // Keys of no known layout: the error names the keys it looked for.
    std::fs::write(d.join("other.safetensors"), {
        let t = srgraph::ir::Tensor::f32(&[2], vec![1.0, 2.0]);
        interop::to_safetensors(&[("encoder.weight".into(), t)], vec![]).unwrap()
    })
    .unwrap();
    fails_with(
        &srgraph(&["import", "other.safetensors", "-o", "bad.onnx"], d),
        "conv_first.weight (BasicSR EDSR)",
    );

    // A tensor whose shape fits no network of the detected architecture.
    let case = manifest()["cases"].as_array().unwrap()[0].clone();
    let (_, det, _) = import(&case);
    let mut values = det.values.clone();
    for (name, t) in values.iter_mut() {
        if name == "tail.1.weight" {
            *t = srgraph::ir::Tensor::f32(&[3, 7, 3, 3], vec![0.5; 3 * 7 * 9]);
        }
    }
    std::fs::write(
        d.join("bent.safetensors"),
        interop::to_safetensors(&values, vec![]).unwrap(),
    )
    .unwrap();
    fails_with(
        &srgraph(&["import", "bent.safetensors", "-o", "bad.onnx"], d),
        "its tail.1.weight is [3, 7, 3, 3]",
    );
}

/// A study starts the runs of the checkpoint's network from it; a checkpoint of none of
/// its networks is an error naming them.
#[test]
fn study_init_starts_the_matching_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let set5 = data_dir().join("Set5").display().to_string();
    let tiny = [
        "--steps",
        "1",
        "--batch",
        "2",
        "--patch",
        "24",
        "--quiet",
        "--threads",
        "2",
    ];
    let mut args = vec!["train", "wdsr-b", "--blocks", "1", "--data", &set5, "--out", "seed-run"];
    args.extend(tiny);
    let o = srgraph(&args, d);
    assert!(o.status.success(), "{}", text(&o));
    let mut args = vec![
        "study",
        "blocks",
        "--archs",
        "wdsr-b,wdsr-a",
        "--blocks",
        "1",
        "--data",
        &set5,
        "--val",
        &set5,
        "--out",
        "study",
        "--init",
        "seed-run/checkpoint.onnx",
    ];
    args.extend(tiny);
    let o = srgraph(&args, d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("the runs wdsr-b-b1 start from its weights"),
        "{}",
        text(&o)
    );
    let runs = d.join("study/runs");
    let meta = |run: &str| {
        text(&srgraph(
            &["inspect", runs.join(run).join("model.onnx").to_str().unwrap()],
            d,
        ))
    };
    assert!(
        meta("wdsr-b-b1").contains("initialised_from = seed-run/checkpoint.onnx"),
        "{}",
        meta("wdsr-b-b1")
    );
    assert!(!meta("wdsr-a-b1").contains("initialised_from"), "{}", meta("wdsr-a-b1"));

    let fx = fixtures().join("wdsr-b_x2_b2f10_param.pt").display().to_string();
    let o = srgraph(
        &[
            "study", "blocks", "--archs", "wdsr-b", "--blocks", "1", "--init", &fx, "--out", "s2",
        ],
        d,
    );
    fails_with(&o, "which is none of the study's runs (wdsr-b-b1)");
}

/// Fine-tuning: `train --init` starts from the imported weights, so its first loss is
/// the imported model's L1 on the first batch.
#[test]
fn train_init_continues_from_imported_weights() {
    use srgraph::data::dataset::{ImageSet, PatchSampler};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = manifest();
    for file in ["wdsr-b_x2_b2f10_param.pt", "edsr-pytorch_x2_b2f10.pt"] {
        let case = m["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["file"] == file)
            .unwrap();
        let (_, _, onnx) = import(case);
        let set5 = data_dir().join("Set5").display().to_string();
        let arch = case["arch"].as_str().unwrap();
        let init = fixtures().join(file).display().to_string();
        let args = [
            "train",
            arch,
            "--init",
            &init,
            "--data",
            &set5,
            "--steps",
            "1",
            "--batch",
            "2",
            "--patch",
            "24",
            "--out",
            "run",
            "--force",
            "--quiet",
            "--threads",
            "2",
        ];
        let o = srgraph(&args, d);
        assert!(o.status.success(), "{file}: {}", text(&o));
        let log = std::fs::read_to_string(d.join("run/log.jsonl")).unwrap();
        let first: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        let loss = first["loss"].as_f64().unwrap();

        let (pairs, _) = ImageSet::open(Path::new(&set5), 2).unwrap().load().unwrap();
        // Step k trains on the sampler's batch k - 1.
        let (lr, hr) = PatchSampler::new(pairs, 24, 2, 0).unwrap().batch(0, 2).unwrap();
        let sr = run_once(&onnx, vec![lr.into_dyn()]).unwrap().remove(0);
        let l1 = (&sr - &hr.into_dyn()).mapv(f32::abs).mean().unwrap() as f64;
        println!("{file}: first step's loss {loss:.5}, imported model's L1 {l1:.5}");
        assert!((loss - l1).abs() <= 1e-4 * l1.max(1.0), "{file}: {loss} against {l1}");

        // The run goes back out: its checkpoint exported and imported again is its model, bit for bit.
        let o = srgraph(&["export", "run", "-o", "run.safetensors", "--force"], d);
        assert!(o.status.success(), "{file}: {}", text(&o));
        let o = srgraph(&["import", "run.safetensors", "-o", "again.onnx", "--force"], d);
        assert!(o.status.success(), "{file}: {}", text(&o));
        assert_eq!(
            initialisers(&std::fs::read(d.join("again.onnx")).unwrap()),
            initialisers(&std::fs::read(d.join("run/model.onnx")).unwrap()),
            "{file}: the exported run does not import to its model"
        );

        // A flag that disagrees with the checkpoint is an error naming both.
        let o = srgraph(
            &[
                "train", arch, "--init", &init, "--blocks", "5", "--data", &set5, "--out", "run2",
            ],
            d,
        );
        fails_with(&o, "not --blocks 5");
    }
}

/// krasserm/super-resolution's Keras weights (tools/oracles/keras_fixtures.py ran its model code
/// with TensorFlow 2.15 and TensorFlow Addons): TensorFlow's output in both runtimes, and
/// exported to PyTorch's names (DCR reordered to CRD) the same network again.
#[cfg(feature = "keras")]
#[test]
fn keras_weights_give_tensorflows_output_and_export_to_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let keras = fixtures().join("keras");
    let m: Value = serde_json::from_slice(&std::fs::read(keras.join("manifest.json")).unwrap()).unwrap();
    let cases = m["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let name = case["file"].as_str().unwrap();
        let path = keras.join(name);
        let (state, d) = interop::load(&path, &hints(case)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(d.config.arch.name(), case["arch"].as_str().unwrap(), "{name}");
        assert_eq!(d.config.scale as u64, case["scale"].as_u64().unwrap(), "{name}");
        assert_eq!(d.config.blocks as u64, case["blocks"].as_u64().unwrap(), "{name}");
        assert_eq!(d.config.filters as u64, case["filters"].as_u64().unwrap(), "{name}");
        let onnx = interop::inference_model(&state, &d, name).unwrap();
        let x = input(case);
        let want: ArrayD<f32> = ndarray_npy::read_npy(keras.join(case["reference"].as_str().unwrap())).unwrap();
        let by_tract = run_once(&onnx, vec![x.clone()]).unwrap().remove(0);
        let by_ort = OrtModel::new(&onnx, Device::Cpu, 2).unwrap().run(x.clone()).unwrap();
        let (et, eo) = (error_of_range(&by_tract, &want), error_of_range(&by_ort, &want));

        let e = interop::export_state(&d.config, &d.values, interop::ExportLayout::Official).unwrap();
        let st = dir.path().join("from-keras.safetensors");
        std::fs::write(&st, interop::to_safetensors(&e.tensors, e.config.metadata()).unwrap()).unwrap();
        let (state2, d2) = interop::load(&st, &Hints::default()).unwrap();
        assert_eq!(d2.config.shuffle, srgraph::ir::ShuffleMode::Crd, "{name}");
        let crd = interop::inference_model(&state2, &d2, "crd").unwrap();
        let ec = error_of_range(&run_once(&crd, vec![x]).unwrap().remove(0), &want);
        println!(
            "{name}: max error {et:.2e} (tract), {eo:.2e} (ONNX Runtime), {ec:.2e} (exported to PyTorch's layout)"
        );
        assert!(et <= 1e-3 && eo <= 1e-3 && ec <= 1e-3, "{name}: {et}, {eo}, {ec}");
    }
}

#[cfg(not(feature = "keras"))]
#[test]
fn keras_weights_without_the_feature_say_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let h5 = fixtures().join("keras/edsr_x2_b2f8.h5").display().to_string();
    fails_with(
        &srgraph(&["import", &h5, "-o", "k.onnx"], dir.path()),
        "--features keras",
    );
}
