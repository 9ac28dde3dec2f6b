//! Each op's ONNX writer and reader, side by side. Attributes ONNX passes as
//! constant inputs (ReduceSum axes, Reshape shape) are written as initialisers
//! named after their node and folded back into the op when read.

use super::attributes::{int, ints, string, Attributes};
use super::pb::{AttributeProto, NodeProto, TensorProto};
use super::tensor::tensor_to_proto;
use crate::ir::{Op, ShuffleMode, Tensor};
use anyhow::{bail, ensure, Context, Result};

/// Write one IR op as a NodeProto; extra constant inputs go to `inits`.
pub fn write(
    op: &Op,
    name: &str,
    mut inputs: Vec<String>,
    outputs: Vec<String>,
    inits: &mut Vec<TensorProto>,
) -> Result<NodeProto> {
    let mut attrs = Vec::new();
    let mut const_input = |suffix: &str, t: Tensor, inputs: &mut Vec<String>| {
        let init_name = format!("{name}.{suffix}");
        inits.push(tensor_to_proto(&init_name, &t));
        inputs.push(init_name);
    };
    let op_type = match op {
        Op::Input | Op::Const(_) | Op::Param(_) | Op::Buffer(_) => {
            bail!("{name}: {} is an initialiser or input, not a node", op.name())
        }
        Op::Conv { pads, group } => {
            attrs.extend(conv_attrs(pads, *group));
            "Conv"
        }
        Op::Relu => "Relu",
        Op::Add => "Add",
        Op::Sub => "Sub",
        Op::Mul => "Mul",
        Op::Div => "Div",
        Op::Sqrt => "Sqrt",
        Op::ReduceSum { axes, keepdims } => {
            let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
            const_input("axes", Tensor::i64_vec(&axes), &mut inputs);
            attrs.push(int("keepdims", *keepdims as i64));
            "ReduceSum"
        }
        Op::DepthToSpace { block, mode } => {
            attrs.push(int("blocksize", *block as i64));
            attrs.push(string("mode", mode.onnx_name()));
            "DepthToSpace"
        }
        Op::Reshape { shape } => {
            const_input("shape", Tensor::i64_vec(shape), &mut inputs);
            "Reshape"
        }
        Op::Transpose { perm } => {
            attrs.push(ints("perm", perm.iter().map(|&p| p as i64).collect()));
            "Transpose"
        }
        Op::ConvTranspose { pads, group } => {
            attrs.extend(conv_attrs(pads, *group));
            "ConvTranspose"
        }
        Op::MatMul => "MatMul",
        Op::Greater => "Greater",
        Op::Where => "Where",
        Op::Neg => "Neg",
        Op::Abs => "Abs",
        Op::Sign => "Sign",
        Op::Pow => "Pow",
        Op::Expand { shape } => {
            const_input("shape", Tensor::i64_vec(&to_i64(shape)), &mut inputs);
            "Expand"
        }
        Op::Pad { pads } => {
            const_input("pads", Tensor::i64_vec(&to_i64(pads)), &mut inputs);
            // tract wants the pad value as a rank-0 tensor.
            const_input("value", Tensor::scalar(0.0), &mut inputs);
            attrs.push(string("mode", "constant"));
            "Pad"
        }
        Op::Slice { axes, starts, ends } => {
            const_input("starts", Tensor::i64_vec(&to_i64(starts)), &mut inputs);
            const_input("ends", Tensor::i64_vec(&to_i64(ends)), &mut inputs);
            const_input("axes", Tensor::i64_vec(&to_i64(axes)), &mut inputs);
            "Slice"
        }
        Op::Concat { axis } => {
            attrs.push(int("axis", *axis as i64));
            "Concat"
        }
        Op::Flip { axes } => {
            // From the last element down to before the first: ONNX clamps `ends` to -1
            // for a negative step, so i64::MIN reads "past the start" in every runtime.
            let n = axes.len();
            const_input("starts", Tensor::i64_vec(&vec![-1; n]), &mut inputs);
            const_input("ends", Tensor::i64_vec(&vec![i64::MIN; n]), &mut inputs);
            const_input("axes", Tensor::i64_vec(&to_i64(axes)), &mut inputs);
            const_input("steps", Tensor::i64_vec(&vec![-1; n]), &mut inputs);
            "Slice"
        }
        Op::Cast { to } => {
            attrs.push(int("to", super::tensor::elem_type(*to) as i64));
            "Cast"
        }
        Op::Round => "Round",
        Op::Clip { min, max } => {
            for (suffix, v) in [("min", min), ("max", max)] {
                let init_name = format!("{name}.{suffix}");
                inits.push(tensor_to_proto(&init_name, &Tensor::scalar(*v)));
                inputs.push(init_name);
            }
            "Clip"
        }
        Op::ReduceMax { axes } => {
            attrs.push(ints("axes", axes.iter().map(|&a| a as i64).collect()));
            attrs.push(int("keepdims", 1));
            "ReduceMax"
        }
        // Read back, an Identity only names its input again (graph.rs): a file holds no gradients.
        Op::StopGradient => "Identity",
    };
    Ok(NodeProto {
        input: inputs,
        output: outputs,
        name: name.to_string(),
        op_type: op_type.to_string(),
        attribute: attrs,
        ..Default::default()
    })
}

