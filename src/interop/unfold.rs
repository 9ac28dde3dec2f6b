//! An inference model's folded weights back in the training form, exactly: export
//! folded weight norm into each conv's weight, the input's 1 / range into the convs
//! that read it, and the output's x range + mean into the last convs (`export::fold`).
//! Each folded value came from a short chain of f32 roundings, so the value that
//! re-folds to it bit for bit is found by stepping ulps from the unrounded inverse;
//! weight norm is unfolded as v = w, g = ||w||, which re-folds to w * 1 exactly.

use crate::ir::{eval::eval, Graph, Op, ShuffleMode, Tensor};
use crate::models::{self, Arch, ModelConfig, Norm};
use anyhow::{bail, ensure, Context, Result};

/// How `inference_graph` folded one conv: an input scale, then an output scale and a
/// per-channel bias.
#[derive(Clone, Copy)]
struct Folds {
    input: Option<f32>,
    output: Option<f32>,
    /// Whether the output mean lands in this conv's bias.
    mean: bool,
}

/// Which convs the mean shift folded into, for srgraph's three networks.
fn folds_of(c: &ModelConfig, conv: &str) -> Folds {
    let input = 1.0f32 / c.pixel_range;
    let (reads_input, writes_output, takes_mean) = match c.arch {
        Arch::Edsr => (conv == "head.0", conv == "tail.1", conv == "tail.1"),
        _ => (
            conv == "head.0" || conv == "skip.0",
            conv == "tail.0" || conv == "skip.0",
            conv == "tail.0",
        ),
    };
    Folds {
        input: reads_input.then_some(input),
        output: writes_output.then_some(c.pixel_range),
        mean: takes_mean,
    }
}

/// The training-form parameters (srgraph's names) that `inference_graph` folds into `g`.
pub fn training_values_of_model(g: &Graph, c: &ModelConfig) -> Result<Vec<(String, Tensor)>> {
    ensure!(
        c.norm != Norm::Batch,
        "it uses batch norm, which folds into no reference layout; export or import its run's checkpoint.onnx instead"
    );
    let training = models::build_dry(c)?;
    let mut values = vec![];
    let mut inexact = 0usize;
    for (name, _) in training.params() {
        let Some(conv) = name.strip_suffix(".weight").or_else(|| name.strip_suffix(".weight_v")) else {
            continue;
        };
        let node = g
            .nodes
            .iter()
            .find(|n| n.name == format!("{conv}.conv") && matches!(n.op, Op::Conv { .. }))
            .with_context(|| format!("it has no conv {conv}.conv, which {} has", models::describe(c)))?;
        let constant = |i: usize| -> Result<&ndarray::ArrayD<f32>> {
            let o = node
                .inputs
                .get(i)
                .with_context(|| format!("{conv}.conv has no input {i}"))?;
            match &g.node(o.node).op {
                Op::Const(Tensor::F32(a)) => Ok(a),
                _ => bail!("{conv}.conv's input {i} is not a float constant"),
            }
        };
        let (w_folded, b_folded) = (constant(1)?, constant(2)?);
        let want = training
            .params()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.shape().to_vec());
        ensure!(
            Some(w_folded.shape().to_vec()) == want && b_folded.len() == w_folded.shape()[0],
            "{conv}.conv's weight is {:?} and bias {:?}, not what {} has",
            w_folded.shape(),
            b_folded.shape(),
            models::describe(c)
        );
        let f = folds_of(c, conv);
        let w = w_folded.mapv(|x| {
            let guess = x as f64 / (f.input.unwrap_or(1.0) as f64 * f.output.unwrap_or(1.0) as f64);
            refold_inverse(
                x,
                guess as f32,
                |v| {
                    let v = f.input.map_or(v, |s| v * s);
                    f.output.map_or(v, |s| v * s)
                },
                &mut inexact,
            )
        });
        let means = if f.mean {
            channel_means(c, b_folded.len())
        } else {
            vec![0.0; b_folded.len()]
        };
        let b: Vec<f32> = b_folded
            .iter()
            .zip(&means)
            .map(|(&x, &m)| {
                let scale = f.output.unwrap_or(1.0);
                let guess = (x as f64 - m as f64) / scale as f64;
                refold_inverse(
                    x,
                    guess as f32,
                    |v| {
                        let v = f.output.map_or(v, |s| v * s);
                        if f.mean {
                            v + m
                        } else {
                            v
                        }
                    },
                    &mut inexact,
                )
            })
            .collect();
        let w = Tensor::F32(w);
        if c.norm == Norm::Weight {
            let g = channel_norms(&w)?;
            values.push((format!("{conv}.weight_v"), w));
            values.push((format!("{conv}.weight_g"), g));
        } else {
            values.push((format!("{conv}.weight"), w));
        }
        values.push((format!("{conv}.bias"), Tensor::f32(&[b.len()], b)));
    }
    if inexact > 0 {
        eprintln!(
            "note: {inexact} folded weights have no value that folds back to them exactly; their nearest were kept"
        );
    }
    Ok(values)
}

/// The output mean per pre-shuffle channel of the conv it folded into (WDSR's tail
/// folds it through the pixel shuffle, EDSR's last conv takes it as is).
fn channel_means(c: &ModelConfig, channels: usize) -> Vec<f32> {
    if c.arch == Arch::Edsr {
        return c.channel_mean();
    }
    let s = c.scale;
    let mut pre = vec![0.0; channels];
    for (ch, &m) in c.channel_mean().iter().enumerate() {
        for k in 0..s * s {
            pre[ShuffleMode::source_channel(c.shuffle, ch, k, c.channels, s)] = m;
        }
    }
    pre
}

/// ||w|| per output channel of a [O, I, kh, kw] weight, computed by the very ops the
/// graph's weight norm runs (so that unfolding as g = ||w|| re-folds to w * 1 exactly).
pub(super) fn channel_norms(w: &Tensor) -> Result<Tensor> {
    let sq = eval(&Op::Mul, &[w, w])?;
    let sum = eval(
        &Op::ReduceSum {
            axes: vec![1, 2, 3],
            keepdims: true,
        },
        &[&sq],
    )?;
    eval(&Op::Sqrt, &[&sum])
}

/// The f32 nearest `guess` that `fold` maps to `target` exactly; the guess itself
/// when none within 64 ulps does (counted in `inexact`).
fn refold_inverse(target: f32, guess: f32, fold: impl Fn(f32) -> f32, inexact: &mut usize) -> f32 {
    if !target.is_finite() || !guess.is_finite() {
        return guess;
    }
    let (mut up, mut down) = (guess, guess);
    for _ in 0..=64 {
        if fold(up).to_bits() == target.to_bits() {
            return up;
        }
        if fold(down).to_bits() == target.to_bits() {
            return down;
        }
        up = up.next_up();
        down = down.next_down();
    }
    *inexact += 1;
    guess
}
