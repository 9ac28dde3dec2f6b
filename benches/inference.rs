//! What `srgraph build` costs (build, fold, encode) and how fast tract runs a
//! seed-study network, at 64 x 64 input: `cargo bench --bench inference`.

use criterion::{criterion_group, criterion_main, Criterion};
use srgraph::export::inference_graph;
use srgraph::models::{self, ModelConfig};
use srgraph::onnx::Model;
use srgraph::runtime::tract::TractModel;
use std::hint::black_box;

fn study(name: &str) -> ModelConfig {
    models::preset(name).unwrap().unwrap().config().unwrap()
}

fn build(c: &mut Criterion) {
    for name in ["study-edsr-8", "study-wdsr-a-8", "study-wdsr-b-8"] {
        let cfg = study(name);
        c.bench_function(&format!("build+fold+encode {name}"), |b| {
            b.iter(|| {
                let g = inference_graph(&models::build(black_box(&cfg)).unwrap()).unwrap();
                Model::new(g, cfg.metadata()).to_bytes(name).unwrap()
            })
        });
    }
}

fn tract(c: &mut Criterion) {
    let mut group = c.benchmark_group("tract 64x64 -> 128x128");
    group.sample_size(10);
    for name in ["study-edsr-8", "study-wdsr-a-8", "study-wdsr-b-8"] {
        let cfg = study(name);
        let bytes = Model::new(inference_graph(&models::build(&cfg).unwrap()).unwrap(), vec![])
            .to_bytes(name)
            .unwrap();
        let model = TractModel::new(&bytes, &[&[1, 3, 64, 64]]).unwrap();
        let x = ndarray::ArrayD::<f32>::from_elem(ndarray::IxDyn(&[1, 3, 64, 64]), 128.0);
        group.bench_function(name, |b| b.iter(|| model.run(vec![x.clone()]).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, build, tract);
criterion_main!(benches);
