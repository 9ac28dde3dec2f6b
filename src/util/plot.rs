//! Plots drawn in memory and written as PNG.

use super::write_atomic;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// plotters draws text with ab_glyph from a font it is given: DejaVu Sans,
/// embedded, so no system fonts are needed.
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// The drawing area of a plot.
pub type PlotArea<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A plot drawn in memory on white, then written as PNG atomically: a full disk
/// leaves the previous file (or none), never a truncated one.
pub fn save_plot(path: &Path, (w, h): (u32, u32), draw: impl FnOnce(&PlotArea) -> Result<()>) -> Result<()> {
    register_font();
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root)?;
        root.present()
            .map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))?;
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &rgb,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )?;
    write_atomic(path, &png)
}