/// Read node `index` of a graph as an IR op. Returns the op and how many of the node's
/// inputs are wired (the rest were constant attributes folded into the op).
pub fn read(index: usize, node: &NodeProto, constant: &dyn Fn(&str) -> Option<Tensor>) -> Result<(Op, usize)> {
    ensure!(
        node.domain.is_empty() || node.domain == "ai.onnx",
        "op {} of domain '{}' is not supported",
        node.op_type,
        node.domain
    );
    let a = Attributes::of(index, node);
    let const_arg = |i: usize, what: &str| -> Result<Vec<i64>> {
        let name = node
            .input
            .get(i)
            .with_context(|| format!("missing input {i} ({what})"))?;
        let t =
            constant(name).with_context(|| format!("input {i} ({what}) '{name}' must be a constant initialiser"))?;
        Ok(t.as_i64()
            .with_context(|| format!("{what} must be int64"))?
            .iter()
            .copied()
            .collect())
    };
    let all = node.input.len();
    Ok(match node.op_type.as_str() {
        "Conv" => {
            let auto_pad = a.string_or("auto_pad", "")?;
            ensure!(
                auto_pad.is_empty() || auto_pad == "NOTSET",
                "auto_pad {auto_pad} is not supported"
            );
            let (pads, group) = read_conv_pads(&a)?;
            (Op::Conv { pads, group }, all)
        }
        "Relu" => (Op::Relu, 1),
        "Add" => (Op::Add, 2),
        "Sub" => (Op::Sub, 2),
        "Mul" => (Op::Mul, 2),
        "Div" => (Op::Div, 2),
        "Sqrt" => (Op::Sqrt, 1),
        "ReduceSum" => {
            let axes = const_arg(1, "axes")?;
            ensure!(axes.iter().all(|&x| x >= 0), "negative axes {axes:?} are not supported");
            let keepdims = a.i64_or("keepdims", 1)? != 0;
            (
                Op::ReduceSum {
                    axes: axes.iter().map(|&x| x as usize).collect(),
                    keepdims,
                },
                1,
            )
        }
        "DepthToSpace" => {
            let block = a.required("blocksize", a.i64("blocksize")?)?;
            ensure!(block >= 1, "blocksize {block}");
            let mode = match a.string_or("mode", "DCR")? {
                "DCR" => ShuffleMode::Dcr,
                "CRD" => ShuffleMode::Crd,
                m => bail!("mode '{m}' is neither DCR nor CRD"),
            };
            (
                Op::DepthToSpace {
                    block: block as usize,
                    mode,
                },
                1,
            )
        }
        "Reshape" => {
            ensure!(a.i64_or("allowzero", 0)? == 0, "allowzero is not supported");
            (
                Op::Reshape {
                    shape: const_arg(1, "shape")?,
                },
                1,
            )
        }
        "Transpose" => {
            let perm = a.required("perm", a.ints("perm")?)?;
            (
                Op::Transpose {
                    perm: perm.iter().map(|&p| p as usize).collect(),
                },
                1,
            )
        }
        "ConvTranspose" => {
            let output_padding = a.ints_or("output_padding", &[])?;
            ensure!(
                output_padding.iter().all(|&p| p == 0),
                "output_padding is not supported"
            );
            let (pads, group) = read_conv_pads(&a)?;
            (Op::ConvTranspose { pads, group }, 2)
        }
        "MatMul" => (Op::MatMul, 2),
        "Greater" => (Op::Greater, 2),
        "Where" => (Op::Where, 3),
        "Neg" => (Op::Neg, 1),
        "Abs" => (Op::Abs, 1),
        "Round" => (Op::Round, 1),
        "Clip" => {
            let bound = |i: usize| -> Result<f32> {
                let name = node
                    .input
                    .get(i)
                    .with_context(|| format!("Clip without input {i} (its bound)"))?;
                constant(name)
                    .and_then(|t| t.as_f32_scalar())
                    .with_context(|| format!("Clip's bound {name:?} must be a float32 scalar initialiser"))
            };
            (
                Op::Clip {
                    min: bound(1)?,
                    max: bound(2)?,
                },
                1,
            )
        }
        "ReduceMax" => {
            ensure!(
                a.i64_or("keepdims", 1)? == 1,
                "ReduceMax without keepdims is not supported"
            );
            let axes = a.required("axes", a.ints("axes")?)?;
            ensure!(axes.iter().all(|&x| x >= 0), "negative axes {axes:?} are not supported");
            (
                Op::ReduceMax {
                    axes: axes.iter().map(|&x| x as usize).collect(),
                },
                1,
            )
        }
        "Sign" => (Op::Sign, 1),
        "Pow" => (Op::Pow, 2),
        "Expand" => (
            Op::Expand {
                shape: to_usize(const_arg(1, "shape")?, "shape")?,
            },
            1,
        ),
        "Pad" => {
            let mode = a.string_or("mode", "constant")?;
            ensure!(mode == "constant", "Pad mode {mode} is not supported");
            if let Some(v) = node.input.get(2).filter(|n| !n.is_empty()) {
                let v = constant(v).context("the pad value must be a constant")?;
                ensure!(v.as_f32_scalar() == Some(0.0), "only zero padding is supported");
            }
            (
                Op::Pad {
                    pads: to_usize(const_arg(1, "pads")?, "pads")?,
                },
                1,
            )
        }
        "Slice" if flipped(node, &const_arg)? => {
            let axes = to_usize(const_arg(3, "axes")?, "axes")?;
            (Op::Flip { axes }, 1)
        }
        "Slice" => {
            let starts = to_usize(const_arg(1, "starts")?, "starts")?;
            let ends = to_usize(const_arg(2, "ends")?, "ends")?;
            let axes = if node.input.len() > 3 {
                to_usize(const_arg(3, "axes")?, "axes")?
            } else {
                (0..starts.len()).collect()
            };
            if node.input.len() > 4 {
                ensure!(
                    const_arg(4, "steps")?.iter().all(|&s| s == 1),
                    "only step 1 is supported"
                );
            }
            (Op::Slice { axes, starts, ends }, 1)
        }
        "Concat" => {
            let axis = a.required("axis", a.i64("axis")?)?;
            ensure!(axis >= 0, "negative axis {axis} is not supported");
            (Op::Concat { axis: axis as usize }, all)
        }
        "Cast" => {
            let to = a.required("to", a.i64("to")?)?;
            (
                Op::Cast {
                    to: super::tensor::dtype_of(to as i32)?,
                },
                1,
            )
        }
        other => bail!("op {other} is not one srgraph can read"),
    })
}

