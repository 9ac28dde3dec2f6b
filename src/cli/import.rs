//! `srgraph import-checkpoint`: an ONNX Runtime training-API checkpoint to srgraph's inference graph.

use super::build::{resolve, ModelArgs};
use crate::models::describe;
use crate::ortapi::import_checkpoint;
use crate::util::write_atomic;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    srgraph import-checkpoint trained/checkpoint wdsr-b --blocks 8 -o wdsr-b-x2.onnx\n  \
    srgraph import-checkpoint ckpt study-wdsr-a-8 --scale 4 -o model.onnx\n\n\
    The architecture flags must describe the network the checkpoint was trained on (as given to\n\
    `srgraph build --format ort-training`); every parameter must be in the checkpoint with its shape.")]
pub struct ImportArgs {
    /// The checkpoint file (ONNX Runtime's "ODTC" flatbuffer).
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The inference .onnx to write.
    #[arg(long, short, visible_alias = "out")]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: ImportArgs) -> Result<()> {
    let (c, _) = resolve(&a.model)?;
    crate::util::check_output(&a.output, a.force, &[&a.checkpoint])?;
    let bytes = std::fs::read(&a.checkpoint).with_context(|| format!("cannot read {}", a.checkpoint.display()))?;
    let onnx = import_checkpoint(&bytes, &c, &a.checkpoint.display().to_string())?;
    write_atomic(&a.output, &onnx)?;
    println!("network     {}", describe(&c));
    println!("wrote       {} (from {})", a.output.display(), a.checkpoint.display());
    Ok(())
}
