//! Small helpers shared by every stage.

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::cell::Cell;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Write a file atomically: into a temporary file in the same folder, synced,
/// then renamed over the target. A failure leaves no partial file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = folder_of(path);
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

thread_local! {
    /// Set while this thread runs a library under `guarded`: a panic then is caught and
    /// reported as an error, and the panic hook stays quiet about it.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, a call into a library that reads users' files (a runtime, a picture
/// decoder), so that a panic inside it becomes an error: srgraph checks what it
/// hands such a library, and this is the last line of defence when a file gets
/// past those checks to a bug in the library.
pub fn guarded<T>(runtime: &str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                default(info);
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    match result {
        Ok(r) => r,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            anyhow::bail!(
                "{runtime} failed to {what}: it hit an internal error ({message}); the model is probably malformed \
                 in a way srgraph's checks do not catch (the other --engine may say more)"
            )
        }
    }
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

/// An advisory lock on a folder, held while the value lives: `.srgraph.lock` inside
/// it, locked with the OS's file lock (released by the kernel when the process
/// ends, however it ends) and holding the owner's pid for the message.
pub struct FolderLock {
    _file: std::fs::File,
}

impl FolderLock {
    /// The lock, waiting for another process that holds it (saying so once): for shared
    /// folders such as the data cache, where the other process is doing the same work.
    pub fn wait(dir: &Path, what: &str) -> Result<FolderLock> {
        match Self::acquire(dir, what) {
            Ok(lock) => Ok(lock),
            Err(e) if e.to_string().contains("is in use by another") => {
                eprintln!("waiting: {e:#}");
                let path = dir.join(".srgraph.lock");
                let mut file = Self::open(&path)?;
                file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
                file.set_len(0)?;
                write!(file, "{}", std::process::id())?;
                Ok(FolderLock { _file: file })
            }
            Err(e) => Err(e),
        }
    }

    fn open(path: &Path) -> Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot create the lock file {}", path.display()))
    }

    pub fn acquire(dir: &Path, what: &str) -> Result<FolderLock> {
        let path: PathBuf = dir.join(".srgraph.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot create the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                let owner = owner.trim();
                bail!(
                    "{} is in use by another srgraph {what}{}: wait for it to finish, or choose another --out",
                    dir.display(),
                    if owner.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {owner})")
                    }
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(FolderLock { _file: file })
    }
}

/// Bytes of memory available to a new allocation (Linux: `MemAvailable` in
/// /proc/meminfo); None where that cannot be read.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The memory available, in bytes, when `bytes` would not fit in it; None when it
/// would, or when the machine does not say.
pub fn short_of_memory(bytes: f64) -> Option<f64> {
    let available = available_memory()? as f64;
    (bytes >= available).then_some(available)
}

/// Thousands separators for counts people read.
pub fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// plotters draws text with ab_glyph from a font it is given: DejaVu Sans,
/// embedded, so no system fonts are needed.
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// The drawing area of a plot.
pub type PlotArea<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A plot drawn in memory on white, then written as PNG atomically: a full disk
/// leaves the previous file (or none), never a truncated one.
pub fn save_plot(path: &Path, (w, h): (u32, u32), draw: impl FnOnce(&PlotArea) -> Result<()>) -> Result<()> {
    register_font();
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root)?;
        root.present()
            .map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))?;
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &rgb,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )?;
    write_atomic(path, &png)
}

/// A float32 array as a `.npy` file (format 1.0, little-endian, C order), for
/// handing tensors to the Python checks.
pub fn npy_bytes(a: &ndarray::ArrayD<f32>) -> Vec<u8> {
    let shape: Vec<String> = a.shape().iter().map(|d| d.to_string()).collect();
    let shape = if shape.len() == 1 {
        format!("{},", shape[0])
    } else {
        shape.join(", ")
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(a.as_standard_layout().iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_data_follows() {
        let a =
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 3]), vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let b = npy_bytes(&a);
        let header_len = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0, "numpy wants the data 64-byte aligned");
        assert!(std::str::from_utf8(&b[10..10 + header_len])
            .unwrap()
            .contains("'shape': (2, 3)"));
        assert_eq!(&b[10 + header_len + 4..10 + header_len + 8], 1.0f32.to_le_bytes());
        assert_eq!(b.len(), 10 + header_len + 24);
    }

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
}
