//! The model `srgraph upscale` uses when it is given none: a small WDSR-B x2 that
//! srgraph trained itself (T91 + BSD200, EMA of the weights; its metadata holds the
//! command, the steps and the Set5/Set14 scores). It is built into the binary, so the
//! command works with nothing but a picture. `assets/README.md` says how it was made.

use super::SrModel;
use crate::runtime::Engine;
use anyhow::{bail, Result};

/// The name messages give it.
pub const NAME: &str = "the built-in WDSR-B x2 (assets/wdsr-b-x2.onnx)";

const WDSR_B_X2: &[u8] = include_bytes!("../../assets/wdsr-b-x2.onnx");

/// The built-in model for `scale` (2 when not given).
pub fn load(scale: Option<usize>, engine: Engine, threads: usize) -> Result<SrModel> {
    match scale.unwrap_or(2) {
        2 => SrModel::from_bytes(WDSR_B_X2.to_vec(), NAME, engine, threads),
        s => bail!(
            "srgraph has a built-in model for x2 only; for x{s} pass a model: `srgraph train wdsr-b --scale {s} \
             --data PICTURES` trains one (runs/wdsr-b-x{s}/model.onnx), and `srgraph import` reads PyTorch and Keras \
             checkpoints"
        ),
    }
}
