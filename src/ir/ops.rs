//! The ops srgraph's graphs are made of, each with its shape inference.
//!
//! Convolutions are stride 1 and dilation 1, all the networks use; kernels may be
//! non-square (flattened k x 1 and 1 x k) and grouped (group and depthwise convolutions).
//! Attributes that ONNX passes as constant inputs (reduce axes, reshape shapes)
//! are attributes here; the ONNX codec turns them into initialisers and back.

use super::dim::{self, Dim, Shape};
use super::tensor::{DType, Tensor};
use anyhow::{bail, ensure, Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShuffleMode {
    /// column-row-depth: PyTorch's `PixelShuffle` (the official WDSR and EDSR code).
    Crd,
    /// depth-column-row: TensorFlow's `depth_to_space` (krasserm's Keras code).
    Dcr,
}

impl ShuffleMode {
    pub fn onnx_name(self) -> &'static str {
        match self {
            ShuffleMode::Crd => "CRD",
            ShuffleMode::Dcr => "DCR",
        }
    }

    /// The pre-shuffle channel that feeds output channel `c` at sub-pixel `k` (`k < s*s`).
    pub fn source_channel(self, c: usize, k: usize, out_channels: usize, s: usize) -> usize {
        match self {
            ShuffleMode::Crd => c * s * s + k,
            ShuffleMode::Dcr => k * out_channels + c,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A graph input; its fact is given when it is added.
    Input,
    /// A constant: folded weights, mean values, scales.
    Const(Tensor),
    /// A named trainable parameter, with its current value.
    Param(Tensor),
    /// Named state that is not trained but updated (batch norm's running statistics).
    Buffer(Tensor),
    /// 2-D convolution, stride 1; inputs: x [N, C, H, W], weight [O, C / group, kh, kw],
    /// optional bias [O]. Each of `group` slices of the channels has its own filters.
    Conv {
        pads: [usize; 4],
        group: usize,
    },
    Relu,
    Add,
    Sub,
    Mul,
    Div,
    Sqrt,
    ReduceSum {
        axes: Vec<usize>,
        keepdims: bool,
    },
    DepthToSpace {
        block: usize,
        mode: ShuffleMode,
    },
    Reshape {
        shape: Vec<i64>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    /// The adjoint of `Conv` with the same weight and group: inputs dy [N, O, H, W],
    /// weight [O, C / group, kh, kw]; output [N, C, ...].
    ConvTranspose {
        pads: [usize; 4],
        group: usize,
    },
    /// [..., M, K] x [..., K, N] with equal leading dims.
    MatMul,
    Greater,
    /// (condition, a, b), broadcasting.
    Where,
    Neg,
    Abs,
    Sign,
    Pow,
    Expand {
        shape: Vec<usize>,
    },
    /// Zero padding: `pads` = [begin of each axis..., end of each axis...], as ONNX.
    Pad {
        pads: Vec<usize>,
    },
    Slice {
        axes: Vec<usize>,
        starts: Vec<usize>,
        ends: Vec<usize>,
    },
    Concat {
        axis: usize,
    },
    /// Reverse the order along each of `axes` (a conv kernel's spatial axes, for the
    /// flipped-kernel input gradient). ONNX has no Flip: it is written as a Slice with step -1.
    Flip {
        axes: Vec<usize>,
    },
    Cast {
        to: DType,
    },
    /// Round half to even, as ONNX's Round and QuantizeLinear: the step of fake
    /// quantisation (quantisation-aware training).
    Round,
    /// Clamp to [min, max].
    Clip {
        min: f32,
        max: f32,
    },
    /// The largest value along `axes`, which are kept with size 1.
    ReduceMax {
        axes: Vec<usize>,
    },
    /// Its input, through which no gradient passes (PyTorch's `detach`); written as
    /// ONNX's Identity. Fake quantisation's weight scales are computed under it.
    StopGradient,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    pub dtype: DType,
    pub shape: Shape,
}

impl Fact {
    pub fn f32(shape: Shape) -> Fact {
        Fact {
            dtype: DType::F32,
            shape,
        }
    }

    pub fn of(t: &Tensor) -> Fact {
        Fact {
            dtype: t.dtype(),
            shape: dim::known(t.shape()),
        }
    }
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "Input",
            Op::Const(_) => "Const",
            Op::Param(_) => "Param",
            Op::Buffer(_) => "Buffer",
            Op::Conv { .. } => "Conv",
            Op::Relu => "Relu",
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::Sqrt => "Sqrt",
            Op::ReduceSum { .. } => "ReduceSum",
            Op::DepthToSpace { .. } => "DepthToSpace",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::ConvTranspose { .. } => "ConvTranspose",
            Op::MatMul => "MatMul",
            Op::Greater => "Greater",
            Op::Where => "Where",
            Op::Neg => "Neg",
            Op::Abs => "Abs",
            Op::Sign => "Sign",
            Op::Pow => "Pow",
            Op::Expand { .. } => "Expand",
            Op::Pad { .. } => "Pad",
            Op::Slice { .. } => "Slice",
            Op::Concat { .. } => "Concat",
            Op::Flip { .. } => "Flip",
            Op::Cast { .. } => "Cast",
            Op::Round => "Round",
            Op::Clip { .. } => "Clip",
            Op::ReduceMax { .. } => "ReduceMax",
            Op::StopGradient => "StopGradient",
        }
    }

    /// Constants, parameters and buffers: values held by the graph, not computed.
    pub fn is_value(&self) -> bool {
        matches!(self, Op::Const(_) | Op::Param(_) | Op::Buffer(_))
    }

    /// The number of inputs the op takes, as (min, max).
    fn arity(&self) -> (usize, usize) {
        match self {
            Op::Input | Op::Const(_) | Op::Param(_) | Op::Buffer(_) => (0, 0),
            Op::Conv { .. } => (2, 3),
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Greater | Op::MatMul | Op::ConvTranspose { .. } => {
                (2, 2)
            }
            Op::Where => (3, 3),
            Op::Concat { .. } => (1, usize::MAX),
            _ => (1, 1),
        }
    }

    /// The output facts of this op given its input facts.
    pub fn infer(&self, inputs: &[&Fact]) -> Result<Vec<Fact>> {
        let (lo, hi) = self.arity();
        ensure!(
            (lo..=hi).contains(&inputs.len()),
            "{} takes {lo}..={hi} inputs, got {}",
            self.name(),
            inputs.len()
        );
        let fact = match self {
            Op::Input => bail!("an Input's fact is given, not inferred"),
            Op::Const(t) | Op::Param(t) | Op::Buffer(t) => Fact::of(t),
            Op::Conv { pads, group } => conv_fact(inputs, pads, *group)?,
            Op::ConvTranspose { pads, group } => conv_transpose_fact(inputs, pads, *group)?,
            Op::Relu | Op::Sqrt | Op::Neg | Op::Abs | Op::Sign | Op::Round | Op::StopGradient => inputs[0].clone(),
            Op::Clip { min, max } => {
                ensure!(min <= max, "Clip to [{min}, {max}]");
                inputs[0].clone()
            }
            Op::ReduceMax { axes } => {
                let x = inputs[0];
                ensure!(
                    axes.iter().all(|&a| a < x.shape.len()),
                    "ReduceMax axes {axes:?} on rank {}",
                    x.shape.len()
                );
                let shape = (x.shape.iter().enumerate())
                    .map(|(i, d)| if axes.contains(&i) { Dim::Known(1) } else { d.clone() })
                    .collect();
                Fact { dtype: x.dtype, shape }
            }
            Op::Flip { axes } => {
                let rank = inputs[0].shape.len();
                ensure!(axes.iter().all(|&a| a < rank), "Flip of axes {axes:?} of rank {rank}");
                inputs[0].clone()
            }
            Op::Cast { to } => Fact {
                dtype: *to,
                shape: inputs[0].shape.clone(),
            },
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Greater => {
                let (a, b) = (inputs[0], inputs[1]);
                ensure!(
                    a.dtype == b.dtype,
                    "{} of {} and {}",
                    self.name(),
                    a.dtype.name(),
                    b.dtype.name()
                );
                let dtype = if *self == Op::Greater { DType::Bool } else { a.dtype };
                Fact {
                    dtype,
                    shape: broadcast_or_fail(self, &a.shape, &b.shape)?,
                }
            }
            Op::Where => {
                ensure!(inputs[0].dtype == DType::Bool, "Where's condition must be bool");
                let ab = broadcast_or_fail(self, &inputs[1].shape, &inputs[2].shape)?;
                Fact {
                    dtype: inputs[1].dtype,
                    shape: broadcast_or_fail(self, &inputs[0].shape, &ab)?,
                }
            }
            Op::MatMul => {
                let (a, b) = (&inputs[0].shape, &inputs[1].shape);
                let (ra, rb) = (a.len(), b.len());
                ensure!(
                    ra >= 2 && ra == rb && a[..ra - 2] == b[..rb - 2] && a[ra - 1] == b[rb - 2],
                    "MatMul of {} and {}",
                    dim::show(a),
                    dim::show(b)
                );
                let mut shape = a[..ra - 1].to_vec();
                shape.push(b[rb - 1].clone());
                Fact {
                    dtype: inputs[0].dtype,
                    shape,
                }
            }
            Op::Expand { shape } => {
                let target = dim::known(shape);
                ensure!(
                    dim::broadcast(&inputs[0].shape, &target).as_ref() == Some(&target),
                    "Expand of {} to {shape:?}",
                    dim::show(&inputs[0].shape)
                );
                Fact {
                    dtype: inputs[0].dtype,
                    shape: target,
                }
            }
            Op::Pad { pads } => {
                let x = &inputs[0].shape;
                ensure!(
                    pads.len() == 2 * x.len(),
                    "Pad: {} pads for rank {}",
                    pads.len(),
                    x.len()
                );
                let shape = x
                    .iter()
                    .enumerate()
                    .map(|(i, d)| d.add((pads[i] + pads[i + x.len()]) as i64))
                    .collect::<Option<Shape>>()
                    .ok_or_else(|| anyhow::anyhow!("Pad of a symbolic size {}", dim::show(x)))?;
                Fact {
                    dtype: inputs[0].dtype,
                    shape,
                }
            }
            Op::Slice { axes, starts, ends } => {
                let mut shape = inputs[0].shape.clone();
                ensure!(
                    axes.len() == starts.len() && axes.len() == ends.len(),
                    "Slice: axes, starts, ends differ in length"
                );
                for ((&ax, &b), &e) in axes.iter().zip(starts).zip(ends) {
                    let n = shape
                        .get(ax)
                        .and_then(Dim::known)
                        .ok_or_else(|| anyhow::anyhow!("Slice of axis {ax}"))?;
                    ensure!(b < e && e <= n, "Slice {b}..{e} of an axis of {n}");
                    shape[ax] = Dim::Known(e - b);
                }
                Fact {
                    dtype: inputs[0].dtype,
                    shape,
                }
            }
            Op::Concat { axis } => {
                let first = &inputs[0].shape;
                ensure!(*axis < first.len(), "Concat axis {axis} of rank {}", first.len());
                let mut total = 0;
                for f in inputs {
                    let same =
                        f.shape.len() == first.len() && (0..first.len()).all(|i| i == *axis || f.shape[i] == first[i]);
                    ensure!(same, "Concat of {} and {}", dim::show(first), dim::show(&f.shape));
                    total += f.shape[*axis]
                        .known()
                        .ok_or_else(|| anyhow::anyhow!("Concat along a symbolic axis"))?;
                }
                let mut shape = first.clone();
                shape[*axis] = Dim::Known(total);
                Fact {
                    dtype: inputs[0].dtype,
                    shape,
                }
            }
            Op::ReduceSum { axes, keepdims } => {
                let x = inputs[0];
                let mut shape = Vec::new();
                for (i, d) in x.shape.iter().enumerate() {
                    ensure!(
                        axes.iter().all(|&a| a < x.shape.len()),
                        "ReduceSum axes {axes:?} on rank {}",
                        x.shape.len()
                    );
                    if !axes.contains(&i) {
                        shape.push(d.clone());
                    } else if *keepdims {
                        shape.push(Dim::Known(1));
                    }
                }
                Fact { dtype: x.dtype, shape }
            }
            Op::DepthToSpace { block: s, .. } => {
                let x = inputs[0];
                ensure!(
                    x.shape.len() == 4,
                    "DepthToSpace wants NCHW, got {}",
                    dim::show(&x.shape)
                );
                let c = x.shape[1].div(s * s).ok_or_else(|| {
                    anyhow::anyhow!(
                        "DepthToSpace by {s}: {} channels is not a multiple of {}",
                        x.shape[1],
                        s * s
                    )
                })?;
                Fact::f32(vec![x.shape[0].clone(), c, x.shape[2].mul(*s), x.shape[3].mul(*s)])
            }
            Op::Reshape { shape } => {
                let x = inputs[0];
                let total: Option<usize> = x.shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(d.known()?));
                let Some(total) = total else {
                    bail!("Reshape of a symbolic (or too large) shape {}", dim::show(&x.shape))
                };
                ensure!(
                    shape.iter().filter(|&&d| d == -1).count() <= 1 && shape.iter().all(|&d| d > 0 || d == -1),
                    "Reshape to {shape:?}: only positive sizes and one -1"
                );
                let known = checked_product(shape.iter().filter(|&&d| d > 0).map(|&d| d as usize))
                    .with_context(|| format!("Reshape to {shape:?}: too many elements"))?;
                let out: Shape = shape
                    .iter()
                    .map(|&d| Dim::Known(if d == -1 { total / known.max(1) } else { d as usize }))
                    .collect();
                let n = checked_product(out.iter().filter_map(Dim::known))
                    .with_context(|| format!("Reshape to {shape:?}: too many elements"))?;
                ensure!(n == total, "Reshape of {} elements to {shape:?}", total);
                Fact {
                    dtype: x.dtype,
                    shape: out,
                }
            }
            Op::Transpose { perm } => {
                let x = inputs[0];
                let mut sorted = perm.clone();
                sorted.sort_unstable();
                ensure!(
                    sorted == (0..x.shape.len()).collect::<Vec<_>>(),
                    "Transpose {perm:?} of rank {}",
                    x.shape.len()
                );
                Fact {
                    dtype: x.dtype,
                    shape: perm.iter().map(|&p| x.shape[p].clone()).collect(),
                }
            }
        };
        Ok(vec![fact])
    }
}

