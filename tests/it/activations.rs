//! `srgraph inspect --activations` and `eval::activation_stats` under it: a table with a
//! row per residual block and shares that are shares, the same numbers in tract and ONNX
//! Runtime, and clear errors for models it cannot read.

use crate::common::{data, data_dir, fails_with, srgraph, text};
use prost::Message;
use srgraph::eval::activations::{activation_stats, block_stats, centre};
use srgraph::onnx::pb;
use srgraph::runtime::{ort::Device, Runtime};
use std::path::Path;

/// A tiny WDSR-B (2 blocks of 8 filters, untrained) written to `dir/file`.
fn tiny_wdsr_b(dir: &Path, file: &str) {
    let o = srgraph(&["build", "wdsr-b", "--blocks", "2", "--filters", "8", "-o", file], dir);
    assert!(o.status.success(), "{}", text(&o));
}

/// The rows of the table: (block, channels, zero %, dead %).
fn rows(stdout: &str) -> Vec<(String, usize, f64, f64)> {
    stdout
        .lines()
        .filter(|l| l.starts_with("body."))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dead = f[6].trim_matches(|c| c == '(' || c == ')' || c == '%');
            (
                f[0].to_string(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                dead.parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn inspect_prints_a_row_per_block_and_shares_in_range() {
    let dir = tempfile::tempdir().unwrap();
    tiny_wdsr_b(dir.path(), "tiny.onnx");
    let picture = data("Set5/LR_bicubic/X2/birdx2.png");
    let o = srgraph(
        &["inspect", "tiny.onnx", "--activations", &picture, "--crop", "40"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("its centre 40x40 runs"), "{out}");
    let rows = rows(&out);
    let blocks: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(blocks, ["body.0", "body.1"], "{out}");
    for (block, channels, zero, dead) in &rows {
        // WDSR-B widens 8 filters by its expansion (6) before the ReLU.
        assert_eq!(*channels, 48, "{block}: {out}");
        assert!((0.0..=100.0).contains(zero), "{block}: zero {zero}%");
        assert!((0.0..=100.0).contains(dead), "{block}: dead {dead}%");
    }
    assert!(out.contains("mean zero share over 2 blocks: "), "{out}");
}

#[test]
fn tract_and_onnx_runtime_give_the_same_numbers() {
    let model = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/wdsr-b-x2.onnx")).unwrap();
    let picture = srgraph::data::load_hwc(&data_dir().join("Set5/LR_bicubic/X2/butterflyx2.png")).unwrap();
    let lr = centre(picture.view(), 64);
    let tract = activation_stats(&model, "x2", lr.view(), Runtime::Tract, 0).unwrap();
    let ort = activation_stats(&model, "x2", lr.view(), Runtime::Ort(Device::Cpu), 2).unwrap();
    assert_eq!(tract.len(), 16);
    assert_eq!(block_stats(&tract).len(), 16);
    for (t, o) in tract.iter().zip(&ort) {
        assert_eq!((&t.name, t.channels), (&o.name, o.channels));
        assert!((t.zero_share - o.zero_share).abs() <= 1e-3, "{t:?}\n{o:?}");
        assert!((t.mean - o.mean).abs() <= 1e-3 * t.mean.max(1e-3), "{t:?}\n{o:?}");
        assert!(t.dead_channels.abs_diff(o.dead_channels) <= 1, "{t:?}\n{o:?}");
        // A trained network lets something through, and drops something.
        assert!(t.zero_share > 0.05 && t.zero_share < 0.95, "{t:?}");
    }
}

#[test]
fn models_it_cannot_read_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    tiny_wdsr_b(dir.path(), "tiny.onnx");
    let picture = data("Set5/LR_bicubic/X2/birdx2.png");
    // Another producer's graph: its node names say nothing of blocks.
    let mut proto = pb::ModelProto::decode(&std::fs::read(dir.path().join("tiny.onnx")).unwrap()[..]).unwrap();
    proto.producer_name = "pytorch".into();
    std::fs::write(dir.path().join("foreign.onnx"), proto.encode_to_vec()).unwrap();
    let o = srgraph(&["inspect", "foreign.onnx", "--activations", &picture], dir.path());
    fails_with(&o, "foreign.onnx was not made by srgraph");
    let o = srgraph(&["inspect", "tiny.onnx", "--activations", "missing.png"], dir.path());
    fails_with(&o, "missing.png");
    // --engine runs a model: without a picture it is a usage error.
    let o = srgraph(&["inspect", "tiny.onnx", "--engine", "ort"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
