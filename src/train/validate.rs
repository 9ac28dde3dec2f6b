//! Validation: super-resolve whole images with the current parameters and
//! measure PSNR on Y (shave = scale), with bicubic beside it.

use super::Engine;
use crate::data::bicubic;
use crate::data::dataset::{from_nchw, Pair};
use crate::infer::SrModel;
use crate::metrics::psnr_y;
use anyhow::Result;

/// Mean PSNR-Y of bicubic upscaling over the set: the baseline beside every model.
pub fn bicubic_psnr(pairs: &[Pair], scale: usize) -> Result<f64> {
    let mut sum = 0.0;
    for p in pairs {
        sum += psnr_y(&bicubic::upscale(&p.lr, scale)?, &p.hr, scale)?;
    }
    Ok(sum / pairs.len().max(1) as f64)
}

/// Mean PSNR-Y of the model (an inference `.onnx`) over the set, each image whole:
/// the same computation as `srgraph eval`.
pub fn model_psnr(onnx: &[u8], pairs: &[Pair], scale: usize, engine: Engine, threads: usize) -> Result<f64> {
    let mut model = SrModel::from_bytes(onnx.to_vec(), "the model being trained", engine, threads)?;
    let mut sum = 0.0;
    for p in pairs {
        let sr = from_nchw(model.upscale(&p.lr, None, &|| {})?.view());
        sum += psnr_y(&sr, &p.hr, scale)?;
    }
    Ok(sum / pairs.len().max(1) as f64)
}
