//! Images in and out: pictures as [1, 3, H, W] float32 tensors in [0, 255], and
//! the MATLAB-exact bicubic resizer that makes low-resolution images.

pub mod bicubic;

use anyhow::{Context, Result};
use ndarray::{Array4, ArrayD};
use std::path::Path;

/// Load an image as RGB (greyscale is repeated over three channels, alpha dropped).
pub fn load_rgb(path: &Path) -> Result<Array4<f32>> {
    let img = image::open(path)
        .with_context(|| format!("cannot read image {}", path.display()))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    Ok(Array4::from_shape_fn((1, 3, h as usize, w as usize), |(_, c, y, x)| {
        img.get_pixel(x as u32, y as u32)[c] as f32
    }))
}

/// A [1, 3, H, W] tensor to an 8-bit RGB image, rounded and clamped to [0, 255].
pub fn to_rgb8(t: &ArrayD<f32>) -> Result<image::RgbImage> {
    let s = t.shape();
    anyhow::ensure!(
        s.len() == 4 && s[0] == 1 && s[1] == 3,
        "expected a [1, 3, H, W] image tensor, got {s:?}"
    );
    let (h, w) = (s[2], s[3]);
    Ok(image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        image::Rgb(std::array::from_fn(|c| {
            t[[0, c, y as usize, x as usize]].round().clamp(0.0, 255.0) as u8
        }))
    }))
}
