//! The `srgraph` command: parsed flags become validated options, which call the
//! library. Exit codes: 0 success, 1 a failure (bad input, unreadable file), 2 a
//! usage error (unknown flag or value), 128 + the signal's number when a training
//! run was stopped by SIGINT (130), SIGTERM (143) or SIGHUP (129) after saving.

mod build;
mod eval;
mod inspect;
mod interop;
mod prepare;
mod serve;
mod study;
mod train;
mod upscale;

use crate::runtime::{ort::Device, Runtime};
use crate::train::Engine;
use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "srgraph",
    version,
    about = "Build, train, evaluate and run EDSR / WDSR-A / WDSR-B super-resolution networks as ONNX graphs",
    long_about = "srgraph compiles single-image super-resolution networks (EDSR, WDSR-A, WDSR-B) \
                  into standard ONNX files with dynamic height and width, which any ONNX runtime loads.\n\n\
                  Outputs: an existing file is replaced only with --force, and an input never is.\n\n\
                  Exit codes: 0 success, 1 failure (bad input, unreadable or unwritable file), 2 usage error, \
                  130 / 143 / 129 training stopped by Ctrl-C / SIGTERM / SIGHUP (after writing its checkpoint and \
                  model)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build a network and write its inference graph as ONNX.
    Build(build::BuildArgs),
    /// Print the summary and metadata of an .onnx file, or what passes its ReLUs on a picture (--activations).
    Inspect(inspect::InspectArgs),
    /// Train a network (ONNX Runtime or tract) and write the trained .onnx.
    Train(train::TrainArgs),
    /// Score a model, or pictures upscaled elsewhere, on benchmark folders: PSNR/SSIM on Y, PSNR on RGB, and bicubic.
    Eval(eval::EvalArgs),
    /// Super-resolve pictures (any size, in tiles), optionally beside bicubic and the original.
    Upscale(upscale::UpscaleArgs),
    /// Decode a training set once into the memory-mapped cache `train` reads (train makes it itself when missing).
    Prepare(prepare::PrepareArgs),
    /// The WDSR paper's study: EDSR vs WDSR-A vs WDSR-B by depth, or normalisations; table and plots.
    Study(study::StudyArgs),
    /// Turn a checkpoint (PyTorch .pth/.pt, .safetensors, Keras .h5, ONNX Runtime training, srgraph) into an .onnx.
    #[command(alias = "import-checkpoint")]
    Import(interop::ImportArgs),
    /// Write a model's or run's weights as safetensors under a reference implementation's names.
    Export(interop::ExportArgs),
    /// Serve the browser page (upscale and train in onnxruntime-web) and a model on 127.0.0.1.
    Serve(serve::ServeArgs),
    /// List the named presets (from graphs/).
    Presets,
}

/// How a command ended, for the exit code.
pub enum Outcome {
    Done,
    /// Stopped by a signal after saving its work (exit code 128 + the signal, as shells do).
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
        Command::Prepare(a) => prepare::run(a).map(|_| Outcome::Done),
        Command::Serve(a) => serve::run(a).map(|_| {
            if STOPPED_BY.load(std::sync::atomic::Ordering::SeqCst) != 0 {
                Outcome::Interrupted
            } else {
                Outcome::Done
            }
        }),
        Command::Study(a) => study::run(a).map(|stopped| if stopped { Outcome::Interrupted } else { Outcome::Done }),
        Command::Import(a) => interop::run_import(a).map(|_| Outcome::Done),
        Command::Export(a) => interop::run_export(a).map(|_| Outcome::Done),
        Command::Presets => build::list_presets().map(|_| Outcome::Done),
    }
}

/// Which runtime runs a model (eval, upscale).
#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// ort (ONNX Runtime) or tract (pure Rust, needs no library; the default).
    #[arg(long, value_parser = RuntimeParser)]
    pub engine: Option<RuntimeArg>,
    #[command(flatten)]
    pub ort: OrtArgs,
}

/// What trains a network (train, study).
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// ort (ONNX Runtime, the default) or tract (pure Rust, needs no library), or ort-training: ONNX Runtime's own
    /// (deprecated) training API on srgraph's training-API artefacts, which needs srgraph's `ort-training` cargo
    /// feature and a library built with that API.
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    #[command(flatten)]
    pub ort: OrtArgs,
}

