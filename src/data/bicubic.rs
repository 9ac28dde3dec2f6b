//! MATLAB-`imresize`-exact bicubic resizing of 8- and 16-bit images.
//!
//! Published super-resolution results are measured on low-resolution inputs made with
//! `imresize(modcrop(HR, s), 1/s, 'bicubic')`. A generic resizer differs from it in the
//! kernel widening, the borders and the rounding, so this module reproduces MATLAB step by
//! step; the tests check it bit for bit against the reference files in `shared/data`.
//! `imresize` of a uint16 image rounds to uint16 after each pass exactly as it rounds a
//! uint8 one to uint8: the resizer is generic over the value type ([`Sample`]).

use super::sample::Sample;
use anyhow::{bail, Result};
use ndarray::{s, Array3};

/// How samples outside the image are made up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Border {
    /// MATLAB's symmetric padding (index 0 -> 1, -1 -> 2, ...): what `imresize` does.
    Mirror,
    /// Repeat the edge pixel: what the SelfExSR Set14 low-resolution files were made with.
    Replicate,
}

/// Keys' cubic kernel with a = -0.5, as MATLAB's `cubic()`.
fn cubic(x: f64) -> f64 {
    let ax = x.abs();
    let (ax2, ax3) = (ax * ax, ax * ax * ax);
    if ax <= 1.0 {
        1.5 * ax3 - 2.5 * ax2 + 1.0
    } else if ax <= 2.0 {
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    } else {
        0.0
    }
}

/// For each output sample: the input indices (0-based) it reads and their weights.
/// Precomputed once per pass so that applying it allocates nothing per pixel.
struct Contributions {
    taps: usize,
    indices: Vec<usize>, // out_len * taps
    weights: Vec<f64>,   // out_len * taps
}

/// MATLAB's `contributions()` (imresize.m), with kernel width 4:
///
/// ```text
/// if scale < 1 && antialiasing: h = @(x) scale * kernel(scale * x); kernel_width = kernel_width / scale
/// x = (1:out_length)';  u = x/scale + 0.5 * (1 - 1/scale);
/// left = floor(u - kernel_width/2);  P = ceil(kernel_width) + 2;
/// indices = left + (0:P-1);  weights = h(u - indices);  weights = weights ./ sum(weights, 2);
/// aux = [1:in_length, in_length:-1:1];  indices = aux(mod(indices - 1, length(aux)) + 1);
/// drop the columns (taps) whose weights are all zero
/// ```
///
/// The same float operations in the same order as MATLAB, since per-pass rounding to uint8
/// turns any last-bit difference near .5 into a whole grey level.
fn contributions(in_len: usize, out_len: usize, scale: f64, border: Border) -> Contributions {
    let (kernel_width, widen) = if scale < 1.0 { (4.0 / scale, scale) } else { (4.0, 1.0) };
    let p = kernel_width.ceil() as usize + 2;
    let mut indices = Vec::with_capacity(out_len * p);
    let mut weights = Vec::with_capacity(out_len * p);
    let n = in_len as i64;
    for x in 1..=out_len {
        let u = x as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
        let left = (u - kernel_width / 2.0).floor() as i64;
        let row: Vec<f64> = (0..p as i64)
            .map(|k| widen * cubic(widen * (u - (left + k) as f64)))
            .collect();
        let sum: f64 = row.iter().sum();
        weights.extend(row.iter().map(|w| w / sum));
        indices.extend((0..p as i64).map(|k| {
            let i = left + k; // 1-based, may lie outside 1..=n
            let i = match border {
                Border::Mirror => {
                    let m = (i - 1).rem_euclid(2 * n); // 0-based position in aux = [1:n, n:-1:1]
                    m.min(2 * n - 1 - m) // m on the way up, its mirror on the way down
                }
                Border::Replicate => (i - 1).clamp(0, n - 1),
            };
            i as usize
        }));
    }
    // Drop taps that are zero for every output sample, as MATLAB does (exact zeros would
    // add nothing, but this keeps the inner loop short).
    let keep: Vec<usize> = (0..p)
        .filter(|&k| (0..out_len).any(|o| weights[o * p + k] != 0.0))
        .collect();
    let kept = |o: usize| keep.iter().map(move |&k| o * p + k);
    let indices = (0..out_len).flat_map(kept).map(|j| indices[j]).collect();
    let weights = (0..out_len).flat_map(kept).map(|j| weights[j]).collect();
    Contributions {
        taps: keep.len(),
        indices,
        weights,
    }
}

