//! A user's picture as it is: RGB, greyscale, with or without alpha, 8 or 16 bit.
//! An RGB network sees RGB on its 0..255 scale (16-bit values divided by 257, see `sample`);
//! grey goes in as three equal channels and comes out as their mean (a single-channel
//! network sees the luma, `luma`, and gives one channel); alpha is upscaled by bicubic
//! beside the network. A picture keeps its depth from file to file.

use super::bicubic;
use super::sample::{bits_of, Sample};
use anyhow::{Context, Result};
use image::{ColorType, ImageEncoder};
use ndarray::{s, Array3, Array4, Axis};
use std::path::Path;

/// A picture with values of type `P`: u8 for 8-bit files, u16 for 16-bit ones.
pub struct Picture<P: Sample = u8> {
    /// HWC RGB values (grey repeated over the three channels).
    pub rgb: Array3<P>,
    /// HW1 alpha values, when the file has alpha.
    pub alpha: Option<Array3<P>>,
    pub grey: bool,
}

/// A picture at its file's depth.
pub enum AnyPicture {
    Eight(Picture<u8>),
    Sixteen(Picture<u16>),
}

impl AnyPicture {
    pub fn open(path: &Path) -> Result<AnyPicture> {
        Ok(AnyPicture::of(&super::decode(path)?))
    }

    /// The picture in the bytes of an image file; `name` names it in messages.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<AnyPicture> {
        Ok(AnyPicture::of(&super::decode_bytes(bytes, name)?))
    }

    fn of(img: &image::DynamicImage) -> AnyPicture {
        if bits_of(img.color()) > 8 {
            AnyPicture::Sixteen(Picture::of(img))
        } else {
            AnyPicture::Eight(Picture::of(img))
        }
    }

    pub fn bits(&self) -> u32 {
        match self {
            AnyPicture::Eight(_) => 8,
            AnyPicture::Sixteen(_) => 16,
        }
    }

    /// The picture at 8 bits (16-bit values divided by 257, rounded).
    pub fn eight(self) -> Picture<u8> {
        match self {
            AnyPicture::Eight(p) => p,
            AnyPicture::Sixteen(p) => p.eight(),
        }
    }
}

impl Picture<u8> {
    /// The picture at 8 bits (a 16-bit file's values divided by 257, rounded).
    pub fn open(path: &Path) -> Result<Picture> {
        Ok(AnyPicture::open(path)?.eight())
    }
}

impl<P: Sample> Picture<P> {
    /// The picture in values of `P` (an 8-bit file read as u16 has each value times 257).
    pub fn of(img: &image::DynamicImage) -> Picture<P> {
        let color = img.color();
        let grey = matches!(color, ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16);
        let alpha = color
            .has_alpha()
            .then(|| P::rgba_of(img).slice(s![.., .., 3..4]).to_owned());
        Picture {
            rgb: P::rgb_of(img),
            alpha,
            grey,
        }
    }

    pub fn size(&self) -> (usize, usize) {
        (self.rgb.dim().1, self.rgb.dim().0)
    }

    /// The same picture at 8 bits.
    pub fn eight(&self) -> Picture<u8> {
        Picture {
            rgb: self.rgb.mapv(P::to_eight),
            alpha: self.alpha.as_ref().map(|a| a.mapv(P::to_eight)),
            grey: self.grey,
        }
    }

    /// The picture `s` times larger: `sr` is the network's [1, 3, sH, sW] output for
    /// `self.rgb` (on the 0..255 scale); alpha is upscaled with MATLAB-style bicubic.
    pub fn upscaled(&self, sr: &Array4<f32>, s: usize) -> Result<Picture<P>> {
        let rgb = if self.grey {
            // The network's three channels of a grey input differ only by rounding noise.
            let mean = sr
                .index_axis(Axis(0), 0)
                .mean_axis(Axis(0))
                .context("an image without channels")?;
            let (h, w) = mean.dim();
            Array3::from_shape_fn((h, w, 3), |(y, x, _)| P::from_network(mean[[y, x]]))
        } else {
            super::dataset::from_nchw_as(sr.view())
        };
        let alpha = self.alpha.as_ref().map(|a| bicubic::upscale(a, s)).transpose()?;
        Ok(Picture {
            rgb,
            alpha,
            grey: self.grey,
        })
    }

