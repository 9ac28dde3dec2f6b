//! PSNR and SSIM computed the way super-resolution papers report them.
//!
//! Benchmark sets (Set5, Set14, B100, Urban100) are scored on the luma channel with `scale`
//! pixels shaved from every border; DIV2K validation on RGB with `scale + 6` shaved (EDSR's
//! code). Y follows ITU-R BT.601 with EDSR/WDSR's coefficients and is not rounded, so numbers
//! are comparable with those papers. Everything is f64: a mean over a million squared
//! differences loses digits in f32.
//!
//! 16-bit pictures are scored against the data's peak, 65535: PSNR-RGB on the 0..65535
//! values with peak 65535; PSNR-Y and SSIM-Y take Y of v / 257 (the 0..255 scale the
//! formula is written for) with peak 255, which is the same as Y times 257 with peak 65535.
//! On 8-bit pictures v / 1 is v: the formulas are the papers'.

use crate::data::sample::Sample;
use anyhow::{ensure, Result};
use ndarray::{s, Array2, Array3, ArrayView3, Zip};

/// BT.601 luma as MATLAB's `rgb2ycbcr` for 8-bit input, with EDSR's coefficients
/// (Y = 16 + (65.738 R + 129.057 G + 25.064 B) / 256), kept unrounded; of 16-bit input,
/// of R, G, B divided by 257.
fn luma<P: Sample>(img: ArrayView3<P>) -> Array2<f64> {
    let (h, w, _) = img.dim();
    let v = |y: usize, x: usize, c: usize| img[[y, x, c]].level() / P::PER_NETWORK_STEP;
    Array2::from_shape_fn((h, w), |(y, x)| {
        let (r, g, b) = (v(y, x, 0), v(y, x, 1), v(y, x, 2));
        16.0 + (65.738 * r + 129.057 * g + 25.064 * b) / 256.0
    })
}

/// Checks that both images have one shape (and `channels` channels, if given) and that
/// `shave` leaves at least `min_side` pixels each way; returns the shaved views.
fn shaved<'a, P>(
    sr: &'a Array3<P>,
    hr: &'a Array3<P>,
    shave: usize,
    channels: Option<usize>,
    min_side: usize,
) -> Result<(ArrayView3<'a, P>, ArrayView3<'a, P>)> {
    let ((h, w, c), (hh, hw, hc)) = (sr.dim(), hr.dim());
    ensure!(
        (h, w, c) == (hh, hw, hc),
        "image sizes differ: SR is {w}x{h} with {c} channels, HR is {hw}x{hh} with {hc} channels"
    );
    if let Some(want) = channels {
        ensure!(c == want, "expected {want} channels (RGB), got {c}");
    }
    ensure!(c > 0, "images have no channels");
    ensure!(
        shave
            .checked_mul(2)
            .and_then(|s| s.checked_add(min_side))
            .is_some_and(|need| h >= need && w >= need),
        "shaving {shave} pixels from each border of a {w}x{h} image leaves less than {min_side}x{min_side}"
    );
    let crop = s![shave..h - shave, shave..w - shave, ..];
    Ok((sr.slice(crop), hr.slice(crop)))
}

/// 10 log10(peak^2 / mse); identical images give +inf.
fn psnr_from_mse(mse: f64, peak: f64) -> f64 {
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (peak * peak / mse).log10()
    }
}

/// PSNR in dB on the Y channel after shaving `shave` pixels from every border (benchmark
/// convention: shave = scale).
pub fn psnr_y<P: Sample>(sr: &Array3<P>, hr: &Array3<P>, shave: usize) -> Result<f64> {
    let (a, b) = shaved(sr, hr, shave, Some(3), 1)?;
    let (ya, yb) = (luma(a), luma(b));
    let mse = ya.iter().zip(yb.iter()).map(|(p, q)| (p - q) * (p - q)).sum::<f64>() / ya.len() as f64;
    Ok(psnr_from_mse(mse, 255.0))
}

/// PSNR in dB over all channels after shaving (DIV2K validation convention: shave = scale + 6),
/// with the peak of the value type (255, or 65535 for 16-bit).
pub fn psnr_rgb<P: Sample>(sr: &Array3<P>, hr: &Array3<P>, shave: usize) -> Result<f64> {
    let (a, b) = shaved(sr, hr, shave, None, 1)?;
    let se: f64 = a
        .iter()
        .zip(b.iter())
        .map(|(&p, &q)| (p.level() - q.level()).powi(2))
        .sum();
    Ok(psnr_from_mse(se / a.len() as f64, P::PEAK))
}

