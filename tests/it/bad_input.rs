//! Bad input, one class at a time: malformed models, options out of range, pictures
//! too small, NaN weights, external data (and in `runs`: outputs onto inputs or other
//! work, run folders in use, signals). Each case ends in exit 1 (a failure) or 2 (a
//! usage error) with a message that names the file or flag, never a panic, and the
//! files around it are byte for byte what they were.

use crate::common::{data, data_dir, srgraph, text};
use prost::Message;
use srgraph::onnx::pb;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

mod runs;
use runs::train_args;

/// Every file under `dir` with its bytes: what must not change. A run folder's
/// `.srgraph.lock` is left out: every process that takes the lock writes its pid there.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if !p.ends_with(".srgraph.lock") {
                files.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

/// Exit `code`, `needle` in the message, no panic, no Rust debug dump.
fn refused(o: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    for dump in ["panicked", "Custom {", "Os {", "kind: ", "RUST_BACKTRACE"] {
        assert!(!err.contains(dump), "'{dump}' in: {err}");
    }
}

/// `f` runs and leaves every file in `dir` as it was.
fn unchanged<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
    let before = snapshot(dir);
    let out = f();
    assert!(before == snapshot(dir), "files changed in {}", dir.display());
    out
}

/// A one-block WDSR-B with 8 filters: small and quick to run.
fn tiny_model(d: &Path, name: &str) {
    let o = srgraph(&["build", "wdsr-b", "--blocks", "1", "--filters", "8", "-o", name], d);
    assert!(o.status.success(), "{}", text(&o));
}

fn set_conv_ints(bytes: &[u8], attr: &str, values: &[i64]) -> Vec<u8> {
    let mut m = pb::ModelProto::decode(bytes).unwrap();
    let g = m.graph.as_mut().unwrap();
    let conv = g.node.iter_mut().find(|n| n.op_type == "Conv").unwrap();
    conv.attribute.retain(|a| a.name != attr);
    conv.attribute.push(pb::AttributeProto {
        name: attr.into(),
        r#type: 7,
        ints: values.to_vec(),
        ..Default::default()
    });
    m.encode_to_vec()
}

fn small_picture(d: &Path, name: &str, w: u32, h: u32) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 9) as u8, (y * 7) as u8, 99]))
        .save(d.join(name))
        .unwrap();
}

#[test]
fn malformed_conv_attributes_are_errors_naming_file_and_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_model(d, "m.onnx");
    small_picture(d, "in.png", 24, 24);
    let good = std::fs::read(d.join("m.onnx")).unwrap();
    std::fs::create_dir(d.join("set")).unwrap();
    small_picture(&d.join("set"), "a.png", 48, 48);
    for (attr, values, says) in [
        ("pads", &[1i64, 1, 1][..], "'pads' has 3 values"),
        ("strides", &[1], "'strides' has 1 values"),
        ("dilations", &[1], "'dilations' has 1 values"),
        ("dilations", &[0, 1], "'dilations' holds 0"),
        ("kernel_shape", &[7, 7], "disagrees with the weight"),
    ] {
        std::fs::write(d.join("bad.onnx"), set_conv_ints(&good, attr, values)).unwrap();
        unchanged(d, || {
            refused(&srgraph(&["upscale", "bad.onnx", "in.png", "-o", "out"], d), 1, says);
            refused(&srgraph(&["eval", "bad.onnx", "--data", "set"], d), 1, says);
        });
        let o = srgraph(&["upscale", "bad.onnx", "in.png", "-o", "out"], d);
        refused(&o, 1, "bad.onnx");
        let o = srgraph(&["inspect", "bad.onnx"], d);
        assert!(o.status.success() && text(&o).contains(says), "{}", text(&o));
    }
}

