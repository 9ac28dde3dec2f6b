//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ndarray::{s, Array4, ArrayD};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `../shared/data` beside the repository, or `$SRGRAPH_DATA`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("SRGRAPH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// A Set5 picture as [1, 3, H, W] in [0, 255].
pub fn set5(name: &str) -> Array4<f32> {
    let p = data_dir().join("Set5/HR").join(format!("{name}.png"));
    srgraph::data::load_rgb(&p).unwrap_or_else(|e| panic!("{e:#}: the tests read ../shared/data (or $SRGRAPH_DATA)"))
}

/// A crop of a Set5 picture, to keep slow checks short.
pub fn set5_crop(name: &str, top: usize, left: usize, h: usize, w: usize) -> ArrayD<f32> {
    set5(name)
        .slice(s![.., .., top..top + h, left..left + w])
        .to_owned()
        .into_dyn()
}

/// max |a - b| / max(1, max |b|): float32 sums in another order differ by a few
/// ulps of the largest value, so errors are measured against the output's size.
pub fn rel_err(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// The Python of a venv the test command sets up: `$VAR`, else `<repo>/<venv>/bin/python`.
fn venv_python(var: &str, venv: &str, setup: &str) -> PathBuf {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(venv).join("bin/python"));
    assert!(
        p.exists(),
        "{} is missing: run {setup} (or tools/test.sh, which does)",
        p.display()
    );
    p
}

/// The Python of the venv made by tools/setup/setup-python.sh (`$SRGRAPH_PYTHON`, or `.venv/bin/python`).
pub fn python() -> PathBuf {
    venv_python("SRGRAPH_PYTHON", ".venv", "tools/setup/setup-python.sh")
}

/// The Python with ONNX Runtime's training API, made by tools/setup/setup-training-venv.sh
/// (`$SRGRAPH_TRAINING_PYTHON`, or `.venv-training/bin/python`).
pub fn training_python() -> PathBuf {
    venv_python(
        "SRGRAPH_TRAINING_PYTHON",
        ".venv-training",
        "tools/setup/setup-training-venv.sh",
    )
}

/// Waits until the training log `log` has `lines` lines (a run in another process is under way).
pub fn wait_for_log_lines(log: &Path, lines: usize, timeout_s: u64) {
    let started = std::time::Instant::now();
    while std::fs::read_to_string(log).map(|s| s.lines().count()).unwrap_or(0) < lines {
        assert!(
            started.elapsed().as_secs() < timeout_s,
            "{} did not reach {lines} lines in {timeout_s} s",
            log.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A path under the data folder, as an argument.
pub fn data(what: &str) -> String {
    data_dir().join(what).display().to_string()
}

/// The data cache the tests' `srgraph` processes share: in the build's temporary folder,
/// not the user's ~/.cache.
pub fn data_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("data-cache")
}

/// The `srgraph` binary with these arguments in `cwd`, on the tests' data cache: to spawn.
pub fn srgraph_command<S: AsRef<std::ffi::OsStr>>(args: &[S], cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_srgraph"));
    command.args(args).current_dir(cwd).env("SRGRAPH_CACHE", data_cache());
    command
}

/// Runs the `srgraph` binary in `cwd` on the tests' data cache, to the end.
pub fn srgraph(args: &[&str], cwd: &Path) -> Output {
    srgraph_command(args, cwd).output().unwrap()
}

/// `srgraph` with arguments built as owned strings.
pub fn srgraph_owned(args: &[String], cwd: &Path) -> Output {
    srgraph(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>(), cwd)
}

/// A quick `srgraph train` for tests: a one-block, 8-filter ARCH on DATA, 3 steps of batch 2
/// with 32 px patches, in tract, into `run/`, quietly. `set` gives a flag another value (or
/// adds it), `flag` adds a bare one.
#[derive(Clone)]
pub struct QuickTrain(Vec<String>);

impl QuickTrain {
    pub fn new(arch: &str, data: &str) -> Self {
        #[rustfmt::skip]
        let args = [
            "train", arch, "--blocks", "1", "--filters", "8", "--steps", "3", "--batch", "2", "--patch", "32",
            "--engine", "tract", "--data", data, "--out", "run", "--quiet",
        ];
        Self(args.map(String::from).to_vec())
    }

    pub fn set(mut self, flag: &str, value: &str) -> Self {
        match self.0.iter().position(|a| a == flag) {
            Some(i) => self.0[i + 1] = value.into(),
            None => self.0.extend([flag.into(), value.into()]),
        }
        self
    }

    pub fn flag(mut self, flag: &str) -> Self {
        self.0.push(flag.into());
        self
    }

    /// The process, to spawn.
    pub fn command(&self, cwd: &Path) -> Command {
        srgraph_command(&self.0, cwd)
    }

    /// Runs it to the end.
    pub fn run(&self, cwd: &Path) -> Output {
        self.command(cwd).output().unwrap()
    }
}

/// stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A failure: exit code 1 and an "Error: " message that contains `needle`, no panic.
pub fn fails_with(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    assert!(
        err.contains("Error: ") && err.contains(needle) && !err.contains("panicked"),
        "expected '{needle}' in: {err}"
    );
}
