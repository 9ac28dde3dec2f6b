//! The study's plots: validation PSNR against steps (one panel per depth, or one
//! for the normalisations), and final PSNR against parameters and against depth.

use super::table::display_name;
use super::RunResult;
use crate::util::{save_plot, PlotArea as Area};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// One colour per series name, the same in every plot.
fn colour(name: &str) -> RGBColor {
    match name {
        "edsr" | "none" => RGBColor(0x1f, 0x77, 0xb4),
        "wdsr-a" | "weight" => RGBColor(0xd6, 0x27, 0x28),
        "wdsr-b" | "batch" | "low-rank" => RGBColor(0x2c, 0xa0, 0x2c),
        "flattened" => RGBColor(0xff, 0x7f, 0x0e),
        "depthwise" => RGBColor(0x8c, 0x56, 0x4b),
        "inverted-residual" => RGBColor(0xe3, 0x77, 0xc2),
        g if g.starts_with("group:") => RGBColor(0x17, 0xbe, 0xcf),
        _ => RGBColor(0x9a, 0x4a, 0xc8),
    }
}

/// A labelled line of (x, y) points.
type Series = (String, RGBColor, Vec<(f64, f64)>);

/// Lines of (x, y) points, each with a label, and a dashed-grey reference line.
fn panel(area: &Area, caption: &str, x_desc: &str, series: &[Series], reference: Option<(&str, f64)>) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("cannot draw {caption}: {e}");
    let xs = series.iter().flat_map(|s| s.2.iter().map(|p| p.0));
    let ys = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .chain(reference.map(|r| r.1));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    // Single points (one per series) are scattered where the legend would sit: keep the
    // right third free for it.
    let room = if series.iter().all(|s| s.2.len() == 1) {
        0.6
    } else {
        0.05
    };
    let (x0, x1) = if x0 < x1 {
        (x0 - (x1 - x0) * 0.05, x1 + (x1 - x0) * room)
    } else {
        (x0 - 1.0, x0 + 1.0)
    };
    let (y0, y1) = if y0 <= y1 { (y0 - 0.2, y1 + 0.2) } else { (20.0, 40.0) };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("PSNR-Y (dB)")
        .draw()
        .map_err(|e| err(&e))?;
    for (label, c, points) in series {
        let c = *c;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)).point_size(3))
            .map_err(|e| err(&e))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    if let Some((label, y)) = reference {
        let grey = RGBColor(0x80, 0x80, 0x80);
        chart
            .draw_series(DashedLineSeries::new([(x0, y), (x1, y)], 6, 4, grey.stroke_width(1)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

fn curve(r: &RunResult) -> Vec<(f64, f64)> {
    r.curve.iter().map(|&(s, p)| (s as f64, p)).collect()
}

fn save(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area) -> Result<()>) -> Result<()> {
    save_plot(path, size, draw)
}

/// Validation PSNR against steps, one panel per depth, one line per architecture.
pub fn curves_by_blocks(path: &Path, results: &[RunResult]) -> Result<()> {
    let mut depths: Vec<usize> = results.iter().map(|r| r.blocks).collect();
    depths.sort();
    depths.dedup();
    let cols = depths.len().min(2);
    let rows = depths.len().div_ceil(cols);
    save(path, (600 * cols as u32, 420 * rows as u32), |root| {
        for (area, &b) in root.split_evenly((rows, cols)).iter().zip(&depths) {
            let runs: Vec<&RunResult> = results.iter().filter(|r| r.blocks == b).collect();
            let series: Vec<_> = runs
                .iter()
                .map(|r| (display_name(&r.arch), colour(&r.arch), curve(r)))
                .collect();
            let bicubic = runs.first().map(|r| ("bicubic", r.bicubic_psnr_y));
            panel(
                area,
                &format!("{b} residual block{}", if b == 1 { "" } else { "s" }),
                "step",
                &series,
                bicubic,
            )?;
        }
        Ok(())
    })
}

/// Validation PSNR against steps, one line per normalisation.
pub fn curves_by_norm(path: &Path, results: &[RunResult]) -> Result<()> {
    let series: Vec<_> = results
        .iter()
        .map(|r| (format!("{} norm", r.norm), colour(&r.norm), curve(r)))
        .collect();
    let title = results.first().map_or(String::new(), |r| {
        format!("{}, {} blocks: normalisation", display_name(&r.arch), r.blocks)
    });
    one_panel(path, &title, "step", &series, results)
}

/// Validation PSNR against steps, one line per block kind.
pub fn curves_by_conv(path: &Path, results: &[RunResult]) -> Result<()> {
    let series: Vec<_> = results
        .iter()
        .map(|r| (r.conv.clone(), colour(&r.conv), curve(r)))
        .collect();
    let title = results.first().map_or(String::new(), |r| {
        format!("WDSR-B, {} blocks, equal parameters: block kind", r.blocks)
    });
    one_panel(path, &title, "step", &series, results)
}

/// Final PSNR against `x` (parameters, or multiply-adds), one point per block kind.
pub fn conv_against(path: &Path, results: &[RunResult], x_desc: &str, x: impl Fn(&RunResult) -> f64) -> Result<()> {
    let series: Vec<_> = results
        .iter()
        .map(|r| (r.conv.clone(), colour(&r.conv), vec![(x(r), r.psnr_y)]))
        .collect();
    one_panel(
        path,
        &format!("validation PSNR against {x_desc}"),
        x_desc,
        &series,
        results,
    )
}

/// Final PSNR against `x` (parameters, or blocks), one line per architecture.
pub fn psnr_against(path: &Path, results: &[RunResult], x_desc: &str, x: impl Fn(&RunResult) -> f64) -> Result<()> {
    let mut archs: Vec<&str> = results.iter().map(|r| r.arch.as_str()).collect();
    archs.dedup();
    archs.sort();
    archs.dedup();
    let series: Vec<_> = archs
        .iter()
        .map(|a| {
            let mut pts: Vec<(f64, f64)> = results
                .iter()
                .filter(|r| r.arch == *a)
                .map(|r| (x(r), r.psnr_y))
                .collect();
            pts.sort_by(|p, q| p.0.total_cmp(&q.0));
            (display_name(a), colour(a), pts)
        })
        .collect();
    one_panel(
        path,
        &format!("validation PSNR against {x_desc}"),
        x_desc,
        &series,
        results,
    )
}

/// One panel of `series` in its own file, with the runs' bicubic PSNR as the reference line.
fn one_panel(path: &Path, title: &str, x_desc: &str, series: &[Series], results: &[RunResult]) -> Result<()> {
    save(path, (800, 500), |root| {
        panel(
            root,
            title,
            x_desc,
            series,
            results.first().map(|r| ("bicubic", r.bicubic_psnr_y)),
        )
    })
}