/// Byte mutations of a valid model, through the path eval and upscale take (the
/// signature and attribute checks, tract's load, optimisation and a probe run):
/// an error or a model, never a panic.
#[test]
fn mutated_models_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), "m.onnx");
    let good = std::fs::read(dir.path().join("m.onnx")).unwrap();
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // A panic anywhere fails the test: the hook is the default one outside tract's guard.
    let mut errors = 0;
    for _ in 0..150 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        let r = srgraph::infer::SrModel::from_bytes(bytes, "mutant.onnx", srgraph::runtime::Runtime::Tract, 1);
        if let Err(e) = r {
            errors += 1;
            assert!(
                format!("{e:#}").contains("mutant.onnx") || format!("{e:#}").contains("tract"),
                "{e:#}"
            );
        }
    }
    assert!(errors > 0, "no mutation was caught: the test mutates nothing");
}

#[test]
fn options_out_of_range_are_usage_errors_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t91 = data("T91");
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "wdsr-b", "--blocks", "1", "--data", &t91, "--out", "r"];
        args.extend(extra);
        srgraph(&args, d)
    };
    unchanged(d, || {
        refused(&train(&["--checkpoint-every", "0"]), 2, "--checkpoint-every");
        refused(&train(&["--validate-every", "0"]), 2, "--validate-every");
        refused(&train(&["--halve-every", "0"]), 2, "--halve-every");
        refused(&train(&["--steps", "0"]), 2, "--steps");
        refused(&train(&["--threads", "100000"]), 2, "--threads");
        refused(&train(&["--resume", "--force"]), 2, "--resume");
        refused(&train(&["--schedule", "linear"]), 2, "--schedule");
        refused(&train(&["--schedule", "multistep:20,10"]), 2, "--schedule");
        refused(&train(&["--ema", "1.5"]), 2, "--ema");
        refused(
            &train(&["--schedule", "cosine", "--warmup", "5000", "--steps", "100"]),
            1,
            "--warmup",
        );
        refused(&train(&["--val-limit", "0"]), 2, "--val-limit");
        refused(&srgraph(&["prepare", "no-such-folder"], d), 1, "no-such-folder");
        refused(
            &srgraph(&["export", "no-such-run", "-o", "x.safetensors"], d),
            1,
            "no-such-run",
        );
        refused(
            &srgraph(&["import", "x.pt", "--rgb-mean", "110,110,100", "-o", "x.onnx"], d),
            2,
            "--rgb-mean",
        );
        refused(
            &srgraph(&["study", "blocks", "--validate-every", "0", "--out", "s"], d),
            2,
            "--validate-every",
        );
        refused(
            &srgraph(&["study", "blocks", "--jobs", "0", "--out", "s"], d),
            2,
            "--jobs",
        );
        refused(
            &srgraph(&["upscale", "m.onnx", "x.png", "--threads", "1000"], d),
            2,
            "--threads",
        );
        // Too large to build: said up front, with the size, not an abort on allocation.
        refused(&srgraph(&["build", "edsr", "--blocks", "100000"], d), 1, "GB");
        refused(&srgraph(&["build", "edsr", "--filters", "10000000"], d), 1, "GB");
        refused(
            &srgraph(&["build", "wdsr-b", "--blocks", "100000000", "--filters", "2"], d),
            1,
            "GB",
        );
        refused(
            &srgraph(&["build", "edsr", "--blocks", "10000000", "--filters", "1"], d),
            1,
            "memory",
        );
        // Too large to train: the activations are counted before the runtime would abort.
        let wide = [
            "train",
            "edsr",
            "--blocks",
            "400",
            "--filters",
            "256",
            "--data",
            &t91,
            "--out",
            "r",
        ];
        refused(&srgraph(&wide, d), 1, "lower --batch or --patch");
    });
    assert!(
        !d.join("r").exists() && !d.join("s").exists(),
        "a refused run made its folder"
    );
}

