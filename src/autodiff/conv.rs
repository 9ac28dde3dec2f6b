//! A convolution's gradients, spelled the way that is fast.
//!
//! Input gradient, dx = the adjoint of the conv applied to dy, two spellings:
//! ONNX's ConvTranspose with the same weight, or a plain Conv of dy with the kernel
//! flipped and its first two axes swapped (padding k - 1 - p). Each wins on some
//! shapes in ONNX Runtime's CPU kernels: the flipped Conv is 1.5-3x faster when dx
//! has at least as many channels as dy, ConvTranspose when it has far fewer
//! (tools/bench in DESIGN.md; `tune` measures instead of guessing).
//!
//! Weight gradient, dW[o, i, ky, kx] = sum over n, h, w of dy[n, o, h, w] * x_pad[n, i, h + ky, w + kx].
//! The textbook spelling, one Conv over batch/channel-swapped tensors, is the
//! slowest in ONNX Runtime (DESIGN.md: 2.3-5x). Instead: k*k shifted copies of
//! one operand (Pad, Slice per tap, Concat: an im2col in standard ops), then one
//! batched MatMul against the other and a sum over the batch. Copying whichever
//! of x and dy has fewer channels moves the least memory (128 -> 32 channels:
//! shifting dy is 2.3x faster than shifting x). A 1x1 conv needs no copies.
//!
//! Grouped convs (group and depthwise convolutions) take the same spellings: the
//! adjoint is a grouped ConvTranspose, or a grouped Conv with each group's kernel
//! flipped and swapped; the weight gradient contracts each group's columns with
//! its own slice of the other operand, one batched MatMul over the groups, so no
//! product between groups is computed and thrown away. Where each group has one input
//! channel (depthwise) there is nothing to multiply as matrices: each tap's window times
//! the other operand, summed (tract: 10-20x faster than the batched MatMul).

use super::Emitter;
use crate::ir::{Op, Outlet};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a conv's input gradient is spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputGrad {
    ConvTranspose,
    FlippedConv,
}

/// Which operand of a conv's weight gradient is copied k*k times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightGrad {
    ShiftInput,
    ShiftOutputGrad,
}

/// One conv's spelling of its two gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvSpelling {
    pub input: InputGrad,
    pub weight: WeightGrad,
}

/// A conv as its gradients see it: input [N, I, H, W], weight [O, I / group, kh, kw], pads, group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvShape {
    pub x: [usize; 4],
    pub w: [usize; 4],
    pub pads: [usize; 4],
    pub group: usize,
}

impl ConvShape {
    /// Whether the flipped-kernel Conv can express the adjoint (padding k - 1 - p >= 0).
    pub fn flippable(&self) -> bool {
        let [pt, pl, pb, pr] = self.pads;
        pt.max(pb) < self.w[2] && pl.max(pr) < self.w[3]
    }

    pub fn is_pointwise(&self) -> bool {
        self.w[2] == 1 && self.w[3] == 1 && self.pads == [0; 4]
    }

    /// The spelling chosen without measuring: the flipped Conv when dx has at least as
    /// many channels as dy (always for a 1x1 conv, a plain GEMM), and the shift of the
    /// operand with fewer channels. (`Spellings::of` keeps ConvTranspose where the flip
    /// cannot express the adjoint.)
    pub fn rule(&self) -> ConvSpelling {
        let (o, i) = (self.w[0], self.x[1]);
        let input = if i >= o || self.is_pointwise() {
            InputGrad::FlippedConv
        } else {
            InputGrad::ConvTranspose
        };
        let weight = if i <= o {
            WeightGrad::ShiftInput
        } else {
            WeightGrad::ShiftOutputGrad
        };
        ConvSpelling { input, weight }
    }
}

/// The spellings of a graph's convs: one forced on all (tests, benchmarks), or those
/// measured for each shape (`tune`), and the rule for the rest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spellings {
    pub forced: Option<ConvSpelling>,
    pub measured: BTreeMap<ConvShape, ConvSpelling>,
}

impl Spellings {
    pub fn forced(s: ConvSpelling) -> Spellings {
        Spellings {
            forced: Some(s),
            measured: BTreeMap::new(),
        }
    }

