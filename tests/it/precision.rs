//! `srgraph export --precision fp16|int8`: the built-in x2 model in float16 passes ONNX's
//! checker, runs in ONNX Runtime through `eval` and `upscale` and in tract on a crop, with
//! float32 in and out, scores within 0.01 dB of float32 on Set5 (ONNX Runtime), is about half the bytes, and says
//! its precision in `inspect`. In int8 (calibrated on T91 pictures) it passes the checker, ONNX Runtime turns
//! its body into integer convolutions, tract agrees with ONNX Runtime, and it stays close to float32.
//! Bad sources get clear errors.

use crate::common::{data, fails_with, python, srgraph, text};
use srgraph::infer::SrModel;
use srgraph::runtime::Runtime;
use std::path::Path;

const BUILTIN_X2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/wdsr-b-x2.onnx");

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    text(o)
}

/// Set5 PSNR-Y of `model` by `srgraph eval` in `engine`.
fn set5_psnr(dir: &Path, model: &str, engine: &str) -> f64 {
    let o = srgraph(
        &["eval", model, "--data", &data("Set5"), "--engine", engine, "--json"],
        dir,
    );
    ok(&o);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    r["sets"][0]["model"]["psnr_y"].as_f64().unwrap()
}

#[test]
fn the_builtin_x2_model_in_fp16_passes_the_checker_runs_everywhere_and_scores_as_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(&srgraph(
        &["export", BUILTIN_X2, "--precision", "fp16", "-o", "m16.onnx"],
        d,
    ));
    assert!(out.contains("fp16"), "{out}");
    let (b32, b16) = (
        std::fs::metadata(BUILTIN_X2).unwrap().len() as f64,
        std::fs::metadata(d.join("m16.onnx")).unwrap().len() as f64,
    );
    println!("file size: fp32 {b32} bytes, fp16 {b16} bytes ({:.3})", b16 / b32);
    assert!(b16 < 0.55 * b32, "fp16 {b16} bytes against fp32 {b32}");

    // ONNX's own checker (full check: types inferred through every node) and ONNX Runtime from Python.
    let check = std::process::Command::new(python())
        .args([
            "-c",
            "import sys, onnx, numpy as np, onnxruntime as ort\n\
             m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True)\n\
             s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n\
             i, o = s.get_inputs()[0], s.get_outputs()[0]\n\
             assert i.type == 'tensor(float)' and o.type == 'tensor(float)', (i.type, o.type)\n\
             y = s.run(None, {i.name: np.full((1, 3, 8, 8), 100, np.float32)})[0]\n\
             print('checker ok', y.shape, y.dtype)",
            "m16.onnx",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let said = ok(&check);
    assert!(said.contains("checker ok (1, 3, 16, 16) float32"), "{said}");

    let inspect = ok(&srgraph(&["inspect", "m16.onnx"], d));
    assert!(inspect.contains("precision   fp16"), "{inspect}");
    assert!(inspect.contains("meta        precision = fp16"), "{inspect}");
    assert!(inspect.contains("eval and upscale accept"), "{inspect}");
    let inspect32 = ok(&srgraph(&["inspect", BUILTIN_X2], d));
    assert!(inspect32.contains("precision   fp32"), "{inspect32}");

    // Set5 in ONNX Runtime; tract computes float16 without vector kernels on x86 (minutes for
    // Set5), so it runs a crop, against the float32 model.
    let (p32, p16) = (set5_psnr(d, BUILTIN_X2, "ort"), set5_psnr(d, "m16.onnx", "ort"));
    println!(
        "Set5 x2 PSNR-Y in ort: fp32 {p32:.4} dB, fp16 {p16:.4} dB ({:+.4})",
        p16 - p32
    );
    assert!((p16 - p32).abs() <= 0.01, "fp16 {p16} against fp32 {p32}");
    let lr = crate::common::set5_crop("baby", 200, 200, 24, 24);
    let lr: ndarray::Array4<f32> = lr.into_dimensionality().unwrap();
    let mut sr = vec![];
    for model in [Path::new(BUILTIN_X2).to_path_buf(), d.join("m16.onnx")] {
        let mut m = SrModel::load(&model, Runtime::Tract, 0).unwrap();
        sr.push(m.run(lr.clone()).unwrap());
    }
    let worst = sr[0]
        .iter()
        .zip(sr[1].iter())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("tract, a 24x24 crop: fp16 against fp32 at most {worst} of 255");
    assert!(worst < 2.0, "{worst}");
    ok(&srgraph(
        &[
            "upscale",
            "m16.onnx",
            &data("Set5/LR_bicubic/X2/babyx2.png"),
            "-o",
            "baby.png",
            "--engine",
            "ort",
        ],
        d,
    ));
    assert!(d.join("baby.png").exists());
}

#[test]
fn fp16_models_and_foreign_files_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&srgraph(
        &["export", BUILTIN_X2, "--precision", "fp16", "-o", "m16.onnx"],
        d,
    ));
    fails_with(
        &srgraph(&["export", "m16.onnx", "--precision", "fp16", "-o", "again.onnx"], d),
        "is fp16 already: export from the float32 model",
    );
    // An ONNX file another tool wrote (a one-node graph).
    let foreign = std::process::Command::new(python())
        .args([
            "-c",
            "import onnx\nfrom onnx import helper, TensorProto as T\n\
             g = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g',\n\
                 [helper.make_tensor_value_info('x', T.FLOAT, [1, 3, 4, 4])],\n\
                 [helper.make_tensor_value_info('y', T.FLOAT, [1, 3, 4, 4])])\n\
             m = helper.make_model(g, producer_name='someone-else'); onnx.save(m, 'foreign.onnx')",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    ok(&foreign);
    fails_with(
        &srgraph(&["export", "foreign.onnx", "--precision", "fp16", "-o", "f16.onnx"], d),
        "was not made by srgraph",
    );
    std::fs::write(d.join("notes.txt"), "not a model").unwrap();
    fails_with(
        &srgraph(&["export", "notes.txt", "--precision", "fp16", "-o", "n16.onnx"], d),
        "is not a checkpoint srgraph can read",
    );
    // --precision writes ONNX: a safetensors layout beside it is a usage error.
    let o = srgraph(
        &[
            "export",
            BUILTIN_X2,
            "--precision",
            "fp16",
            "--layout",
            "basicsr",
            "-o",
            "x.onnx",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// A folder of `n` T91 pictures (links), for calibration.
pub(crate) fn calibration_folder(d: &Path, n: usize) -> std::path::PathBuf {
    let folder = d.join("calibration");
    std::fs::create_dir(&folder).unwrap();
    let mut t91: Vec<_> = std::fs::read_dir(data("T91"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    t91.sort();
    for p in t91.iter().take(n) {
        std::os::unix::fs::symlink(p, folder.join(p.file_name().unwrap())).unwrap();
    }
    folder
}

#[test]
fn the_builtin_x2_model_in_int8_becomes_integer_convs_in_ort_agrees_with_tract_and_stays_close() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let calibration = calibration_folder(d, 12);
    let out = ok(&srgraph(
        &[
            "export",
            BUILTIN_X2,
            "--precision",
            "int8",
            "--calibrate",
            calibration.to_str().unwrap(),
            "--calibration-crop",
            "64",
            "-o",
            "m8.onnx",
        ],
        d,
    ));
    assert!(out.contains("int8"), "{out}");
    let (b32, b8) = (
        std::fs::metadata(BUILTIN_X2).unwrap().len() as f64,
        std::fs::metadata(d.join("m8.onnx")).unwrap().len() as f64,
    );
    println!("file size: fp32 {b32} bytes, int8 {b8} bytes ({:.3})", b8 / b32);
    assert!(b8 < 0.45 * b32, "int8 {b8} bytes against fp32 {b32}");

    // The checker, and what ONNX Runtime's optimiser makes of the QDQ pairs: the 48 body convs
    // and 15 of the 16 residual adds (the last one feeds the float32 tail) in integers.
    let check = std::process::Command::new(python())
        .args([
            "-c",
            "import sys, collections, onnx, onnxruntime as ort\n\
             onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)\n\
             so = ort.SessionOptions(); so.optimized_model_filepath = 'opt.onnx'\n\
             ort.InferenceSession(sys.argv[1], so, providers=['CPUExecutionProvider'])\n\
             ops = collections.Counter(n.op_type for n in onnx.load('opt.onnx').graph.node)\n\
             print('checker ok', ops['QLinearConv'], ops['QLinearAdd'], ops['Conv'])",
            "m8.onnx",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let said = ok(&check);
    assert!(said.contains("checker ok 48 15 3"), "{said}");

    let inspect = ok(&srgraph(&["inspect", "m8.onnx"], d));
    assert!(inspect.contains("precision   int8"), "{inspect}");
    assert!(
        inspect.contains("meta        calibration = percentile 99.99, 12 pictures"),
        "{inspect}"
    );
    assert!(inspect.contains("meta        weight_bits = 7"), "{inspect}");
    assert!(inspect.contains("eval and upscale accept"), "{inspect}");

    let (p32, p8) = (set5_psnr(d, BUILTIN_X2, "ort"), set5_psnr(d, "m8.onnx", "ort"));
    println!(
        "Set5 x2 PSNR-Y in ort: fp32 {p32:.4} dB, int8 {p8:.4} dB ({:+.4})",
        p8 - p32
    );
    assert!(p8 > p32 - 0.25 && p8 < p32 + 0.05, "int8 {p8} against fp32 {p32}");

    // tract reads the same QDQ graph as float arithmetic on the same grids, where ONNX Runtime
    // computes in integers: single values land a rounding step apart here and there, and the
    // scores agree.
    let tract8 = set5_psnr(d, "m8.onnx", "tract");
    println!("Set5 x2 PSNR-Y of int8: ort {p8:.4} dB, tract {tract8:.4} dB");
    assert!((tract8 - p8).abs() < 0.01, "tract {tract8} against ort {p8}");
}

#[test]
fn int8_needs_calibration_pictures_and_a_float32_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails_with(
        &srgraph(&["export", BUILTIN_X2, "--precision", "int8", "-o", "m8.onnx"], d),
        "--precision int8 needs --calibrate DIR",
    );
    std::fs::create_dir(d.join("empty")).unwrap();
    fails_with(
        &srgraph(
            &[
                "export",
                BUILTIN_X2,
                "--precision",
                "int8",
                "--calibrate",
                "empty",
                "-o",
                "m8.onnx",
            ],
            d,
        ),
        "--calibrate empty: no images",
    );
    assert!(!d.join("m8.onnx").exists());
    let calibration = calibration_folder(d, 2);
    let c = calibration.to_str().unwrap();
    ok(&srgraph(
        &[
            "export",
            BUILTIN_X2,
            "--precision",
            "int8",
            "--calibrate",
            c,
            "--calibration-crop",
            "32",
            "-o",
            "m8.onnx",
        ],
        d,
    ));
    fails_with(
        &srgraph(
            &[
                "export",
                "m8.onnx",
                "--precision",
                "int8",
                "--calibrate",
                c,
                "-o",
                "again.onnx",
            ],
            d,
        ),
        "is int8 already",
    );
    let o = srgraph(
        &[
            "export",
            BUILTIN_X2,
            "--precision",
            "int8",
            "--calibrate",
            c,
            "--percentile",
            "120",
            "-o",
            "p.onnx",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// `train --init MODEL --qat int8`: a short quantisation-aware fine-tune records the ranges it
/// trained with, and its int8 export needs no calibration pictures and keeps the float32
/// model's score (the weights trained under the same rounding).
#[test]
fn a_quantisation_aware_fine_tune_exports_int8_without_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pictures = calibration_folder(d, 8);
    ok(&srgraph(
        &[
            "train",
            "wdsr-b",
            "--init",
            BUILTIN_X2,
            "--qat",
            "int8",
            "--data",
            pictures.to_str().unwrap(),
            "--steps",
            "4",
            "--batch",
            "2",
            "--patch",
            "48",
            "--lr",
            "1e-5",
            "--no-tune",
            "--quiet",
            "-o",
            "qat",
        ],
        d,
    ));
    let inspect_qat = ok(&srgraph(&["inspect", "qat/model.onnx"], d));
    assert!(inspect_qat.contains("meta        qat = int8"), "{inspect_qat}");
    assert!(
        inspect_qat.contains("meta        qat_ranges = {\"body.0\":"),
        "{inspect_qat}"
    );
    ok(&srgraph(&["export", "qat", "--precision", "int8", "-o", "q8.onnx"], d));
    let inspect = ok(&srgraph(&["inspect", "q8.onnx"], d));
    assert!(
        inspect.contains("meta        calibration = the ranges it was trained with (train --qat int8)"),
        "{inspect}"
    );
    let (p32, p8) = (set5_psnr(d, "qat/model.onnx", "ort"), set5_psnr(d, "q8.onnx", "ort"));
    println!(
        "Set5 x2 PSNR-Y after 4 QAT steps: float32 {p32:.4} dB, int8 {p8:.4} dB ({:+.4})",
        p8 - p32
    );
    assert!((p8 - p32).abs() < 0.15, "int8 {p8} against float32 {p32}");
    // int8-learned trains the activations' scales too: the ranges recorded are not calibration's.
    let ranges = |inspect: &str| inspect.lines().find(|l| l.contains("qat_ranges =")).map(str::to_string);
    #[rustfmt::skip]
    ok(&srgraph(
        &[
            "train", "wdsr-b", "--init", BUILTIN_X2, "--qat", "int8-learned", "--data", pictures.to_str().unwrap(),
            "--steps", "4", "--batch", "2", "--patch", "48", "--lr", "1e-5", "--no-tune", "--quiet", "-o", "lsq",
        ],
        d,
    ));
    let trained = ok(&srgraph(&["inspect", "lsq/model.onnx"], d));
    assert!(trained.contains("meta        qat = int8-learned"), "{trained}");
    assert!(trained.contains("meta        qat_weight_bits = 7"), "{trained}");
    assert_ne!(
        ranges(&trained),
        ranges(&inspect_qat),
        "learned ranges moved from calibration's"
    );
    ok(&srgraph(
        &["export", "lsq", "--precision", "int8", "-o", "lsq8.onnx"],
        d,
    ));
    let (p32, p8) = (set5_psnr(d, "lsq/model.onnx", "ort"), set5_psnr(d, "lsq8.onnx", "ort"));
    assert!(
        (p8 - p32).abs() < 0.15,
        "learned ranges: int8 {p8} against float32 {p32}"
    );
    // Batch norm is folded into the convs only at export: refused by name.
    let o = srgraph(
        &[
            "train", "wdsr-b", "--init", BUILTIN_X2, "--qat", "int8", "--norm", "batch", "-o", "bn",
        ],
        d,
    );
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    // --qat without --init is a usage error.
    let o = srgraph(&["train", "wdsr-b", "--qat", "int8", "-o", "no-init"], d);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