#[test]
fn pictures_smaller_than_the_scale_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Training skips it with a warning naming its size; the rest trains.
    std::fs::create_dir(d.join("train")).unwrap();
    for name in ["baby", "bird"] {
        std::fs::copy(
            data_dir().join(format!("Set5/HR/{name}.png")),
            d.join(format!("train/{name}.png")),
        )
        .unwrap();
    }
    small_picture(&d.join("train"), "dot.png", 1, 1);
    let train = d.join("train").display().to_string();
    let o = train_args(&train, "run", "2").run(d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("dot.png: 1x1 pixels, smaller than the scale 2"),
        "{}",
        text(&o)
    );
    // eval says which file.
    tiny_model(d, "m.onnx");
    unchanged(d, || {
        refused(&srgraph(&["eval", "m.onnx", "--data", "train"], d), 1, "dot.png")
    });
}

/// A 361-byte progressive JPEG that claims 10000 x 16384 pixels (found by the picture
/// fuzz target, where it took 9 s and 1 GB to decode): refused at once, saying why.
#[test]
fn a_decompression_bomb_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_model(d, "m.onnx");
    let bomb = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/picture/jpeg-bomb-10000x16384.jpg");
    std::fs::copy(bomb, d.join("bomb.jpg")).unwrap();
    unchanged(d, || {
        refused(
            &srgraph(&["upscale", "m.onnx", "bomb.jpg", "-o", "big.png"], d),
            1,
            "megapixels srgraph reads",
        )
    });
}

#[test]
fn non_finite_weights_are_errors_not_blank_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_model(d, "m.onnx");
    small_picture(d, "in.png", 16, 16);
    let mut m = pb::ModelProto::decode(&std::fs::read(d.join("m.onnx")).unwrap()[..]).unwrap();
    let w = m
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.dims.len() == 4)
        .unwrap();
    w.raw_data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(d.join("nan.onnx"), m.encode_to_vec()).unwrap();
    unchanged(d, || {
        refused(
            &srgraph(&["upscale", "nan.onnx", "in.png", "-o", "out.png"], d),
            1,
            "NaN",
        );
        refused(&srgraph(&["eval", "nan.onnx", "--data", &data("Set5")], d), 1, "NaN");
    });

    // A NaN in a run's checkpoint is called damage, not a learning rate too high.
    let t91 = data("T91");
    let o = train_args(&t91, "run", "2").run(d);
    assert!(o.status.success(), "{}", text(&o));
    let path = d.join("run/checkpoint.onnx");
    let mut c = pb::ModelProto::decode(&std::fs::read(&path).unwrap()[..]).unwrap();
    let t = c
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "head.0.weight_v")
        .unwrap();
    t.raw_data[..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    std::fs::write(&path, c.encode_to_vec()).unwrap();
    let resume = train_args(&t91, "run", "4").flag("--resume");
    unchanged(d, || refused(&resume.run(d), 1, "damaged"));
}

