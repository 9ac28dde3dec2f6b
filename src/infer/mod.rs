//! Super-resolving pictures with an inference `.onnx`: srgraph's own, or anyone's
//! with one [N, C, H, W] float input in [0, 255] and one [N, C, sH, sW] output, C 3 (RGB)
//! or 1 (grey: a grey picture's channel, or an RGB picture's luma).
//!
//! Large images run in tiles. Each tile is a core of `tile` LR pixels plus a margin
//! of real neighbours at least the receptive-field radius wide, and only the core's
//! output is kept, so every kept pixel sees exactly what it sees in the whole image:
//! the tiled result equals the whole one up to float summation order. All tiles of
//! an image have one size (the edge tiles slide inwards), so tract optimises a
//! single plan per image size, and tract's tiles run side by side on its threads.

mod attributes;
pub mod builtin;
pub mod compare;
mod signature;

pub use signature::{receptive_radius, Signature};

use crate::data::dataset::to_nchw;
use crate::runtime::ort::OrtModel;
use crate::runtime::tract::TractModel;
use crate::runtime::Runtime;
use anyhow::{ensure, Context, Result};
use ndarray::{s, Array3, Array4, ArrayD, Ix4};
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// The LR tile side `srgraph upscale` uses by default: tract runs a 128 px tile
/// faster per pixel than a whole 256 px image (benches/inference.rs).
pub const DEFAULT_TILE: usize = 128;

/// A super-resolution graph ready to run.
pub struct SrModel {
    /// The file it came from, for messages.
    pub name: String,
    pub scale: usize,
    /// Channels in and out: 3 (RGB) or 1 (grey).
    pub channels: usize,
    /// An upper bound on how far (in LR pixels) an output pixel sees: the tile margin.
    pub radius: usize,
    pub metadata: crate::onnx::Metadata,
    pub runtime: Runtime,
    /// Threads the runtime runs on (0: all cores).
    threads: usize,
    bytes: Vec<u8>,
    ort: Option<OrtModel>,
    /// tract plans by input size and thread count; tract optimises for concrete shapes.
    plans: Vec<([usize; 3], Arc<TractModel>)>,
}

/// One tile: the LR window run through the network, and the core of it that is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    /// Window: top-left corner and size, LR pixels.
    pub y: usize,
    pub x: usize,
    pub h: usize,
    pub w: usize,
    /// Kept core, LR pixels, in image coordinates: rows y0..y1, columns x0..x1.
    pub core: [usize; 4],
}

impl SrModel {
    pub fn load(path: &Path, runtime: Runtime, threads: usize) -> Result<SrModel> {
        // A pipe or device would block the read (or never end): only files are models.
        anyhow::ensure!(
            path.is_file(),
            "model {} {}",
            path.display(),
            if path.exists() {
                "is not a file"
            } else {
                "does not exist"
            }
        );
        let bytes = std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
        let bytes = crate::onnx::external::inline_external_data(bytes, path)?;
        SrModel::from_bytes(bytes, &path.display().to_string(), runtime, threads)
    }