    pub fn of(&self, shape: &ConvShape) -> ConvSpelling {
        let mut s = self
            .forced
            .or_else(|| self.measured.get(shape).copied())
            .unwrap_or_else(|| shape.rule());
        if !shape.flippable() {
            s.input = InputGrad::ConvTranspose;
        }
        s
    }
}

/// dx of a conv, as `spelling` says.
pub fn input_grad(e: &mut Emitter, dy: Outlet, w: Outlet, shape: &ConvShape, spelling: InputGrad) -> Result<Outlet> {
    let (pads, group) = (shape.pads, shape.group);
    match spelling {
        InputGrad::ConvTranspose => e.op(Op::ConvTranspose { pads, group }, &[dy, w]),
        InputGrad::FlippedConv => {
            let [_, _, kh, kw] = shape.w;
            let [pt, pl, pb, pr] = pads;
            let swapped = swap_within_groups(e, w, shape)?;
            let kernel = if kh * kw == 1 {
                swapped
            } else {
                e.op(Op::Flip { axes: vec![2, 3] }, &[swapped])?
            };
            let pads = [kh - 1 - pt, kw - 1 - pl, kh - 1 - pb, kw - 1 - pr];
            e.op(Op::Conv { pads, group }, &[dy, kernel])
        }
    }
}

/// The weight [O, I / G, kh, kw] with each group's filter and channel axes swapped:
/// [I, O / G, kh, kw], the kernel of the adjoint as a grouped Conv.
fn swap_within_groups(e: &mut Emitter, w: Outlet, shape: &ConvShape) -> Result<Outlet> {
    if shape.group == 1 {
        return e.op(Op::Transpose { perm: vec![1, 0, 2, 3] }, &[w]);
    }
    let [o, ig, kh, kw] = shape.w;
    let g = shape.group;
    rearrange(
        e,
        w,
        &[g, o / g, ig, kh, kw],
        &[0, 2, 1, 3, 4],
        &[g * ig, o / g, kh, kw],
    )
}

/// dW of a conv, as `spelling` says.
pub fn weight_grad(e: &mut Emitter, x: Outlet, dy: Outlet, shape: &ConvShape, spelling: WeightGrad) -> Result<Outlet> {
    if shape.group > 1 {
        return grouped_weight_grad(e, x, dy, shape, spelling);
    }
    let [o, i, kh, kw] = shape.w;
    let pads = shape.pads;
    let taps = kh * kw;
    if taps == 1 && pads == [0; 4] {
        let xf = flatten_spatial(e, x)?;
        let dyf = flatten_spatial(e, dy)?;
        let dw = contract(e, dyf, xf)?; // [O, I]
        return e.op(
            Op::Reshape {
                shape: vec![o as i64, i as i64, 1, 1],
            },
            &[dw],
        );
    }
    let shift_x = spelling == WeightGrad::ShiftInput;
    let cols = shifted(e, x, dy, shape, shift_x)?;
    let colsf = flatten_spatial(e, cols)?;
    if shift_x {
        let dyf = flatten_spatial(e, dy)?;
        let dw = contract(e, colsf, dyf)?; // [taps * I, O], row = tap * I + i
        rearrange(e, dw, &[taps, i, o], &[2, 1, 0], &[o, i, kh, kw])
    } else {
        let xf = flatten_spatial(e, x)?;
        let dw = contract(e, colsf, xf)?; // [taps * O, I], row = tap * O + o
        rearrange(e, dw, &[taps, o, i], &[1, 2, 0], &[o, i, kh, kw])
    }
}

