//! Pictures for single-channel networks: a grey picture is its one channel, an RGB
//! picture its BT.601 luma, 0.299 R + 0.587 G + 0.114 B, on the networks' 0..255 scale
//! and unrounded. The weights are those of the PSNR-Y's Y (src/metrics) without its
//! 16..235 studio range, so that a grey pixel is its own luma: the PSNR-Y of a grey
//! output against the RGB original is the PSNR of this channel, on the papers' scale.

use super::sample::Sample;
use ndarray::{Array2, Array3, Array4, ArrayView3, Axis};

/// BT.601's luma weights for R, G and B.
pub const LUMA_WEIGHTS: [f32; 3] = crate::models::LUMA_WEIGHTS;

/// One pixel's luma; three equal values (a grey pixel) give that value exactly.
pub fn luma_of(r: f32, g: f32, b: f32) -> f32 {
    if r == g && g == b {
        return r;
    }
    let [wr, wg, wb] = LUMA_WEIGHTS;
    wr * r + wg * g + wb * b
}

/// An HWC RGB image (grey as three equal channels) as the [1, 1, H, W] input of a
/// single-channel network.
pub fn luma_nchw<P: Sample>(img: &Array3<P>) -> Array4<f32> {
    let (h, w, _) = img.dim();
    let v = |y: usize, x: usize, c: usize| img[[y, x, c]].to_network();
    Array4::from_shape_fn((1, 1, h, w), |(_, _, y, x)| luma_of(v(y, x, 0), v(y, x, 1), v(y, x, 2)))
}

/// An HWC RGB picture as the grey picture of its luma (three equal channels), rounded to
/// values of `P`: the set a single-channel network is scored on. Grey pictures stay as
/// they are.
pub fn grey_picture<P: Sample>(img: ArrayView3<P>) -> Array3<P> {
    let (h, w, _) = img.dim();
    let v = |y: usize, x: usize, c: usize| img[[y, x, c]].to_network();
    let y = Array2::from_shape_fn((h, w), |(y, x)| {
        P::from_network(luma_of(v(y, x, 0), v(y, x, 1), v(y, x, 2)))
    });
    Array3::from_shape_fn((h, w, 3), |(r, c, _)| y[[r, c]])
}

/// A [3, H, W] float image on the 0..255 scale as its [1, H, W] luma.
pub fn luma_chw(chw: ArrayView3<f32>) -> Array3<f32> {
    let (_, h, w) = chw.dim();
    Array3::from_shape_fn((1, h, w), |(_, y, x)| {
        luma_of(chw[[0, y, x]], chw[[1, y, x]], chw[[2, y, x]])
    })
}

/// An [N, 3, H, W] batch as its [N, 1, H, W] luma.
pub fn luma_batch(nchw: &Array4<f32>) -> Array4<f32> {
    let (n, _, h, w) = nchw.dim();
    let mut out = Array4::zeros((n, 1, h, w));
    for (i, img) in nchw.axis_iter(Axis(0)).enumerate() {
        out.index_axis_mut(Axis(0), i).assign(&luma_chw(img));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_is_its_own_luma_and_rgb_weighs_by_bt601() {
        let grey = Array3::from_shape_vec((1, 2, 3), vec![7u16, 7, 7, 65535, 65535, 65535]).unwrap();
        let y = luma_nchw(&grey);
        assert_eq!(y.into_raw_vec_and_offset().0, vec![7.0 / 257.0, 255.0]);
        let rgb = Array3::from_shape_vec((1, 1, 3), vec![255u8, 0, 0]).unwrap();
        assert!((luma_nchw(&rgb)[[0, 0, 0, 0]] - 0.299 * 255.0).abs() < 1e-4);
    }
}
