//! The weight gradient of a convolution, spelled the way that is fast.
//!
//! dW[o, i, ky, kx] = sum over n, h, w of dy[n, o, h, w] * x_pad[n, i, h + ky, w + kx].
//! The textbook spelling, one Conv over batch/channel-swapped tensors, is the
//! slowest in ONNX Runtime (DESIGN.md: 2.3-5x). Instead: k*k shifted copies of
//! one operand (Pad, Slice per tap, Concat: an im2col in standard ops), then one
//! batched MatMul against the other and a sum over the batch. Copying whichever
//! of x and dy has fewer channels moves the least memory (128 -> 32 channels:
//! shifting dy is 2.3x faster than shifting x). A 1x1 conv needs no copies.

use super::Emitter;
use crate::ir::{Op, Outlet};
use anyhow::Result;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightGradLowering {
    /// Shift whichever of x and dy has fewer channels.
    #[default]
    Auto,
    ShiftInput,
    ShiftOutputGrad,
}

pub fn weight_grad(
    e: &mut Emitter,
    x: Outlet,
    dy: Outlet,
    w: Outlet,
    pads: [usize; 4],
    lowering: WeightGradLowering,
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
    let shift_input = match lowering {
        WeightGradLowering::Auto => i <= o,
        WeightGradLowering::ShiftInput => true,
        WeightGradLowering::ShiftOutputGrad => false,
    };
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
