//! Seeded random training patches, cut from whole-image pairs in memory or from the
//! memory-mapped data cache, and a thread that prepares batches ahead of the train step.
//!
//! Training patches are cut from the whole-image LR at an aligned position rather than made
//! by downscaling each HR crop: the result is what the LR files would give, without the
//! mirrored-border artefacts a crop's own downscale has in its outer two LR pixels, and
//! without a resize per patch. A degradation with noise (DN) adds it to each LR crop,
//! drawn from (seed, step, item) as the crop itself is.
//!
//! A 16-bit cache's patches reach the network as v / 257, on the 0..255 scale an 8-bit
//! one's do (see `sample`).

use super::dataset::Pair;
use super::degrade;
use super::sample::Sample;
use anyhow::{bail, ensure, Result};
use ndarray::{s, Array3, Array4, ArrayView3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Where one training item comes from: image index, top-left HR corner (a multiple of the
/// scale), horizontal flip, then `rot` quarter turns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crop {
    pub image: usize,
    pub y: usize,
    pub x: usize,
    pub flip: bool,
    pub rot: u8,
}

/// A flip then `rot` counter-clockwise quarter turns, as a view (no copy).
pub(crate) fn augment<P>(v: ArrayView3<P>, flip: bool, rot: u8) -> ArrayView3<P> {
    let mut v = if flip { v.slice_move(s![.., ..;-1, ..]) } else { v };
    for _ in 0..rot % 4 {
        v = v.permuted_axes([1, 0, 2]).slice_move(s![..;-1, .., ..]);
    }
    v
}

/// Where a sampler's pictures are: decoded in memory, or memory-mapped from the data cache.
enum Pictures {
    Memory(Vec<Pair>),
    /// The cache, and the indices of its pictures that are at least a patch in size.
    Cached(super::cache::PixelCache, Vec<usize>),
}

/// A picture's HR and LR, HWC, at the sampler's depth.
enum Views<'a> {
    Eight(ArrayView3<'a, u8>, ArrayView3<'a, u8>),
    Sixteen(ArrayView3<'a, u16>, ArrayView3<'a, u16>),
}

impl Views<'_> {
    fn hr_dim(&self) -> (usize, usize, usize) {
        match self {
            Views::Eight(hr, _) => hr.dim(),
            Views::Sixteen(hr, _) => hr.dim(),
        }
    }
}

/// Random training patches, seeded and reproducible.
pub struct PatchSampler {
    pictures: Pictures,
    patch: usize,
    scale: usize,
    seed: u64,
    /// The standard deviation of the noise added to each LR crop (DN), if any.
    noise: Option<f64>,
    /// The network's channels: 3 (RGB), or 1 (each picture's luma, `super::luma`).
    channels: usize,
    warnings: Vec<String>,
}

impl PatchSampler {
    /// `patch` is the HR patch side, a multiple of `scale`. Images smaller than the patch are
    /// skipped with a warning (see [`warnings`](Self::warnings); T91 has a 78x78 image, and
    /// refusing the whole set for it would be unhelpful); it is an error if none is left.
    /// Each pair's LR must be its HR / scale (what [`ImageSet::load`] gives).
    pub fn new(images: Vec<Pair>, patch: usize, scale: usize, seed: u64) -> Result<PatchSampler> {
        ensure!(
            scale >= 1 && patch >= scale && patch.is_multiple_of(scale),
            "patch size {patch} is not a multiple of the scale {scale}"
        );
        let (total, mut kept, mut warnings) = (images.len(), vec![], vec![]);
        for (i, pair) in images.into_iter().enumerate() {
            let ((h, w, c), (lh, lw, lc)) = (pair.hr.dim(), pair.lr.dim());
            ensure!(
                c == 3 && lc == 3 && (lh, lw) == (h / scale, w / scale),
                "training image {i} ({}): HR {w}x{h}x{c} and LR {lw}x{lh}x{lc} are not an RGB pair at scale {scale}",
                pair.name
            );
            if h < patch || w < patch {
                warnings.push(format!(
                    "{} ({w}x{h}) is smaller than the {patch}x{patch} patch: skipped",
                    pair.name
                ));
            } else {
                kept.push(pair);
            }
        }
        ensure!(
            !kept.is_empty(),
            "none of the {total} training images is at least {patch}x{patch} pixels"
        );
        Ok(PatchSampler {
            pictures: Pictures::Memory(kept),
            patch,
            scale,
            seed,
            noise: None,
            channels: 3,
            warnings,
        })
    }

