//! The training compiler end to end: its train-step graph trains a real network
//! on real patches in tract, ONNX Runtime computes the same steps, and the
//! trained parameters give the same pictures through the exported inference
//! graph as through the eval graph.

use crate::common;

use ndarray::{Array3, ArrayD};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use srgraph::compiler::{compile, Loss, TrainConfig};
use srgraph::data::{load_hwc, random_pair, to_batch};
use srgraph::export::inference_graph;
use srgraph::models::{self, Arch, ConvKind, ModelConfig, Norm};
use srgraph::onnx::Model;
use srgraph::runtime::tract::{run_once, TractTrainer};
use srgraph::runtime::Trainer;
use srgraph::util::npy_bytes;
use std::process::Command;

fn t91(count: usize) -> Vec<Array3<u8>> {
    let dir = common::data_dir().join("T91");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().take(count).map(|p| load_hwc(p).unwrap()).collect()
}

/// A batch of random (LR, HR) pairs cut from the images.
fn batch(
    images: &[Array3<u8>],
    n: usize,
    patch: usize,
    scale: usize,
    rng: &mut ChaCha8Rng,
) -> (ArrayD<f32>, ArrayD<f32>) {
    let pairs: Vec<_> = (0..n)
        .map(|i| random_pair(&images[i % images.len()], patch, scale, rng).unwrap())
        .collect();
    let lr: Vec<_> = pairs.iter().map(|p| p.0.clone()).collect();
    let hr: Vec<_> = pairs.iter().map(|p| p.1.clone()).collect();
    (to_batch(&lr).into_dyn(), to_batch(&hr).into_dyn())
}

fn small(arch: Arch, norm: Norm) -> ModelConfig {
    ModelConfig {
        blocks: 2,
        filters: 16,
        expansion: 4,
        norm,
        seed: 1,
        ..ModelConfig::new(arch)
    }
}

/// 200 steps of Adam (lr 1e-3, L1) on batches of 8 random 32x32 crops of T91
/// at x2: the mean loss of the last 20 steps must be below 60% of the first 20.
/// (A randomly initialised network starts far from the picture; a working
/// gradient and update take it most of the way in a few hundred steps.)
#[test]
fn tract_trains_wdsr_b_on_t91_and_export_matches_eval() {
    let c = small(Arch::WdsrB, Norm::Weight);
    let t = TrainConfig {
        batch: 8,
        patch: 32,
        ..TrainConfig::default()
    };
    let graphs = compile(&c, &t).unwrap();
    let mut trainer = TractTrainer::new(&graphs.train_step).unwrap();
    let images = t91(32);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut losses = vec![];
    for step in 1..=200 {
        let (lr, hr) = batch(&images[(step as usize % 4) * 8..], 8, 32, 2, &mut rng);
        losses.push(trainer.step(lr, hr, 1e-3, step).unwrap());
    }
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
    let (first, last) = (mean(&losses[..20]), mean(&losses[180..]));
    println!(
        "L1 loss: first 20 steps {first:.3}, last 20 steps {last:.3} ({:.0}% lower)",
        100.0 * (1.0 - last / first)
    );
    assert!(last < 0.6 * first, "loss did not fall enough: {first} -> {last}");

    // The trained parameters, in the inference graph and in the eval graph.
    let values: Vec<_> = trainer
        .values()
        .unwrap()
        .into_iter()
        .filter(|(n, _)| !n.contains(".adam_"))
        .collect();
    let mut trained = models::build(&c).unwrap();
    trained.set_values(&values).unwrap();
    let inference = inference_graph(&trained).unwrap();
    let mut eval = graphs.eval.clone();
    eval.set_values(&values).unwrap();
    let (lr, hr) = batch(&images, 8, 32, 2, &mut rng);
    let sr_inference = run_once(
        &Model::new(inference, vec![]).to_bytes("inference").unwrap(),
        vec![lr.clone()],
    )
    .unwrap()
    .remove(0);
    let sr_eval = run_once(&Model::new(eval, vec![]).to_bytes("eval").unwrap(), vec![lr, hr])
        .unwrap()
        .remove(0);
    let err = common::rel_err(&sr_inference, &sr_eval);
    assert!(err <= 1e-4, "inference and eval graphs differ by {err:e}");
}

/// Each WDSR-B block kind learns in tract: 100 steps of Adam on batches of 4
/// crops of T91 take the mean loss of the last 20 below 75% of the first 20.
#[test]
fn every_block_kind_learns_in_tract() {
    let images = t91(16);
    for conv in ConvKind::STUDY {
        let c = ModelConfig {
            conv,
            ..small(Arch::WdsrB, Norm::Weight)
        };
        let t = TrainConfig {
            batch: 4,
            patch: 24,
            ..TrainConfig::default()
        };
        let mut trainer = TractTrainer::new(&compile(&c, &t).unwrap().train_step).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let losses: Vec<f32> = (1..=100)
            .map(|step| {
                let (lr, hr) = batch(&images[(step as usize % 4) * 4..], 4, 24, 2, &mut rng);
                trainer.step(lr, hr, 1e-3, step).unwrap()
            })
            .collect();
        let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
        let (first, last) = (mean(&losses[..20]), mean(&losses[80..]));
        println!("{conv}: L1 loss, first 20 steps {first:.3}, last 20 {last:.3}");
        assert!(
            last < 0.75 * first,
            "{conv}: loss did not fall enough: {first} -> {last}"
        );
    }
}

