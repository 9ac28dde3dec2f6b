//! `srgraph train --engine ort-training` where it cannot run, which is everywhere
//! reachable from here: without the `ort-training` cargo feature (the default
//! build), and with it against a library that lacks the training API (the
//! onnxruntime 1.32 wheel's, like every standard package). Each is a clear
//! error (exit code 1, no panic) that says what to use instead, before any data
//! is read or run folder made. `tools/test.sh` runs this file in both builds.

use crate::common::{data, fails_with, srgraph, text};

fn train_with_training_api(dir: &std::path::Path) -> std::process::Output {
    srgraph(
        &[
            "train",
            "wdsr-b",
            "--blocks",
            "2",
            "--filters",
            "16",
            "--data",
            &data("T91"),
            "--steps",
            "3",
            "--batch",
            "4",
            "--patch",
            "32",
            "--engine",
            "ort-training",
            "--out",
            "run",
        ],
        dir,
    )
}

/// What every such failure says to use instead.
const USE_DEFAULT: &str = "Train with the default engine";

#[cfg(not(feature = "ort-training"))]
#[test]
fn without_the_feature_the_training_api_engine_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = train_with_training_api(dir.path());
    fails_with(&o, "the `ort-training` cargo feature");
    fails_with(&o, USE_DEFAULT);
    assert!(
        !dir.path().join("run").exists(),
        "no run folder for a run that cannot start"
    );
}

#[cfg(feature = "ort-training")]
#[test]
fn a_library_without_the_training_api_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // tools/test.sh points ORT_DYLIB_PATH at the onnxruntime 1.32 wheel's library.
    let library = std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH (tools/test.sh sets it)");
    let o = train_with_training_api(dir.path());
    fails_with(&o, "has no training API (GetTrainingApi returns null)");
    fails_with(&o, &library);
    fails_with(&o, "point ORT_DYLIB_PATH at one");
    fails_with(&o, USE_DEFAULT);
    assert!(
        !dir.path().join("run").exists(),
        "no run folder for a run that cannot start"
    );
}

/// In either build: the training API is for training, and a library asked for by
/// name that is not there is an error, not another library found instead.
#[test]
fn training_api_engine_is_not_an_inference_engine_and_a_missing_library_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = srgraph(
        &["eval", "m.onnx", "--data", &data("Set5"), "--engine", "ort-training"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", text(&o));
    assert!(text(&o).contains("--engine ort or --engine tract"), "{}", text(&o));

    let o = std::process::Command::new(env!("CARGO_BIN_EXE_srgraph"))
        .args([
            "train",
            "wdsr-b",
            "--blocks",
            "1",
            "--data",
            &data("T91"),
            "--steps",
            "1",
            "--out",
            "run",
        ])
        .current_dir(dir.path())
        .env("ORT_DYLIB_PATH", dir.path().join("libonnxruntime.so.missing"))
        .output()
        .unwrap();
    fails_with(&o, "ORT_DYLIB_PATH is");
    fails_with(&o, "libonnxruntime.so.missing, which does not exist");
}

/// `srgraph build --format ort-training --from` a run of other flags names what differs;
/// `--from` without `--format ort-training` is a usage error.
#[test]
fn build_from_a_run_of_another_configuration_says_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let t91 = data("T91");
    let o = srgraph(
        &[
            "train",
            "wdsr-b",
            "--blocks",
            "1",
            "--filters",
            "8",
            "--data",
            &t91,
            "--steps",
            "1",
            "--batch",
            "2",
            "--patch",
            "32",
            "--engine",
            "tract",
            "--out",
            "run",
            "--quiet",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "wdsr-b",
            "--blocks",
            "1",
            "--filters",
            "8",
            "--from",
            "run/checkpoint.onnx",
        ];
        args.extend(extra);
        srgraph(&args, dir.path())
    };
    let o = build(&["--format", "ort-training", "--batch", "2", "--patch", "32", "-o", "ok"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("after 1 steps"), "{}", text(&o));
    let o = build(&["--format", "ort-training", "--batch", "2", "-o", "bad"]);
    fails_with(&o, "patch: checkpoint 32, the flags 96");
    fails_with(&o, "give the run's network");
    let o = build(&["-o", "x.onnx"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--from needs --format ort-training"), "{}", text(&o));
}
