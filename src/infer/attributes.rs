//! The attributes of every op srgraph hands to a runtime, checked against the ONNX
//! spec (arity, ranges, agreement with the weights' shapes) before the runtime sees
//! them: runtimes index attribute lists without checking them (tract panics on a
//! Conv with three pads), and a file can say anything.

use crate::onnx::attributes::in_node;
use crate::onnx::{pb, Attributes};
use anyhow::{bail, ensure, Context, Result};
use std::collections::{HashMap, HashSet};

/// The largest kernel, stride, dilation, pad or block size accepted: far beyond any
/// real network, small enough that no arithmetic on it overflows.
const LIMIT: i64 = 1 << 16;

/// Checks every node of `g`; errors name the node and the attribute.
pub fn check_graph(g: &pb::GraphProto) -> Result<()> {
    check_names(g)?;
    check_tensors(g)?;
    let weights: HashMap<&str, &pb::TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let ranks = ranks(g);
    for (i, n) in g.node.iter().enumerate() {
        let rank = n.input.first().and_then(|x| ranks.get(x.as_str())).copied();
        let a = Attributes::of(i, n);
        check_node(a, &weights)
            .and_then(|_| check_axes(a, rank, &weights))
            .map_err(|e| in_node(e, || format!("node {i} ({}, {:?})", n.op_type, n.name)))?;
    }
    Ok(())
}

/// The rank of every value whose rank follows from the graph's declared inputs and
/// initialisers through ops that keep or broadcast ranks; others are left out.
fn ranks(g: &pb::GraphProto) -> HashMap<&str, usize> {
    use pb::type_proto::Value;
    let mut rank: HashMap<&str, usize> = g.initializer.iter().map(|t| (t.name.as_str(), t.dims.len())).collect();
    for i in &g.input {
        if let Some(Value::TensorType(t)) = i.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            if let Some(s) = &t.shape {
                rank.entry(i.name.as_str()).or_insert(s.dim.len());
            }
        }
    }
    for (i, n) in g.node.iter().enumerate() {
        let of = |k: usize| n.input.get(k).and_then(|x| rank.get(x.as_str())).copied();
        let r = match n.op_type.as_str() {
            // Broadcasting: the largest rank of the inputs, when all are known.
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Sum" | "Mean" | "Where" | "PRelu" => n
                .input
                .iter()
                .map(|x| rank.get(x.as_str()).copied())
                .collect::<Option<Vec<usize>>>()
                .and_then(|r| r.into_iter().max()),
            "Relu" | "LeakyRelu" | "Sigmoid" | "Tanh" | "Sqrt" | "Neg" | "Abs" | "Exp" | "Log" | "Clip"
            | "Identity" | "Cast" | "Conv" | "ConvTranspose" | "MaxPool" | "AveragePool" | "DepthToSpace"
            | "SpaceToDepth" | "BatchNormalization" | "Softmax" | "Transpose" | "Pad" | "Resize" | "Upsample" => of(0),
            "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2"
                if Attributes::of(i, n).i64("keepdims").ok().flatten() != Some(0) =>
            {
                of(0)
            }
            _ => None,
        };
        if let Some(r) = r {
            for o in &n.output {
                rank.insert(o.as_str(), r);
            }
        }
    }
    rank
}

/// Axes of a value of rank `rank` lie in -rank..rank (tract unwraps the axis it resolves).
fn check_axes(a: Attributes, rank: Option<usize>, weights: &HashMap<&str, &pb::TensorProto>) -> Result<()> {
    let n = a.node();
    let Some(rank) = rank else { return Ok(()) };
    let r = rank as i64;
    let axes: Vec<i64> = match n.op_type.as_str() {
        op if op.starts_with("Reduce") => match a.ints("axes")? {
            Some(axes) => axes.to_vec(),
            // Opset 13+ (ReduceSum) and 18+ (the others): the axes as a second, constant input.
            None => match n.input.get(1).and_then(|a| weights.get(a.as_str())) {
                Some(t) => crate::onnx::tensor_from_proto(t)
                    .ok()
                    .and_then(|t| t.as_i64().map(|a| a.iter().copied().collect()))
                    .context("the axes input is not an int64 tensor")?,
                None => vec![],
            },
        },
        "Softmax" | "Concat" | "Flatten" | "Gather" | "Split" | "LogSoftmax" => a.i64("axis")?.into_iter().collect(),
        "Transpose" => {
            if let Some(perm) = a.ints("perm")? {
                ensure!(
                    perm.len() == rank,
                    "attribute 'perm' has {} values for a rank-{rank} input",
                    perm.len()
                );
            }
            vec![]
        }
        "DepthToSpace" | "SpaceToDepth" => {
            ensure!(rank == 4, "the input has rank {rank}, not 4 ([N, C, H, W])");
            vec![]
        }
        _ => vec![],
    };
    for a in axes {
        ensure!((-r..r).contains(&a), "axis {a} is out of range for a rank-{rank} input");
    }
    Ok(())
}

