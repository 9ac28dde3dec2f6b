//! One train step (forward, loss, gradients, Adam) of the study's 8-block
//! networks at the study's setting (batch 16, HR patch 96), x2 and x4, in ONNX
//! Runtime (CPU, all cores) and tract. Needs the ONNX Runtime library: run
//! `tools/setup/fetch-onnxruntime.sh`, or set ORT_DYLIB_PATH.
//!
//! Then WDSR-B's block with each efficient convolution (`--conv`), 2 blocks, batch 8,
//! HR patch 48, x2: a step small enough for about a minute per kind on 2 cores.
//!
//!   cargo bench --bench train_step
//!   cargo bench --bench train_step -- "conv kind"                (the conv kinds alone)
//!   SRGRAPH_BENCH_ENGINES=ort cargo bench --bench train_step    (one engine)
//!   SRGRAPH_BENCH_THREADS=1 cargo bench --bench train_step      (ONNX Runtime on 1 thread, as tract)

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use ndarray::ArrayD;
use srgraph::compiler::{compile, TrainConfig};
use srgraph::models::{self, Arch, ConvKind, ModelConfig};
use srgraph::runtime::ort::{Device, OrtTrainer};
use srgraph::runtime::tract::TractTrainer;
use srgraph::runtime::Trainer;
use std::time::Duration;

fn engines() -> Vec<String> {
    let engines = std::env::var("SRGRAPH_BENCH_ENGINES").unwrap_or("ort,tract".into());
    engines.split(',').map(String::from).collect()
}

/// ONNX Runtime's threads: all cores unless SRGRAPH_BENCH_THREADS says.
fn threads() -> usize {
    std::env::var("SRGRAPH_BENCH_THREADS").map_or(0, |t| t.parse().expect("SRGRAPH_BENCH_THREADS: a number"))
}

fn trainer(step: &srgraph::ir::Graph, engine: &str) -> Box<dyn Trainer> {
    match engine {
        "ort" => Box::new(OrtTrainer::new(step, Device::Cpu, threads()).unwrap()),
        "tract" => Box::new(TractTrainer::new(step).unwrap()),
        other => panic!("unknown engine {other}"),
    }
}

/// One train step of `cfg` at batch x HR patch in each engine, as `label`.
fn bench_step(group: &mut BenchmarkGroup<WallTime>, cfg: &ModelConfig, batch: usize, patch: usize, label: &str) {
    let t = TrainConfig {
        batch,
        patch,
        ..TrainConfig::default()
    };
    let step = compile(cfg, &t).unwrap().train_step;
    let lr_side = patch / cfg.scale;
    let lr = ArrayD::from_elem(vec![batch, 3, lr_side, lr_side], 100.0f32);
    let hr = ArrayD::from_elem(vec![batch, 3, patch, patch], 110.0f32);
    for engine in engines() {
        let mut trainer = trainer(&step, &engine);
        let mut n = 0;
        group.bench_function(format!("{label} {engine}"), |b| {
            b.iter(|| {
                n += 1;
                trainer.step(lr.clone(), hr.clone(), 1e-4, n).unwrap()
            })
        });
    }
}

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train step, batch 16, HR patch 96");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for name in ["study-edsr-8", "study-wdsr-a-8", "study-wdsr-b-8"] {
        for scale in [2, 4] {
            let mut cfg = models::preset(name).unwrap().unwrap().config().unwrap();
            cfg.scale = scale;
            bench_step(&mut group, &cfg, 16, 96, &format!("{name} x{scale}"));
        }
    }
    group.finish();
}

/// WDSR-B (F = 32, e = 6) with 2 blocks of each `--conv` kind, x2.
fn conv_kinds(c: &mut Criterion) {
    let mut group = c.benchmark_group("train step by conv kind, wdsr-b 2 blocks, batch 8, HR patch 48");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for kind in ConvKind::STUDY {
        let mut cfg = ModelConfig::new(Arch::WdsrB);
        cfg.blocks = 2;
        cfg.conv = kind;
        bench_step(&mut group, &cfg, 8, 48, &format!("{} x2", kind.name()));
    }
    group.finish();
}

criterion_group!(benches, train_step, conv_kinds);
criterion_main!(benches);
