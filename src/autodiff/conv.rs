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
    let [o, ig, kh, kw] = shape.w.map(|d| d as i64);
    let g = shape.group as i64;
    let split = e.op(
        Op::Reshape {
            shape: vec![g, o / g, ig, kh, kw],
        },
        &[w],
    )?;
    let swapped = e.op(
        Op::Transpose {
            perm: vec![0, 2, 1, 3, 4],
        },
        &[split],
    )?;
    e.op(
        Op::Reshape {
            shape: vec![g * ig, o / g, kh, kw],
        },
        &[swapped],
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
    let shift_input = spelling == WeightGrad::ShiftInput;
    let (xs, ys) = (e.shape(x)?, e.shape(dy)?);
    let [pt, pl, pb, pr] = pads;
    if shift_input {
        // Tap (ky, kx) of x_pad, the size of dy: [N, taps * I, Ho, Wo].
        let xp = e.op(
            Op::Pad {
                pads: vec![0, 0, pt, pl, 0, 0, pb, pr],
            },
            &[x],
        )?;
        let cols = shifted(e, xp, kh, kw, ys[2], ys[3], |k, _| k)?;
        let colsf = flatten_spatial(e, cols)?;
        let dyf = flatten_spatial(e, dy)?;
        let dw = contract(e, colsf, dyf)?; // [taps * I, O], row = tap * I + i
        let dw = e.op(
            Op::Reshape {
                shape: vec![taps as i64, i as i64, o as i64],
            },
            &[dw],
        )?;
        let dw = e.op(Op::Transpose { perm: vec![2, 1, 0] }, &[dw])?;
        e.op(
            Op::Reshape {
                shape: vec![o as i64, i as i64, kh as i64, kw as i64],
            },
            &[dw],
        )
    } else {
        // Substituting h' = h + ky - pt: dW[o, i, ky, kx] = sum x[i, h'] dy[o, h' - ky + pt],
        // so shift dy instead, padded by k - 1 - p, tap (ky, kx) starting at k - 1 - ky.
        let dyp = e.op(
            Op::Pad {
                pads: vec![0, 0, kh - 1 - pt, kw - 1 - pl, 0, 0, kh - 1 - pb, kw - 1 - pr],
            },
            &[dy],
        )?;
        let cols = shifted(e, dyp, kh, kw, xs[2], xs[3], |k, size| size - 1 - k)?;
        let colsf = flatten_spatial(e, cols)?;
        let xf = flatten_spatial(e, x)?;
        let dw = contract(e, colsf, xf)?; // [taps * O, I], row = tap * O + o
        let dw = e.op(
            Op::Reshape {
                shape: vec![taps as i64, o as i64, i as i64],
            },
            &[dw],
        )?;
        let dw = e.op(Op::Transpose { perm: vec![1, 2, 0] }, &[dw])?;
        e.op(
            Op::Reshape {
                shape: vec![o as i64, i as i64, kh as i64, kw as i64],
            },
            &[dw],
        )
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
    let [pt, pl, pb, pr] = shape.pads;
    let pointwise = shape.is_pointwise();
    // A 1x1 conv has nothing to shift: its columns are x itself.
    let shift_x = spelling == WeightGrad::ShiftInput || pointwise;
    if ig == 1 {
        return one_channel_groups_weight_grad(e, x, dy, shape, shift_x);
    }
    let (cols, other, cols_group, other_group) = if shift_x {
        let ys = e.shape(dy)?;
        let cols = if pointwise {
            x
        } else {
            let xp = e.op(
                Op::Pad {
                    pads: vec![0, 0, pt, pl, 0, 0, pb, pr],
                },
                &[x],
            )?;
            shifted(e, xp, kh, kw, ys[2], ys[3], |k, _| k)?
        };
        (cols, dy, ig, o / g)
    } else {
        let xs = e.shape(x)?;
        let dyp = e.op(
            Op::Pad {
                pads: vec![0, 0, kh - 1 - pt, kw - 1 - pl, 0, 0, kh - 1 - pb, kw - 1 - pr],
            },
            &[dy],
        )?;
        (shifted(e, dyp, kh, kw, xs[2], xs[3], |k, size| size - 1 - k)?, x, o / g, ig)
    };
    let (n, l) = {
        let s = e.shape(cols)?;
        (s[0], s[2] * s[3])
    };
    let i64s = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<_>>();
    // [N, taps, G, P, L] -> [G, taps, P, N, L] -> [G, taps * P, N * L]
    let cols = e.op(
        Op::Reshape {
            shape: i64s(&[n, taps, g, cols_group, l]),
        },
        &[cols],
    )?;
    let cols = e.op(
        Op::Transpose {
            perm: vec![2, 1, 3, 0, 4],
        },
        &[cols],
    )?;
    let cols = e.op(
        Op::Reshape {
            shape: i64s(&[g, taps * cols_group, n * l]),
        },
        &[cols],
    )?;
    // [N, G, Q, L] -> [G, N, L, Q] -> [G, N * L, Q]
    let other = e.op(
        Op::Reshape {
            shape: i64s(&[n, g, other_group, l]),
        },
        &[other],
    )?;
    let other = e.op(Op::Transpose { perm: vec![1, 0, 3, 2] }, &[other])?;
    let other = e.op(
        Op::Reshape {
            shape: i64s(&[g, n * l, other_group]),
        },
        &[other],
    )?;
    let dw = e.op(Op::MatMul, &[cols, other])?; // [G, taps * P, Q]
    let dw = e.op(
        Op::Reshape {
            shape: i64s(&[g, taps, cols_group, other_group]),
        },
        &[dw],
    )?;
    // To [G, O/G, I/G, taps]: P is I/G when x was shifted, O/G when dy was.
    let perm = if shift_x {
        vec![0, 3, 2, 1]
    } else {
        vec![0, 2, 3, 1]
    };
    let dw = e.op(Op::Transpose { perm }, &[dw])?;
    e.op(
        Op::Reshape {
            shape: i64s(&[o, ig, kh, kw]),
        },
        &[dw],
    )
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
    let [pt, pl, pb, pr] = shape.pads;
    let i64s = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<_>>();
    let (windows, other, p, q) = if shift_x {
        let ys = e.shape(dy)?;
        let xp = e.op(
            Op::Pad {
                pads: vec![0, 0, pt, pl, 0, 0, pb, pr],
            },
            &[x],
        )?;
        (windows(e, xp, kh, kw, ys[2], ys[3], |k, _| k)?, dy, 1, m)
    } else {
        let xs = e.shape(x)?;
        let dyp = e.op(
            Op::Pad {
                pads: vec![0, 0, kh - 1 - pt, kw - 1 - pl, 0, 0, kh - 1 - pb, kw - 1 - pr],
            },
            &[dy],
        )?;
        (windows(e, dyp, kh, kw, xs[2], xs[3], |k, size| size - 1 - k)?, x, m, 1)
    };
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

/// The k*k windows of `padded` of size h x w, tap (ky, kx) starting at
/// `start(ky, kh), start(kx, kw)`, concatenated over channels.
fn shifted(
    e: &mut Emitter,
    padded: Outlet,
    kh: usize,
    kw: usize,
    h: usize,
    w: usize,
    start: impl Fn(usize, usize) -> usize,
) -> Result<Outlet> {
    let windows = windows(e, padded, kh, kw, h, w, start)?;
    e.op(Op::Concat { axis: 1 }, &windows)
}

/// The k*k windows of `padded` of size h x w, tap (ky, kx) starting at
/// `start(ky, kh), start(kx, kw)`, in tap order.
fn windows(
    e: &mut Emitter,
    padded: Outlet,
    kh: usize,
    kw: usize,
    h: usize,
    w: usize,
    start: impl Fn(usize, usize) -> usize,
) -> Result<Vec<Outlet>> {
    let mut windows = Vec::with_capacity(kh * kw);
    for ky in 0..kh {
        for kx in 0..kw {
            let (y0, x0) = (start(ky, kh), start(kx, kw));
            let slice = Op::Slice {
                axes: vec![2, 3],
                starts: vec![y0, x0],
                ends: vec![y0 + h, x0 + w],
            };
            windows.push(e.op(slice, &[padded])?);
        }
    }
    Ok(windows)
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