/// A hand-made x1 network (one 3x3 conv) and an x8 one (conv to 192 channels, then
/// DepthToSpace): eval and upscale run what `inspect` says they run.
#[test]
fn one_notion_of_a_runnable_model_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, scale) in [("x1.onnx", 1usize), ("x8.onnx", 8)] {
        std::fs::write(d.join(name), foreign_model(scale)).unwrap();
        let o = srgraph(&["inspect", name], d);
        assert!(
            o.status.success() && text(&o).contains("eval and upscale accept"),
            "{}",
            text(&o)
        );
        let o = srgraph(&["eval", name, "--data", &data("Set5")], d);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert!(text(&o).contains(&format!("x{scale}")), "{}", text(&o));
    }
    small_picture(d, "in.png", 12, 10);
    let o = srgraph(&["upscale", "x8.onnx", "in.png", "-o", "big.png"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(image::open(d.join("big.png")).unwrap().width(), 96);
}

/// [1, 3, H, W] -> Conv 3x3 (3 -> 3 s^2, weights picking the centre pixel) -> DepthToSpace s (nearest).
fn foreign_model(s: usize) -> Vec<u8> {
    let c = 3 * s * s;
    let mut w = vec![0f32; c * 3 * 9];
    for o in 0..c {
        // DCR: output channel o feeds colour o % 3.
        w[(o * 3 + o % 3) * 9 + 4] = 1.0;
    }
    let tensor = |name: &str, dims: Vec<i64>, v: &[f32]| pb::TensorProto {
        name: name.into(),
        dims,
        data_type: 1,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    };
    let io = |name: &str| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let attr_ints = |name: &str, v: &[i64]| pb::AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    };
    let mut nodes = vec![pb::NodeProto {
        op_type: "Conv".into(),
        name: "conv".into(),
        input: vec!["x".into(), "w".into()],
        output: vec![if s == 1 { "y".into() } else { "c".into() }],
        attribute: vec![attr_ints("pads", &[1, 1, 1, 1]), attr_ints("kernel_shape", &[3, 3])],
        ..Default::default()
    }];
    if s > 1 {
        nodes.push(pb::NodeProto {
            op_type: "DepthToSpace".into(),
            name: "shuffle".into(),
            input: vec!["c".into()],
            output: vec!["y".into()],
            attribute: vec![pb::AttributeProto {
                name: "blocksize".into(),
                r#type: 2,
                i: s as i64,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    pb::ModelProto {
        ir_version: 8,
        producer_name: "hand".into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            name: "g".into(),
            node: nodes,
            initializer: vec![tensor("w", vec![c as i64, 3, 3, 3], &w)],
            input: vec![io("x")],
            output: vec![io("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Weights in a file beside the model (ONNX external data) load in both engines;
/// a location outside the model's folder is refused.
#[test]
fn external_data_loads_and_may_not_leave_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_model(d, "m.onnx");
    small_picture(d, "in.png", 16, 16);
    let mut m = pb::ModelProto::decode(&std::fs::read(d.join("m.onnx")).unwrap()[..]).unwrap();
    let mut blob = vec![];
    for t in &mut m.graph.as_mut().unwrap().initializer {
        if t.raw_data.len() < 64 {
            continue;
        }
        let entry = |k: &str, v: String| pb::StringStringEntryProto {
            key: k.into(),
            value: v,
        };
        t.external_data = vec![
            entry("location", "weights.bin".into()),
            entry("offset", blob.len().to_string()),
            entry("length", t.raw_data.len().to_string()),
        ];
        t.data_location = 1;
        blob.append(&mut t.raw_data);
    }
    std::fs::write(d.join("weights.bin"), &blob).unwrap();
    std::fs::write(d.join("ext.onnx"), m.encode_to_vec()).unwrap();
    let whole = srgraph(&["upscale", "m.onnx", "in.png", "-o", "whole.png"], d);
    assert!(whole.status.success(), "{}", text(&whole));
    for engine in ["tract", "ort"] {
        if engine == "ort" && std::env::var_os("ORT_DYLIB_PATH").is_none() {
            continue; // the ONNX Runtime library comes with the test command's venv
        }
        let out = format!("ext-{engine}.png");
        let o = srgraph(&["upscale", "ext.onnx", "in.png", "-o", &out, "--engine", engine], d);
        assert!(o.status.success(), "{engine}: {}", text(&o));
        let (a, b) = (
            image::open(d.join(&out)).unwrap(),
            image::open(d.join("whole.png")).unwrap(),
        );
        let diff = a
            .to_rgb8()
            .pixels()
            .zip(b.to_rgb8().pixels())
            .map(|(p, q)| (p[0] as i32 - q[0] as i32).abs())
            .max();
        assert!(diff.unwrap() <= 1, "{engine}: external weights give another picture");
    }
    for t in &mut m.graph.as_mut().unwrap().initializer {
        for e in &mut t.external_data {
            if e.key == "location" {
                e.value = "../weights.bin".into();
            }
        }
    }
    std::fs::write(d.join("escape.onnx"), m.encode_to_vec()).unwrap();
    unchanged(d, || {
        refused(
            &srgraph(&["upscale", "escape.onnx", "in.png", "-o", "x.png"], d),
            1,
            "outside the model's folder",
        )
    });
}