/// dW of a grouped conv: the same shifted columns, contracted group by group.
/// Shifting x: columns [N, taps * I, L] against dy [N, O, L] give, per group,
/// [taps * I/G, O/G]; shifting dy: columns [N, taps * O, L] against x give
/// [taps * O/G, I/G]. Either is then laid out as [O, I/G, kh, kw].
fn grouped_weight_grad(
    e: &mut Emitter,
    x: Outlet,
    dy: Outlet,
    shape: &ConvShape,
    spelling: WeightGrad,
) -> Result<Outlet> {
    let [o, ig, kh, kw] = shape.w;
    let (g, taps) = (shape.group, kh * kw);
    let pointwise = shape.is_pointwise();
    // A 1x1 conv has nothing to shift: its columns are x itself.
    let shift_x = spelling == WeightGrad::ShiftInput || pointwise;
    if ig == 1 {
        return one_channel_groups_weight_grad(e, x, dy, shape, shift_x);
    }
    let (cols, other, cols_group, other_group) = match (shift_x, pointwise) {
        (true, true) => (x, dy, ig, o / g),
        (true, false) => (shifted(e, x, dy, shape, true)?, dy, ig, o / g),
        (false, _) => (shifted(e, x, dy, shape, false)?, x, o / g, ig),
    };
    let (n, l) = {
        let s = e.shape(cols)?;
        (s[0], s[2] * s[3])
    };
    // [N, taps, G, P, L] -> [G, taps, P, N, L] -> [G, taps * P, N * L]
    let cols = rearrange(
        e,
        cols,
        &[n, taps, g, cols_group, l],
        &[2, 1, 3, 0, 4],
        &[g, taps * cols_group, n * l],
    )?;
    // [N, G, Q, L] -> [G, N, L, Q] -> [G, N * L, Q]
    let other = rearrange(
        e,
        other,
        &[n, g, other_group, l],
        &[1, 0, 3, 2],
        &[g, n * l, other_group],
    )?;
    let dw = e.op(Op::MatMul, &[cols, other])?; // [G, taps * P, Q]
                                                // To [G, O/G, I/G, taps]: P is I/G when x was shifted, O/G when dy was.
    let perm: &[usize] = if shift_x { &[0, 3, 2, 1] } else { &[0, 2, 3, 1] };
    rearrange(e, dw, &[g, taps, cols_group, other_group], perm, &[o, ig, kh, kw])
}

/// dW of a conv whose groups each see one input channel (depthwise, with or without a
/// channel multiplier M = O/G). Each group's product is [taps, 1] x [1, M] summed over
/// N * L: too thin for a MatMul. tract spends 10-20x longer on the batched one over G
/// groups than on this, most of it packing the MatMul's operands. So per tap, the window [N, G * P, H, W]
/// times the other operand [N, G * Q, H, W] (one of P, Q is 1, the other M; seen as
/// [N, G, P, L] and [N, G, Q, L] when M > 1), summed over N and the pixels: [1, G, M, 1],
/// and the taps concatenated last: no column matrix is built (docs/speed.md).
fn one_channel_groups_weight_grad(
    e: &mut Emitter,
    x: Outlet,
    dy: Outlet,
    shape: &ConvShape,
    shift_x: bool,
) -> Result<Outlet> {
    let [o, _, kh, kw] = shape.w;
    let (g, m) = (shape.group, o / shape.group);
    let i64s = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<_>>();
    let windows = windows(e, x, dy, shape, shift_x)?;
    let (other, p, q) = if shift_x { (dy, 1, m) } else { (x, m, 1) };
    // Depthwise proper (M = 1): same shapes, no reshape; the taps land on axis 2 of [1, G, taps, 1].
    let split = m > 1;
    let s = e.shape(other)?;
    let grouped = i64s(&[s[0], g, q, s[2] * s[3]]);
    let other = if split {
        e.op(Op::Reshape { shape: grouped.clone() }, &[other])?
    } else {
        other
    };
    let axes = if split { vec![0, 3] } else { vec![0, 2, 3] };
    let mut sums = Vec::with_capacity(windows.len());
    for window in windows {
        let window = if split {
            let mut shape = grouped.clone();
            shape[2] = p as i64;
            e.op(Op::Reshape { shape }, &[window])?
        } else {
            window
        };
        let product = e.op(Op::Mul, &[window, other])?;
        let sum = Op::ReduceSum {
            axes: axes.clone(),
            keepdims: true,
        };
        sums.push(e.op(sum, &[product])?);
    }
    // [1, G, M, taps] or [1, G, taps, 1]: either is [O, 1, kh, kw] in memory order.
    let axis = if split { 3 } else { 2 };
    let dw = e.op(Op::Concat { axis }, &sums)?;
    e.op(
        Op::Reshape {
            shape: i64s(&[o, 1, kh, kw]),
        },
        &[dw],
    )
}

