//! The `srgraph` binary end to end: what a user types, what they get back, and
//! a clear error with a non-zero exit (never a panic) for bad input.

use crate::common::{self, fails_with, srgraph};
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn build_then_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let o = srgraph(
        &["build", "wdsr-a", "--blocks", "8", "--scale", "2", "-o", "m.onnx"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("parameters  597,716"), "{s}");
    assert!(s.contains("lr [N, 3, H, W] -> sr [N, 3, 2H, 2W]"), "{s}");
    let o = srgraph(&["inspect", "m.onnx"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    for line in [
        "producer    srgraph",
        "meta        architecture = wdsr-a",
        "meta        blocks = 8",
        "meta        parameters = 597716",
        "meta        graph = inference",
    ] {
        assert!(s.contains(line), "missing '{line}' in:\n{s}");
    }
}

#[test]
fn presets_and_flags_over_them() {
    let dir = tempfile::tempdir().unwrap();
    let o = srgraph(&["build", "study-edsr-1", "--scale", "4"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("parameters  409,731"), "{}", stdout(&o));
    assert!(dir.path().join("study-edsr-1-x4.onnx").exists(), "default output name");
    let o = srgraph(&["presets"], dir.path());
    assert!(
        stdout(&o).contains("wdsr-b-baseline") && stdout(&o).contains("study-wdsr-a-8"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn params_budget_prints_its_choice() {
    let dir = tempfile::tempdir().unwrap();
    let o = srgraph(
        &["build", "edsr", "--blocks", "8", "--params", "780k", "-o", "e.onnx"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("chose 64 filters (779,011 parameters)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails_with(&srgraph(&["build", "srcnn"], d), "neither an architecture");
    fails_with(
        &srgraph(&["build", "edsr", "--scale", "5"], d),
        "scale 5 is not supported",
    );
    fails_with(
        &srgraph(&["build", "wdsr-a", "--blocks", "0"], d),
        "blocks must be at least 1",
    );
    fails_with(
        &srgraph(&["build", "wdsr-b", "--blocks", "8", "--params", "2k"], d),
        "no width reaches",
    );
    fails_with(
        &srgraph(&["build", "edsr", "--params", "lots"], d),
        "not a parameter count",
    );
    fails_with(
        &srgraph(&["build", "edsr", "--expansion", "4"], d),
        "--expansion applies to wdsr-a and wdsr-b",
    );
    // Unwritable output: nothing is left behind.
    fails_with(
        &srgraph(&["build", "edsr", "--blocks", "1", "-o", "missing/dir/m.onnx"], d),
        "cannot write",
    );
    assert!(!d.join("missing").exists());
    std::fs::create_dir(d.join("taken")).unwrap();
    fails_with(
        &srgraph(&["build", "edsr", "--blocks", "1", "-o", "taken"], d),
        "cannot write",
    );
    let left: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["taken"], "a partial file was left behind");
    // Usage errors exit 2 (clap).
    assert_eq!(
        srgraph(&["build", "edsr", "--norm", "batchy"], d).status.code(),
        Some(2)
    );
}

#[test]
fn inspect_refuses_what_is_not_onnx_and_names_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails_with(&srgraph(&["inspect", "nope.onnx"], d), "cannot read");
    std::fs::copy(common::data_dir().join("Set5/HR/bird.png"), d.join("bird.onnx")).unwrap();
    fails_with(&srgraph(&["inspect", "bird.onnx"], d), "is not an ONNX file");
    assert!(srgraph(&["build", "wdsr-b", "--blocks", "1", "-o", "m.onnx"], d)
        .status
        .success());
    let bytes = std::fs::read(d.join("m.onnx")).unwrap();
    std::fs::write(d.join("cut.onnx"), &bytes[..bytes.len() / 2]).unwrap();
    fails_with(&srgraph(&["inspect", "cut.onnx"], d), "is not an ONNX file");
    // A valid ONNX file from another producer is described, and said to be foreign.
    use prost::Message;
    let mut proto = srgraph::onnx::pb::ModelProto::decode(&bytes[..]).unwrap();
    proto.producer_name = "pytorch".into();
    std::fs::write(d.join("foreign.onnx"), proto.encode_to_vec()).unwrap();
    let o = srgraph(&["inspect", "foreign.onnx"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("not made by srgraph"), "{}", stdout(&o));
}

#[test]
fn build_train_writes_the_four_graphs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = srgraph(
        &[
            "build", "wdsr-b", "--blocks", "1", "--norm", "batch", "--train", "--batch", "2", "--patch", "16", "-o",
            "out",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["model.onnx", "train_step.onnx", "gradients.onnx", "eval.onnx"] {
        assert!(d.join("out").join(f).exists(), "{f} missing:\n{}", stdout(&o));
    }
    let o = srgraph(&["inspect", "out/train_step.onnx"], d);
    let s = stdout(&o);
    for line in [
        "input       lr [2, 3, 8, 8]",
        "input       hr [2, 3, 16, 16]",
        "output      loss []",
        "meta        batch = 2",
        "meta        patch = 16",
        "meta        graph = train-step",
        "meta        normalisation = batch",
    ] {
        assert!(s.contains(line), "missing '{line}' in:\n{s}");
    }
    assert!(
        s.contains(".running_var.new"),
        "batch norm statistics are outputs of the step:\n{s}"
    );
    fails_with(
        &srgraph(&["build", "edsr", "--train", "--patch", "15", "-o", "bad"], d),
        "multiple of the scale",
    );
    assert_eq!(
        srgraph(&["build", "edsr", "--batch", "4"], d).status.code(),
        Some(2),
        "--batch needs --train"
    );
}

/// The subcommands a help text lists under "Commands:" (clap's own `help` left out); a
/// wrapped description continues on a line indented further, which names nothing.
fn listed_subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn help_texts_speak_to_users() {
    // Words from inside the project that a user should never meet in `--help` (DESIGN.md is a
    // note outside the repository).
    const INTERNAL: [&str; 5] = ["seed's", "seed study", "session", "this round", "design.md"];
    let dir = tempfile::tempdir().unwrap();
    let mut pending = vec![Vec::<String>::new()];
    let mut checked = 0;
    while let Some(path) = pending.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).chain(["--help"]).collect();
        let o = srgraph(&args, dir.path());
        assert!(o.status.success(), "srgraph {}: {}", args.join(" "), stderr(&o));
        let help = stdout(&o);
        let lower = help.to_lowercase();
        for word in INTERNAL {
            assert!(
                !lower.contains(word),
                "srgraph {} says '{word}':\n{help}",
                args.join(" ")
            );
        }
        checked += 1;
        for sub in listed_subcommands(&help) {
            pending.push(path.iter().cloned().chain([sub]).collect());
        }
    }
    assert!(checked >= 12, "only {checked} help texts found");
}