    /// Checks the graph's signature, finds its scale (from srgraph's metadata, else
    /// by running a 16 x 16 probe) and prepares the runtime.
    pub fn from_bytes(bytes: Vec<u8>, name: &str, runtime: Runtime, threads: usize) -> Result<SrModel> {
        let sig = Signature::read(&bytes, name)?;
        let ort = match runtime {
            Runtime::Ort(device) => Some(
                OrtModel::new(&bytes, device, threads).with_context(|| format!("ONNX Runtime cannot load {name}"))?,
            ),
            Runtime::Tract => None,
        };
        let mut m = SrModel {
            name: name.to_string(),
            scale: 0,
            channels: sig.channels.unwrap_or(3),
            radius: sig.radius,
            metadata: sig.metadata,
            runtime,
            threads,
            bytes,
            ort,
            plans: vec![],
        };
        let (h, w, ch) = (16, 16, m.channels);
        let y = m
            .run(Array4::from_elem((1, ch, h, w), 128.0))
            .context("the 16 x 16 probe failed")?;
        let (_, c, oh, ow) = y.dim();
        ensure!(
            c == ch && oh % h == 0 && oh / h == ow / w && ow % w == 0 && oh >= h,
            "{name} is not a super-resolution graph srgraph can run: a [1, {ch}, {h}, {w}] input gave an output of \
             {:?}, not [1, {ch}, {h}s, {w}s] for an integer scale s",
            y.shape()
        );
        m.scale = oh / h;
        ensure!(
            m.scale <= crate::data::bicubic::MAX_SCALE,
            "{name} upscales x{}: srgraph runs models of x1 to x{}",
            m.scale,
            crate::data::bicubic::MAX_SCALE
        );
        if let Some(declared) = sig.scale {
            ensure!(
                declared == m.scale,
                "{name} says it upscales x{declared} (metadata) but its graph upscales x{}",
                m.scale
            );
        }
        Ok(m)
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key)
    }

    /// Errors when `asked` (a user's --scale) is not the model's.
    pub fn ensure_scale(&self, asked: Option<usize>) -> Result<usize> {
        if let Some(s) = asked {
            ensure!(
                s == self.scale,
                "--scale {s} was asked, but {} upscales x{}: drop --scale or use a x{s} model",
                self.name,
                self.scale
            );
        }
        Ok(self.scale)
    }

    fn tract_plan(&mut self, h: usize, w: usize, threads: usize) -> Result<Arc<TractModel>> {
        if let Some((_, p)) = self.plans.iter().find(|(key, _)| *key == [h, w, threads]) {
            return Ok(p.clone());
        }
        // Optimising a plan costs far less than running a picture; a few sizes are
        // enough for a tiled picture (one) or a benchmark set (a handful).
        if self.plans.len() >= 8 {
            self.plans.remove(0);
        }
        let plan = Arc::new(TractModel::with_threads(
            &self.bytes,
            &[&[1, self.channels, h, w]],
            threads,
        )?);
        self.plans.push(([h, w, threads], plan.clone()));
        Ok(plan)
    }

    /// One [1, C, h, w] batch through the network, whole.
    pub fn run(&mut self, x: Array4<f32>) -> Result<Array4<f32>> {
        let (_, _, h, w) = x.dim();
        let y = match &mut self.ort {
            Some(m) => m.run(x.into_dyn())?,
            None => self.tract_plan(h, w, self.threads)?.run(vec![x.into_dyn()])?.remove(0),
        };
        as_image(y, &self.name)
    }

    /// The tiles `upscale` runs for an LR image of h x w (one, the whole image, when
    /// `tile` is None or the image is small).
    pub fn tiles(&self, h: usize, w: usize, tile: Option<usize>) -> Vec<Tile> {
        tile_grid(h, w, tile, self.radius)
    }

    /// An RGB image (HWC values, 8- or 16-bit; grey as three equal channels) super-resolved:
    /// [1, 3, sH, sW] floats on the 0..255 scale, before rounding. A single-channel model sees
    /// the picture's luma (`data::luma`) and its one output channel is repeated three times:
    /// a grey picture. Whether an RGB picture may go to such a model is the caller's choice.
    /// `on_tile` is called after each tile (from several threads under tract).
    pub fn upscale<P: crate::data::sample::Sample>(
        &mut self,
        lr: &Array3<P>,
        tile: Option<usize>,
        on_tile: &(dyn Fn() + Sync),
    ) -> Result<Array4<f32>> {
        let (h, w, c) = lr.dim();
        ensure!(c == 3, "expected an RGB image, got {c} channels");
        ensure!(h > 0 && w > 0, "the image is empty");
        let s = self.scale;
        // Per output pixel: the float output (12 bytes), its 8-bit copy, the PNG's raw rows
        // and encoded bytes, alpha: about 24 bytes. Refused before any tile runs when that
        // would take most of the memory available.
        let bytes = (h * s) as f64 * (w * s) as f64 * 24.0;
        if let Some(available) = crate::util::short_of_memory(bytes / 0.75) {
            anyhow::bail!(
                "the x{s} picture of a {w}x{h} input would take {:.1} GB of memory, more than the {:.1} GB available",
                bytes / 1e9,
                available / 1e9
            );
        }
        let tiles = self.tiles(h, w, tile);
        let ch = self.channels;
        let window = |t: &Tile| {
            let hwc = lr.slice(s![t.y..t.y + t.h, t.x..t.x + t.w, ..]).to_owned();
            if ch == 1 {
                crate::data::luma::luma_nchw(&hwc)
            } else {
                to_nchw(&hwc)
            }
        };
        let outputs: Vec<Array4<f32>> = match self.runtime {
            // Tiles have one size: one plan, shared by the threads, which run tiles side by
            // side, each on one thread. A lone tile (a whole picture) splits its products
            // among the threads instead. Not both: a thread waiting inside a multithreaded
            // product would take up another tile's work, and tract's per-thread scratch
            // space is not made to be entered twice (it panicked, then aborted the process).
            Runtime::Tract => {
                let per_plan = if tiles.len() > 1 { 1 } else { self.threads };
                let plan = self.tract_plan(tiles[0].h, tiles[0].w, per_plan)?;
                let name = &self.name;
                crate::runtime::tract::on_threads(self.threads, || {
                    tiles
                        .par_iter()
                        .map(|t| {
                            let y = plan.run(vec![window(t).into_dyn()])?.remove(0);
                            on_tile();
                            as_image(y, name)
                        })
                        .collect::<Result<_>>()
                })??
            }
            Runtime::Ort(_) => tiles
                .iter()
                .map(|t| {
                    let y = self.run(window(t))?;
                    on_tile();
                    Ok(y)
                })
                .collect::<Result<_>>()?,
        };
        let mut out = Array4::zeros((1, ch, h * s, w * s));
        for (t, y) in tiles.iter().zip(outputs) {
            ensure!(
                y.dim() == (1, ch, t.h * s, t.w * s),
                "{} gave an output of {:?} for a {}x{} input: not x{s}",
                self.name,
                y.shape(),
                t.w,
                t.h
            );
            let [y0, y1, x0, x1] = t.core;
            out.slice_mut(s![.., .., y0 * s..y1 * s, x0 * s..x1 * s])
                .assign(&y.slice(s![
                    ..,
                    ..,
                    (y0 - t.y) * s..(y1 - t.y) * s,
                    (x0 - t.x) * s..(x1 - t.x) * s
                ]));
        }
        if ch == 1 {
            return Ok(out
                .broadcast((1, 3, h * s, w * s))
                .context("one channel to three")?
                .to_owned());
        }
        Ok(out)
    }
}