    /// A sampler over a data cache's pictures (memory-mapped: the process holds none of
    /// them); it draws exactly the batches [`new`](Self::new) would from the same pictures,
    /// plus the noise of the cache's degradation, if it has one, on each LR crop.
    pub fn from_cache(cache: super::cache::PixelCache, patch: usize, scale: usize, seed: u64) -> Result<PatchSampler> {
        ensure!(
            scale >= 1 && patch >= scale && patch.is_multiple_of(scale),
            "patch size {patch} is not a multiple of the scale {scale}"
        );
        let mut warnings = vec![];
        let kept: Vec<usize> = (0..cache.len())
            .filter(|&i| {
                let (w, h, name) = cache.size(i);
                let big_enough = h >= patch && w >= patch;
                if !big_enough {
                    warnings.push(format!(
                        "{name} ({w}x{h}) is smaller than the {patch}x{patch} patch: skipped"
                    ));
                }
                big_enough
            })
            .collect();
        ensure!(
            !kept.is_empty(),
            "none of the {} training images is at least {patch}x{patch} pixels",
            cache.len()
        );
        Ok(PatchSampler {
            noise: cache.degradation.noise(),
            channels: 3,
            pictures: Pictures::Cached(cache, kept),
            patch,
            scale,
            seed,
            warnings,
        })
    }