fn broadcast_or_fail(op: &Op, a: &[Dim], b: &[Dim]) -> Result<Shape> {
    dim::broadcast(a, b).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: shapes {} and {} do not broadcast",
            op.name(),
            dim::show(a),
            dim::show(b)
        )
    })
}

/// A group count that divides the output channels `o` (the weight's first axis).
fn check_group(op: &str, group: usize, o: &Dim) -> Result<()> {
    ensure!(group >= 1, "{op}: group {group} (must be at least 1)");
    ensure!(
        o.known().is_some_and(|o| o % group == 0),
        "{op}: {o} filters do not split into {group} groups"
    );
    Ok(())
}

fn conv_transpose_fact(inputs: &[&Fact], pads: &[usize; 4], group: usize) -> Result<Fact> {
    let (y, w) = (&inputs[0].shape, &inputs[1].shape);
    ensure!(
        y.len() == 4 && w.len() == 4,
        "ConvTranspose wants NCHW and OIHW, got {} and {}",
        dim::show(y),
        dim::show(w)
    );
    ensure!(
        y[1] == w[0],
        "ConvTranspose: input has {} channels, weight {}",
        y[1],
        w[0]
    );
    check_group("ConvTranspose", group, &w[0])?;
    let (Some(kh), Some(kw)) = (w[2].known(), w[3].known()) else {
        bail!("ConvTranspose with a symbolic kernel")
    };
    let h = y[2].add(kh as i64 - 1 - (pads[0] + pads[2]) as i64);
    let wd = y[3].add(kw as i64 - 1 - (pads[1] + pads[3]) as i64);
    let (Some(h), Some(wd)) = (h, wd) else {
        bail!("ConvTranspose changes the symbolic size {}", dim::show(y))
    };
    Ok(Fact::f32(vec![y[0].clone(), w[1].mul(group), h, wd]))
}