/// Conv and ConvTranspose as srgraph writes them: explicit pads, stride,
/// dilation and group 1.
fn conv_attrs(pads: &[usize; 4], group: usize) -> [AttributeProto; 4] {
    [
        ints("pads", to_i64(pads)),
        ints("strides", vec![1, 1]),
        ints("dilations", vec![1, 1]),
        int("group", group as i64),
    ]
}

/// The pads and group of a Conv or ConvTranspose, refusing what srgraph's IR cannot hold.
fn read_conv_pads(a: &Attributes) -> Result<([usize; 4], usize)> {
    ensure!(
        a.ints_or("strides", &[1, 1])?.iter().all(|&s| s == 1),
        "only stride 1 is supported"
    );
    ensure!(
        a.ints_or("dilations", &[1, 1])?.iter().all(|&s| s == 1),
        "only dilation 1 is supported"
    );
    let group = a.i64_or("group", 1)?;
    ensure!(group >= 1, "group {group} must be at least 1");
    let p = a.ints_or("pads", &[0; 4])?;
    ensure!(
        p.len() == 4 && p.iter().all(|&x| x >= 0),
        "pads {p:?} must be 4 non-negative values"
    );
    Ok((
        [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize],
        group as usize,
    ))
}

fn to_i64(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

fn to_usize(v: Vec<i64>, what: &str) -> Result<Vec<usize>> {
    v.iter()
        .map(|&x| usize::try_from(x).with_context(|| format!("negative {what} {v:?} are not supported")))
        .collect()
}

/// Whether a Slice is srgraph's `Flip`: step -1 on every axis, from the last element to
/// past the first.
fn flipped(node: &NodeProto, const_arg: &dyn Fn(usize, &str) -> Result<Vec<i64>>) -> Result<bool> {
    if node.input.len() < 5 {
        return Ok(false);
    }
    Ok(const_arg(4, "steps")?.iter().all(|&s| s == -1)
        && const_arg(1, "starts")?.iter().all(|&s| s == -1)
        && const_arg(2, "ends")?.iter().all(|&e| e == i64::MIN))
}