    /// Picture `i`'s HR and LR, HWC.
    fn picture(&self, i: usize) -> Views<'_> {
        match &self.pictures {
            Pictures::Memory(pairs) => Views::Eight(pairs[i].hr.view(), pairs[i].lr.view()),
            Pictures::Cached(cache, kept) if cache.bit_depth == 16 => {
                let (hr, lr, _) = cache.pair_as(kept[i]);
                Views::Sixteen(hr, lr)
            }
            Pictures::Cached(cache, kept) => {
                let (hr, lr, _) = cache.pair_as(kept[i]);
                Views::Eight(hr, lr)
            }
        }
    }

    /// Bits per value of the pictures patches are cut from: 8 or 16.
    pub fn bit_depth(&self) -> u32 {
        match &self.pictures {
            Pictures::Memory(_) => 8,
            Pictures::Cached(cache, _) => cache.bit_depth,
        }
    }

    /// One line per image skipped by `new`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Number of images patches are drawn from.
    pub fn len(&self) -> usize {
        match &self.pictures {
            Pictures::Memory(pairs) => pairs.len(),
            Pictures::Cached(_, kept) => kept.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Item `index` of step `step`: its randomness comes from a ChaCha key made of
    /// (seed, step, index) alone, so a batch does not depend on what was drawn before
    /// (bit-exact resume) nor on the order rayon builds the items in.
    pub(crate) fn crop(&self, step: u64, index: usize) -> Crop {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..16].copy_from_slice(&step.to_le_bytes());
        key[16..24].copy_from_slice(&(index as u64).to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(key);
        let image = rng.random_range(0..self.len());
        let (h, w, _) = self.picture(image).hr_dim();
        let (s, p) = (self.scale, self.patch / self.scale);
        // Aligned to the scale so that the LR crop covers exactly the HR crop.
        let y = rng.random_range(0..=h / s - p) * s;
        let x = rng.random_range(0..=w / s - p) * s;
        Crop {
            image,
            y,
            x,
            flip: rng.random(),
            rot: rng.random_range(0..4),
        }
    }

    /// Batches for a network of `channels` channels: 1 gives each patch's luma (grey
    /// pictures their own channel), computed on the float patches, unrounded.
    pub fn with_channels(self, channels: usize) -> PatchSampler {
        PatchSampler { channels, ..self }
    }

    /// The batch for step `step` (0-based), a pure function of (seed, step): NCHW float32 in
    /// [0, 255], (lr [B, C, P/s, P/s], hr [B, C, P, P]), C the network's channels.
    pub fn batch(&self, step: u64, batch: usize) -> Result<(Array4<f32>, Array4<f32>)> {
        self.batch_items(step, 0..batch)
    }

    /// Items `items` of step `step`'s batch: one rank's share in data-parallel training, the
    /// same patches the whole batch holds at those places.
    pub fn batch_items(&self, step: u64, items: std::ops::Range<usize>) -> Result<(Array4<f32>, Array4<f32>)> {
        let (s, p) = (self.scale, self.patch);
        let batch = items.len();
        let items: Vec<(Array3<f32>, Array3<f32>)> = items
            .into_par_iter()
            .map(|i| {
                let c = self.crop(step, i);
                match self.picture(c.image) {
                    Views::Eight(hr, lr) => self.item(&c, hr, lr, step, i),
                    Views::Sixteen(hr, lr) => self.item(&c, hr, lr, step, i),
                }
            })
            .collect();
        let ch = self.channels;
        let mut lr = Array4::zeros((batch, ch, p / s, p / s));
        let mut hr = Array4::zeros((batch, ch, p, p));
        for (i, (l, h)) in items.iter().enumerate() {
            lr.index_axis_mut(Axis(0), i).assign(l);
            hr.index_axis_mut(Axis(0), i).assign(h);
        }
        Ok((lr, hr))
    }
}

impl PatchSampler {
    /// Item `i` of step `step`, cut by `c` from a picture's `hr` and `lr`: (LR, HR) CHW on
    /// the networks' 0..255 scale.
    fn item<P: Sample>(
        &self,
        c: &Crop,
        hr: ArrayView3<P>,
        lr: ArrayView3<P>,
        step: u64,
        i: usize,
    ) -> (Array3<f32>, Array3<f32>) {
        let (s, p) = (self.scale, self.patch);
        let hr = hr.slice_move(s![c.y..c.y + p, c.x..c.x + p, ..]);
        let lr = lr.slice_move(s![c.y / s..(c.y + p) / s, c.x / s..(c.x + p) / s, ..]);
        let chw = |v: ArrayView3<P>| {
            let rgb = augment(v, c.flip, c.rot).permuted_axes([2, 0, 1]).mapv(P::to_network);
            if self.channels == 1 {
                super::luma::luma_chw(rgb.view())
            } else {
                rgb
            }
        };
        match self.noise {
            // Drawn over the crop as it lies in the picture, before the flip and turns.
            Some(sigma) => {
                let mut noisy = lr.to_owned();
                degrade::add_noise(&mut noisy, sigma, degrade::crop_key(self.seed, step, i));
                (chw(noisy.view()), chw(hr))
            }
            None => (chw(lr), chw(hr)),
        }
    }
}

type Batch = (u64, Array4<f32>, Array4<f32>);

/// Keeps `ahead` batches prepared on a background thread so the runtime never waits for
/// data. Dropping it stops the thread.
pub struct Prefetcher {
    rx: Option<mpsc::Receiver<Result<Batch>>>,
    thread: Option<JoinHandle<()>>,
    spawn_error: Option<String>,
}

impl Prefetcher {
    /// Prepares steps `start_step`, `start_step + 1`, ... of `batch` items each.
    pub fn new(sampler: Arc<PatchSampler>, batch: usize, start_step: u64, ahead: usize) -> Prefetcher {
        Prefetcher::items(sampler, 0..batch, start_step, ahead)
    }

    /// As `new`, the items `items` of each step's batch (one rank's share).
    pub fn items(
        sampler: Arc<PatchSampler>,
        items: std::ops::Range<usize>,
        start_step: u64,
        ahead: usize,
    ) -> Prefetcher {
        // A bound of 0 would be a rendezvous channel, with nothing prepared ahead.
        let (tx, rx) = mpsc::sync_channel(ahead.max(1));
        let work = move || {
            for step in start_step.. {
                let result = sampler.batch_items(step, items.clone()).map(|(lr, hr)| (step, lr, hr));
                let failed = result.is_err();
                // A send fails once the receiver is dropped: that is the signal to stop.
                if tx.send(result).is_err() || failed {
                    break;
                }
            }
        };
        match std::thread::Builder::new().name("srgraph-prefetch".into()).spawn(work) {
            Ok(thread) => Prefetcher {
                rx: Some(rx),
                thread: Some(thread),
                spawn_error: None,
            },
            Err(e) => Prefetcher {
                rx: Some(rx),
                thread: None,
                spawn_error: Some(e.to_string()),
            },
        }
    }

    /// The next batch, in step order, as (step, lr, hr). (Not an Iterator: it can fail.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Batch> {
        if let Some(e) = &self.spawn_error {
            bail!("cannot start the batch-preparing thread: {e}");
        }
        match self.rx.as_ref().map(|rx| rx.recv()) {
            Some(Ok(result)) => result,
            _ => bail!("the batch-preparing thread has stopped"),
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Drop the receiver first so a thread blocked on a full channel wakes up and exits.
        self.rx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::ImageSet;
    use crate::data::load_hwc as read_rgb;
    use crate::data::test_data_dir as data_dir;
    use anyhow::Context;

    fn set5(scale: usize) -> Result<PatchSampler> {
        let (pairs, warnings) = ImageSet::open(&data_dir().join("Set5"), scale)?.load()?;
        assert!(warnings.is_empty(), "{warnings:?}");
        PatchSampler::new(pairs, 96, scale, 7)
    }

    #[test]
    fn single_channel_batches_are_the_luma_of_the_rgb_ones() -> Result<()> {
        let (rgb, grey) = (set5(2)?, set5(2)?.with_channels(1));
        let ((lr, hr), (lr1, hr1)) = (rgb.batch(2, 4)?, grey.batch(2, 4)?);
        assert_eq!((lr1.dim(), hr1.dim()), ((4, 1, 48, 48), (4, 1, 96, 96)));
        let luma = crate::data::luma::luma_batch;
        assert_eq!((luma(&lr), luma(&hr)), (lr1, hr1));
        Ok(())
    }

    #[test]
    fn batches_are_reproducible_and_well_formed() -> Result<()> {
        let sampler = set5(2)?;
        let (lr, hr) = sampler.batch(3, 8)?;
        assert_eq!((lr.dim(), hr.dim()), ((8, 3, 48, 48), (8, 3, 96, 96)));
        assert!(lr
            .iter()
            .chain(hr.iter())
            .all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0));
        let other = set5(2)?;
        other.batch(0, 8)?; // what happened before must not matter
        let (lr2, hr2) = other.batch(3, 8)?;
        assert!(lr == lr2 && hr == hr2, "same (seed, step) must give the same batch");
        let (lr3, hr3) = sampler.batch(4, 8)?;
        assert!(lr != lr3 && hr != hr3, "another step must give another batch");
        assert_eq!(
            sampler.batch(3, 4)?.1,
            hr.slice(s![..4, .., .., ..]),
            "item i does not depend on the batch size"
        );
        Ok(())
    }

    #[test]
    fn lr_patch_is_the_lr_file_crop() -> Result<()> {
        let (s, step, n) = (3, 5, 16);
        let sampler = set5(s)?;
        let names = ImageSet::open(&data_dir().join("Set5"), s)?.names();
        let (lr, hr) = sampler.batch(step, n)?;
        let mut augmented = 0;
        for i in 0..n {
            let c = sampler.crop(step, i);
            augmented += (c.flip || c.rot != 0) as usize;
            let lr_file = read_rgb(&data_dir().join(format!("Set5/LR_bicubic/X{s}/{}x{s}.png", names[c.image])))?;
            let hr_file = read_rgb(&data_dir().join(format!("Set5/HR/{}.png", names[c.image])))?;
            let want_lr = lr_file.slice(s![c.y / s..c.y / s + 32, c.x / s..c.x / s + 32, ..]);
            let want_hr = hr_file.slice(s![c.y..c.y + 96, c.x..c.x + 96, ..]);
            let got = |t: &Array4<f32>| t.index_axis(Axis(0), i).permuted_axes([1, 2, 0]).mapv(|v| v as u8);
            assert_eq!(got(&lr), augment(want_lr, c.flip, c.rot), "item {i}: {c:?}");
            assert_eq!(got(&hr), augment(want_hr, c.flip, c.rot), "item {i}: {c:?}");
        }
        assert!(augmented > 0, "some items should be flipped or rotated");
        Ok(())
    }

    #[test]
    fn augment_flips_and_rotates() -> Result<()> {
        // [[1, 2, 3], [4, 5, 6]] as a 2x3 one-channel image.
        let a = Array3::from_shape_vec((2, 3, 1), vec![1u8, 2, 3, 4, 5, 6])?;
        let flat = |v: ArrayView3<u8>| (v.dim(), v.iter().copied().collect::<Vec<_>>());
        assert_eq!(flat(augment(a.view(), true, 0)), ((2, 3, 1), vec![3, 2, 1, 6, 5, 4]));
        // A quarter turn counter-clockwise: the last column becomes the first row.
        assert_eq!(flat(augment(a.view(), false, 1)), ((3, 2, 1), vec![3, 6, 2, 5, 1, 4]));
        assert_eq!(flat(augment(a.view(), false, 2)), ((2, 3, 1), vec![6, 5, 4, 3, 2, 1]));
        assert_eq!(flat(augment(a.view(), false, 4)), flat(a.view()));
        Ok(())
    }

    #[test]
    fn bad_patch_sizes_are_errors_or_warnings() -> Result<()> {
        let load = |set: &str, s| -> Result<Vec<Pair>> { Ok(ImageSet::open(&data_dir().join(set), s)?.load()?.0) };
        let err = PatchSampler::new(load("Set5", 2)?, 600, 2, 0)
            .err()
            .context("too large")?
            .to_string();
        assert!(err.contains("600x600"), "{err}");
        assert!(
            PatchSampler::new(load("Set5", 3)?, 96 + 1, 3, 0).is_err(),
            "not a multiple of the scale"
        );
        // T91's t20.png is 78x78: skipped with a warning, the other 90 kept.
        let sampler = PatchSampler::new(load("T91", 2)?, 96, 2, 0)?;
        assert_eq!(sampler.len(), 90);
        assert_eq!(sampler.warnings().len(), 1);
        let w = &sampler.warnings()[0];
        assert!(
            w.ends_with("t20.png (78x78) is smaller than the 96x96 patch: skipped"),
            "{w}"
        );
        Ok(())
    }

    #[test]
    fn prefetcher_yields_the_batches_in_order() -> Result<()> {
        let sampler = Arc::new(set5(4)?);
        let mut prefetcher = Prefetcher::new(sampler.clone(), 4, 10, 2);
        for step in 10..14 {
            let (got_step, lr, hr) = prefetcher.next()?;
            let (want_lr, want_hr) = sampler.batch(step, 4)?;
            assert!(got_step == step && lr == want_lr && hr == want_hr, "step {step}");
        }
        drop(prefetcher); // must not hang with a full channel
        Ok(())
    }
}
