//! Benchmark evaluation: super-resolve every image of a set and score it against
//! its original, with bicubic beside it. PSNR and SSIM on Y with shave = scale
//! (the benchmark convention), PSNR on RGB with shave = scale + 6 (DIV2K's, from
//! EDSR's code) unless told otherwise. `activations` measures what passes each
//! ReLU of a network on a picture.

pub mod activations;
pub mod calibrate;
pub mod upscaled;

pub use activations::{activation_stats, block_stats, mean_zero_share, BlockStats, ReluStats};

use crate::data::bicubic;
use crate::data::cache::PixelCache;
use crate::data::dataset::{from_nchw_as, ImageSet, Pair};
use crate::data::degrade::Degradation;
use crate::data::luma::grey_picture;
use crate::data::sample::Sample;
use crate::infer::SrModel;
use crate::metrics::{psnr_rgb, psnr_y, ssim_y};
use anyhow::{bail, Context, Result};
use ndarray::{Array3, ArrayView3, CowArray, Ix3};
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Scores {
    pub psnr_y: f64,
    pub ssim_y: f64,
    pub psnr_rgb: f64,
}

impl Scores {
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
    /// Where the LR images came from: the set's own files or srgraph's bicubic, and the
    /// degradation if it is not bicubic.
    pub lr_source: String,
    /// The degradation's name (`bicubic`, `bd`, `dn`, `kernel:<file>#<hash>`).
    pub degradation: String,
    /// Bits per value the set was scored at: 16 if any of its pictures is 16-bit.
    pub bit_depth: u32,
    /// The PSNR peak of that depth: 255, or 65535 (PSNR-Y and SSIM-Y of 16-bit pictures take
    /// Y of v / 257 with peak 255, which is the same).
    pub peak: f64,
    pub images: Vec<ImageScores>,
    pub model: Scores,
    pub bicubic: Scores,
}

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub scale: usize,
    /// How the LR pictures are made from the HR ones (the set's LR files serve bicubic).
    pub degradation: Degradation,
    /// Pixels shaved from each border for RGB PSNR (default scale + 6).
    pub rgb_shave: usize,
    /// LR tile side; None runs each image whole.
    pub tile: Option<usize>,
}

/// A set's pictures, (LR, HR) HWC with values of `P` (8- or 16-bit): decoded in memory, or
/// memory-mapped from the data cache (then one picture at a time is copied out, however
/// large the set). The LR is owned where it is made as it is read (the cache's noiseless
/// LR, and DN's noise).
pub trait Pictures<P: Sample = u8> {
    fn count(&self) -> usize;
    fn pair(&self, i: usize) -> (CowArray<'_, P, Ix3>, CowArray<'_, P, Ix3>);
    /// The HR file, for messages that name it.
    fn name(&self, i: usize) -> &str;
}

impl<P: Sample> Pictures<P> for [Pair<P>] {
    fn count(&self) -> usize {
        self.len()
    }

    fn pair(&self, i: usize) -> (CowArray<'_, P, Ix3>, CowArray<'_, P, Ix3>) {
        (self[i].lr.view().into(), self[i].hr.view().into())
    }

    fn name(&self, i: usize) -> &str {
        &self[i].name
    }
}

/// A cache's pictures at its own depth, as views, or at the other, converted (an 8-bit
/// value times 257, a 16-bit one divided by 257 and rounded).
impl<P: Sample> Pictures<P> for PixelCache {
    fn count(&self) -> usize {
        self.len()
    }

    fn pair(&self, i: usize) -> (CowArray<'_, P, Ix3>, CowArray<'_, P, Ix3>) {
        let (lr, hr): (CowArray<'_, P, Ix3>, CowArray<'_, P, Ix3>) = match self.bit_depth {
            b if b == P::BITS => {
                let (hr, lr, _) = PixelCache::pair_as::<P>(self, i);
                (lr.into(), hr.into())
            }
            16 => {
                let (hr, lr, _) = PixelCache::pair_as::<u16>(self, i);
                (converted(lr).into(), converted(hr).into())
            }
            _ => {
                let (hr, lr, _) = PixelCache::pair_as::<u8>(self, i);
                (converted(lr).into(), converted(hr).into())
            }
        };
        if self.degradation.noise().is_none() {
            return (lr, hr);
        }
        let mut noisy = lr.into_owned();
        self.degradation.picture_noise(&mut noisy, self.size(i).2);
        (noisy.into(), hr)
    }

    fn name(&self, i: usize) -> &str {
        self.size(i).2
    }
}

/// Values of `Q` as values of `P`, on the same 0..255 scale.
fn converted<Q: Sample, P: Sample>(a: ArrayView3<Q>) -> ndarray::Array3<P> {
    a.mapv(|v| P::from_level(v.level() / Q::PER_NETWORK_STEP * P::PER_NETWORK_STEP))
}

/// How pictures are scored against their originals: the one scorer of `eval`, of a
/// study's table and of validation during training.
#[derive(Clone, Copy, Debug)]
pub struct Scoring {
    pub scale: usize,
    /// Pixels shaved from each border for RGB PSNR (scale + 6 by default); Y is shaved by the scale.
    pub rgb_shave: usize,
    /// Measure SSIM-Y too; left out (NaN) by validation, which reports PSNR alone.
    pub ssim: bool,
    /// Score on the set's luma, each picture as the grey picture of its Y (`data::luma`):
    /// for single-channel networks, and their bicubic baseline. (A single-channel model
    /// given to `model` is scored so whatever this says.)
    pub luma: bool,
}

