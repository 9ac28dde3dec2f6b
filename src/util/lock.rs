//! The advisory lock srgraph holds on a folder it writes (a run, the data cache).

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An advisory lock on a folder, held while the value lives: `.srgraph.lock` inside
/// it, locked with the OS's file lock (released by the kernel when the process
/// ends, however it ends) and holding the owner's pid for the message.
pub struct FolderLock {
    _file: std::fs::File,
}

/// The error `FolderLock::acquire` gives when another process holds the lock, so that
/// callers can tell it from a failure to lock at all.
#[derive(Debug)]
pub struct FolderInUse {
    dir: PathBuf,
    /// What the other process is ("run", "data cache"...).
    what: String,
    /// The owner's pid, as its lock file records it.
    owner: Option<String>,
}

impl std::fmt::Display for FolderInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} is in use by another srgraph {}", self.dir.display(), self.what)?;
        if let Some(owner) = &self.owner {
            write!(f, " (pid {owner})")?;
        }
        write!(f, ": wait for it to finish, or choose another --out")
    }
}

impl std::error::Error for FolderInUse {}

impl FolderLock {
    /// The lock, waiting for another process that holds it (saying so once): for shared
    /// folders such as the data cache, where the other process is doing the same work.
    pub fn wait(dir: &Path, what: &str) -> Result<FolderLock> {
        match Self::acquire(dir, what) {
            Err(e) if e.is::<FolderInUse>() => {
                eprintln!("waiting: {e:#}");
                let path = dir.join(".srgraph.lock");
                let file = Self::open(&path)?;
                file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
                Self::hold(file)
            }
            acquired => acquired,
        }
    }

    /// The lock, or a `FolderInUse` error when another process holds it.
    pub fn acquire(dir: &Path, what: &str) -> Result<FolderLock> {
        let path: PathBuf = dir.join(".srgraph.lock");
        let file = Self::open(&path)?;
        match file.try_lock() {
            Ok(()) => Self::hold(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                let owner = owner.trim();
                Err(FolderInUse {
                    dir: dir.to_path_buf(),
                    what: what.to_string(),
                    owner: (!owner.is_empty()).then(|| owner.to_string()),
                }
                .into())
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }

    fn open(path: &Path) -> Result<std::fs::File> {
        // A folder or a FIFO there would fail to lock with an OS error that names nothing
        // (or, for a FIFO, block): say what it is and what to do.
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !path.is_file() {
                anyhow::bail!(
                    "{} is {}, not srgraph's lock file (a regular file srgraph makes itself): remove it and run again",
                    path.display(),
                    describe(&m.file_type())
                );
            }
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot create the lock file {}", path.display()))
    }

    /// A locked file, made to hold this process's pid for the messages of others.
    fn hold(mut file: std::fs::File) -> Result<FolderLock> {
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(FolderLock { _file: file })
    }
}

/// What a file system entry is, for messages.
fn describe(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a folder"
    } else if kind.is_symlink() {
        "a link to something that is not a file"
    } else {
        special(kind)
    }
}

#[cfg(unix)]
fn special(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special(_: &std::fs::FileType) -> &'static str {
    "not a regular file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_folder_is_in_use_and_says_by_whom() {
        let dir = tempfile::tempdir().unwrap();
        let _held = FolderLock::acquire(dir.path(), "run").unwrap();
        // The OS lock is per open file: a second acquire in this process is refused too.
        let e = FolderLock::acquire(dir.path(), "run").err().unwrap();
        assert!(e.is::<FolderInUse>());
        let says = e.to_string();
        assert!(
            says.contains("is in use by another srgraph run")
                && says.contains(&format!("(pid {})", std::process::id())),
            "{says}"
        );
    }
}
