//! The two kinds of pixel value srgraph reads and writes, 8 and 16 bits, and how each meets
//! the networks' 0..255 float scale.
//!
//! Networks compute on the scale they are trained on, 0..255, whatever the picture's depth:
//! an 8-bit value v enters as v, a 16-bit one as v / 257, and an output y leaves as
//! round(y) or round(y * 257), clamped to the type's range. 257 = 65535 / 255 maps 0..255
//! exactly onto 0..65535, so an 8-bit picture read as 16-bit (each value times 257) gives
//! the network the same numbers.

use ndarray::Array3;

/// A pixel value: `u8` (0..255) or `u16` (0..65535).
pub trait Sample: Copy + Default + PartialEq + Send + Sync + std::fmt::Debug + 'static {
    /// Bits per value: 8 or 16.
    const BITS: u32;
    /// The largest value, the peak of PSNR: 255 or 65535.
    const PEAK: f64;
    /// Values per step of the networks' 0..255 scale: 1 or 257.
    const PER_NETWORK_STEP: f64;

    /// The value as a number.
    fn level(self) -> f64;

    /// The nearest 8-bit value (v / 257 rounded for 16-bit): for pictures only looked at,
    /// such as `--compare`'s panels, and formats that hold 8 bits (JPEG, BMP).
    fn to_eight(self) -> u8;

    /// The picture's RGBA values, HWC (grey repeated, alpha opaque where there is none).
    fn rgba_of(img: &image::DynamicImage) -> Array3<Self>;

    /// Values as the bytes an image encoder takes (16-bit ones in native byte order).
    fn encoder_bytes(values: &[Self]) -> Vec<u8>;

    /// Bytes written by [`encoder_bytes`](Self::encoder_bytes) (as `pixels.bin` holds them)
    /// read back in place; their start is aligned to the type (a memory map's pages are).
    fn from_bytes(bytes: &[u8]) -> &[Self];

    /// The encoder's colour type of `channels` values a pixel: L, LA, RGB or RGBA.
    fn color(channels: usize) -> image::ExtendedColorType;

    /// `v` rounded half away from zero and clamped to the type's range (NaN to 0), as
    /// MATLAB's `uint8()` and `uint16()`.
    fn from_level(v: f64) -> Self;

    /// The picture's RGB values, HWC (grey repeated over the three channels, alpha dropped;
    /// an 8-bit picture read as 16-bit has each value times 257).
    fn rgb_of(img: &image::DynamicImage) -> Array3<Self>;

    /// The value on the networks' 0..255 scale.
    fn to_network(self) -> f32 {
        (self.level() / Self::PER_NETWORK_STEP) as f32
    }

    /// A network output on the 0..255 scale as a value of this type.
    fn from_network(y: f32) -> Self {
        Self::from_level(f64::from(y) * Self::PER_NETWORK_STEP)
    }
}

impl Sample for u8 {
    const BITS: u32 = 8;
    const PEAK: f64 = 255.0;
    const PER_NETWORK_STEP: f64 = 1.0;

    fn level(self) -> f64 {
        f64::from(self)
    }

    fn to_eight(self) -> u8 {
        self
    }

    fn rgba_of(img: &image::DynamicImage) -> Array3<u8> {
        let rgba = img.to_rgba8();
        let (w, h) = rgba.dimensions();
        Array3::from_shape_vec((h as usize, w as usize, 4), rgba.into_raw()).expect("RGBA holds 4 values a pixel")
    }

    fn encoder_bytes(values: &[u8]) -> Vec<u8> {
        values.to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> &[u8] {
        bytes
    }

    fn color(channels: usize) -> image::ExtendedColorType {
        use image::ExtendedColorType::*;
        [L8, La8, Rgb8, Rgba8][channels - 1]
    }

    fn from_level(v: f64) -> u8 {
        v.round().clamp(0.0, 255.0) as u8
    }

    fn rgb_of(img: &image::DynamicImage) -> Array3<u8> {
        let rgb = img.to_rgb8();
        let (w, h) = rgb.dimensions();
        Array3::from_shape_vec((h as usize, w as usize, 3), rgb.into_raw()).expect("RGB holds 3 values a pixel")
    }

    fn to_network(self) -> f32 {
        f32::from(self)
    }
}

impl Sample for u16 {
    const BITS: u32 = 16;
    const PEAK: f64 = 65535.0;
    const PER_NETWORK_STEP: f64 = 257.0;

    fn level(self) -> f64 {
        f64::from(self)
    }

    fn to_eight(self) -> u8 {
        u8::from_level(f64::from(self) / 257.0)
    }

    fn rgba_of(img: &image::DynamicImage) -> Array3<u16> {
        let rgba = img.to_rgba16();
        let (w, h) = rgba.dimensions();
        Array3::from_shape_vec((h as usize, w as usize, 4), rgba.into_raw()).expect("RGBA holds 4 values a pixel")
    }

    fn encoder_bytes(values: &[u16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    fn from_bytes(bytes: &[u8]) -> &[u16] {
        // SAFETY: every bit pattern of two bytes is a u16; align_to puts only whole,
        // aligned u16s in the middle, and the checks below refuse anything else.
        let (head, values, tail) = unsafe { bytes.align_to::<u16>() };
        assert!(
            head.is_empty() && tail.is_empty(),
            "16-bit values at an odd address or length"
        );
        values
    }

    fn color(channels: usize) -> image::ExtendedColorType {
        use image::ExtendedColorType::*;
        [L16, La16, Rgb16, Rgba16][channels - 1]
    }

    fn from_level(v: f64) -> u16 {
        v.round().clamp(0.0, 65535.0) as u16
    }

    fn rgb_of(img: &image::DynamicImage) -> Array3<u16> {
        let rgb = img.to_rgb16();
        let (w, h) = rgb.dimensions();
        Array3::from_shape_vec((h as usize, w as usize, 3), rgb.into_raw()).expect("RGB holds 3 values a pixel")
    }
}

/// Bits per value of a decoded picture: 16 for 16-bit (and wider: 32-bit float is read as
/// 16-bit) colour types, else 8.
pub fn bits_of(color: image::ColorType) -> u32 {
    if color.bytes_per_pixel() / color.channel_count() > 1 {
        16
    } else {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_rule_is_exact_at_the_ends_and_round_trips() {
        assert_eq!(65535u16.to_network(), 255.0);
        assert_eq!(257u16.to_network(), 1.0);
        assert_eq!(u16::from_network(255.0), 65535);
        assert_eq!(u16::from_network(300.0), 65535);
        assert_eq!(u16::from_network(-1.0), 0);
        assert_eq!(u16::from_network(f32::NAN), 0);
        for v in (0..=65535u16).step_by(7) {
            assert_eq!(u16::from_network(v.to_network()), v, "{v}");
        }
        for v in 0..=255u8 {
            assert_eq!(u8::from_network(v.to_network()), v);
            assert_eq!((v as u16 * 257).to_network(), v.to_network());
        }
        assert_eq!(65535u16.to_eight(), 255);
        assert_eq!(128u16.to_eight(), 0);
        assert_eq!(129u16.to_eight(), 1);
    }
}
