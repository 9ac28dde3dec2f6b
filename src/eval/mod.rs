//! Benchmark evaluation: super-resolve every image of a set and score it against
//! its original, with bicubic beside it. PSNR and SSIM on Y with shave = scale
//! (the benchmark convention), PSNR on RGB with shave = scale + 6 (DIV2K's, from
//! EDSR's code) unless told otherwise.

use crate::data::bicubic;
use crate::data::dataset::{from_nchw, ImageSet, Pair};
use crate::infer::SrModel;
use crate::metrics::{psnr_rgb, psnr_y, ssim_y};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Scores {
    pub psnr_y: f64,
    pub ssim_y: f64,
    pub psnr_rgb: f64,
}

impl Scores {
    fn of(sr: &ndarray::Array3<u8>, hr: &ndarray::Array3<u8>, scale: usize, rgb_shave: usize) -> Result<Scores> {
        Ok(Scores {
            psnr_y: psnr_y(sr, hr, scale)?,
            ssim_y: ssim_y(sr, hr, scale)?,
            psnr_rgb: psnr_rgb(sr, hr, rgb_shave)?,
        })
    }

    pub fn mean(all: impl Iterator<Item = Scores> + Clone) -> Scores {
        let n = all.clone().count().max(1) as f64;
        let sum = all.fold(Scores::default(), |a, b| Scores {
            psnr_y: a.psnr_y + b.psnr_y,
            ssim_y: a.ssim_y + b.ssim_y,
            psnr_rgb: a.psnr_rgb + b.psnr_rgb,
        });
        Scores {
            psnr_y: sum.psnr_y / n,
            ssim_y: sum.ssim_y / n,
            psnr_rgb: sum.psnr_rgb / n,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageScores {
    pub image: String,
    pub model: Scores,
    pub bicubic: Scores,
}

#[derive(Clone, Debug, Serialize)]
pub struct SetScores {
    /// The folder's name ("Set5").
    pub set: String,
    pub path: String,
    /// Where the LR images came from: the set's own files or srgraph's bicubic.
    pub lr_source: &'static str,
    pub images: Vec<ImageScores>,
    pub model: Scores,
    pub bicubic: Scores,
}

#[derive(Clone, Copy, Debug)]
pub struct EvalOptions {
    pub scale: usize,
    /// Pixels shaved from each border for RGB PSNR (default scale + 6).
    pub rgb_shave: usize,
    /// LR tile side; None runs each image whole.
    pub tile: Option<usize>,
}

/// Scores a set's pairs; `on_image` is told each image's name before it runs.
pub fn score_pairs(
    model: &mut SrModel,
    pairs: &[Pair],
    o: &EvalOptions,
    on_image: &mut dyn FnMut(&str),
) -> Result<Vec<ImageScores>> {
    pairs
        .iter()
        .map(|p| {
            let name = Path::new(&p.name)
                .file_stem()
                .map_or(p.name.clone(), |s| s.to_string_lossy().into_owned());
            on_image(&name);
            let sr = from_nchw(model.upscale(&p.lr, o.tile, &|| {})?.view());
            let bic = bicubic::upscale(&p.lr, o.scale)?;
            let score =
                |img| Scores::of(img, &p.hr, o.scale, o.rgb_shave).with_context(|| format!("scoring {}", p.name));
            Ok(ImageScores {
                model: score(&sr)?,
                bicubic: score(&bic)?,
                image: name,
            })
        })
        .collect()
}

/// Evaluates one folder (any layout `ImageSet` reads). Unreadable images are an error
/// here, not a warning: a mean over fewer images is not the set's mean.
pub fn evaluate_set(
    model: &mut SrModel,
    dir: &Path,
    o: &EvalOptions,
    on_image: &mut dyn FnMut(&str),
) -> Result<SetScores> {
    let set = ImageSet::open(dir, o.scale)?;
    let lr_source = if set.files.iter().all(|f| f.lr.is_some()) {
        "LR files"
    } else {
        "MATLAB-exact bicubic"
    };
    let (pairs, warnings) = set.load()?;
    if let Some(w) = warnings.first() {
        bail!("cannot evaluate {}: {w}", dir.display());
    }
    let images = score_pairs(model, &pairs, o, on_image)?;
    let name = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(SetScores {
        set: name,
        path: dir.display().to_string(),
        lr_source,
        model: Scores::mean(images.iter().map(|i| i.model)),
        bicubic: Scores::mean(images.iter().map(|i| i.bicubic)),
        images,
    })
}
