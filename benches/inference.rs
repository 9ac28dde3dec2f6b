//! What `srgraph build` costs (build, fold, encode), and how fast the study
//! networks super-resolve a 256 x 256 picture in tract (whole and tiled) and ONNX
//! Runtime: `cargo bench --bench inference` (criterion reports output pixels per second).
//! Then the 8-block WDSR-B with each efficient convolution (`--conv`) on the same picture:
//! `cargo bench --bench inference -- "by conv kind"` (SRGRAPH_BENCH_THREADS=1: ONNX Runtime on
//! 1 thread there, as tract).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array3;
use srgraph::data::load_hwc;
use srgraph::export::inference_graph;
use srgraph::infer::SrModel;
use srgraph::models::{self, ConvKind, ModelConfig};
use srgraph::onnx::Model;
use srgraph::runtime::{ort::Device, Runtime};
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

/// A 256 x 256 crop of Set5's baby.
fn baby_256() -> Array3<u8> {
    let data = std::env::var_os("SRGRAPH_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let lr = load_hwc(&data.join("Set5/HR/baby.png")).unwrap();
    lr.slice(ndarray::s![128..384, 128..384, ..]).to_owned()
}

/// The WDSR paper's study's 8-block networks super-resolving a 256 x 256 LR picture (a crop of
/// Set5's baby) x2: tract whole, tract in tiles (all cores), and ONNX Runtime on the CPU.
fn upscale_256(c: &mut Criterion) {
    let lr = baby_256();
    let mut group = c.benchmark_group("upscale 256x256 -> 512x512");
    group.sample_size(10);
    group.throughput(Throughput::Elements(512 * 512));
    for name in ["study-edsr-8", "study-wdsr-a-8", "study-wdsr-b-8"] {
        let cfg = study(name);
        let bytes = Model::new(inference_graph(&models::build(&cfg).unwrap()).unwrap(), cfg.metadata())
            .to_bytes(name)
            .unwrap();
        let runs: [(&str, Runtime, Option<usize>); 4] = [
            ("tract whole", Runtime::Tract, None),
            ("tract tiles 128", Runtime::Tract, Some(128)),
            ("tract tiles 64", Runtime::Tract, Some(64)),
            ("onnxruntime-cpu whole", Runtime::Ort(Device::Cpu), None),
        ];
        for (how, engine, tile) in runs {
            let mut m = SrModel::from_bytes(bytes.clone(), name, engine, 0).unwrap();
            // The first run optimises tract's plan for the tile size: not what is measured.
            m.upscale(&lr, tile, &|| {}).unwrap();
            group.bench_function(format!("{name} {how}"), |b| {
                b.iter(|| m.upscale(&lr, tile, &|| {}).unwrap())
            });
        }
    }
    group.finish();
}

/// The study's 8-block WDSR-B (F = 32, e = 6) with each `--conv` kind, x2, on the same
/// 256 x 256 picture, whole, in tract and ONNX Runtime on the CPU.
fn upscale_by_conv_kind(c: &mut Criterion) {
    let lr = baby_256();
    let threads =
        std::env::var("SRGRAPH_BENCH_THREADS").map_or(0, |t| t.parse().expect("SRGRAPH_BENCH_THREADS: a number"));
    let mut group = c.benchmark_group("upscale 256x256 -> 512x512 by conv kind");
    group.sample_size(10);
    group.throughput(Throughput::Elements(512 * 512));
    for kind in ConvKind::STUDY {
        let mut cfg = study("study-wdsr-b-8");
        cfg.conv = kind;
        let name = format!("study-wdsr-b-8 {}", kind.name());
        let bytes = Model::new(inference_graph(&models::build(&cfg).unwrap()).unwrap(), cfg.metadata())
            .to_bytes(&name)
            .unwrap();
        for (how, engine) in [
            ("tract", Runtime::Tract),
            ("onnxruntime-cpu", Runtime::Ort(Device::Cpu)),
        ] {
            let mut m = SrModel::from_bytes(bytes.clone(), &name, engine, threads).unwrap();
            m.upscale(&lr, None, &|| {}).unwrap();
            group.bench_function(format!("{name} {how}"), |b| {
                b.iter(|| m.upscale(&lr, None, &|| {}).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, build, upscale_256, upscale_by_conv_kind);
criterion_main!(benches);
