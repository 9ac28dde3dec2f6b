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

/// A conv as its gradients see it: input [N, I, H, W], weight [O, I, kh, kw], pads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvShape {
    pub x: [usize; 4],
    pub w: [usize; 4],
    pub pads: [usize; 4],
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
        let (o, i) = (self.w[0], self.w[1]);
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
    let pads = shape.pads;
    match spelling {
        InputGrad::ConvTranspose => e.op(Op::ConvTranspose { pads }, &[dy, w]),
        InputGrad::FlippedConv => {
            let [_, _, kh, kw] = shape.w;
            let [pt, pl, pb, pr] = pads;
            let swapped = e.op(Op::Transpose { perm: vec![1, 0, 2, 3] }, &[w])?;
            let kernel = if kh * kw == 1 {
                swapped
            } else {
                e.op(Op::Flip { axes: vec![2, 3] }, &[swapped])?
            };
            let pads = [kh - 1 - pt, kw - 1 - pl, kh - 1 - pb, kw - 1 - pr];
            e.op(Op::Conv { pads }, &[dy, kernel])
        }
    }
}

pub fn weight_grad(
    e: &mut Emitter,
    x: Outlet,
    dy: Outlet,
    w: Outlet,
    pads: [usize; 4],
    spelling: WeightGrad,
) -> Result<Outlet> {
    let ws = e.shape(w)?;
    let (o, i, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
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
    e.op(Op::Concat { axis: 1 }, &windows)
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
