//! Bad input around run folders and outputs: an output never replaces an input, an
//! existing file needs --force, a folder with a run in it is locked, two writers of
//! one file never both win, a killed or signalled run leaves what it should.

use super::{refused, small_picture, tiny_model, unchanged};
use crate::common::{self, data, data_dir, srgraph, text, QuickTrain};
use std::path::Path;
use std::process::{Command, Output};

#[test]
fn outputs_never_replace_inputs_and_existing_files_need_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_model(d, "m.onnx");
    small_picture(d, "in.png", 20, 16);
    small_picture(d, "other.png", 20, 16);
    unchanged(d, || {
        refused(
            &srgraph(&["upscale", "m.onnx", "in.png", "-o", "in.png"], d),
            1,
            "in.png",
        );
        refused(
            &srgraph(&["upscale", "m.onnx", "in.png", "-o", "in.png", "--force"], d),
            1,
            "never",
        );
        refused(
            &srgraph(&["upscale", "m.onnx", "in.png", "-o", "m.onnx"], d),
            1,
            "m.onnx",
        );
        refused(
            &srgraph(&["upscale", "m.onnx", "in.png", "-o", "other.png"], d),
            1,
            "--force",
        );
        refused(
            &srgraph(&["build", "edsr", "--blocks", "1", "-o", "m.onnx"], d),
            1,
            "--force",
        );
        refused(
            &srgraph(&["upscale", "m.onnx", "in.png", "-o", "x.webp"], d),
            1,
            ".webp",
        );
        refused(
            &srgraph(&["upscale", "m.onnx", "in.png", "other.png", "-o", "x.png"], d),
            1,
            "x.png",
        );
    });
    // A picture extension names a file, written in that format.
    for (name, format) in [("a.jpg", image::ImageFormat::Jpeg), ("b.bmp", image::ImageFormat::Bmp)] {
        let o = srgraph(&["upscale", "m.onnx", "in.png", name], d);
        assert!(o.status.success(), "{}", text(&o));
        assert!(d.join(name).is_file(), "{name} is not a file");
        let bytes = std::fs::read(d.join(name)).unwrap();
        assert_eq!(image::guess_format(&bytes).unwrap(), format);
        assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 40);
    }
    let o = srgraph(&["upscale", "m.onnx", "in.png", "-o", "c.jpg"], d);
    assert!(o.status.success() && d.join("c.jpg").is_file(), "{}", text(&o));
    // --force replaces an output, atomically; the input stays.
    let input = std::fs::read(d.join("in.png")).unwrap();
    let o = srgraph(&["upscale", "m.onnx", "in.png", "-o", "other.png", "--force"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(image::open(d.join("other.png")).unwrap().width(), 40);
    assert_eq!(std::fs::read(d.join("in.png")).unwrap(), input);
    let o = srgraph(&["build", "edsr", "--blocks", "1", "-o", "m.onnx", "--force"], d);
    assert!(o.status.success(), "{}", text(&o));
    let stray: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(stray.is_empty(), "temporaries left: {stray:?}");
}

/// A quick run of `steps` steps on `t91` into `out` (see `QuickTrain`).
pub(super) fn train_args(t91: &str, out: &str, steps: &str) -> QuickTrain {
    QuickTrain::new("wdsr-b", t91).set("--out", out).set("--steps", steps)
}

#[test]
fn a_run_folder_with_a_run_in_it_is_refused_and_locked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t91 = data("T91");
    let o = train_args(&t91, "run", "2").run(d);
    assert!(o.status.success(), "{}", text(&o));
    // The checkpoint deleted: the model and log are still a run's, and another network may not replace them.
    std::fs::remove_file(d.join("run/checkpoint.onnx")).unwrap();
    let edsr = QuickTrain::new("edsr", &t91).set("--steps", "2");
    unchanged(d, || {
        refused(&edsr.run(d), 1, "model.onnx");
        refused(&train_args(&t91, "run", "2").run(d), 1, "--force");
    });
    // --force starts afresh there; a stale temporary of a killed process goes too.
    std::fs::write(d.join("run/.model.onnx.tmp-4000000"), b"partial").unwrap();
    let o = train_args(&t91, "run", "2").flag("--force").run(d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!d.join("run/.model.onnx.tmp-4000000").exists());

    // A second process on a folder in use gets a clear error and touches nothing.
    let mut first = train_args(&t91, "busy", "100000").command(d).spawn().unwrap();
    common::wait_for_log_lines(&d.join("busy/log.jsonl"), 2, 120);
    let o = train_args(&t91, "busy", "3").flag("--force").run(d);
    let _ = first.kill();
    let _ = first.wait();
    refused(&o, 1, "in use by another srgraph");
    assert!(text(&o).contains(&format!("pid {}", first.id())), "{}", text(&o));
}

/// SIGTERM and SIGHUP, as Ctrl-C: the step finishes, the checkpoint and model are
/// written, and the exit code is 128 + the signal.
#[test]
fn sigterm_and_sighup_save_the_run_like_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t91 = data("T91");
    for (signal, code) in [("TERM", 143), ("HUP", 129)] {
        let out = format!("run-{signal}");
        let mut child = train_args(&t91, &out, "100000")
            .set("--checkpoint-every", "100000")
            .command(d)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        common::wait_for_log_lines(&d.join(&out).join("log.jsonl"), 3, 120);
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        let ckpt = srgraph::checkpoint::load(&d.join(&out).join("checkpoint.onnx")).unwrap();
        assert!(ckpt.step >= 3, "SIG{signal}: checkpoint at step {}", ckpt.step);
        assert!(d.join(&out).join("model.onnx").exists(), "SIG{signal}: no model");
    }
}

