//! Data-parallel training under a real MPI: `mpirun -np 2` (Debian's OpenMPI, which
//! tools/setup/setup-mpi.sh installs) of `srgraph train`, against one process on the same data.
//! Built only with the `mpi` feature (tools/test.sh enables it).
#![cfg(feature = "mpi")]

use crate::common::{self, data, text};
use srgraph::data::load_hwc;
use srgraph::infer::SrModel;
use srgraph::runtime::Runtime;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A small WDSR-B on Set5's pictures, batch 8 of 32 px patches.
fn train_args(out: &Path, steps: u64) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "wdsr-b",
        "--blocks",
        "2",
        "--filters",
        "16",
        "--batch",
        "8",
        "--patch",
        "32",
        "--validate-every",
        "10",
        "--threads",
        "1",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend([
        "--steps".into(),
        steps.to_string(),
        "--data".into(),
        data("Set5/HR"),
        "--val".into(),
        data("Set5"),
        "--out".into(),
        out.display().to_string(),
    ]);
    a
}

fn mpirun(ranks: usize, args: &[String]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", &ranks.to_string()])
        .args(["-x", "ORT_DYLIB_PATH", "-x", "SRGRAPH_CACHE"])
        .arg(env!("CARGO_BIN_EXE_srgraph"))
        .args(args)
        .env("SRGRAPH_CACHE", common::data_cache());
    c
}

fn run(mut c: Command) -> Output {
    c.output()
        .expect("mpirun runs (tools/setup/setup-mpi.sh installs OpenMPI)")
}

/// The model's output on a Set5 picture, in grey levels.
fn output(model: &Path) -> ndarray::Array4<f32> {
    let lr = load_hwc(&common::data_dir().join("Set5/LR_bicubic/X2/birdx2.png")).unwrap();
    let mut m = SrModel::load(model, Runtime::Tract, 0).unwrap();
    m.upscale(&lr, None, &|| {}).unwrap()
}

#[test]
fn two_ranks_reach_the_model_of_one_process_and_split_the_batch_or_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let one = d.join("one");
    let o = common::srgraph_owned(&train_args(&one, 30), d);
    assert!(o.status.success(), "{}", text(&o));
    let two = d.join("two");
    let o = run(mpirun(2, &train_args(&two, 30)));
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    assert_eq!(said.matches("network     ").count(), 1, "rank 0 alone prints:\n{said}");
    assert!(said.contains("ranks       2"), "{said}");
    let (a, b) = (output(&one.join("model.onnx")), output(&two.join("model.onnx")));
    let worst = a.iter().zip(b.iter()).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    eprintln!("one process vs two ranks after 30 steps: outputs differ by at most {worst:e} grey levels");
    assert!(
        worst <= 0.05,
        "two ranks' model differs from one process's by {worst} grey levels"
    );
    // The same log, step for step (losses averaged over the ranks equal the whole batch's).
    let losses = |dir: &Path| -> Vec<f64> {
        std::fs::read_to_string(dir.join("log.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["loss"].as_f64())
            .collect()
    };
    let (la, lb) = (losses(&one), losses(&two));
    assert_eq!(la.len(), 30);
    assert_eq!(la.len(), lb.len());
    for (x, y) in la.iter().zip(&lb) {
        assert!((x - y).abs() <= 1e-3 * x.abs().max(1.0), "loss {x} vs {y}");
    }

    let odd: Vec<String> = train_args(&d.join("odd"), 4)
        .into_iter()
        .map(|a| if a == "8" { "7".into() } else { a })
        .collect();
    let o = run(mpirun(2, &odd));
    assert!(!o.status.success());
    assert!(text(&o).contains("does not divide among 2 ranks"), "{}", text(&o));
}

/// The pid of the srgraph process that is rank `rank` of the run in `out` (tests run side by side).
fn rank_pid(rank: usize, out: &Path) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if !cmd.contains(env!("CARGO_BIN_EXE_srgraph")) || !cmd.contains(&*out.to_string_lossy()) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// Starts `mpirun -np 2` of a long run in `out` and returns once its log has `lines` lines.
fn start_long_run(out: &Path, resume: bool, lines: usize) -> std::process::Child {
    let mut args = train_args(out, 100_000);
    args.extend(["--checkpoint-every".into(), "5".into()]);
    if resume {
        args.push("--resume".into());
    }
    let mut job = mpirun(2, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::fs::read_to_string(out.join("log.jsonl")).map_or(0, |s| s.lines().count()) < lines {
        if let Some(s) = job.try_wait().unwrap() {
            let o = job.wait_with_output().unwrap();
            panic!("the job ended early ({s}): {}", text(&o));
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the job wrote no log in 300 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    job
}

/// Waits at most 30 s for the job to end; returns its output.
fn ended(mut job: std::process::Child, what: &str) -> Output {
    let since = Instant::now();
    while job.try_wait().unwrap().is_none() {
        assert!(since.elapsed() < Duration::from_secs(30), "the job hung after {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("the job ended {:.1} s after {what}", since.elapsed().as_secs_f64());
    job.wait_with_output().unwrap()
}

#[test]
fn sigterm_stops_every_rank_at_one_step_a_killed_rank_ends_the_job_and_resume_continues() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let ckpt_step = |dir: &Path| srgraph::checkpoint::load(&dir.join("checkpoint.onnx")).unwrap().step;
    let logged_steps = |dir: &Path| {
        std::fs::read_to_string(dir.join("log.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                serde_json::from_str::<serde_json::Value>(l).ok()?["loss"]
                    .as_f64()
                    .map(|_| ())
            })
            .count() as u64
    };

    // SIGTERM to mpirun (what a scheduler sends): the ranks agree on the step to stop after,
    // and rank 0 writes the checkpoint and the model there.
    let job = start_long_run(&out, false, 8);
    let mpirun_pid = job.id().to_string();
    Command::new("kill").args(["-TERM", &mpirun_pid]).status().unwrap();
    let o = ended(job, "SIGTERM");
    assert!(text(&o).contains("SIGTERM: stopping after this step"), "{}", text(&o));
    let at = ckpt_step(&out);
    assert_eq!(at, logged_steps(&out), "the checkpoint is at the log's last step");
    assert!(out.join("model.onnx").exists());

    // A rank killed outright: mpirun ends the job, no hang.
    let job = start_long_run(&out, true, at as usize + 12);
    let victim = rank_pid(1, &out).expect("rank 1 is running");
    Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    let o = ended(job, "rank 1 was killed");
    assert!(!o.status.success(), "the job should fail when a rank dies");
    assert!(text(&o).contains("signal 9"), "{}", text(&o));
    assert!(rank_pid(0, &out).is_none(), "rank 0 should not outlive the job");

    // --resume continues from the last checkpoint, under mpirun again.
    let at = ckpt_step(&out);
    let mut again = train_args(&out, at + 6);
    again.push("--resume".into());
    let o = run(mpirun(2, &again));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(ckpt_step(&out), at + 6);
    assert_eq!(logged_steps(&out), at + 6);
}
