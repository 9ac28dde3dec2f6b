//! Validation: super-resolve whole images with the current parameters and measure
//! PSNR on Y (shave = scale, as the benchmarks are reported) and on RGB (shave =
//! scale + 6, as the WDSR paper reports DIV2K), with bicubic beside them.

use crate::data::bicubic;
use crate::data::cache::PixelCache;
use crate::data::dataset::{from_nchw, Pair};
use crate::infer::SrModel;
use crate::metrics::{psnr_rgb, psnr_y};
use crate::runtime::Runtime;
use anyhow::Result;
use ndarray::ArrayView3;

/// Mean PSNRs over a validation set, in dB.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Psnr {
    /// On Y, shave = scale.
    pub y: f64,
    /// On RGB, shave = scale + 6 (DIV2K's convention in the WDSR paper).
    pub rgb: f64,
}

/// Low-resolution pictures larger than this on a side are super-resolved in tiles (with
/// the receptive-field margin, so tiled equals whole): DIV2K's 2K validation pictures
/// would otherwise need gigabytes of activations at once.
const WHOLE_UP_TO: usize = 512;
const TILE: usize = 256;

fn scores(sr: &ndarray::Array3<u8>, hr: &ndarray::Array3<u8>, scale: usize) -> Result<Psnr> {
    Ok(Psnr {
        y: psnr_y(sr, hr, scale)?,
        rgb: psnr_rgb(sr, hr, scale + 6)?,
    })
}

fn mean(all: &[Psnr]) -> Psnr {
    let n = all.len().max(1) as f64;
    Psnr {
        y: all.iter().map(|p| p.y).sum::<f64>() / n,
        rgb: all.iter().map(|p| p.rgb).sum::<f64>() / n,
    }
}

/// A validation set's pictures, (LR, HR) HWC: decoded in memory, or memory-mapped from
/// the data cache (then one picture at a time is copied out, however large the set).
pub trait Pictures {
    fn count(&self) -> usize;
    fn pair(&self, i: usize) -> (ArrayView3<'_, u8>, ArrayView3<'_, u8>);
}

impl Pictures for [Pair] {
    fn count(&self) -> usize {
        self.len()
    }

    fn pair(&self, i: usize) -> (ArrayView3<'_, u8>, ArrayView3<'_, u8>) {
        (self[i].lr.view(), self[i].hr.view())
    }
}

impl Pictures for PixelCache {
    fn count(&self) -> usize {
        self.len()
    }

    fn pair(&self, i: usize) -> (ArrayView3<'_, u8>, ArrayView3<'_, u8>) {
        let (hr, lr, _) = PixelCache::pair(self, i);
        (lr, hr)
    }
}

/// Mean PSNRs of bicubic upscaling over the set: the baseline beside every model.
pub fn bicubic_scores(set: &(impl Pictures + ?Sized), scale: usize) -> Result<Psnr> {
    let all = (0..set.count())
        .map(|i| {
            let (lr, hr) = set.pair(i);
            scores(&bicubic::upscale(&lr.to_owned(), scale)?, &hr.to_owned(), scale)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(mean(&all))
}

/// Mean PSNRs of the model (an inference `.onnx`) over the set, in the engine the run
/// trains in: the same computation as `srgraph eval`.
pub fn model_scores(
    onnx: &[u8],
    set: &(impl Pictures + ?Sized),
    scale: usize,
    engine: Runtime,
    threads: usize,
) -> Result<Psnr> {
    let mut model = SrModel::from_bytes(onnx.to_vec(), "the model being trained", engine, threads)?;
    let mut all = vec![];
    for i in 0..set.count() {
        let (lr, hr) = set.pair(i);
        let (h, w, _) = lr.dim();
        let tile = (h.max(w) > WHOLE_UP_TO).then_some(TILE);
        let sr = from_nchw(model.upscale(&lr.to_owned(), tile, &|| {})?.view());
        all.push(scores(&sr, &hr.to_owned(), scale)?);
    }
    Ok(mean(&all))
}

/// Mean PSNR-Y of bicubic upscaling over the set.
pub fn bicubic_psnr(pairs: &[Pair], scale: usize) -> Result<f64> {
    Ok(bicubic_scores(pairs, scale)?.y)
}

/// Mean PSNR-Y of the model over the set.
pub fn model_psnr(onnx: &[u8], pairs: &[Pair], scale: usize, engine: Runtime, threads: usize) -> Result<f64> {
    Ok(model_scores(onnx, pairs, scale, engine, threads)?.y)
}
