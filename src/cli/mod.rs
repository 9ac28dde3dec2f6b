//! The `srgraph` command: parsed flags become validated options, which call the
//! library. Exit codes: 0 success, 1 a failure (bad input, unreadable file), 2 a
//! usage error (unknown flag or value).

mod build;
mod eval;
mod import;
mod inspect;
mod study;
mod train;
mod upscale;

pub use build::describe;

use crate::runtime::{ort::Device, Engine};
use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "srgraph",
    version,
    about = "Build, train, evaluate and run EDSR / WDSR-A / WDSR-B super-resolution networks as ONNX graphs",
    long_about = "srgraph compiles single-image super-resolution networks (EDSR, WDSR-A, WDSR-B) \
                  into standard ONNX files with dynamic height and width, which any ONNX runtime loads.\n\n\
                  Exit codes: 0 success, 1 failure (bad input, unreadable or unwritable file), 2 usage error, \
                  130 training stopped by Ctrl-C (after writing its checkpoint and model)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build a network and write its inference graph as ONNX.
    Build(build::BuildArgs),
    /// Print the summary and metadata of an .onnx file.
    Inspect(inspect::InspectArgs),
    /// Train a network (ONNX Runtime or tract) and write the trained .onnx.
    Train(train::TrainArgs),
    /// Score a model on benchmark folders: PSNR/SSIM on Y, PSNR on RGB, bicubic beside it.
    Eval(eval::EvalArgs),
    /// Super-resolve pictures (any size, in tiles), optionally beside bicubic and the original.
    Upscale(upscale::UpscaleArgs),
    /// The seed's experiment: EDSR vs WDSR-A vs WDSR-B by depth, or normalisations; table and plots.
    Study(study::StudyArgs),
    /// Turn an ONNX Runtime training-API checkpoint into srgraph's inference graph.
    ImportCheckpoint(import::ImportArgs),
    /// List the named presets (from graphs/).
    Presets,
}

/// How a command ended, for the exit code.
pub enum Outcome {
    Done,
    /// Stopped by Ctrl-C after saving its work (exit code 130, as shells do).
    Interrupted,
}

pub fn run() -> Result<Outcome> {
    run_with(Cli::parse())
}

pub fn run_with(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Build(a) => build::run(a).map(|_| Outcome::Done),
        Command::Inspect(a) => inspect::run(a).map(|_| Outcome::Done),
        Command::Train(a) => train::run(a).map(|stopped| if stopped { Outcome::Interrupted } else { Outcome::Done }),
        Command::Eval(a) => eval::run(a).map(|_| Outcome::Done),
        Command::Upscale(a) => upscale::run(a).map(|_| Outcome::Done),
        Command::Study(a) => study::run(a).map(|stopped| if stopped { Outcome::Interrupted } else { Outcome::Done }),
        Command::ImportCheckpoint(a) => import::run(a).map(|_| Outcome::Done),
        Command::Presets => build::list_presets().map(|_| Outcome::Done),
    }
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

/// Which runtime a command runs its graph in: shared by train, eval and upscale.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// ort (ONNX Runtime) or tract (pure Rust, needs no library). Default: ort for train, tract for eval and upscale.
    /// train and study also take ort-training: ONNX Runtime's own (deprecated) training API on srgraph's training-API
    /// artefacts, which needs srgraph's `ort-training` cargo feature and a library built with that API.
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// With --engine ort or ort-training: cpu, cuda (an error if CUDA cannot start), or auto (CUDA if it works, else
    /// the CPU, saying so).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Threads for ONNX Runtime (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    Ort,
    Tract,
    OrtTraining,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
    Auto,
}

impl EngineArgs {
    /// The engine asked for, or the command's default.
    pub fn engine(&self, default: EngineArg) -> Result<Engine> {
        Ok(match (self.engine.unwrap_or(default), self.device) {
            (EngineArg::Tract, DeviceArg::Cpu) => Engine::Tract,
            (EngineArg::Tract, _) => anyhow::bail!("--device applies to --engine ort; tract runs on the CPU"),
            (EngineArg::Ort, DeviceArg::Cpu) => Engine::Ort(Device::Cpu),
            (EngineArg::Ort, DeviceArg::Cuda) => Engine::Ort(Device::Cuda),
            (EngineArg::Ort, DeviceArg::Auto) => Engine::Ort(Device::Auto),
            (EngineArg::OrtTraining, DeviceArg::Cpu) => Engine::OrtTraining(Device::Cpu),
            (EngineArg::OrtTraining, DeviceArg::Cuda) => Engine::OrtTraining(Device::Cuda),
            (EngineArg::OrtTraining, DeviceArg::Auto) => Engine::OrtTraining(Device::Auto),
        })
    }

    /// The engine that runs a model (eval, upscale): ort-training is for training.
    pub fn inference_engine(&self, default: EngineArg) -> Result<Engine> {
        if self.engine == Some(EngineArg::OrtTraining) {
            // A usage error (exit code 2), as clap gives for a value out of place.
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                "--engine ort-training is for train and study; models run with --engine ort or --engine tract\n",
            )
            .exit();
        }
        self.engine(default)
    }
}

/// A flag Ctrl-C sets (saying `message`), for commands that stop cleanly after the current step.
pub fn stop_on_ctrl_c(message: &'static str) -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        eprintln!("{message}");
        flag.store(true, Ordering::Relaxed);
    })
    .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;
    Ok(stop)
}
