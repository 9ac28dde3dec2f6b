//! The precision a model file computes in: float32, as srgraph builds and trains
//! every network, or float16 for shipping (half the bytes; fp16 arithmetic where the
//! runtime has it). A float16 file keeps float32 at its boundary: a Cast after each
//! input and before each output, so whoever feeds it pictures and reads them back
//! (`srgraph eval`, `upscale`, any ONNX runtime's caller) sees no difference.

use super::pb::{self, attribute_type, data_type, type_proto, GraphProto, ModelProto, NodeProto, TensorProto};
use super::Metadata;
use anyhow::{bail, ensure, Context, Result};
use half::f16;
use std::collections::HashSet;

/// The metadata key recording a file's precision (`fp16`; absent in float32 files,
/// which is what every file srgraph writes otherwise is).
pub const PRECISION_KEY: &str = "precision";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    Fp16,
    Int8,
}

impl Precision {
    /// The short name: `fp32`, `fp16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }

    /// What the precision means for a file, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Precision::Fp32 => "float32 weights and arithmetic",
            Precision::Fp16 => "float16 weights and arithmetic, float32 input and output",
            Precision::Int8 => "int8 weights and activations in the body (QDQ), float32 first and last convs",
        }
    }

    /// The precision of a graph, read from its weights: int8 when any of its constant
    /// tensors is, float16 when any is, float32 otherwise.
    pub fn of(g: &GraphProto) -> Precision {
        let holds = |dt| g.initializer.iter().any(|t| t.data_type == dt);
        if holds(data_type::INT8) {
            Precision::Int8
        } else if holds(data_type::FLOAT16) {
            Precision::Fp16
        } else {
            Precision::Fp32
        }
    }
}

/// `model`, a float32 inference model as srgraph writes it, narrowed to float16:
/// every float32 weight rounded to the nearest float16, every float32 value of the
/// graph computed in float16, a Cast from float32 after each input and one back to
/// float32 before each output, and `precision = fp16` in its metadata.
pub fn to_fp16(model: &mut ModelProto) -> Result<()> {
    let g = model.graph.as_mut().context("the model has no graph")?;
    ensure!(
        Precision::of(g) == Precision::Fp32,
        "it is float16 already: export the float32 model it was made from"
    );
    for t in &mut g.initializer {
        narrow_tensor(t)?;
    }
    let weights: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    for n in &mut g.node {
        narrow_node(n)?;
    }
    // Parameters listed among the inputs (overridable initialisers) are float16 now.
    for vi in g.input.iter_mut().filter(|vi| weights.contains(&vi.name)) {
        narrow_elem_type(vi);
    }
    for vi in &mut g.value_info {
        narrow_elem_type(vi);
    }
    cast_inputs(g, &weights)?;
    cast_outputs(g)?;
    let mut meta: Metadata = Metadata::from_proto(&model.metadata_props)
        .into_iter()
        .filter(|(k, _)| k != PRECISION_KEY)
        .collect();
    meta.push(PRECISION_KEY, Precision::Fp16.name());
    model.metadata_props = meta.to_proto();
    Ok(())
}

/// The bytes of a float32 inference model (`to_fp16`), as the bytes of its float16 model.
pub fn fp16_bytes(bytes: &[u8]) -> Result<Vec<u8>> {
    use prost::Message;
    let mut model = ModelProto::decode(bytes).context("it does not parse as an ONNX model")?;
    to_fp16(&mut model)?;
    Ok(model.encode_to_vec())
}

/// A float32 tensor's values as float16 (round to nearest, ties to even); refused
/// when a value lies beyond float16's range (65504), which would become infinite.
fn narrow_tensor(t: &mut TensorProto) -> Result<()> {
    if t.data_type != data_type::FLOAT {
        return Ok(());
    }
    let values = float32_values(t)?;
    if let Some(v) = values.iter().find(|v| !v.is_finite() || v.abs() > f16::MAX.to_f32()) {
        bail!(
            "the weight {:?} holds {v}, which float16 cannot hold (its largest value is 65504)",
            t.name
        );
    }
    t.raw_data = values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
    t.float_data.clear();
    t.data_type = data_type::FLOAT16;
    Ok(())
}

