//! Validation: super-resolve whole images with the current parameters and
//! measure PSNR on Y (shave = scale), with bicubic beside it.

use super::Engine;
use crate::data::bicubic;
use crate::data::dataset::{from_nchw, to_nchw, Pair};
use crate::metrics::psnr_y;
use crate::runtime::{ort::OrtModel, tract::TractModel};
use anyhow::Result;

/// Mean PSNR-Y of bicubic upscaling over the set: the baseline beside every model.
pub fn bicubic_psnr(pairs: &[Pair], scale: usize) -> Result<f64> {
    let mut sum = 0.0;
    for p in pairs {
        sum += psnr_y(&bicubic::upscale(&p.lr, scale)?, &p.hr, scale)?;
    }
    Ok(sum / pairs.len().max(1) as f64)
}

/// Mean PSNR-Y of the model (an inference `.onnx`) over the set.
pub fn model_psnr(onnx: &[u8], pairs: &[Pair], scale: usize, engine: Engine, threads: usize) -> Result<f64> {
    let mut ort = match engine {
        Engine::Ort(device) => Some(OrtModel::new(onnx, device, threads)?),
        Engine::Tract => None,
    };
    let mut sum = 0.0;
    for p in pairs {
        let x = to_nchw(&p.lr).into_dyn();
        let y = match &mut ort {
            Some(m) => m.run(x)?,
            // tract optimises for the concrete size: about 4x faster than symbolic H and W.
            None => TractModel::new(onnx, &[x.shape()])?.run(vec![x])?.remove(0),
        };
        let sr = from_nchw(y.into_dimensionality()?.view());
        sum += psnr_y(&sr, &p.hr, scale)?;
    }
    Ok(sum / pairs.len().max(1) as f64)
}