/// The same 5 steps in tract and in ONNX Runtime (Python) end at the same
/// parameters, moments and running statistics to 1e-4, for each architecture and
/// WDSR-B's flattened, group and depthwise blocks; batch norm included.
#[test]
fn onnxruntime_takes_the_same_steps_as_tract() {
    let images = t91(8);
    for (arch, norm, loss, conv) in [
        (Arch::WdsrA, Norm::Weight, Loss::L1, ConvKind::LowRank),
        (Arch::WdsrB, Norm::Batch, Loss::Mse, ConvKind::LowRank),
        (Arch::Edsr, Norm::None, Loss::L1, ConvKind::LowRank),
        (Arch::WdsrB, Norm::Weight, Loss::L1, ConvKind::Flattened),
        (Arch::WdsrB, Norm::Weight, Loss::L1, ConvKind::Group(4)),
        (Arch::WdsrB, Norm::Batch, Loss::L1, ConvKind::InvertedResidual),
    ] {
        let c = ModelConfig {
            scale: 3,
            conv,
            ..small(arch, norm)
        };
        let t = TrainConfig {
            batch: 4,
            patch: 24,
            loss,
            ..TrainConfig::default()
        };
        let graphs = compile(&c, &t).unwrap();
        let mut trainer = TractTrainer::new(&graphs.train_step).unwrap();
        let (lr, hr) = batch(&images, 4, 24, 3, &mut ChaCha8Rng::seed_from_u64(9));
        for step in 1..=5 {
            trainer.step(lr.clone(), hr.clone(), 1e-3, step).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("train_step.onnx"),
            Model::new(graphs.train_step.clone(), vec![])
                .to_bytes("train_step")
                .unwrap(),
        )
        .unwrap();
        std::fs::write(d.join("lr.npy"), npy_bytes(&lr)).unwrap();
        std::fs::write(d.join("hr.npy"), npy_bytes(&hr)).unwrap();
        std::fs::write(d.join("steps.txt"), "5 1e-3").unwrap();
        let values = trainer.values().unwrap();
        let names: String = values.iter().map(|(n, t)| format!("{n} {}\n", t.len())).collect();
        std::fs::write(d.join("names.txt"), names).unwrap();
        let flat: Vec<f32> = values
            .iter()
            .flat_map(|(_, t)| t.as_f32().unwrap().iter().copied().collect::<Vec<_>>())
            .collect();
        std::fs::write(
            d.join("tract.npy"),
            npy_bytes(&ndarray::ArrayD::from_shape_vec(vec![flat.len()], flat).unwrap()),
        )
        .unwrap();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/oracles/train_parity.py");
        let out = Command::new(common::python()).arg(script).arg(d).output().unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{} {} {} {conv}: {log}", arch.name(), norm.name(), loss.name());
        assert!(out.status.success(), "{} {}: {log}", arch.name(), norm.name());
    }
}

/// srgraph's ONNX Runtime engine (ort, IoBinding with two state sets in turn)
/// takes the same 5 steps as tract, to 1e-4 relative per tensor.
#[test]
fn ort_engine_takes_the_same_steps_as_tract() {
    use srgraph::runtime::ort::{Device, OrtTrainer};
    let images = t91(8);
    let c = ModelConfig {
        scale: 2,
        ..small(Arch::WdsrB, Norm::Weight)
    };
    let t = TrainConfig {
        batch: 4,
        patch: 32,
        ..TrainConfig::default()
    };
    let graphs = compile(&c, &t).unwrap();
    let mut tract = TractTrainer::new(&graphs.train_step).unwrap();
    let mut ort = OrtTrainer::new(&graphs.train_step, Device::Cpu, 2).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for step in 1..=5 {
        let (lr, hr) = batch(&images, 4, 32, 2, &mut rng);
        let a = tract.step(lr.clone(), hr.clone(), 1e-3, step).unwrap();
        let b = ort.step(lr, hr, 1e-3, step).unwrap();
        assert!(
            (a - b).abs() <= 1e-4 * a.abs(),
            "step {step}: loss {a} in tract, {b} in ONNX Runtime"
        );
    }
    for ((name, a), (_, b)) in tract.values().unwrap().iter().zip(ort.values().unwrap()) {
        let (a, b) = (a.as_f32().unwrap(), b.as_f32().unwrap());
        let err = common::rel_err(b, a);
        assert!(err <= 1e-4, "{name}: tract and ONNX Runtime differ by {err:e}");
    }
}