impl Scoring {
    /// One super-resolved picture against its original (16-bit ones against peak 65535).
    pub fn score<P: Sample>(&self, sr: &ndarray::Array3<P>, hr: &ndarray::Array3<P>) -> Result<Scores> {
        Ok(Scores {
            psnr_y: psnr_y(sr, hr, self.scale)?,
            ssim_y: if self.ssim {
                ssim_y(sr, hr, self.scale)?
            } else {
                f64::NAN
            },
            psnr_rgb: psnr_rgb(sr, hr, self.rgb_shave)?,
        })
    }

    /// Each picture super-resolved by the model, whole or in LR tiles of side `tile(h, w)`
    /// for an h x w LR picture; `on_image` is told each picture's index before it runs.
    pub fn model<P: Sample>(
        &self,
        model: &mut SrModel,
        set: &(impl Pictures<P> + ?Sized),
        tile: &dyn Fn(usize, usize) -> Option<usize>,
        on_image: &mut dyn FnMut(usize),
    ) -> Result<Vec<Scores>> {
        (0..set.count())
            .map(|i| {
                on_image(i);
                let (lr, hr) = self.pair(set, i, self.luma || model.channels == 1);
                let (h, w, _) = lr.dim();
                let sr = from_nchw_as::<P>(model.upscale(&lr, tile(h, w), &|| {})?.view());
                self.score(&sr, &hr).with_context(|| format!("scoring {}", set.name(i)))
            })
            .collect()
    }

    /// Picture `i` of the set (LR, HR), as the grey pictures of their luma when `luma`.
    fn pair<P: Sample>(&self, set: &(impl Pictures<P> + ?Sized), i: usize, luma: bool) -> (Array3<P>, Array3<P>) {
        let (lr, hr) = set.pair(i);
        if luma {
            (grey_picture(lr.view()), grey_picture(hr.view()))
        } else {
            (lr.into_owned(), hr.into_owned())
        }
    }

    /// Each picture upscaled by bicubic: the baseline beside every model.
    pub fn bicubic<P: Sample>(&self, set: &(impl Pictures<P> + ?Sized)) -> Result<Vec<Scores>> {
        (0..set.count())
            .map(|i| {
                let (lr, hr) = self.pair(set, i, self.luma);
                let bic = bicubic::upscale(&lr, self.scale)?;
                self.score(&bic, &hr)
                    .with_context(|| format!("scoring {}", set.name(i)))
            })
            .collect()
    }
}

/// Scores a set's pairs; `on_image` is told each image's name before it runs.
pub fn score_pairs<P: Sample>(
    model: &mut SrModel,
    pairs: &[Pair<P>],
    o: &EvalOptions,
    on_image: &mut dyn FnMut(&str),
) -> Result<Vec<ImageScores>> {
    let stem = |p: &Pair<P>| stem_of(&p.name);
    let scoring = Scoring {
        scale: o.scale,
        rgb_shave: o.rgb_shave,
        ssim: true,
        luma: model.channels == 1,
    };
    let models = scoring.model(model, pairs, &|_, _| o.tile, &mut |i| on_image(&stem(&pairs[i])))?;
    let bicubics = scoring.bicubic(pairs)?;
    Ok(pairs
        .iter()
        .zip(models.into_iter().zip(bicubics))
        .map(|(p, (model, bicubic))| ImageScores {
            image: stem(p),
            model,
            bicubic,
        })
        .collect())
}

/// The name a picture is reported by: its file's stem ("baby").
fn stem_of(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map_or(name.to_string(), |s| s.to_string_lossy().into_owned())
}

/// Evaluates one folder (any layout `ImageSet` reads), at the set's depth: a set with a
/// 16-bit picture is scored at 16 bits (see `ImageSet::bit_depth`). Unreadable images are
/// an error here, not a warning: a mean over fewer images is not the set's mean.
pub fn evaluate_set(
    model: &mut SrModel,
    dir: &Path,
    o: &EvalOptions,
    on_image: &mut dyn FnMut(&str),
) -> Result<SetScores> {
    let set = open_set(dir, o)?;
    let bit_depth = set.bit_depth();
    let images = if bit_depth == 16 {
        score_pairs(model, &load_pairs::<u16>(&set)?, o, on_image)?
    } else {
        score_pairs(model, &load_pairs::<u8>(&set)?, o, on_image)?
    };
    Ok(set_scores(&set, bit_depth, o, images))
}

/// The set in `dir` at the scale, its LR pictures made by the degradation asked for.
fn open_set(dir: &Path, o: &EvalOptions) -> Result<ImageSet> {
    Ok(ImageSet::open(dir, o.scale)?.degraded(o.degradation.clone()))
}

/// A set's scores: each picture's and their means, with where the LR pictures came from.
fn set_scores(set: &ImageSet, bit_depth: u32, o: &EvalOptions, images: Vec<ImageScores>) -> SetScores {
    let dir = &set.root;
    let name = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    SetScores {
        set: name,
        path: dir.display().to_string(),
        lr_source: o.degradation.describe(set.files.iter().all(|f| f.lr.is_some())),
        degradation: o.degradation.name(),
        bit_depth,
        peak: if bit_depth == 16 { u16::PEAK } else { u8::PEAK },
        model: Scores::mean(images.iter().map(|i| i.model)),
        bicubic: Scores::mean(images.iter().map(|i| i.bicubic)),
        images,
    }
}

/// A set's pictures with values of `P`; a skipped picture is an error.
fn load_pairs<P: Sample>(set: &ImageSet) -> Result<Vec<Pair<P>>> {
    let (pairs, warnings) = set.load_as::<P>()?;
    if let Some(w) = warnings.first() {
        bail!("cannot evaluate {}: {w}", set.root.display());
    }
    Ok(pairs)
}
