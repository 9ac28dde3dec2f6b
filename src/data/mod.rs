//! Images in and out: pictures as [1, 3, H, W] float32 tensors in [0, 255], and
//! the MATLAB-exact bicubic resizer that makes low-resolution images.

pub mod bicubic;
pub mod cache;
pub mod dataset;
pub mod degrade;
pub mod luma;
pub mod picture;
pub mod sample;
pub mod sampler;

use anyhow::{ensure, Context, Result};
use ndarray::{s, Array3, Array4, ArrayD, Axis};
use rand::Rng;
use std::path::Path;

/// Decode an image file, its format guessed from the content rather than the name.
pub fn decode(path: &Path) -> Result<image::DynamicImage> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read image {}", path.display()))?;
    decode_bytes(&bytes, &path.display().to_string())
}

/// The most pixels srgraph reads in one picture: 40 megapixels (8K UHD is 33). A
/// file of a few hundred bytes can claim far more (a decompression bomb), and
/// decoding it, then super-resolving it, would take minutes and tens of gigabytes.
pub const MAX_PICTURE_PIXELS: u64 = 40_000_000;

/// Decode the bytes of an image file (`name` names it in messages). Its size is read
/// from the header first: a picture of more than `MAX_PICTURE_PIXELS` is refused
/// before any pixel is decoded.
pub fn decode_bytes(bytes: &[u8], name: &str) -> Result<image::DynamicImage> {
    let what = || format!("cannot read image {name}");
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .with_context(what)
    };
    check_png_palette(bytes).with_context(what)?;
    let (w, h) = reader()?.into_dimensions().with_context(what)?;
    ensure!(
        w as u64 * h as u64 <= MAX_PICTURE_PIXELS,
        "{name} is {w}x{h} pixels, more than the {} megapixels srgraph reads in one picture: cut it into parts",
        MAX_PICTURE_PIXELS / 1_000_000
    );
    let mut reader = reader()?;
    let mut limits = image::Limits::default();
    // 16-bit RGBA, the widest colour type, at the largest size allowed.
    limits.max_alloc = Some(MAX_PICTURE_PIXELS * 8);
    reader.limits(limits);
    crate::util::guarded("the picture decoder", &format!("decode {name}"), || {
        reader.decode().with_context(what)
    })
}

/// A PNG's palette (PLTE) holds whole RGB entries, at most 256: the png crate (0.18.1)
/// panics on a palette whose length is not a multiple of 3.
fn check_png_palette(bytes: &[u8]) -> Result<()> {
    let Some(mut rest) = bytes.strip_prefix(b"\x89PNG\r\n\x1a\n") else {
        return Ok(());
    };
    while rest.len() >= 8 {
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let kind = &rest[4..8];
        if kind == b"PLTE" {
            ensure!(
                len.is_multiple_of(3) && len <= 768,
                "its palette holds {len} bytes, not whole RGB entries (at most 256 of 3 bytes): the file is damaged"
            );
        }
        if kind == b"IDAT" || kind == b"IEND" {
            break;
        }
        rest = rest.get(len.saturating_add(12)..).unwrap_or_default();
    }
    Ok(())
}

/// `../shared/data` beside the repository, or `$SRGRAPH_DATA`: the benchmark sets the unit tests read.
#[cfg(test)]
pub(crate) fn test_data_dir() -> std::path::PathBuf {
    std::env::var_os("SRGRAPH_DATA")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// Load an image as RGB (greyscale is repeated over three channels, alpha dropped).
pub fn load_rgb(path: &Path) -> Result<Array4<f32>> {
    let img = decode(path)?.to_rgb8();
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

/// Load an image as height x width x RGB bytes (greyscale repeated, alpha dropped, 16-bit
/// reduced to 8).
pub fn load_hwc(path: &Path) -> Result<Array3<u8>> {
    load_levels(path)
}

/// Load an image as height x width x RGB values of type `P` (greyscale repeated, alpha
/// dropped): u16 keeps a 16-bit picture's values and reads an 8-bit one times 257.
pub fn load_levels<P: sample::Sample>(path: &Path) -> Result<Array3<P>> {
    Ok(P::rgb_of(&decode(path)?))
}

/// The bits per value of an image file (8 or 16), read from its header alone.
pub fn bit_depth(path: &Path) -> Result<u32> {
    use image::ImageDecoder;
    let what = || format!("cannot read image {}", path.display());
    let decoder = image::ImageReader::open(path)
        .with_context(what)?
        .with_guessed_format()
        .with_context(what)?
        .into_decoder()
        .with_context(what)?;
    Ok(sample::bits_of(decoder.color_type()))
}

/// A random `patch` x `patch` HR crop and its MATLAB-bicubic LR version.
pub fn random_pair(
    img: &Array3<u8>,
    patch: usize,
    scale: usize,
    rng: &mut impl Rng,
) -> Result<(Array3<u8>, Array3<u8>)> {
    let (h, w) = (img.shape()[0], img.shape()[1]);
    ensure!(
        h >= patch && w >= patch,
        "image of {w}x{h} is smaller than a {patch}x{patch} patch"
    );
    let (y, x) = (rng.random_range(0..=h - patch), rng.random_range(0..=w - patch));
    let hr = img.slice(s![y..y + patch, x..x + patch, ..]).to_owned();
    let lr = bicubic::downscale(&hr, scale, bicubic::Border::Mirror)?;
    Ok((lr, hr))
}

/// HWC byte images of one size to an NCHW float32 batch in [0, 255].
pub fn to_batch(images: &[Array3<u8>]) -> Array4<f32> {
    let views: Vec<_> = images
        .iter()
        .map(|i| i.view().permuted_axes([2, 0, 1]).mapv(f32::from))
        .collect();
    let views: Vec<_> = views.iter().map(|v| v.view()).collect();
    ndarray::stack(Axis(0), &views).expect("images of one size")
}
