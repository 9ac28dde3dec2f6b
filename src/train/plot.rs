//! The training curves as a PNG: loss against steps, and validation PSNR
//! against steps with bicubic beside it (and, under EMA, the raw weights' PSNR).

use crate::util::{save_plot, PlotArea};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// `losses`: (step, loss); `psnr`: (step, model PSNR, bicubic PSNR); `raw`: (step, PSNR
/// of the weights being trained) when the model is their EMA, else empty.
pub fn curves(
    path: &Path,
    title: &str,
    losses: &[(u64, f32)],
    psnr: &[(u64, f64, f64)],
    raw: &[(u64, f64)],
) -> Result<()> {
    save_plot(path, (1200, 500), |root| {
        draw_curves(root, path, title, losses, psnr, raw)
    })
}

fn draw_curves(
    root: &PlotArea,
    path: &Path,
    title: &str,
    losses: &[(u64, f32)],
    psnr: &[(u64, f64, f64)],
    raw: &[(u64, f64)],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(600);
    let last = losses
        .last()
        .map_or(1, |l| l.0)
        .max(psnr.last().map_or(1, |p| p.0))
        .max(1);

    // A moving average keeps the loss readable through the batch-to-batch noise.
    let window = (losses.len() / 50).max(1);
    let smooth: Vec<(u64, f32)> = losses
        .iter()
        .enumerate()
        .map(|(i, &(s, _))| {
            let from = i.saturating_sub(window - 1);
            (
                s,
                losses[from..=i].iter().map(|l| l.1).sum::<f32>() / (i - from + 1) as f32,
            )
        })
        .collect();
    let (lo, hi) = smooth
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &(_, l)| (lo.min(l), hi.max(l)));
    let (lo, hi) = if lo <= hi { (lo * 0.95, hi * 1.05) } else { (0.0, 1.0) };
    let mut chart = ChartBuilder::on(&left)
        .caption("training loss", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0..last, lo..hi)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .draw()
        .map_err(|e| err(&e))?;
    chart.draw_series(LineSeries::new(smooth, &BLUE)).map_err(|e| err(&e))?;

    let values = psnr.iter().flat_map(|p| [p.1, p.2]).chain(raw.iter().map(|r| r.1));
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo <= hi { (lo - 0.5, hi + 0.5) } else { (20.0, 40.0) };
    let mut chart = ChartBuilder::on(&right)
        .caption("validation PSNR (Y)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0..last, lo..hi)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("dB")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(psnr.iter().map(|p| (p.0, p.1)), RED.stroke_width(2)).point_size(3))
        .map_err(|e| err(&e))?
        .label(if raw.is_empty() {
            "model"
        } else {
            "model (EMA of the weights)"
        })
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    if !raw.is_empty() {
        let orange = RGBColor(230, 140, 20);
        chart
            .draw_series(LineSeries::new(raw.iter().map(|r| (r.0, r.1)), orange.stroke_width(2)).point_size(2))
            .map_err(|e| err(&e))?
            .label("the weights themselves")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], orange));
    }
    chart
        .draw_series(LineSeries::new(psnr.iter().map(|p| (p.0, p.2)), &BLACK))
        .map_err(|e| err(&e))?
        .label("bicubic")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}
