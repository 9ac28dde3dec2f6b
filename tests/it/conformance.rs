//! Cross-runtime conformance: every preset's inference graph, and every
//! architecture x scale x shuffle layout and WDSR-B block kind, in its folded and training forms, is
//! written with a real input (a crop of Set5) and tract's output beside it, and,
//! for the inference graphs, ONNX Runtime's output through srgraph's Rust `ort`
//! engine; then tools/oracles/conformance.py checks each file with
//! `onnx.checker.check_model(full_check=True)` and runs it in ONNX Runtime
//! (Python) and, for the inference graphs, OpenCV's DNN module: all four runtimes
//! must agree to 1e-4 (relative to the output's magnitude).

use crate::common::{self, set5_crop};
use srgraph::export::inference_graph;
use srgraph::ir::ShuffleMode;
use srgraph::models::{self, Arch, ConvKind, ModelConfig};
use srgraph::onnx::Model;
use srgraph::runtime::ort::{Device, OrtModel};
use srgraph::runtime::tract::run_once;
use srgraph::util::npy_bytes;
use std::path::Path;
use std::process::Command;

fn write_case(dir: &Path, name: &str, g: srgraph::ir::Graph, meta: srgraph::onnx::Metadata, x: &ndarray::ArrayD<f32>) {
    let bytes = Model::new(g, meta).to_bytes(name).unwrap();
    let y = run_once(&bytes, vec![x.clone()]).unwrap().remove(0);
    std::fs::write(dir.join(format!("{name}.onnx")), &bytes).unwrap();
    std::fs::write(dir.join(format!("{name}.input.npy")), npy_bytes(x)).unwrap();
    std::fs::write(dir.join(format!("{name}.tract.npy")), npy_bytes(&y)).unwrap();
    if !name.ends_with("-unfolded") {
        let y = OrtModel::new(&bytes, Device::Cpu, 2).unwrap().run(x.clone()).unwrap();
        std::fs::write(dir.join(format!("{name}.ort-rust.npy")), npy_bytes(&y)).unwrap();
    }
}

#[test]
fn onnx_checker_passes_and_four_runtimes_agree() {
    let dir = tempfile::tempdir().unwrap();
    // 40 x 52: small enough for the 16-block presets, not square, not a multiple of 8.
    let x = set5_crop("butterfly", 100, 60, 40, 52);
    for p in models::presets().unwrap() {
        let c = p.config().unwrap();
        write_case(
            dir.path(),
            &p.name,
            inference_graph(&models::build(&c).unwrap()).unwrap(),
            c.metadata(),
            &x,
        );
    }
    for arch in Arch::ALL {
        for scale in [2, 3, 4] {
            for shuffle in [ShuffleMode::Crd, ShuffleMode::Dcr] {
                let c = ModelConfig {
                    scale,
                    blocks: 2,
                    filters: 8,
                    expansion: 2,
                    shuffle,
                    seed: 3,
                    ..ModelConfig::new(arch)
                };
                let name = format!("{}-x{scale}-{}", arch.name(), shuffle.onnx_name());
                let g = models::build(&c).unwrap();
                write_case(dir.path(), &format!("{name}-unfolded"), g.clone(), c.metadata(), &x);
                write_case(dir.path(), &name, inference_graph(&g).unwrap(), c.metadata(), &x);
            }
        }
    }
    // WDSR-B's other block kinds: flattened (3x1, 1x3), grouped and depthwise convs.
    for conv in ConvKind::STUDY {
        let c = ModelConfig {
            blocks: 2,
            filters: 8,
            expansion: 2,
            conv,
            seed: 3,
            ..ModelConfig::new(Arch::WdsrB)
        };
        let name = format!("wdsr-b-{}", conv.name().replace(':', ""));
        let g = models::build(&c).unwrap();
        write_case(dir.path(), &format!("{name}-unfolded"), g.clone(), c.metadata(), &x);
        write_case(dir.path(), &name, inference_graph(&g).unwrap(), c.metadata(), &x);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/oracles/conformance.py");
    let out = Command::new(common::python())
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    println!("{log}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "conformance failed:\n{log}");
    assert!(log.contains(" 0 failed"), "{log}");
}