/// A float32 tensor's values, wherever the proto holds them (raw bytes or the
/// repeated field); refused when they live in an external file.
pub fn float32_values(t: &TensorProto) -> Result<Vec<f32>> {
    ensure!(
        t.data_type == data_type::FLOAT,
        "the tensor {:?} is not float32",
        t.name
    );
    ensure!(
        t.data_location == 0 && t.external_data.is_empty(),
        "the weight {:?} keeps its data in an external file: inline it first",
        t.name
    );
    Ok(if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

/// The node's own float32: a Cast to float32 casts to float16 instead, and tensors
/// in its attributes (Constant's value) are narrowed.
fn narrow_node(n: &mut NodeProto) -> Result<()> {
    for a in &mut n.attribute {
        if n.op_type == "Cast" && a.name == "to" && a.r#type == attribute_type::INT && a.i == data_type::FLOAT as i64 {
            a.i = data_type::FLOAT16 as i64;
        }
        for t in a.t.iter_mut().chain(&mut a.tensors) {
            narrow_tensor(t).with_context(|| format!("in node {:?} ({})", n.name, n.op_type))?;
        }
        ensure!(
            a.g.is_none() && a.graphs.is_empty(),
            "node {:?} ({}) holds a subgraph: srgraph narrows flat inference graphs only",
            n.name,
            n.op_type
        );
    }
    Ok(())
}

fn narrow_elem_type(vi: &mut pb::ValueInfoProto) {
    if let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        if t.elem_type == data_type::FLOAT {
            t.elem_type = data_type::FLOAT16;
        }
    }
}

fn is_float32(vi: &pb::ValueInfoProto) -> bool {
    matches!(
        vi.r#type.as_ref().and_then(|t| t.value.as_ref()),
        Some(type_proto::Value::TensorType(t)) if t.elem_type == data_type::FLOAT
    )
}

/// A Cast node from `input` to `output`.
fn cast(name: String, input: String, output: String, to: i32) -> NodeProto {
    NodeProto {
        input: vec![input],
        output: vec![output],
        name,
        op_type: "Cast".into(),
        attribute: vec![pb::AttributeProto {
            name: "to".into(),
            r#type: attribute_type::INT,
            i: to as i64,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A name for the float16 side of the boundary value `name`, used nowhere yet.
fn half_name(g: &GraphProto, name: &str) -> Result<String> {
    let h = format!("{name}.fp16");
    let taken = g.node.iter().any(|n| n.output.contains(&h) || n.input.contains(&h))
        || g.initializer.iter().any(|t| t.name == h)
        || g.input.iter().chain(&g.output).any(|v| v.name == h);
    ensure!(!taken, "the graph already has a value named {h:?}");
    Ok(h)
}

/// Each float32 graph input (a picture) is cast to float16 first, and the nodes read the cast.
fn cast_inputs(g: &mut GraphProto, weights: &HashSet<String>) -> Result<()> {
    let inputs: Vec<String> = g
        .input
        .iter()
        .filter(|vi| !weights.contains(&vi.name) && is_float32(vi))
        .map(|vi| vi.name.clone())
        .collect();
    let mut casts = Vec::new();
    for x in inputs {
        let h = half_name(g, &x)?;
        for n in &mut g.node {
            n.input.iter_mut().filter(|i| **i == x).for_each(|i| *i = h.clone());
        }
        casts.push(cast(format!("{x}.to_fp16"), x, h, data_type::FLOAT16));
    }
    casts.append(&mut g.node);
    g.node = casts;
    Ok(())
}

/// Each float32 graph output is computed in float16 under another name and cast back last.
fn cast_outputs(g: &mut GraphProto) -> Result<()> {
    let outputs: Vec<String> = g
        .output
        .iter()
        .filter(|vi| is_float32(vi))
        .map(|vi| vi.name.clone())
        .collect();
    for y in outputs {
        ensure!(
            g.node.iter().any(|n| n.output.contains(&y)),
            "the output {y:?} is not computed by a node"
        );
        let h = half_name(g, &y)?;
        for n in &mut g.node {
            for v in n.input.iter_mut().chain(n.output.iter_mut()).filter(|v| **v == y) {
                *v = h.clone();
            }
        }
        g.node.push(cast(format!("{y}.to_fp32"), h, y, data_type::FLOAT));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_to_the_nearest_float16_and_large_ones_are_refused() {
        let mut t = TensorProto {
            name: "w".into(),
            dims: vec![3],
            data_type: data_type::FLOAT,
            float_data: vec![1.0, 0.1, -2.5],
            ..Default::default()
        };
        narrow_tensor(&mut t).unwrap();
        assert_eq!(t.data_type, data_type::FLOAT16);
        let back: Vec<f32> = t
            .raw_data
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        assert_eq!(back, vec![1.0, f16::from_f32(0.1).to_f32(), -2.5]);
        let mut big = TensorProto {
            name: "big".into(),
            dims: vec![1],
            data_type: data_type::FLOAT,
            float_data: vec![1e5],
            ..Default::default()
        };
        let e = narrow_tensor(&mut big).unwrap_err().to_string();
        assert!(e.contains("\"big\"") && e.contains("65504"), "{e}");
    }
}