    /// The bytes of the picture in the format `path`'s extension names: PNG or TIFF at the
    /// picture's depth, JPEG (quality 95; it has no alpha, so alpha is dropped) or BMP at 8 bits.
    pub fn encode_for(&self, path: &Path) -> Result<Vec<u8>> {
        match OutputFormat::of(path)? {
            OutputFormat::Png => self.to_png(),
            OutputFormat::Tiff => self.to_tiff(),
            OutputFormat::Jpeg => {
                let eight = self.eight();
                let (w, h) = self.size();
                let mut jpeg = Vec::new();
                let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95);
                if self.grey {
                    let grey: Vec<u8> = eight.rgb.iter().step_by(3).copied().collect();
                    encoder.write_image(&grey, w as u32, h as u32, image::ExtendedColorType::L8)?;
                } else {
                    let rgb = eight.rgb.as_standard_layout();
                    let raw = rgb.as_slice().context("contiguous pixels")?;
                    encoder.write_image(raw, w as u32, h as u32, image::ExtendedColorType::Rgb8)?;
                }
                Ok(jpeg)
            }
            OutputFormat::Bmp => {
                let png = self.eight().to_png()?;
                let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)?;
                let mut bmp = std::io::Cursor::new(Vec::new());
                img.write_to(&mut bmp, image::ImageFormat::Bmp)?;
                Ok(bmp.into_inner())
            }
        }
    }

    /// The values interleaved as a file holds them, and the channels a pixel: grey stays
    /// one channel unless `grey_as_rgb`, alpha stays.
    fn interleaved(&self, grey_as_rgb: bool) -> (Vec<P>, usize) {
        let (w, h) = self.size();
        let grey = self.grey && !grey_as_rgb;
        let channels = if grey { 1 } else { 3 } + usize::from(self.alpha.is_some());
        let mut raw = Vec::with_capacity(w * h * channels);
        for y in 0..h {
            for x in 0..w {
                if grey {
                    raw.push(self.rgb[[y, x, 0]]);
                } else {
                    raw.extend_from_slice(&[self.rgb[[y, x, 0]], self.rgb[[y, x, 1]], self.rgb[[y, x, 2]]]);
                }
                if let Some(a) = &self.alpha {
                    raw.push(a[[y, x, 0]]);
                }
            }
        }
        (raw, channels)
    }

    /// PNG bytes in the picture's own colour type and depth (grey stays grey, alpha stays).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let (w, h) = self.size();
        let (raw, channels) = self.interleaved(false);
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png).write_image(
            &P::encoder_bytes(&raw),
            w as u32,
            h as u32,
            P::color(channels),
        )?;
        Ok(png)
    }

    /// TIFF bytes at the picture's depth. Grey stays grey; grey with alpha is written as
    /// RGBA, the one way TIFF writers here hold alpha.
    pub fn to_tiff(&self) -> Result<Vec<u8>> {
        let (w, h) = self.size();
        let (raw, channels) = self.interleaved(self.alpha.is_some());
        let mut tiff = std::io::Cursor::new(Vec::new());
        image::codecs::tiff::TiffEncoder::new(&mut tiff).write_image(
            &P::encoder_bytes(&raw),
            w as u32,
            h as u32,
            P::color(channels),
        )?;
        Ok(tiff.into_inner())
    }
}

/// The picture formats srgraph writes, chosen by a path's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Png,
    Tiff,
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
            "tif" | "tiff" => OutputFormat::Tiff,
            "jpg" | "jpeg" => OutputFormat::Jpeg,
            "bmp" => OutputFormat::Bmp,
            _ => anyhow::bail!(
                "{}: srgraph writes PNG, TIFF, JPEG and BMP pictures (.png, .tif, .tiff, .jpg, .jpeg, .bmp), not {}",
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
    }
    .to_png()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(bytes: &[u8]) -> image::DynamicImage {
        image::load_from_memory(bytes).expect("srgraph's own output decodes")
    }

    /// 16-bit grey, grey with alpha and RGB pictures come back from PNG and TIFF value for
    /// value, at 16 bits.
    #[test]
    fn sixteen_bits_round_trip_through_png_and_tiff() -> Result<()> {
        let rgb = Array3::from_shape_fn((5, 7, 3), |(y, x, c)| (y * 9001 + x * 257 + c * 3 + 1) as u16);
        let grey = Array3::from_shape_fn((5, 7, 3), |(y, x, _)| (y * 13000 + x * 7) as u16);
        let alpha = Array3::from_shape_fn((5, 7, 1), |(y, x, _)| (65535 - y * 100 - x) as u16);
        let cases = [
            Picture {
                rgb: rgb.clone(),
                alpha: None,
                grey: false,
            },
            Picture {
                rgb: grey.clone(),
                alpha: None,
                grey: true,
            },
            Picture {
                rgb: grey,
                alpha: Some(alpha.clone()),
                grey: true,
            },
            Picture {
                rgb,
                alpha: Some(alpha),
                grey: false,
            },
        ];
        for pic in &cases {
            for bytes in [pic.to_png()?, pic.to_tiff()?] {
                let back = match AnyPicture::of(&decoded(&bytes)) {
                    AnyPicture::Sixteen(p) => p,
                    AnyPicture::Eight(_) => panic!("16-bit came back as 8"),
                };
                assert_eq!(back.rgb, pic.rgb);
                assert_eq!(back.alpha, pic.alpha);
            }
            let png = AnyPicture::of(&decoded(&pic.to_png()?));
            assert_eq!(png.bits(), 16);
        }
        // Grey stays grey in both; grey with alpha is RGBA in TIFF.
        assert_eq!(decoded(&cases[1].to_png()?).color(), ColorType::L16);
        assert_eq!(decoded(&cases[1].to_tiff()?).color(), ColorType::L16);
        assert_eq!(decoded(&cases[2].to_png()?).color(), ColorType::La16);
        assert_eq!(decoded(&cases[2].to_tiff()?).color(), ColorType::Rgba16);
        Ok(())
    }

    #[test]
    fn eight_bits_stay_eight_in_tiff() -> Result<()> {
        let rgb = Array3::from_shape_fn((4, 6, 3), |(y, x, c)| (y * 50 + x * 9 + c) as u8);
        let pic = Picture {
            rgb,
            alpha: None,
            grey: false,
        };
        let back = decoded(&pic.to_tiff()?);
        assert_eq!(back.color(), ColorType::Rgb8);
        assert_eq!(Picture::<u8>::of(&back).rgb, pic.rgb);
        assert_eq!(OutputFormat::of(Path::new("a.TIFF"))?, OutputFormat::Tiff);
        assert_eq!(OutputFormat::of(Path::new("a.tif"))?, OutputFormat::Tiff);
        Ok(())
    }
}