const WIN: usize = 11;

/// MATLAB `fspecial('gaussian', 11, 1.5)` is the outer product of this normalised 1-D
/// kernel with itself, so filtering can be done along rows and then columns.
fn gaussian_1d() -> [f64; WIN] {
    let sigma = 1.5f64;
    let mut k = [0.0; WIN];
    for (i, v) in k.iter_mut().enumerate() {
        let x = i as f64 - (WIN / 2) as f64;
        *v = (-(x * x) / (2.0 * sigma * sigma)).exp();
    }
    let sum: f64 = k.iter().sum();
    k.map(|v| v / sum)
}

/// MATLAB `filter2(window, img, 'valid')` for the separable window: output is
/// (H - 10) x (W - 10), no padding. (The window is symmetric, so correlation = convolution.)
fn filter_valid(img: &Array2<f64>, k: &[f64; WIN]) -> Array2<f64> {
    let (h, w) = img.dim();
    let (oh, ow) = (h + 1 - WIN, w + 1 - WIN);
    let rows = Array2::from_shape_fn((oh, w), |(y, x)| (0..WIN).map(|i| k[i] * img[[y + i, x]]).sum::<f64>());
    Array2::from_shape_fn((oh, ow), |(y, x)| {
        (0..WIN).map(|j| k[j] * rows[[y, x + j]]).sum::<f64>()
    })
}

