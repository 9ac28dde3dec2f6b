//! A study as Slurm jobs (`srgraph study ... --emit slurm`): an array job with one task
//! per run (`srgraph study ... --only $SLURM_ARRAY_TASK_ID`), and a job that waits for the
//! whole array and writes the table (`srgraph study ... --collect`). Slurm schedules,
//! retries and places them; srgraph only writes the scripts.
//!
//! Each task is an ordinary study command, so a run that fails or is pre-empted is
//! re-submitted as it is (its checkpoint resumes it, its `result.json` skips it), and the
//! table can be collected again at any time.

use super::StudyOptions;
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};

/// What each run asks Slurm for (`#SBATCH` lines); None leaves the cluster's default.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub gpus_per_run: Option<usize>,
    pub cpus_per_run: Option<usize>,
    /// Wall-clock limit per run, in Slurm's format (`1-00:00:00`, `04:00:00`).
    pub time: Option<String>,
    pub partition: Option<String>,
}

/// One word for a POSIX shell, quoted only when it needs to be.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn command(exe: &Path, args: &[String], extra: &str) -> String {
    let mut words = vec![shell_word(&exe.display().to_string())];
    words.extend(args.iter().map(|a| shell_word(a)));
    format!("{} {extra}", words.join(" "))
}

/// The study's own arguments without the flags that only say how to emit it (`--emit`,
/// the resources) or that a task sets itself (`--only`, `--collect`, `--resume`).
pub fn task_arguments(args: &[String]) -> Vec<String> {
    const WITH_VALUE: [&str; 6] = [
        "--emit",
        "--gpus-per-run",
        "--cpus-per-run",
        "--time",
        "--partition",
        "--only",
    ];
    const ALONE: [&str; 2] = ["--collect", "--resume"];
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        let name = a.split('=').next().unwrap_or(a);
        if WITH_VALUE.contains(&name) {
            skip_next = !a.contains('=');
            continue;
        }
        if ALONE.contains(&a.as_str()) {
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// Writes `OUT/slurm/study.sbatch` (the array), `collect.sbatch` (the table, after the
/// array) and `submit.sh` (both, chained); returns their paths. `args` are the study's
/// command-line arguments after `srgraph`; the jobs run from `cwd`, so relative paths in
/// them keep their meaning.
pub fn emit(o: &StudyOptions, args: &[String], cwd: &Path, exe: &Path, r: &Resources) -> Result<Vec<PathBuf>> {
    ensure!(!o.runs.is_empty(), "the study has no runs");
    let dir = o.out.join("slurm");
    std::fs::create_dir_all(o.out.join("runs")).with_context(|| format!("cannot create {}", o.out.display()))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let logs = std::path::absolute(&dir)?;
    let args = task_arguments(args);
    let head = |name: &str, log: &str| {
        let mut h = vec![
            "#!/bin/bash".to_string(),
            format!("#SBATCH --job-name={}", shell_word(name)),
            format!("#SBATCH --chdir={}", shell_word(&cwd.display().to_string())),
            format!("#SBATCH --output={}", shell_word(&logs.join(log).display().to_string())),
        ];
        if let Some(p) = &r.partition {
            h.push(format!("#SBATCH --partition={}", shell_word(p)));
        }
        h
    };
    let study = format!(
        "srgraph-{}",
        o.out.file_name().map_or("study".into(), |n| n.to_string_lossy())
    );
    let mut array = head(&study, "run-%a.out");
    array.push(format!("#SBATCH --array=0-{}", o.runs.len() - 1));
    array.push("#SBATCH --ntasks=1".into());
    if let Some(c) = r.cpus_per_run {
        array.push(format!("#SBATCH --cpus-per-task={c}"));
    }
    if let Some(g) = r.gpus_per_run {
        array.push(format!("#SBATCH --gpus-per-task={g}"));
    }
    if let Some(t) = &r.time {
        array.push(format!("#SBATCH --time={}", shell_word(t)));
    }
    array.push(String::new());
    array.push(format!(
        "# {} runs: {}",
        o.runs.len(),
        o.runs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(" ")
    ));
    array.push("# Each task trains one run (resuming its checkpoint, skipping it when it has a result).".into());
    array.push(format!(
        "exec {}",
        command(exe, &args, "--only \"$SLURM_ARRAY_TASK_ID\"")
    ));
    let mut collect = head(&format!("{study}-table"), "collect.out");
    collect.push("#SBATCH --ntasks=1".into());
    collect.push(String::new());
    collect.push("# The table and plots of the finished runs (submit.sh runs this after the whole array).".into());
    collect.push(format!("exec {}", command(exe, &args, "--collect")));
    let submit = [
        "#!/bin/sh",
        "# Submits the study's runs as one array job, and the table as a job that starts once",
        "# every run has ended (afterany: the finished runs' table even if one failed).",
        "set -eu",
        "cd \"$(dirname \"$0\")\"",
        "array=$(sbatch --parsable study.sbatch)",
        "array=${array%%;*}",
        "table=$(sbatch --parsable --dependency=afterany:\"$array\" collect.sbatch)",
        "echo \"runs: job $array; table: job ${table%%;*}\"",
    ];
    let files = [
        (dir.join("study.sbatch"), array.join("\n") + "\n"),
        (dir.join("collect.sbatch"), collect.join("\n") + "\n"),
        (dir.join("submit.sh"), submit.join("\n") + "\n"),
    ];
    for (path, text) in &files {
        crate::util::write_atomic(path, text.as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_word("runs/study-1"), "runs/study-1");
        assert_eq!(shell_word("my runs"), "'my runs'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn emit_flags_and_task_flags_are_left_out() {
        let args: Vec<String> = [
            "study",
            "blocks",
            "--steps",
            "10",
            "--emit",
            "slurm",
            "--time=01:00:00",
            "--gpus-per-run",
            "1",
            "--resume",
            "--only",
            "3",
            "--out",
            "s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            task_arguments(&args),
            ["study", "blocks", "--steps", "10", "--out", "s"]
        );
    }
}