fn conv_fact(inputs: &[&Fact], pads: &[usize; 4], group: usize) -> Result<Fact> {
    let (x, w) = (&inputs[0].shape, &inputs[1].shape);
    ensure!(
        x.len() == 4 && w.len() == 4,
        "Conv wants NCHW input and OIHW weight, got {} and {}",
        dim::show(x),
        dim::show(w)
    );
    check_group("Conv", group, &w[0])?;
    ensure!(
        x[1] == w[1].mul(group),
        "Conv: input has {} channels, weight expects {} in each of {group} groups",
        x[1],
        w[1]
    );
    if let Some(b) = inputs.get(2) {
        ensure!(
            b.shape == [w[0].clone()],
            "Conv: bias {} for {} output channels",
            dim::show(&b.shape),
            w[0]
        );
    }
    let (Some(kh), Some(kw)) = (w[2].known(), w[3].known()) else {
        bail!("Conv with a symbolic kernel size")
    };
    let h = x[2].add((pads[0] + pads[2]) as i64 - kh as i64 + 1);
    let wd = x[3].add((pads[1] + pads[3]) as i64 - kw as i64 + 1);
    let (Some(h), Some(wd)) = (h, wd) else {
        bail!(
            "Conv {kh}x{kw} with pads {pads:?} changes the symbolic size {}",
            dim::show(x)
        )
    };
    Ok(Fact::f32(vec![x[0].clone(), w[0].clone(), h, wd]))
}

/// The product of sizes, or None when it overflows (a file can claim any shape).
fn checked_product(sizes: impl Iterator<Item = usize>) -> Option<usize> {
    sizes.into_iter().try_fold(1usize, |acc, d| acc.checked_mul(d))
}
