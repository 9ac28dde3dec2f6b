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
    if o.overwrite {
        for f in RUN_FILES.into_iter().map(|f| o.out.join(f)).filter(|f| f.exists()) {
            std::fs::remove_file(&f).with_context(|| format!("cannot delete {}", f.display()))?;
        }
    }
    Ok(lock)
}

/// A run that resumes needs a checkpoint; one that does not needs a folder without
/// another run's files, unless it may delete them (`overwrite`).
fn refuse_existing_run(o: &TrainOptions) -> Result<()> {
    let present: Vec<&str> = RUN_FILES.into_iter().filter(|f| o.out.join(f).exists()).collect();
    if o.resume {
        ensure!(
            o.out.join("checkpoint.onnx").exists(),
            "--resume: {} has no checkpoint.onnx to continue from{}",
            o.out.display(),
            if present.is_empty() {
                String::new()
            } else {
                format!(" (it holds {}); --force starts afresh there", present.join(", "))
            }
        );
    } else if !present.is_empty() && !o.overwrite {
        bail!(
            "{} already holds a run ({}): continue it with --resume, start afresh with --force (deleting them), \
             or choose another --out",
            o.out.display(),
            present.join(", ")
        );
    }
    Ok(())
}