/// Resize the middle axis of `data`, viewed as [outer][in_len][inner], then round to the
/// value type (half away from zero, clamped) as imresize does after each pass for uint8 and
/// uint16 images.
fn resize_axis<P: Sample>(data: &[P], outer: usize, in_len: usize, inner: usize, c: &Contributions) -> Vec<P> {
    let out_len = c.weights.len() / c.taps.max(1);
    let mut out = vec![P::default(); outer * out_len * inner];
    let mut acc = vec![0f64; inner];
    for o in 0..outer {
        let src = &data[o * in_len * inner..(o + 1) * in_len * inner];
        for i in 0..out_len {
            acc.fill(0.0);
            for t in 0..c.taps {
                let (w, j) = (c.weights[i * c.taps + t], c.indices[i * c.taps + t]);
                for (a, &v) in acc.iter_mut().zip(&src[j * inner..(j + 1) * inner]) {
                    *a += w * v.level();
                }
            }
            let dst = &mut out[(o * out_len + i) * inner..(o * out_len + i + 1) * inner];
            for (d, a) in dst.iter_mut().zip(&acc) {
                *d = P::from_level(*a);
            }
        }
    }
    out
}

/// Resize height then width (MATLAB's order for equal scales), rounding after each pass.
fn resize<P: Sample>(img: &Array3<P>, out_h: usize, out_w: usize, scale: f64, border: Border) -> Array3<P> {
    let (h, w, ch) = img.dim();
    let data = img.as_standard_layout();
    let data = data.as_slice().expect("standard layout is contiguous");
    let rows = resize_axis(data, 1, h, w * ch, &contributions(h, out_h, scale, border));
    let cols = resize_axis(&rows, out_h, w, ch, &contributions(w, out_w, scale, border));
    Array3::from_shape_vec((out_h, out_w, ch), cols).expect("sizes match by construction")
}

/// The largest scale srgraph resizes by, and so runs models of (x1 to x16).
pub const MAX_SCALE: usize = 16;

fn check<P>(img: &Array3<P>, s: usize, min_side: usize) -> Result<()> {
    if !(1..=MAX_SCALE).contains(&s) {
        bail!("scale {s} is not supported: use 1 to {MAX_SCALE}");
    }
    let (h, w, c) = img.dim();
    if h < min_side || w < min_side {
        bail!("image of {h}x{w} pixels is too small to resize by {s}: need at least {min_side}x{min_side}");
    }
    if c == 0 {
        bail!("image has no channels");
    }
    Ok(())
}

/// Crop to a multiple of s (top-left), as MATLAB's modcrop.
pub fn modcrop<P: Clone>(img: &Array3<P>, s: usize) -> Array3<P> {
    let s = s.max(1); // a scale of 0 would divide by zero: treat it as "no crop"
    let (h, w, _) = img.dim();
    img.slice(s![..h - h % s, ..w - w % s, ..]).to_owned()
}

/// HWC image -> HWC image of the same value type, (H/s) x (W/s) after modcrop. Any channel count (grey, RGB, RGBA).
/// Equals MATLAB `imresize(modcrop(img, s), 1/s, 'bicubic')` bit for bit with `Border::Mirror`.
pub fn downscale<P: Sample>(img: &Array3<P>, s: usize, border: Border) -> Result<Array3<P>> {
    check(img, s, s)?;
    let img = modcrop(img, s);
    let (h, w, _) = img.dim();
    // MATLAB is called with the scale 1/s, and works from that double, not from s.
    Ok(resize(&img, h / s, w / s, 1.0 / s as f64, border))
}

