//! The `srgraph` command: parsed flags become validated options, which call the
//! library. Exit codes: 0 success, 1 a failure (bad input, unreadable file), 2 a
//! usage error (unknown flag or value).

mod build;
mod inspect;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "srgraph",
    version,
    about = "Build, check and inspect EDSR / WDSR-A / WDSR-B super-resolution networks as ONNX graphs",
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
