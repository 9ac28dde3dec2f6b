//! One train step (forward, loss, gradients, Adam) of the study's 8-block
//! networks at the study's setting (batch 16, HR patch 96), x2 and x4, in ONNX
//! Runtime (CPU, all cores) and tract. Needs the ONNX Runtime library: run
//! `tools/setup/fetch-onnxruntime.sh`, or set ORT_DYLIB_PATH.
//!
//!   cargo bench --bench train_step
//!   SRGRAPH_BENCH_ENGINES=ort cargo bench --bench train_step    (one engine)

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::ArrayD;
use srgraph::compiler::{compile, TrainConfig};
use srgraph::models;
use srgraph::runtime::ort::{Device, OrtTrainer};
use srgraph::runtime::tract::TractTrainer;
use srgraph::runtime::Trainer;
use std::time::Duration;

fn train_step(c: &mut Criterion) {
    let engines = std::env::var("SRGRAPH_BENCH_ENGINES").unwrap_or("ort,tract".into());
    let mut group = c.benchmark_group("train step, batch 16, HR patch 96");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for name in ["study-edsr-8", "study-wdsr-a-8", "study-wdsr-b-8"] {
        for scale in [2, 4] {
            let mut cfg = models::preset(name).unwrap().unwrap().config().unwrap();
            cfg.scale = scale;
            let t = TrainConfig {
                batch: 16,
                patch: 96,
                ..TrainConfig::default()
            };
            let step = compile(&cfg, &t).unwrap().train_step;
            let lr = ArrayD::from_elem(vec![16, 3, 96 / scale, 96 / scale], 100.0f32);
            let hr = ArrayD::from_elem(vec![16, 3, 96, 96], 110.0f32);
            for engine in engines.split(',') {
                let mut trainer: Box<dyn Trainer> = match engine {
                    "ort" => Box::new(OrtTrainer::new(&step, Device::Cpu, 0).unwrap()),
                    "tract" => Box::new(TractTrainer::new(&step).unwrap()),
                    other => panic!("unknown engine {other}"),
                };
                let mut n = 0;
                group.bench_function(format!("{name} x{scale} {engine}"), |b| {
                    b.iter(|| {
                        n += 1;
                        trainer.step(lr.clone(), hr.clone(), 1e-4, n).unwrap()
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
