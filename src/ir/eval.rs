//! Host evaluation of the ops constant folding meets: elementwise arithmetic,
//! reductions and reshapes on constants. Convolutions run in a runtime, not here.

use super::ops::Op;
use super::tensor::Tensor;
use anyhow::{bail, Context, Result};
use ndarray::{ArrayD, Axis, IxDyn};

/// Whether `eval` can compute this op.
pub fn is_foldable(op: &Op) -> bool {
    matches!(
        op,
        Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Sqrt
            | Op::Relu
            | Op::ReduceSum { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
    )
}

pub fn eval(op: &Op, inputs: &[&Tensor]) -> Result<Tensor> {
    let f = |i: usize| -> Result<&ArrayD<f32>> {
        inputs
            .get(i)
            .and_then(|t| t.as_f32())
            .with_context(|| format!("{}: input {i} is not an f32 constant", op.name()))
    };
    let binary = |fun: fn(f32, f32) -> f32| -> Result<Tensor> {
        let (a, b) = (f(0)?, f(1)?);
        let shape =
            co_broadcast(a.shape(), b.shape()).with_context(|| format!("{}: shapes do not broadcast", op.name()))?;
        let a = a.broadcast(IxDyn(&shape)).unwrap();
        let b = b.broadcast(IxDyn(&shape)).unwrap();
        Ok(Tensor::F32(
            ndarray::Zip::from(&a).and(&b).map_collect(|&x, &y| fun(x, y)),
        ))
    };
    Ok(match op {
        Op::Add => binary(|x, y| x + y)?,
        Op::Sub => binary(|x, y| x - y)?,
        Op::Mul => binary(|x, y| x * y)?,
        Op::Div => binary(|x, y| x / y)?,
        Op::Sqrt => Tensor::F32(f(0)?.mapv(f32::sqrt)),
        Op::Relu => Tensor::F32(f(0)?.mapv(|x| x.max(0.0))),
        Op::ReduceSum { axes, keepdims } => {
            let mut a = f(0)?.clone();
            let mut sorted = axes.clone();
            sorted.sort_unstable();
            for &ax in sorted.iter().rev() {
                a = a.sum_axis(Axis(ax));
                if *keepdims {
                    a = a.insert_axis(Axis(ax));
                }
            }
            Tensor::F32(a)
        }
        Op::Reshape { shape } => {
            let a = f(0)?;
            let known: usize = shape.iter().filter(|&&d| d > 0).map(|&d| d as usize).product();
            let dims: Vec<usize> = shape
                .iter()
                .map(|&d| if d == -1 { a.len() / known } else { d as usize })
                .collect();
            Tensor::F32(
                a.as_standard_layout()
                    .into_owned()
                    .into_shape_with_order(IxDyn(&dims))?,
            )
        }
        Op::Transpose { perm } => Tensor::F32(
            f(0)?
                .clone()
                .permuted_axes(IxDyn(perm))
                .as_standard_layout()
                .into_owned(),
        ),
        other => bail!("{} is not evaluated on the host", other.name()),
    })
}

fn co_broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        if i + s.len() >= rank {
            s[i + s.len() - rank]
        } else {
            1
        }
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}