fn as_image(y: ArrayD<f32>, name: &str) -> Result<Array4<f32>> {
    let shape = y.shape().to_vec();
    let bad = y.iter().filter(|v| !v.is_finite()).count();
    ensure!(
        bad == 0,
        "{name} gave {bad} NaN or infinite values of {}: its weights are damaged (NaN or infinity in them) or \
         overflow; retrain it, or export it again from a good checkpoint",
        y.len()
    );
    y.into_dimensionality::<Ix4>().with_context(|| {
        format!(
            "{name} gave an output of rank {}, not an [N, C, H, W] image",
            shape.len()
        )
    })
}

/// Cores of `tile` pixels along one axis of length `len`, each with its window of
/// `tile + 2 margin` pixels slid inside the axis: (window start, window length, core start, core end).
fn axis_tiles(len: usize, tile: usize, margin: usize) -> Vec<(usize, usize, usize, usize)> {
    let window = tile.saturating_add(margin.saturating_mul(2)).min(len);
    if tile == 0 || window == len {
        return vec![(0, len, 0, len)];
    }
    (0..len)
        .step_by(tile)
        .map(|a| {
            let b = a.saturating_add(tile).min(len);
            let start = a.saturating_sub(margin).min(len - window);
            (start, window, a, b)
        })
        .collect()
}

/// The tiles of an h x w image; `margin` is the receptive-field radius.
pub fn tile_grid(h: usize, w: usize, tile: Option<usize>, margin: usize) -> Vec<Tile> {
    let tile = tile.unwrap_or(0);
    let rows = axis_tiles(h, tile, margin);
    let cols = axis_tiles(w, tile, margin);
    rows.iter()
        .flat_map(|&(y, th, y0, y1)| {
            cols.iter().map(move |&(x, tw, x0, x1)| Tile {
                y,
                x,
                h: th,
                w: tw,
                core: [y0, y1, x0, x1],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_cover_the_image_once_and_windows_hold_their_margins() {
        for (len, tile, margin) in [
            (100, 32, 5),
            (64, 64, 3),
            (65, 64, 3),
            (7, 3, 10),
            (300, 128, 12),
            (129, 128, 0),
        ] {
            let t = axis_tiles(len, tile, margin);
            let mut covered = vec![0; len];
            let window = t[0].1;
            for &(start, wlen, a, b) in &t {
                assert_eq!(wlen, window, "one window size per axis");
                assert!(start + wlen <= len);
                for c in covered.iter_mut().take(b).skip(a) {
                    *c += 1;
                }
                // Every kept pixel has `margin` real pixels around it inside its window, or the image edge.
                assert!(a - start >= margin || start == 0, "{len} {tile} {margin}: {t:?}");
                assert!(
                    start + wlen - b >= margin || start + wlen == len,
                    "{len} {tile} {margin}: {t:?}"
                );
            }
            assert!(covered.iter().all(|&c| c == 1), "{len} {tile} {margin}: {t:?}");
        }
    }

    #[test]
    fn no_tile_means_the_whole_image() {
        assert_eq!(
            tile_grid(30, 40, None, 4),
            vec![Tile {
                y: 0,
                x: 0,
                h: 30,
                w: 40,
                core: [0, 30, 0, 40]
            }]
        );
        assert_eq!(tile_grid(300, 200, Some(128), 12).len(), 6);
    }
}
