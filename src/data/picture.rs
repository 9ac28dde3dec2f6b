//! A user's picture as it is: RGB, greyscale, with or without alpha, 8 or 16 bit.
//! The network sees RGB; grey goes in as three equal channels and comes out as
//! their mean; alpha is upscaled by bicubic beside the network.

use super::bicubic;
use anyhow::{Context, Result};
use image::{ColorType, ImageEncoder};
use ndarray::{Array3, Array4, Axis};
use std::path::Path;

pub struct Picture {
    /// HWC RGB bytes (grey repeated over the three channels).
    pub rgb: Array3<u8>,
    /// HW1 alpha bytes, when the file has alpha.
    pub alpha: Option<Array3<u8>>,
    pub grey: bool,
    /// The file had 16 bits per channel; it is processed at 8.
    pub reduced_from_16: bool,
}

impl Picture {
    pub fn open(path: &Path) -> Result<Picture> {
        Picture::of(super::decode(path)?)
    }

    /// The picture in the bytes of an image file; `name` names it in messages.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Picture> {
        Picture::of(super::decode_bytes(bytes, name)?)
    }

    fn of(img: image::DynamicImage) -> Result<Picture> {
        let color = img.color();
        let grey = matches!(color, ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16);
        let reduced_from_16 = color.bytes_per_pixel() / color.channel_count() > 1;
        let alpha = color.has_alpha().then(|| {
            let a = img.to_rgba8();
            let (w, h) = a.dimensions();
            Array3::from_shape_fn((h as usize, w as usize, 1), |(y, x, _)| {
                a.get_pixel(x as u32, y as u32)[3]
            })
        });
        let rgb = img.to_rgb8();
        let (w, h) = rgb.dimensions();
        Ok(Picture {
            rgb: Array3::from_shape_vec((h as usize, w as usize, 3), rgb.into_raw())?,
            alpha,
            grey,
            reduced_from_16,
        })
    }

    pub fn size(&self) -> (usize, usize) {
        (self.rgb.dim().1, self.rgb.dim().0)
    }

    /// The picture `s` times larger: `sr` is the network's [1, 3, sH, sW] output for
    /// `self.rgb`; alpha is upscaled with MATLAB-style bicubic.
    pub fn upscaled(&self, sr: &Array4<f32>, s: usize) -> Result<Picture> {
        let rgb = super::dataset::from_nchw(sr.view());
        let rgb = if self.grey {
            // The network's three channels of a grey input differ only by rounding noise.
            let mean = sr
                .index_axis(Axis(0), 0)
                .mean_axis(Axis(0))
                .context("an image without channels")?;
            let (h, w) = mean.dim();
            Array3::from_shape_fn((h, w, 3), |(y, x, _)| mean[[y, x]].round().clamp(0.0, 255.0) as u8)
        } else {
            rgb
        };
        let alpha = self.alpha.as_ref().map(|a| bicubic::upscale(a, s)).transpose()?;
        Ok(Picture {
            rgb,
            alpha,
            grey: self.grey,
            reduced_from_16: false,
        })
    }

    /// The bytes of the picture in the format `path`'s extension names: PNG, JPEG
    /// (quality 95; it has no alpha, so alpha is dropped) or BMP.
    pub fn encode_for(&self, path: &Path) -> Result<Vec<u8>> {
        match OutputFormat::of(path)? {
            OutputFormat::Png => self.to_png(),
            OutputFormat::Jpeg => {
                let (w, h) = self.size();
                let mut jpeg = Vec::new();
                let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95);
                if self.grey {
                    let grey: Vec<u8> = self.rgb.iter().step_by(3).copied().collect();
                    encoder.write_image(&grey, w as u32, h as u32, image::ExtendedColorType::L8)?;
                } else {
                    let rgb = self.rgb.as_standard_layout();
                    let raw = rgb.as_slice().context("contiguous pixels")?;
                    encoder.write_image(raw, w as u32, h as u32, image::ExtendedColorType::Rgb8)?;
                }
                Ok(jpeg)
            }
            OutputFormat::Bmp => {
                let png = self.to_png()?;
                let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)?;
                let mut bmp = std::io::Cursor::new(Vec::new());
                img.write_to(&mut bmp, image::ImageFormat::Bmp)?;
                Ok(bmp.into_inner())
            }
        }
    }

    /// PNG bytes in the picture's own colour type (grey stays grey, alpha stays).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let (w, h) = self.size();
        let channels = match (self.grey, self.alpha.is_some()) {
            (true, false) => 1,
            (true, true) => 2,
            (false, false) => 3,
            (false, true) => 4,
        };
        let mut raw = Vec::with_capacity(w * h * channels);
        for y in 0..h {
            for x in 0..w {
                if self.grey {
                    raw.push(self.rgb[[y, x, 0]]);
                } else {
                    raw.extend_from_slice(&[self.rgb[[y, x, 0]], self.rgb[[y, x, 1]], self.rgb[[y, x, 2]]]);
                }
                if let Some(a) = &self.alpha {
                    raw.push(a[[y, x, 0]]);
                }
            }
        }
        let color = [
            image::ExtendedColorType::L8,
            image::ExtendedColorType::La8,
            image::ExtendedColorType::Rgb8,
            image::ExtendedColorType::Rgba8,
        ][channels - 1];
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png).write_image(&raw, w as u32, h as u32, color)?;
        Ok(png)
    }
}

/// The picture formats srgraph writes, chosen by a path's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Png,
    Jpeg,
    Bmp,
}

/// Extensions of picture formats: a path ending in one names a file, not a folder.
const PICTURE_EXTENSIONS: [&str; 10] = ["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff", "gif", "avif", "ppm"];

impl OutputFormat {
    /// Whether `path` ends in a picture extension (whether or not srgraph writes that format).
    pub fn is_picture_path(path: &Path) -> bool {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| PICTURE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
    }

    pub fn of(path: &Path) -> Result<OutputFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        Ok(match ext.as_str() {
            "png" => OutputFormat::Png,
            "jpg" | "jpeg" => OutputFormat::Jpeg,
            "bmp" => OutputFormat::Bmp,
            _ => anyhow::bail!(
                "{}: srgraph writes PNG, JPEG and BMP pictures (.png, .jpg, .jpeg, .bmp), not {}",
                path.display(),
                if ext.is_empty() {
                    "files without an extension".to_string()
                } else {
                    format!(".{ext}")
                }
            ),
        })
    }
}

/// An RGB image (HWC bytes) as PNG bytes.
pub fn rgb_png(rgb: &Array3<u8>) -> Result<Vec<u8>> {
    Picture {
        rgb: rgb.as_standard_layout().into_owned(),
        alpha: None,
        grey: false,
        reduced_from_16: false,
    }
    .to_png()
}
