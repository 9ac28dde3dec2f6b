//! Losses between the super-resolved batch and the high-resolution one, in
//! pixel units ([0, 255]) as the reference code computes them.

use crate::ir::{Graph, Op, Outlet, Tensor};
use anyhow::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// mean |sr - hr|: EDSR's and WDSR's choice.
    L1,
    /// mean (sr - hr)^2
    Mse,
}

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::L1 => "l1",
            Loss::Mse => "mse",
        }
    }
}

/// The loss over the whole batch (a scalar), or per image ([N]) when `per_image`.
pub fn loss(g: &mut Graph, sr: Outlet, hr: Outlet, kind: Loss, per_image: bool) -> Result<Outlet> {
    let shape: Vec<usize> = g.fact(hr).shape.iter().map(|d| d.known().unwrap_or(0)).collect();
    let diff = g.wire("loss.diff", Op::Sub, &[sr, hr])?;
    let err = match kind {
        Loss::L1 => g.wire("loss.abs", Op::Abs, &[diff])?,
        Loss::Mse => g.wire("loss.sq", Op::Mul, &[diff, diff])?,
    };
    let (axes, count) = if per_image {
        (vec![1, 2, 3], shape[1..].iter().product::<usize>())
    } else {
        (vec![0, 1, 2, 3], shape.iter().product())
    };
    anyhow::ensure!(count > 0, "the loss needs a fixed batch and patch size");
    let sum = g.wire("loss.sum", Op::ReduceSum { axes, keepdims: false }, &[err])?;
    let n = g.constant("loss.count", Tensor::scalar(count as f32));
    g.wire("loss", Op::Div, &[sum, n])
}
