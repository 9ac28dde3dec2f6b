//! A study as Slurm jobs, on a real Slurm: the one-node cluster tools/setup/setup-slurm.sh
//! starts on this machine (Debian's slurmctld, slurmd and munge). `srgraph study ...
//! --emit slurm` writes the array job and the table job; submitted with their submit.sh,
//! they give the table `srgraph study` gives on one machine.

use crate::common::{self, data, srgraph_owned, text};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn study_args(out: &Path) -> Vec<String> {
    [
        "study",
        "blocks",
        "--archs",
        "wdsr-b,edsr",
        "--blocks",
        "1",
        "--steps",
        "4",
        "--batch",
        "2",
        "--patch",
        "24",
        "--validate-every",
        "2",
        "--threads",
        "2",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--data".into(),
        data("Set5/HR"),
        "--val".into(),
        data("Set5"),
        "--out".into(),
        out.display().to_string(),
    ])
    .collect()
}

fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

fn slurm_is_up() {
    let o = Command::new("sinfo").args(["-h", "-o", "%T"]).output();
    let state = o
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert!(
        ["idle", "mixed", "allocated"].iter().any(|s| state.starts_with(s)),
        "no Slurm node is up (sinfo says {state:?}): run tools/setup/setup-slurm.sh (tools/test.sh does)"
    );
}

#[test]
fn a_study_submitted_to_slurm_as_an_array_gives_the_table_of_one_machine() {
    slurm_is_up();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // On one machine.
    let local = d.join("local");
    let o = srgraph_owned(&study_args(&local), d);
    assert!(o.status.success(), "{}", text(&o));
    let want = std::fs::read_to_string(local.join("table.csv")).unwrap();

    // A run alone, then the table of what has finished: the missing run is named.
    let partial = d.join("partial");
    let o = srgraph_owned(&with(study_args(&partial), &["--only", "1"]), d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !partial.join("table.csv").exists(),
        "--only leaves the table to --collect"
    );
    let o = srgraph_owned(&with(study_args(&partial), &["--collect"]), d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("not finished yet: wdsr-b-b1"), "{}", text(&o));
    let o = srgraph_owned(&with(study_args(&partial), &["--only", "2"]), d);
    common::fails_with(&o, "numbered 0 to 1");

    // As Slurm jobs.
    let cluster = d.join("cluster");
    let o = srgraph_owned(
        &with(
            study_args(&cluster),
            &["--emit", "slurm", "--cpus-per-run", "2", "--time", "00:30:00"],
        ),
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let array = std::fs::read_to_string(cluster.join("slurm/study.sbatch")).unwrap();
    assert!(
        array.contains("#SBATCH --array=0-1") && array.contains("--only \"$SLURM_ARRAY_TASK_ID\""),
        "{array}"
    );
    assert!(!cluster.join("table.csv").exists(), "--emit trains nothing");
    let submit = Command::new("sh")
        .arg(cluster.join("slurm/submit.sh"))
        .env("SRGRAPH_CACHE", common::data_cache())
        .output()
        .unwrap();
    assert!(submit.status.success(), "{}", text(&submit));
    let said = String::from_utf8_lossy(&submit.stdout).to_string();
    let table_job = said.rsplit("table: job ").next().unwrap().trim().to_string();
    let started = Instant::now();
    loop {
        let q = Command::new("squeue").args(["-h", "-j", &table_job]).output().unwrap();
        if String::from_utf8_lossy(&q.stdout).trim().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the study's jobs did not finish in 15 minutes: {}",
            String::from_utf8_lossy(&q.stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs: String = std::fs::read_dir(cluster.join("slurm"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "out"))
        .map(|e| {
            format!(
                "== {}\n{}",
                e.path().display(),
                std::fs::read_to_string(e.path()).unwrap_or_default()
            )
        })
        .collect();
    let got = std::fs::read_to_string(cluster.join("table.csv"))
        .unwrap_or_else(|e| panic!("no table after the Slurm jobs ({e}):\n{logs}"));
    assert_eq!(got, want, "the Slurm study's table differs from one machine's:\n{logs}");
    assert!(
        logs.contains("result.json"),
        "each task says where its result went:\n{logs}"
    );
}
