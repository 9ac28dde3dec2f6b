//! Validation: super-resolve whole images with the current parameters and measure
//! PSNR on Y (shave = scale, as the benchmarks are reported) and on RGB (shave =
//! scale + 6, as the WDSR paper reports DIV2K), with bicubic beside them: `eval`'s
//! scorer, without SSIM.

use crate::data::dataset::Pair;
use crate::data::sample::Sample;
use crate::eval::{Pictures, Scores, Scoring};
use crate::infer::SrModel;
use crate::runtime::Runtime;
use anyhow::Result;

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

/// `channels`: the network's (1: scored on the set's luma).
fn scoring(scale: usize, channels: usize) -> Scoring {
    Scoring {
        scale,
        rgb_shave: scale + 6,
        ssim: false,
        luma: channels == 1,
    }
}

fn mean(all: &[Scores]) -> Psnr {
    let m = Scores::mean(all.iter().copied());
    Psnr {
        y: m.psnr_y,
        rgb: m.psnr_rgb,
    }
}

/// Mean PSNRs of bicubic upscaling over the set, with values of `P` (16-bit ones against
/// peak 65535): the baseline beside every model; on the set's luma for a network of one
/// channel.
pub fn bicubic_scores<P: Sample>(set: &(impl Pictures<P> + ?Sized), scale: usize, channels: usize) -> Result<Psnr> {
    Ok(mean(&scoring(scale, channels).bicubic(set)?))
}

/// Mean PSNRs of the model (an inference `.onnx`) over the set, in the engine the run
/// trains in: the same computation as `srgraph eval`.
pub fn model_scores<P: Sample>(
    onnx: &[u8],
    set: &(impl Pictures<P> + ?Sized),
    scale: usize,
    engine: Runtime,
    threads: usize,
) -> Result<Psnr> {
    let mut model = SrModel::from_bytes(onnx.to_vec(), "the model being trained", engine, threads)?;
    let tile = |h: usize, w: usize| (h.max(w) > WHOLE_UP_TO).then_some(TILE);
    let scoring = scoring(scale, model.channels);
    Ok(mean(&scoring.model(&mut model, set, &tile, &mut |_| {})?))
}

/// Mean PSNR-Y of bicubic upscaling over the set.
pub fn bicubic_psnr(pairs: &[Pair], scale: usize) -> Result<f64> {
    Ok(bicubic_scores(pairs, scale, 3)?.y)
}

/// Mean PSNR-Y of the model over the set.
pub fn model_psnr(onnx: &[u8], pairs: &[Pair], scale: usize, engine: Runtime, threads: usize) -> Result<f64> {
    Ok(model_scores(onnx, pairs, scale, engine, threads)?.y)
}