/// ONNX element types whose raw bytes tract reads (float, the integer widths, bool, float16,
/// double); it panics ("FIXME, raw tensor loading") on any other type given as raw data.
const RAW_TYPES: [i32; 12] = {
    use pb::data_type::*;
    [
        FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, BOOL, FLOAT16, DOUBLE, UINT32, UINT64,
    ]
};

/// Constant tensors (initialisers, and those in node attributes, subgraphs included) of a
/// type tract can read: a fuzzing finding, a string tensor given as raw bytes.
fn check_tensors(g: &pb::GraphProto) -> Result<()> {
    let check = |t: &pb::TensorProto| -> Result<()> {
        ensure!(
            t.raw_data.is_empty() || RAW_TYPES.contains(&t.data_type),
            "the constant tensor {:?} holds raw data of element type {} (ONNX code), which srgraph's runtimes do \
             not read: srgraph runs float32 networks",
            t.name,
            t.data_type
        );
        Ok(())
    };
    g.initializer.iter().try_for_each(check)?;
    for n in &g.node {
        for a in &n.attribute {
            a.t.iter().chain(&a.tensors).try_for_each(check)?;
            a.g.iter()
                .map(|g| g.as_ref())
                .chain(&a.graphs)
                .try_for_each(check_tensors)?;
        }
    }
    Ok(())
}

/// Every value a node reads and every graph output is defined: a graph input, an
/// initialiser or some node's output (tract looks outputs up by name and panics
/// on a missing one).
fn check_names(g: &pb::GraphProto) -> Result<()> {
    let mut defined: HashSet<&str> = g.input.iter().map(|i| i.name.as_str()).collect();
    defined.extend(g.initializer.iter().map(|t| t.name.as_str()));
    defined.extend(g.node.iter().flat_map(|n| &n.output).map(String::as_str));
    for (i, n) in g.node.iter().enumerate() {
        if let Some(missing) = n.input.iter().find(|x| !x.is_empty() && !defined.contains(x.as_str())) {
            bail!(
                "node {i} ({}, {:?}) reads {missing:?}, which no input, initialiser or node defines",
                n.op_type,
                n.name
            );
        }
    }
    if let Some(o) = g.output.iter().find(|o| !defined.contains(o.name.as_str())) {
        bail!("the graph output {:?} is not computed by any node", o.name);
    }
    Ok(())
}

