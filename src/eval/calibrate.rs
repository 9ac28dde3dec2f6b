//! Calibration: the range each activation of a float32 model takes on real pictures,
//! from which an int8 file's activation grids are made (`onnx::quantize`).
//!
//! Two ways to turn what the pictures showed into a range:
//! - `MinMax`: the smallest and largest value seen. No value is ever clipped, but one
//!   outlier pixel stretches the grid for every other value.
//! - `Percentile(p)`: the p-th percentile of the values (and the (100 - p)-th below),
//!   from a histogram of 2048 bins per activation over its min-max range. The few
//!   values past it are clipped, and the rest get a finer grid.

use crate::data::dataset::{to_nchw, ImageSet};
use crate::onnx::pb::{self, type_proto, ModelProto};
use crate::onnx::quantize::{quantised_activations, Range, Ranges};
use crate::runtime::{self, Runtime};
use anyhow::{ensure, Context, Result};
use ndarray::{s, ArrayD};
use prost::Message;
use std::path::Path;

const BINS: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    MinMax,
    /// The percentile kept, e.g. 99.99.
    Percentile(f64),
}

impl Method {
    /// As the metadata and the export's summary say it: `min-max`, `percentile 99.99`.
    pub fn describe(self) -> String {
        match self {
            Method::MinMax => "min-max".into(),
            Method::Percentile(p) => format!("percentile {p}"),
        }
    }
}

/// The calibration pictures: the low-resolution inputs of a data folder (any layout
/// `srgraph train --data` reads) at the model's scale, each cut to its centre `crop`
/// x `crop` pixels at most; the first `limit` of them in name order when given.
pub struct Pictures {
    pub inputs: Vec<ArrayD<f32>>,
    pub folder: String,
}

impl Pictures {
    pub fn load(dir: &Path, scale: usize, crop: usize, limit: Option<usize>) -> Result<Pictures> {
        ensure!(crop > 0, "the calibration crop must be at least 1 pixel");
        let mut set = ImageSet::open(dir, scale)?;
        set.files.truncate(limit.unwrap_or(usize::MAX));
        ensure!(
            !set.is_empty(),
            "{} holds no pictures (PNG, JPEG or BMP) to calibrate with: give a folder of pictures like those the \
             model will upscale, such as its training data",
            dir.display()
        );
        let (pairs, warnings) = set.load()?;
        for w in warnings {
            eprintln!("warning: {w}");
        }
        let inputs = pairs
            .iter()
            .map(|p| {
                let (h, w, _) = p.lr.dim();
                let (ch, cw) = (h.min(crop), w.min(crop));
                let (top, left) = ((h - ch) / 2, (w - cw) / 2);
                to_nchw(&p.lr.slice(s![top..top + ch, left..left + cw, ..]).to_owned()).into_dyn()
            })
            .collect();
        Ok(Pictures {
            inputs,
            folder: dir.display().to_string(),
        })
    }
}

/// The range of every activation `onnx::quantize` quantises in the float32 model
/// `model` (named `name` in messages), run on `pictures` in `runtime`.
pub fn calibrate(
    model: &[u8],
    name: &str,
    pictures: &Pictures,
    method: Method,
    runtime: Runtime,
    threads: usize,
    progress: bool,
) -> Result<Ranges> {
    let (probe, tensors) = probe_model(model).with_context(|| format!("{name}: preparing calibration"))?;
    let passes = if matches!(method, Method::MinMax) { 1 } else { 2 };
    let bar = progress_bar(progress, (passes * pictures.inputs.len()) as u64);
    let run = |x: &ArrayD<f32>| -> Result<Vec<ArrayD<f32>>> {
        let out = runtime::run_once(runtime, &probe, vec![x.clone()], threads)
            .with_context(|| format!("running {name} on a calibration picture"))?;
        ensure!(
            out.len() == tensors.len(),
            "{name}: {} outputs for {} activations",
            out.len(),
            tensors.len()
        );
        bar.inc(1);
        Ok(out)
    };
    let mut ranges = vec![
        Range {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY
        };
        tensors.len()
    ];
    for x in &pictures.inputs {
        for (r, t) in ranges.iter_mut().zip(run(x)?) {
            for &v in t.iter() {
                r.min = r.min.min(v);
                r.max = r.max.max(v);
            }
        }
    }
    if let Method::Percentile(p) = method {
        let mut histograms: Vec<Histogram> = ranges.iter().map(|&r| Histogram::new(r)).collect();
        for x in &pictures.inputs {
            for (h, t) in histograms.iter_mut().zip(run(x)?) {
                h.add(t.iter().copied());
            }
        }
        ranges = histograms.iter().map(|h| h.percentile_range(p)).collect();
    }
    bar.finish_and_clear();
    Ok(tensors.into_iter().zip(ranges).collect())
}

