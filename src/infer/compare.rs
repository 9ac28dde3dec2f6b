//! A side-by-side picture for people who would rather look: bicubic | model | HR,
//! each labelled, at the output's size.

use anyhow::{anyhow, ensure, Result};
use ndarray::Array3;
use plotters::prelude::*;

const GAP: usize = 8;
const LABEL: usize = 30;

/// Panels of one size (HWC RGB), with their captions, as one RGB image.
pub fn side_by_side(panels: &[(&str, &Array3<u8>)]) -> Result<Array3<u8>> {
    ensure!(!panels.is_empty(), "nothing to compare");
    let (h, w, _) = panels[0].1.dim();
    for (label, p) in panels {
        ensure!(
            p.dim() == (h, w, 3),
            "the {label} panel is {}x{}, the first is {w}x{h}",
            p.dim().1,
            p.dim().0
        );
    }
    let n = panels.len();
    let (width, height) = (n * w + (n - 1) * GAP, h + LABEL);
    let mut buf = vec![255u8; width * height * 3];
    for (i, (_, p)) in panels.iter().enumerate() {
        let x0 = i * (w + GAP);
        for y in 0..h {
            for x in 0..w {
                let at = ((y + LABEL) * width + x0 + x) * 3;
                buf[at..at + 3].copy_from_slice(&[p[[y, x, 0]], p[[y, x, 1]], p[[y, x, 2]]]);
            }
        }
    }
    crate::util::register_font();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width as u32, height as u32)).into_drawing_area();
        for (i, (label, _)) in panels.iter().enumerate() {
            let style = ("sans-serif", 18).into_font().color(&BLACK);
            root.draw_text(label, &style, ((i * (w + GAP) + 4) as i32, 6))
                .map_err(|e| anyhow!("cannot draw the caption {label:?}: {e}"))?;
        }
        root.present().map_err(|e| anyhow!("cannot draw the comparison: {e}"))?;
    }
    Ok(Array3::from_shape_vec((height, width, 3), buf)?)
}