/// MATLAB `imresize(img, s, 'bicubic')`: s times larger, no kernel widening (scale > 1),
/// mirror borders, rounding after each pass. The "bicubic" baseline of the benchmarks.
pub fn upscale<P: Sample>(img: &Array3<P>, s: usize) -> Result<Array3<P>> {
    check(img, s, 1)?;
    let (h, w, _) = img.dim();
    Ok(resize(img, h * s, w * s, s as f64, Border::Mirror))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_data_dir as data_dir;
    use anyhow::Context;
    use std::path::Path;

    /// A PNG as HWC u8 with its own channel count (Set14's bridge.png is grey: 1 channel).
    fn load(path: &Path) -> Result<Array3<u8>> {
        let img = image::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (c, raw) = match img.color().channel_count() {
            1 => (1, img.to_luma8().into_raw()),
            2 | 4 => (4, img.to_rgba8().into_raw()),
            _ => (3, img.to_rgb8().into_raw()),
        };
        Ok(Array3::from_shape_vec((h, w, c), raw)?)
    }

    /// A differing value as (y, x, c, ours, reference).
    type Mismatch = (usize, usize, usize, u8, u8);

    /// Number of differing values `margin` or more pixels away from the border, and the first.
    fn diff(ours: &Array3<u8>, reference: &Array3<u8>, margin: usize) -> (usize, Option<Mismatch>) {
        let (h, w, _) = ours.dim();
        let mut bad = ours
            .indexed_iter()
            .zip(reference.iter())
            .filter(|&(((y, x, _), a), b)| a != b && y >= margin && x >= margin && y + margin < h && x + margin < w);
        let first = bad.next().map(|(((y, x, c), &a), &b)| (y, x, c, a, b));
        (first.map_or(0, |_| 1 + bad.count()), first)
    }

    /// Compare downscale(HR) with every reference file of a set; returns (files, values,
    /// files exact everywhere). Asserts exact equality at least `margin` pixels from the border.
    fn check_set(set: &str, lr: &str, border: Border, margin: usize) -> Result<(usize, usize, usize)> {
        let (mut files, mut values, mut exact) = (0, 0, 0);
        for entry in std::fs::read_dir(data_dir().join(set).join("HR"))? {
            let hr_path = entry?.path();
            let name = hr_path.file_stem().context("file name")?.to_string_lossy().into_owned();
            let hr = load(&hr_path)?;
            for s in 2..=4 {
                let lr_path = data_dir().join(set).join(lr).join(format!("X{s}/{name}x{s}.png"));
                let reference = load(&lr_path)?;
                let ours = downscale(&hr, s, border)?;
                let shapes = (ours.dim(), reference.dim());
                anyhow::ensure!(
                    shapes.0 == shapes.1,
                    "{}: shapes (ours, ref) {shapes:?}",
                    lr_path.display()
                );
                let (n, first) = diff(&ours, &reference, margin);
                anyhow::ensure!(
                    n == 0,
                    "{}: {n} values differ, first at (y, x, c, ours, ref) = {:?}",
                    lr_path.display(),
                    first.unwrap()
                );
                exact += (diff(&ours, &reference, 0).0 == 0) as usize;
                files += 1;
                values += reference.len();
            }
        }
        Ok((files, values, exact))
    }

    #[test]
    fn set5_matches_matlab_exactly() -> Result<()> {
        let (files, values, exact) = check_set("Set5", "LR_bicubic", Border::Mirror, 0)?;
        assert_eq!((files, exact), (15, 15));
        eprintln!("Set5: {files} files, {values} values, all exact");
        Ok(())
    }

    #[test]
    fn set14_selfexsr_matches_replicate() -> Result<()> {
        // Strongest true statement: Replicate reproduces every file exactly, borders included.
        let (files, values, exact) = check_set("Set14", "LR_bicubic_SelfExSR", Border::Replicate, 0)?;
        assert_eq!((files, exact), (42, 42));
        eprintln!("Set14: {files} files, {values} values, all exact");
        // And the border mode matters: Mirror agrees only 2 pixels in from the border.
        let (_, _, mirror_exact) = check_set("Set14", "LR_bicubic_SelfExSR", Border::Mirror, 2)?;
        assert!(mirror_exact < 42, "Mirror should differ from these files at the border");
        eprintln!("Set14 with Mirror: {mirror_exact} of 42 files exact, the rest differ only at the border");
        Ok(())
    }

    #[test]
    fn bad_inputs_are_errors() -> Result<()> {
        let img = Array3::<u8>::zeros((8, 8, 3));
        let err = downscale(&img, 17, Border::Mirror).unwrap_err().to_string();
        assert!(err.contains("scale 17 is not supported: use 1 to 16"), "{err}");
        assert!(downscale(&img, 0, Border::Mirror).is_err());
        assert!(downscale(&Array3::<u8>::zeros((1, 1, 3)), 2, Border::Mirror).is_err());
        assert!(downscale(&Array3::<u8>::zeros((8, 8, 0)), 2, Border::Mirror).is_err());
        Ok(())
    }

    /// x1 leaves a picture as it is (MATLAB's imresize at scale 1 does), and x8 keeps a flat one flat.
    #[test]
    fn scale_one_is_the_identity_and_eight_works() -> Result<()> {
        let img = Array3::from_shape_fn((9, 11, 3), |(y, x, c)| (y * 20 + x * 7 + c * 50) as u8);
        assert_eq!(downscale(&img, 1, Border::Mirror)?, img);
        assert_eq!(upscale(&img, 1)?, img);
        let flat = Array3::from_elem((16, 24, 3), 91u8);
        assert!(downscale(&flat, 8, Border::Mirror)?.iter().all(|&v| v == 91));
        assert!(upscale(&flat, 8)?.iter().all(|&v| v == 91));
        Ok(())
    }

    #[test]
    fn sizes_and_constants() -> Result<()> {
        let hr = load(&data_dir().join("Set5/HR/woman.png"))?; // 344 x 228
        for s in 2..=4 {
            let lr = downscale(&hr, s, Border::Mirror)?;
            assert_eq!(lr.dim(), (344 / s, 228 / s, 3));
            assert_eq!(upscale(&lr, s)?.dim(), (344 / s * s, 228 / s * s, 3));
            let flat = Array3::from_elem((13, 17, 2), 77u8);
            for border in [Border::Mirror, Border::Replicate] {
                assert!(downscale(&flat, s, border)?.iter().all(|&v| v == 77));
            }
            assert!(upscale(&flat, s)?.iter().all(|&v| v == 77));
        }
        Ok(())
    }

    /// The upscaler gives the published bicubic baseline on Set5 (Y channel of BT.601,
    /// s pixels shaved): 33.66 / 30.39 / 28.42 dB at x2 / x3 / x4.
    #[test]
    fn upscale_gives_the_published_bicubic_psnr() -> Result<()> {
        let y = |a: &Array3<u8>, i: usize, j: usize| {
            16.0 + (65.481 * a[[i, j, 0]] as f64 + 128.553 * a[[i, j, 1]] as f64 + 24.966 * a[[i, j, 2]] as f64) / 255.0
        };
        for (s, published) in [(2, 33.66), (3, 30.39), (4, 28.42)] {
            let mut total = 0.0;
            for name in ["baby", "bird", "butterfly", "head", "woman"] {
                let hr = modcrop(&load(&data_dir().join(format!("Set5/HR/{name}.png")))?, s);
                let sr = upscale(&downscale(&hr, s, Border::Mirror)?, s)?;
                let (h, w, _) = hr.dim();
                let (mut se, mut n) = (0.0, 0.0);
                for i in s..h - s {
                    for j in s..w - s {
                        se += (y(&hr, i, j) - y(&sr, i, j)).powi(2);
                        n += 1.0;
                    }
                }
                total += 10.0 * (255.0f64 * 255.0 * n / se).log10();
            }
            let psnr = total / 5.0;
            assert!(
                (psnr - published).abs() < 0.02,
                "x{s}: {psnr:.3} dB, published {published}"
            );
        }
        Ok(())
    }
}