fn check_node(a: Attributes, weights: &HashMap<&str, &pb::TensorProto>) -> Result<()> {
    let n = a.node();
    let mut seen: Vec<&str> = vec![];
    for attribute in &n.attribute {
        ensure!(
            !seen.contains(&attribute.name.as_str()),
            "attribute '{}' is given twice",
            attribute.name
        );
        seen.push(&attribute.name);
    }
    match n.op_type.as_str() {
        "Conv" | "ConvTranspose" => check_conv(a, weights),
        "MaxPool" | "AveragePool" | "LpPool" => check_pool(a),
        "DepthToSpace" | "SpaceToDepth" => {
            let b = a.required("blocksize", a.i64("blocksize")?)?;
            in_range(b, 1, LIMIT, "blocksize")?;
            if let Some(mode) = a.string("mode")? {
                ensure!(
                    matches!(mode, "DCR" | "CRD") && (n.op_type == "DepthToSpace" || mode == "DCR"),
                    "attribute 'mode' is {mode:?}, not DCR or CRD"
                );
            }
            Ok(())
        }
        "Resize" | "Upsample" => check_resize(a, weights),
        "Transpose" => {
            if let Some(perm) = a.ints("perm")? {
                let mut sorted = perm.to_vec();
                sorted.sort_unstable();
                ensure!(
                    sorted.iter().enumerate().all(|(i, &p)| p == i as i64),
                    "attribute 'perm' {perm:?} is not a permutation of 0..{}",
                    perm.len()
                );
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// How much a Resize may enlarge in all, and along one axis: srgraph runs models of x1 to
/// x16 (`data::bicubic::MAX_SCALE`), and a file asking for x131072 would have the 16 x 16
/// probe run allocate gigabytes (a fuzzing finding).
const MAX_RESIZE_AXIS: f32 = crate::data::bicubic::MAX_SCALE as f32;
const MAX_RESIZE_TOTAL: f32 = MAX_RESIZE_AXIS * MAX_RESIZE_AXIS;

/// Resize / Upsample with constant scales or sizes: each scale finite, positive and at most
/// x16, x256 in all; constant sizes within `LIMIT` along each axis.
fn check_resize(a: Attributes, weights: &HashMap<&str, &pb::TensorProto>) -> Result<()> {
    let n = a.node();
    let constant = |k: usize| {
        n.input
            .get(k)
            .filter(|x| !x.is_empty())
            .and_then(|x| weights.get(x.as_str()))
    };
    // Resize-10 and Upsample-9: (X, scales); Resize-11+: (X, roi, scales, sizes); Upsample-7: an attribute.
    let scales: Option<Vec<f32>> = match (n.op_type.as_str(), n.input.len()) {
        (_, 2) => constant(1).map(|t| floats_of(t)).transpose()?,
        ("Resize", _) => constant(2).map(|t| floats_of(t)).transpose()?,
        _ => a.floats("scales")?.map(<[f32]>::to_vec),
    };
    if let Some(scales) = scales.filter(|s| !s.is_empty()) {
        for (axis, &s) in scales.iter().enumerate() {
            ensure!(
                s.is_finite() && s > 0.0 && s <= MAX_RESIZE_AXIS,
                "scale {s} on axis {axis}: srgraph runs networks that resize by more than 0 and at most x{MAX_RESIZE_AXIS}"
            );
        }
        let total: f32 = scales.iter().product();
        ensure!(
            total <= MAX_RESIZE_TOTAL,
            "scales {scales:?} enlarge x{total} in all, more than the x{MAX_RESIZE_TOTAL} srgraph runs"
        );
    }
    if let Some(sizes) = constant(3) {
        let sizes = crate::onnx::tensor_from_proto(sizes)
            .ok()
            .and_then(|t| t.as_i64().map(|a| a.iter().copied().collect::<Vec<i64>>()))
            .context("the sizes input is not an int64 tensor")?;
        for (axis, &d) in sizes.iter().enumerate() {
            ensure!(
                (1..=LIMIT).contains(&d),
                "size {d} on axis {axis} is outside 1..={LIMIT}"
            );
        }
    }
    Ok(())
}

fn floats_of(t: &pb::TensorProto) -> Result<Vec<f32>> {
    crate::onnx::tensor_from_proto(t)
        .ok()
        .and_then(|t| t.as_f32().map(|a| a.iter().copied().collect()))
        .context("the scales input is not a float32 tensor")
}

/// Conv and ConvTranspose: one value per spatial axis in kernel_shape, strides,
/// dilations and output_padding, two in pads; all in range; the weight's rank,
/// kernel and channels agreeing with them, and the bias with the weight.
fn check_conv(a: Attributes, weights: &HashMap<&str, &pb::TensorProto>) -> Result<()> {
    let n = a.node();
    ensure!(
        (2..=3).contains(&n.input.len()),
        "{} takes 2 or 3 inputs (x, weight, optional bias), not {}",
        n.op_type,
        n.input.len()
    );
    let weight = weights.get(n.input[1].as_str()).copied();
    let kernel = a.ints("kernel_shape")?;
    let spatial = match (&kernel, weight) {
        (Some(k), _) => k.len(),
        (None, Some(w)) => w.dims.len().checked_sub(2).context("the weight has rank below 2")?,
        // Weights computed in the graph: the lists must agree among themselves.
        (None, None) => ["strides", "dilations"]
            .iter()
            .find_map(|list| a.ints(list).ok().flatten().map(<[i64]>::len))
            .unwrap_or(2),
    };
    ensure!(
        (1..=3).contains(&spatial),
        "{spatial} spatial axes: srgraph runs 1-, 2- and 3-d convolutions"
    );
    check_lists(a, spatial)?;
    if let Some(v) = a.ints("output_padding")? {
        ensure!(
            v.len() == spatial,
            "attribute 'output_padding' has {} values, not {spatial}",
            v.len()
        );
        for &x in v {
            in_range(x, 0, LIMIT, "output_padding")?;
        }
    }
    // An explicit output size smaller than the input's transposed convolution makes tract
    // subtract past zero (a panic), and for a model of any picture size it cannot be checked
    // before the picture comes: refused, pads and output_padding say the same.
    ensure!(
        a.ints("output_shape")?.is_none(),
        "attribute 'output_shape' fixes the output size, which a model for pictures of any size cannot: \
         give pads and output_padding instead"
    );
    check_auto_pad(a)?;
    let kernel_of_weight = weight.map(|w| w.dims.iter().skip(2).copied().collect::<Vec<i64>>());
    if let (true, Some(kernels)) = (
        n.op_type == "ConvTranspose",
        kernel.map(<[i64]>::to_vec).or(kernel_of_weight),
    ) {
        // Output = (in - 1) * stride + (k - 1) * dilation + 1 + output_padding - pads: at least 1
        // for a 1-pixel input, or runtimes compute a negative size.
        let dilations = a.ints_or("dilations", &[])?;
        let pads = a.ints_or("pads", &[])?;
        let adjust = a.ints_or("output_padding", &[])?;
        for (i, &k) in kernels.iter().enumerate() {
            let field = (k.clamp(1, LIMIT) - 1) * dilations.get(i).copied().unwrap_or(1) + 1;
            let cut = pads.get(i).copied().unwrap_or(0) + pads.get(i + kernels.len()).copied().unwrap_or(0);
            ensure!(
                cut < field + adjust.get(i).copied().unwrap_or(0),
                "attribute 'pads' {pads:?} removes more than the {field} pixels a {k}-tap transposed convolution adds"
            );
        }
    }
    let group = a.i64_or("group", 1)?;
    in_range(group, 1, LIMIT, "group")?;
    let Some(w) = weight else { return Ok(()) };
    ensure!(
        w.dims.len() == spatial + 2,
        "the weight {:?} has dims {:?}: a {spatial}-d convolution needs {} dims",
        w.name,
        w.dims,
        spatial + 2
    );
    ensure!(
        w.dims.iter().all(|&d| d >= 1),
        "the weight {:?} has dims {:?}: every dim must be at least 1",
        w.name,
        w.dims
    );
    if let Some(k) = &kernel {
        ensure!(
            w.dims[2..] == k[..],
            "attribute 'kernel_shape' {k:?} disagrees with the weight {:?} of dims {:?}",
            w.name,
            w.dims
        );
    }
    let outputs = if n.op_type == "Conv" {
        ensure!(
            w.dims[0] % group == 0,
            "the weight {:?} has {} output channels, not a multiple of group {group}",
            w.name,
            w.dims[0]
        );
        w.dims[0]
    } else {
        ensure!(
            w.dims[0] % group == 0,
            "the weight {:?} has {} input channels, not a multiple of group {group}",
            w.name,
            w.dims[0]
        );
        w.dims[1].checked_mul(group).context("too many channels")?
    };
    if let Some(b) = n
        .input
        .get(2)
        .filter(|b| !b.is_empty())
        .and_then(|b| weights.get(b.as_str()))
    {
        ensure!(
            b.dims == [outputs],
            "the bias {:?} has dims {:?}, but the convolution has {outputs} output channels",
            b.name,
            b.dims
        );
    }
    Ok(())
}

fn check_pool(a: Attributes) -> Result<()> {
    let kernel = a.required("kernel_shape", a.ints("kernel_shape")?)?;
    let spatial = kernel.len();
    ensure!(
        (1..=3).contains(&spatial),
        "attribute 'kernel_shape' has {spatial} values: srgraph runs 1-, 2- and 3-d pooling"
    );
    check_lists(a, spatial)?;
    check_auto_pad(a)
}

/// kernel_shape, strides and dilations (at least 1) hold one value per spatial axis,
/// pads (at least 0) two: runtimes index these lists by axis without looking.
fn check_lists(a: Attributes, spatial: usize) -> Result<()> {
    let n = a.node();
    for (attr, len, min) in [
        ("kernel_shape", spatial, 1),
        ("strides", spatial, 1),
        ("dilations", spatial, 1),
        ("pads", 2 * spatial, 0),
    ] {
        if let Some(v) = a.ints(attr)? {
            ensure!(
                v.len() == len,
                "attribute '{attr}' has {} values, but the {} has {spatial} spatial axes: it needs {len}",
                v.len(),
                n.op_type
            );
            for &x in v {
                in_range(x, min, LIMIT, attr)?;
            }
        }
    }
    Ok(())
}

fn check_auto_pad(a: Attributes) -> Result<()> {
    if let Some(p) = a.string("auto_pad")? {
        ensure!(
            matches!(p, "NOTSET" | "SAME_UPPER" | "SAME_LOWER" | "VALID"),
            "attribute 'auto_pad' is {p:?}, not NOTSET, SAME_UPPER, SAME_LOWER or VALID"
        );
        ensure!(
            p == "NOTSET" || a.ints("pads")?.is_none(),
            "attributes 'auto_pad' {p:?} and 'pads' exclude each other"
        );
    }
    Ok(())
}

fn in_range(x: i64, lo: i64, hi: i64, attr: &str) -> Result<()> {
    ensure!(
        (lo..=hi).contains(&x),
        "attribute '{attr}' holds {x}, outside {lo}..={hi}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(attrs: Vec<pb::AttributeProto>) -> pb::GraphProto {
        pb::GraphProto {
            node: vec![pb::NodeProto {
                op_type: "Conv".into(),
                name: "c".into(),
                input: vec!["x".into(), "w".into(), "b".into()],
                attribute: attrs,
                ..Default::default()
            }],
            input: vec![pb::ValueInfoProto {
                name: "x".into(),
                ..Default::default()
            }],
            initializer: vec![
                pb::TensorProto {
                    name: "w".into(),
                    dims: vec![8, 3, 3, 3],
                    ..Default::default()
                },
                pb::TensorProto {
                    name: "b".into(),
                    dims: vec![8],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn ints_attr(name: &str, v: &[i64]) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.into(),
            r#type: pb::attribute_type::INTS,
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_well_formed_conv_passes_and_each_malformed_attribute_is_named() {
        assert!(check_graph(&conv(vec![ints_attr("pads", &[1, 1, 1, 1])])).is_ok());
        for (bad, says) in [
            (ints_attr("pads", &[1, 1, 1]), "'pads' has 3 values"),
            (ints_attr("strides", &[1]), "'strides' has 1 values"),
            (ints_attr("dilations", &[0, 1]), "'dilations' holds 0"),
            (ints_attr("kernel_shape", &[5, 5]), "disagrees with the weight"),
            (ints_attr("pads", &[-1, 0, 0, 0]), "'pads' holds -1"),
        ] {
            let e = check_graph(&conv(vec![bad])).unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.contains(says) && msg.contains("node 0 (Conv"), "{msg}");
        }
        // A value nobody defines, and a graph output nobody computes.
        let mut g = conv(vec![]);
        g.node[0].input[0] = "nowhere".into();
        assert!(format!("{:#}", check_graph(&g).unwrap_err()).contains("reads \"nowhere\""));
        let mut g = conv(vec![]);
        g.output.push(pb::ValueInfoProto {
            name: "sr".into(),
            ..Default::default()
        });
        assert!(format!("{:#}", check_graph(&g).unwrap_err()).contains("not computed"));
        // A transposed conv whose pads remove more than its 3 taps add.
        let mut g = conv(vec![ints_attr("pads", &[2, 0, 2, 0])]);
        g.node[0].op_type = "ConvTranspose".into();
        g.initializer[1].dims = vec![3];
        assert!(format!("{:#}", check_graph(&g).unwrap_err()).contains("removes more"));
    }

    #[test]
    fn a_mistyped_attribute_is_named_once() {
        let pads = pb::AttributeProto {
            name: "pads".into(),
            r#type: pb::attribute_type::INT,
            i: 1,
            ..Default::default()
        };
        let e = format!("{:#}", check_graph(&conv(vec![pads])).unwrap_err());
        assert_eq!(e, "Node 0 (Conv), attribute 'pads': has type INT, expected INTS");
    }

    fn resize(scales: &[f32]) -> pb::GraphProto {
        pb::GraphProto {
            node: vec![pb::NodeProto {
                op_type: "Resize".into(),
                input: vec!["x".into(), "".into(), "scales".into()],
                ..Default::default()
            }],
            input: vec![pb::ValueInfoProto {
                name: "x".into(),
                ..Default::default()
            }],
            initializer: vec![pb::TensorProto {
                name: "scales".into(),
                dims: vec![scales.len() as i64],
                data_type: pb::data_type::FLOAT,
                float_data: scales.to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn resize_scales_are_bounded() {
        check_graph(&resize(&[1.0, 1.0, 4.0, 4.0])).unwrap();
        check_graph(&resize(&[1.0, 1.0, 0.5, 0.5])).unwrap();
        for bad in [
            [1.0, 1.0, 131072.0, 2.0],
            [1.0, 1.0, 0.0, 2.0],
            [1.0, 1.0, f32::NAN, 2.0],
            [16.0, 1.0, 16.0, 16.0],
        ] {
            let e = format!("{:#}", check_graph(&resize(&bad)).unwrap_err());
            assert!(e.contains("scale"), "{bad:?}: {e}");
        }
    }
}