/// SSIM (Wang et al. 2004) on Y after shaving, as MATLAB `ssim_index` and the common SR
/// evaluation scripts: 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255,
/// 'valid' filtering, mean of the SSIM map (Y of 16-bit input on the 0..255 scale, see above).
pub fn ssim_y<P: Sample>(sr: &Array3<P>, hr: &Array3<P>, shave: usize) -> Result<f64> {
    let (a, b) = shaved(sr, hr, shave, Some(3), WIN)?;
    let (x, y) = (luma(a), luma(b));
    let k = gaussian_1d();
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let (mu_x, mu_y) = (filter_valid(&x, &k), filter_valid(&y, &k));
    let xx = filter_valid(&(&x * &x), &k);
    let yy = filter_valid(&(&y * &y), &k);
    let xy = filter_valid(&(&x * &y), &k);
    let total = Zip::from(&mu_x)
        .and(&mu_y)
        .and(&xx)
        .and(&yy)
        .and(&xy)
        .fold(0.0, |acc, &mx, &my, &ex2, &ey2, &exy| {
            let (sxx, syy, sxy) = (ex2 - mx * mx, ey2 - my * my, exy - mx * my);
            acc + ((2.0 * mx * my + c1) * (2.0 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        });
    Ok(total / mu_x.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::bicubic::{self, Border};
    use crate::data::test_data_dir as data_dir;

    fn load_rgb(name: &str) -> Result<Array3<u8>> {
        crate::data::load_hwc(&data_dir().join(name))
    }

    /// Mean (PSNR-Y, SSIM-Y) of the bicubic baseline on Set5 at scale s, shave = s.
    fn set5_bicubic(s: usize) -> Result<(f64, f64)> {
        let (mut psnr, mut ssim) = (0.0, 0.0);
        for name in ["baby", "bird", "butterfly", "head", "woman"] {
            let hr = bicubic::modcrop(&load_rgb(&format!("Set5/HR/{name}.png"))?, s);
            let sr = bicubic::upscale(&bicubic::downscale(&hr, s, Border::Mirror)?, s)?;
            psnr += psnr_y(&sr, &hr, s)? / 5.0;
            ssim += ssim_y(&sr, &hr, s)? / 5.0;
        }
        Ok((psnr, ssim))
    }

    /// Published bicubic Set5 numbers (VDSR/EDSR tables): 33.66 / 30.39 / 28.42 dB and
    /// SSIM 0.9299 / 0.8682 / 0.8104 at x2 / x3 / x4.
    #[test]
    fn set5_bicubic_matches_published() -> Result<()> {
        for (s, pub_psnr, pub_ssim) in [(2, 33.66, 0.9299), (3, 30.39, 0.8682), (4, 28.42, 0.8104)] {
            let (psnr, ssim) = set5_bicubic(s)?;
            eprintln!("Set5 bicubic x{s}: PSNR-Y {psnr:.4} dB (published {pub_psnr}), SSIM-Y {ssim:.4} (published {pub_ssim})");
            assert!(
                (psnr - pub_psnr).abs() < 0.02,
                "x{s}: PSNR-Y {psnr:.4}, published {pub_psnr}"
            );
            assert!(
                (ssim - pub_ssim).abs() < 0.003,
                "x{s}: SSIM-Y {ssim:.4}, published {pub_ssim}"
            );
        }
        Ok(())
    }

    #[test]
    fn identical_images_and_hand_computed_case() -> Result<()> {
        let hr = load_rgb("Set5/HR/bird.png")?;
        assert_eq!(psnr_y(&hr, &hr, 2)?, f64::INFINITY);
        assert_eq!(psnr_rgb(&hr, &hr, 8)?, f64::INFINITY);
        assert!((ssim_y(&hr, &hr, 2)? - 1.0).abs() < 1e-12);

        // Uniform grey 100 vs 101 everywhere: every Y differs by
        // (65.738 + 129.057 + 25.064) / 256 = 219.859 / 256 = 0.85882421875,
        // so mse = 0.85882421875^2 = 0.7375790387... and
        // PSNR-Y = 10 log10(65025 / 0.7375790387) = 49.4527179488 dB.
        // On RGB every channel differs by exactly 1: mse = 1, PSNR = 20 log10(255) = 48.1308036087 dB.
        let (a, b) = (
            Array3::from_elem((20, 30, 3), 100u8),
            Array3::from_elem((20, 30, 3), 101u8),
        );
        assert!((psnr_y(&b, &a, 4)? - 49.4527179488).abs() < 1e-9);
        assert!((psnr_rgb(&b, &a, 0)? - 48.1308036087).abs() < 1e-9);
        // Two flat images: both variances are zero, so SSIM is the luminance term only,
        // (2 mx my + C1) / (mx^2 + my^2 + C1) with C1 = 6.5025, just below 1.
        let (ya, yb) = (16.0 + 219.859 * 100.0 / 256.0, 16.0 + 219.859 * 101.0 / 256.0);
        let c1 = 6.5025;
        let want = (2.0 * ya * yb + c1) / (ya * ya + yb * yb + c1);
        assert!((ssim_y(&b, &a, 0)? - want).abs() < 1e-12);
        Ok(())
    }

    /// An 8-bit pair read as 16-bit (values times 257) scores the same against peak 65535:
    /// (257 d)^2 / 65535^2 = d^2 / 255^2, and Y of v / 257 is Y of the 8-bit value.
    #[test]
    fn sixteen_bit_scores_use_peak_65535() -> Result<()> {
        let hr = load_rgb("Set5/HR/bird.png")?;
        let sr = bicubic::upscale(&bicubic::downscale(&hr, 2, Border::Mirror)?, 2)?;
        let deep = |a: &Array3<u8>| a.mapv(|v| v as u16 * 257);
        let (hr16, sr16) = (deep(&hr), deep(&sr));
        assert!((psnr_y(&sr16, &hr16, 2)? - psnr_y(&sr, &hr, 2)?).abs() < 1e-9);
        assert!((psnr_rgb(&sr16, &hr16, 8)? - psnr_rgb(&sr, &hr, 8)?).abs() < 1e-9);
        assert!((ssim_y(&sr16, &hr16, 2)? - ssim_y(&sr, &hr, 2)?).abs() < 1e-12);
        // One level of 65535 everywhere: PSNR-RGB = 20 log10(65535) = 96.3295986 dB.
        let (a, b) = (
            Array3::from_elem((20, 30, 3), 1000u16),
            Array3::from_elem((20, 30, 3), 1001u16),
        );
        assert!((psnr_rgb(&b, &a, 0)? - 20.0 * 65535f64.log10()).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn bad_inputs_are_errors() -> Result<()> {
        let (a, b) = (Array3::<u8>::zeros((20, 30, 3)), Array3::<u8>::zeros((21, 30, 3)));
        let err = psnr_y(&a, &b, 0).unwrap_err().to_string();
        assert!(err.contains("30x20") && err.contains("30x21"), "{err}");
        let err = psnr_rgb(&a, &a, 10).unwrap_err().to_string();
        assert!(err.contains("shaving 10"), "{err}");
        assert!(
            ssim_y(&a, &a, 5).is_err(),
            "20 - 2*5 = 10 rows is less than the 11x11 window"
        );
        assert!(psnr_y(&Array3::<u8>::zeros((20, 30, 1)), &Array3::zeros((20, 30, 1)), 0).is_err());
        Ok(())
    }
}
