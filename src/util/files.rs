//! Files srgraph writes: atomically (a temporary beside the target, renamed into
//! place), never over an input, and with the temporaries of killed processes cleared.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

/// Write a file atomically: into a temporary file in the same folder, synced,
/// then renamed over the target. A failure leaves no partial file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    through_temporary(path, bytes, |tmp| Ok(std::fs::rename(tmp, path)?))
}

/// Writes `bytes` to a synced temporary beside `path`, then `place`s it there; the
/// temporary is gone afterwards, whatever happened.
fn through_temporary(path: &Path, bytes: &[u8], place: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temporary_for(path)?;
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        place(&tmp)
    })();
    let _ = std::fs::remove_file(&tmp);
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// Write a command's output: atomically, and, unless the user said `--force`, never over a
/// file that exists when the write ends. `check_output` refuses an existing file before the
/// work starts; this closes the window between that check and the write, in which another
/// process may have made the file (two `upscale -o out.png` at once): the temporary is
/// hard-linked to the final name, which the kernel refuses to do over an existing file, so
/// exactly one writer wins and the other gets the usual "exists" error.
pub fn write_output(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    if force {
        return write_atomic(path, bytes);
    }
    through_temporary(path, bytes, |tmp| match std::fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists(path)),
        // A file system without hard links: create the final name exclusively instead
        // (still one winner; a killed write may leave a partial file there).
        Err(_) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => exists(path),
                    _ => e.into(),
                })?;
            f.write_all(bytes)?;
            f.sync_all()?;
            Ok(())
        }
    })
}

fn exists(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} already exists (another process wrote it while this one worked): give another output path, or \
         --force to replace it",
        path.display()
    )
}

/// `.NAME.tmp-PID` beside `path`: the temporaries `remove_stale_temporaries` recognises.
fn temporary_for(path: &Path) -> Result<std::path::PathBuf> {
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    Ok(folder_of(path).join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id())))
}

/// The folder a file path is in (`.` for a bare file name).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The temporary files `write_atomic` makes are `.NAME.tmp-PID`. A process killed
/// between creating one and renaming it leaves it behind: remove those in `dir`
/// whose process is gone (or is not srgraph), so no run folder collects them.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp-"))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` exists (Linux: /proc; elsewhere assume it does, keeping its files).
fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// srgraph's policy for the files a command writes: an existing file is replaced only
/// when the user says so (`--force`), and an input is never replaced, whatever the
/// flags. Every command checks each output with this before it starts work.
pub fn check_output(path: &Path, force: bool, inputs: &[&Path]) -> Result<()> {
    if let Some(input) = inputs.iter().find(|i| same_file(i, path)) {
        bail!(
            "{} is an input ({}): srgraph never writes over its inputs; give another output path",
            path.display(),
            input.display()
        );
    }
    if path.is_dir() {
        bail!("cannot write {}: it is a folder; give a file path", path.display());
    }
    if path.exists() && !force {
        bail!(
            "{} already exists: give another output path, or --force to replace it",
            path.display()
        );
    }
    Ok(())
}

/// Whether two paths name one existing file (through links and `..`).
pub fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write_atomic(&dir.path().join("no/such/dir/f"), b"x").is_err());
    }

    #[test]
    fn an_output_is_not_replaced_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.png");
        write_output(&p, b"first", false).unwrap();
        let e = write_output(&p, b"second", false).unwrap_err();
        assert!(format!("{e:#}").contains("--force"), "{e:#}");
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        write_output(&p, b"third", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"third");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
    }
}