/// Where ONNX Runtime runs, and on how many threads either runtime runs.
#[derive(Args, Debug, Clone)]
pub struct OrtArgs {
    /// Where ONNX Runtime runs (any engine but tract): cpu, cuda (an error if CUDA cannot start), or auto (CUDA if it
    /// works, else the CPU, saying so).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Threads the engine runs on, ONNX Runtime or tract (0: all cores; at most the machine's cores).
    #[arg(long, default_value_t = 0, value_parser = parse_threads)]
    pub threads: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    Ort,
    Tract,
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

impl RuntimeArgs {
    /// The runtime asked for, or the command's default.
    pub fn runtime(&self, default: RuntimeArg) -> Result<Runtime> {
        self.ort.runtime(self.engine.unwrap_or(default))
    }
}

impl EngineArgs {
    /// The engine asked for, or the command's default.
    pub fn engine(&self, default: EngineArg) -> Result<Engine> {
        Ok(match self.engine.unwrap_or(default) {
            EngineArg::Ort => Engine::Runtime(self.ort.runtime(RuntimeArg::Ort)?),
            EngineArg::Tract => Engine::Runtime(self.ort.runtime(RuntimeArg::Tract)?),
            EngineArg::OrtTraining => Engine::TrainingApi(self.ort.device()),
        })
    }
}

impl OrtArgs {
    fn device(&self) -> Device {
        match self.device {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda,
            DeviceArg::Auto => Device::Auto,
        }
    }

    fn runtime(&self, runtime: RuntimeArg) -> Result<Runtime> {
        Ok(match (runtime, self.device) {
            (RuntimeArg::Tract, DeviceArg::Cpu) => Runtime::Tract,
            (RuntimeArg::Tract, _) => anyhow::bail!("--device applies to --engine ort; tract runs on the CPU"),
            (RuntimeArg::Ort, _) => Runtime::Ort(self.device()),
        })
    }
}

/// `--engine` of the commands that run a model: clap's own parser of `ort` and `tract`,
/// whose usage error for `ort-training` adds where that engine belongs.
#[derive(Clone)]
struct RuntimeParser;

impl clap::builder::TypedValueParser for RuntimeParser {
    type Value = RuntimeArg;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<RuntimeArg, clap::Error> {
        clap::builder::EnumValueParser::<RuntimeArg>::new()
            .parse_ref(cmd, arg, value)
            .map_err(|mut e| {
                if value == "ort-training" {
                    let tip =
                        "--engine ort-training is for train and study; models run with --engine ort or --engine tract";
                    e.insert(
                        clap::error::ContextKind::Suggested,
                        clap::error::ContextValue::StyledStrs(vec![tip.into()]),
                    );
                }
                e
            })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            RuntimeArg::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

/// More threads than cores only make the runtimes spin: 100,000 of them never finish
/// starting. A usage error names the bound.
pub(super) fn parse_threads(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("'{s}' is not a number of threads"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n > cores {
        return Err(format!(
            "this machine has {cores} cores: give at most {cores} (0 uses them all)"
        ));
    }
    Ok(n)
}

/// A count that must be at least 1 (`--checkpoint-every 0` would mean nothing sensible).
pub fn positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

/// The signal that stopped a command, for its exit code; 0 while none has.
static STOPPED_BY: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// A flag that SIGINT (Ctrl-C), SIGTERM and SIGHUP (what schedulers and closing
/// terminals send) set, saying `message`, for commands that stop cleanly after the
/// current step. The signals are read on a thread of their own, where printing is safe.
pub fn stop_on_signals(message: &'static str) -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| anyhow::anyhow!("cannot install the signal handlers: {e}"))?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let name = match signal {
                SIGTERM => "SIGTERM",
                SIGHUP => "SIGHUP",
                _ => "Ctrl-C",
            };
            eprintln!("\n{name}: {message}");
            STOPPED_BY.store(signal, Ordering::SeqCst);
            flag.store(true, Ordering::SeqCst);
        }
    });
    Ok(stop)
}

/// The exit code of a command stopped by a signal: 128 + its number (130 for Ctrl-C).
pub fn interrupted_exit_code() -> u8 {
    match STOPPED_BY.load(std::sync::atomic::Ordering::SeqCst) {
        s @ 1..=127 => 128 + s as u8,
        _ => 130,
    }
}
