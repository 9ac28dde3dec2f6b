//! The run's folder: made, locked, and refused when it holds another run's files.

use super::TrainOptions;
use anyhow::{bail, ensure, Context, Result};

/// The files a run leaves in its folder; a folder holding any of them holds a run.
pub const RUN_FILES: [&str; 4] = ["checkpoint.onnx", "model.onnx", "log.jsonl", "curves.png"];

/// Makes (or reopens) the run folder and locks it for this process. A folder holding
/// another run's files is refused unless the run resumes (`--resume`) or starts
/// afresh (`--force`, which deletes them); stale temporaries of killed runs go.
pub(super) fn open_run_folder(o: &TrainOptions) -> Result<crate::util::FolderLock> {
    ensure!(
        !o.out.exists() || o.out.is_dir(),
        "--out {} is a file, not a folder: give a folder for the run",
        o.out.display()
    );
    // Checked before the lock is taken, so a refused run leaves the folder as it was,
    // and again under the lock, against a run that started in between.
    refuse_existing_run(o)?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("cannot create the run folder {}", o.out.display()))?;
    let lock = crate::util::FolderLock::acquire(&o.out, "training run")?;
    refuse_existing_run(o)?;
    crate::util::remove_stale_temporaries(&o.out);
    let present = present(o);
    let leftovers = !o.resume && !present.is_empty() && !holds_value(&present);
    if leftovers && !o.overwrite {
        eprintln!(
            "note: {} held the leftovers of a run stopped before its first checkpoint ({}): removed, starting afresh",
            o.out.display(),
            present.join(", ")
        );
    }
    if o.overwrite || leftovers {
        for f in present.into_iter().map(|f| o.out.join(f)) {
            std::fs::remove_file(&f).with_context(|| format!("cannot delete {}", f.display()))?;
        }
    }
    Ok(lock)
}

/// The run files in the folder.
fn present(o: &TrainOptions) -> Vec<&'static str> {
    RUN_FILES.into_iter().filter(|f| o.out.join(f).exists()).collect()
}

/// Whether these run files hold something a user would miss: a checkpoint or a model. A
/// run killed before its first checkpoint leaves only its log (and curves), which a new run
/// may replace.
fn holds_value(present: &[&str]) -> bool {
    present.iter().any(|f| *f == "checkpoint.onnx" || *f == "model.onnx")
}

/// A run that resumes needs a checkpoint; one that does not needs a folder without
/// another run's files, unless it may delete them (`overwrite`).
fn refuse_existing_run(o: &TrainOptions) -> Result<()> {
    let present = present(o);
    if o.resume {
        let why = if present.is_empty() {
            String::new()
        } else if !holds_value(&present) {
            format!(
                ": the run there stopped before its first checkpoint (it holds only {}); run the same command \
                 without --resume to start afresh there (removing those), or choose another --out",
                present.join(", ")
            )
        } else {
            format!(
                " (it holds {}); --force starts afresh there (deleting them)",
                present.join(", ")
            )
        };
        ensure!(
            o.out.join("checkpoint.onnx").exists(),
            "--resume: {} has no checkpoint.onnx to continue from{why}",
            o.out.display(),
        );
    } else if holds_value(&present) && !o.overwrite {
        bail!(
            "{} already holds a run ({}): continue it with --resume, start afresh with --force (deleting them), \
             or choose another --out",
            o.out.display(),
            present.join(", ")
        );
    }
    Ok(())
}