/// Where tap k of a kernel of `size` taps starts in the padded operand.
type TapStart = fn(usize, usize) -> usize;

/// The k*k windows of the shifted operand of a weight gradient, in tap order: x
/// padded as the conv pads it, windows the size of dy (tap (ky, kx) starting at ky, kx);
/// or, with `shift_x` false, dy padded by k - 1 - p, windows the size of x (tap (ky, kx)
/// starting at k - 1 - ky): substituting h' = h + ky - pt, dW[o, i, ky, kx] =
/// sum x[i, h'] dy[o, h' - ky + pt].
fn windows(e: &mut Emitter, x: Outlet, dy: Outlet, shape: &ConvShape, shift_x: bool) -> Result<Vec<Outlet>> {
    let [_, _, kh, kw] = shape.w;
    let [pt, pl, pb, pr] = shape.pads;
    let (padded, size, start): (Outlet, Vec<usize>, TapStart) = if shift_x {
        let pads = vec![0, 0, pt, pl, 0, 0, pb, pr];
        (e.op(Op::Pad { pads }, &[x])?, e.shape(dy)?, |k, _| k)
    } else {
        let pads = vec![0, 0, kh - 1 - pt, kw - 1 - pl, 0, 0, kh - 1 - pb, kw - 1 - pr];
        (e.op(Op::Pad { pads }, &[dy])?, e.shape(x)?, |k, size| size - 1 - k)
    };
    let mut windows = Vec::with_capacity(kh * kw);
    for ky in 0..kh {
        for kx in 0..kw {
            let (y0, x0) = (start(ky, kh), start(kx, kw));
            let slice = Op::Slice {
                axes: vec![2, 3],
                starts: vec![y0, x0],
                ends: vec![y0 + size[2], x0 + size[3]],
            };
            windows.push(e.op(slice, &[padded])?);
        }
    }
    Ok(windows)
}

/// The windows concatenated over channels: [N, taps * C, h, w], row = tap * C + c.
fn shifted(e: &mut Emitter, x: Outlet, dy: Outlet, shape: &ConvShape, shift_x: bool) -> Result<Outlet> {
    let windows = windows(e, x, dy, shape, shift_x)?;
    e.op(Op::Concat { axis: 1 }, &windows)
}

/// `t` seen as `split`, its axes permuted by `perm`, seen as `merged`: how the gradients
/// move a group or tap axis past the others.
fn rearrange(e: &mut Emitter, t: Outlet, split: &[usize], perm: &[usize], merged: &[usize]) -> Result<Outlet> {
    let i64s = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<_>>();
    let t = e.op(Op::Reshape { shape: i64s(split) }, &[t])?;
    let t = e.op(Op::Transpose { perm: perm.to_vec() }, &[t])?;
    e.op(Op::Reshape { shape: i64s(merged) }, &[t])
}

/// [N, C, H, W] -> [N, C, H * W]
fn flatten_spatial(e: &mut Emitter, t: Outlet) -> Result<Outlet> {
    let s = e.shape(t)?;
    e.op(
        Op::Reshape {
            shape: vec![s[0] as i64, s[1] as i64, (s[2] * s[3]) as i64],
        },
        &[t],
    )
}

/// sum over n of a[n] b[n]^T for a [N, P, L] and b [N, Q, L]: [P, Q]. The
/// operand with fewer rows is the one transposed (copied).
fn contract(e: &mut Emitter, a: Outlet, b: Outlet) -> Result<Outlet> {
    let (p, q) = (e.shape(a)?[1], e.shape(b)?[1]);
    if q <= p {
        let bt = e.op(Op::Transpose { perm: vec![0, 2, 1] }, &[b])?;
        let prod = e.op(Op::MatMul, &[a, bt])?;
        e.op(
            Op::ReduceSum {
                axes: vec![0],
                keepdims: false,
            },
            &[prod],
        )
    } else {
        let at = e.op(Op::Transpose { perm: vec![0, 2, 1] }, &[a])?;
        let prod = e.op(Op::MatMul, &[b, at])?;
        let sum = e.op(
            Op::ReduceSum {
                axes: vec![0],
                keepdims: false,
            },
            &[prod],
        )?;
        e.op(Op::Transpose { perm: vec![1, 0] }, &[sum])
    }
}