/// The model with the activations to calibrate as its outputs, and their names.
fn probe_model(model: &[u8]) -> Result<(Vec<u8>, Vec<String>)> {
    let mut proto = ModelProto::decode(model).context("it does not parse as an ONNX model")?;
    let g = proto.graph.as_mut().context("the model has no graph")?;
    let tensors = quantised_activations(g);
    ensure!(
        !tensors.is_empty(),
        "it has no convolution between its first and its last: there is nothing to quantise"
    );
    g.output = tensors.iter().map(|t| float_value(t)).collect();
    Ok((proto.encode_to_vec(), tensors))
}

fn float_value(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: pb::data_type::FLOAT,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn progress_bar(progress: bool, len: u64) -> indicatif::ProgressBar {
    if !progress {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} runs  ETA {eta}")
            .expect("a valid template"),
    );
    b
}

/// Counts of an activation's values in `BINS` equal bins over its min-max range.
struct Histogram {
    range: Range,
    counts: Vec<u64>,
}

impl Histogram {
    fn new(range: Range) -> Histogram {
        Histogram {
            range,
            counts: vec![0; BINS],
        }
    }

    fn width(&self) -> f32 {
        ((self.range.max - self.range.min) / BINS as f32).max(f32::MIN_POSITIVE)
    }

    fn add(&mut self, values: impl Iterator<Item = f32>) {
        let (lo, w) = (self.range.min, self.width());
        for v in values {
            let bin = ((v - lo) / w) as usize;
            self.counts[bin.min(BINS - 1)] += 1;
        }
    }

    /// The range from the (100 - p)-th to the p-th percentile, each rounded outwards
    /// to its bin's edge, and never beyond the min-max range.
    fn percentile_range(&self, p: f64) -> Range {
        let total: u64 = self.counts.iter().sum();
        let tail = (total as f64 * (1.0 - p / 100.0)).floor() as u64;
        let (lo, w) = (self.range.min, self.width());
        let below = first_bin_past(self.counts.iter(), tail);
        let above = BINS - 1 - first_bin_past(self.counts.iter().rev(), tail);
        Range {
            min: (lo + below as f32 * w).max(self.range.min),
            max: (lo + (above + 1) as f32 * w).min(self.range.max),
        }
    }
}

/// The index of the first bin at which the running count exceeds `tail`.
fn first_bin_past<'a>(counts: impl Iterator<Item = &'a u64>, tail: u64) -> usize {
    let mut seen = 0;
    for (i, c) in counts.enumerate() {
        seen += c;
        if seen > tail {
            return i;
        }
    }
    BINS - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_clip_the_tails_and_min_max_keeps_them() {
        // 0..=9999 and one outlier at 1e6.
        let values: Vec<f32> = (0..10_000).map(|v| v as f32).chain([1e6]).collect();
        let r = Range { min: 0.0, max: 1e6 };
        let mut h = Histogram::new(r);
        h.add(values.iter().copied());
        let clipped = h.percentile_range(99.9);
        assert_eq!(clipped.min, 0.0);
        // Every ordinary value lies in the first bins (width 1e6 / 2048 = 488): the
        // outlier alone is past the 99.9th percentile.
        assert!(clipped.max > 9_999.0 && clipped.max < 10_500.0, "{clipped:?}");
        assert_eq!(h.percentile_range(100.0), r);
    }
}