/// Two `srgraph` processes started together in `d`; their outputs.
fn together(d: &Path, a: &[&str], b: &[&str]) -> (Output, Output) {
    let spawn = |args: &[&str]| {
        common::srgraph_command(args, d)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (x, y) = (spawn(a), spawn(b));
    (x.wait_with_output().unwrap(), y.wait_with_output().unwrap())
}

/// Two writers of one output without --force, `tries` times: never both succeed; the
/// loser names the file and --force; the file is one writer's whole output.
fn one_writer_wins(d: &Path, a: &[&str], b: &[&str], output: &str, tries: usize) {
    let mut races_lost = 0;
    for _ in 0..tries {
        let _ = std::fs::remove_file(d.join(output));
        let (x, y) = together(d, a, b);
        assert!(
            !(x.status.success() && y.status.success()),
            "both writers of {output} succeeded without --force:\n{}\n{}",
            text(&x),
            text(&y)
        );
        let (winner, loser) = if x.status.success() { (&x, &y) } else { (&y, &x) };
        assert!(
            winner.status.success(),
            "neither writer succeeded:\n{}\n{}",
            text(&x),
            text(&y)
        );
        refused(loser, 1, output);
        refused(loser, 1, "--force");
        races_lost += String::from_utf8_lossy(&loser.stderr).contains("while this one worked") as usize;
        assert!(std::fs::metadata(d.join(output)).unwrap().len() > 0);
    }
    let stray: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(stray.is_empty(), "temporaries left: {stray:?}");
    eprintln!("{output}: {races_lost} of {tries} tries were decided at the final write");
}

#[test]
fn two_writers_of_one_output_never_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_model(d, "m.onnx");
    let lr = data_dir().join("Set5/LR_bicubic/X2");
    let (a, b) = (lr.join("birdx2.png"), lr.join("headx2.png"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    one_writer_wins(
        d,
        &["upscale", "m.onnx", a, "-o", "out.png", "--quiet"],
        &["upscale", "m.onnx", b, "-o", "out.png", "--quiet"],
        "out.png",
        20,
    );
    // --force: both may replace it, atomically; the file is a whole PNG either way.
    let (x, y) = together(
        d,
        &["upscale", "m.onnx", a, "-o", "out.png", "--quiet", "--force"],
        &["upscale", "m.onnx", b, "-o", "out.png", "--quiet", "--force"],
    );
    assert!(x.status.success() && y.status.success(), "{}\n{}", text(&x), text(&y));
    image::open(d.join("out.png")).expect("a whole PNG");

    let o = srgraph(&["export", "m.onnx", "-o", "m.safetensors"], d);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::copy(d.join("m.safetensors"), d.join("n.safetensors")).unwrap();
    one_writer_wins(
        d,
        &["import", "m.safetensors", "-o", "imported.onnx"],
        &["import", "n.safetensors", "-o", "imported.onnx"],
        "imported.onnx",
        20,
    );
}

#[test]
fn a_run_killed_before_its_first_checkpoint_leaves_nothing_to_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t91 = data("T91");
    let mut first = train_args(&t91, "run", "100000")
        .set("--checkpoint-every", "100000")
        .command(d)
        .spawn()
        .unwrap();
    common::wait_for_log_lines(&d.join("run/log.jsonl"), 2, 120);
    first.kill().unwrap(); // SIGKILL: no checkpoint, no model
    first.wait().unwrap();
    assert!(!d.join("run/checkpoint.onnx").exists());

    // --resume: there is nothing to resume, and the message says what is there and the ways on.
    let resume = train_args(&t91, "run", "2").flag("--resume");
    let o = unchanged(d, || resume.run(d));
    refused(&o, 1, "no checkpoint.onnx");
    refused(&o, 1, "log.jsonl");
    refused(&o, 1, "stopped before its first checkpoint");
    refused(&o, 1, "without --resume");
    // The same command without --resume starts afresh there, no --force needed.
    let o = train_args(&t91, "run", "2").run(d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("leftovers"), "{}", text(&o));
    let log = std::fs::read_to_string(d.join("run/log.jsonl")).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("\"loss\"")).count(), 2, "{log}");
}

#[test]
fn a_lock_file_that_is_not_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t91 = data("T91");
    std::fs::create_dir_all(d.join("folder/.srgraph.lock")).unwrap();
    std::fs::create_dir_all(d.join("fifo")).unwrap();
    let made = Command::new("mkfifo")
        .arg(d.join("fifo/.srgraph.lock"))
        .status()
        .unwrap();
    assert!(made.success());
    for (out, what) in [("folder", "a folder"), ("fifo", "a named pipe (FIFO)")] {
        let o = unchanged(d, || train_args(&t91, out, "2").run(d));
        refused(&o, 1, &format!("{out}/.srgraph.lock is {what}"));
        refused(&o, 1, "remove it");
    }
}
