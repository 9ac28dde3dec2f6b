//! int8 files: static quantisation in the standard QDQ form, which ONNX Runtime fuses
//! into integer convolutions and every other runtime reads as plain float arithmetic.
//!
//! A quantised convolution reads `DequantizeLinear` of its input, of its int8 weights
//! (symmetric, one scale per output channel, 7 bits by default) and of its int32 bias (scale = input
//! scale x weight scale), and its output passes `QuantizeLinear` then
//! `DequantizeLinear` (uint8, one scale and zero point for the tensor, from
//! calibration). Where a ReLU follows the conv it is the ReLU's output that is
//! quantised: its range starts at 0, so its zero point is 0 and ONNX Runtime drops
//! the ReLU into the integer conv.
//!
//! The network's first and last convolutions stay float32, as in the super-resolution
//! quantisation literature (PAMS, Li et al. 2020; QuickSRNet): the first reads the
//! picture less its mean, whose three channel means no single uint8 grid holds
//! exactly, and the last writes the residual the picture is made of, where 1/255 of
//! its range is already a visible step. So the mean shift, the global skip and the
//! sum that makes the output picture stay float32; the body and its residual adds are
//! int8.
//!
//! Weights take 7 bits of the 8 (-63..63) unless asked for 8: x86 CPUs without VNNI
//! (AVX2, AVX-512F) multiply uint8 by int8 with `vpmaddubsw`, which adds each pair of
//! products in 16 bits and saturates, so 255 x 127 twice overflows. ONNX Runtime's
//! integer convolutions there then lose up to 0.24 dB that the file itself does not
//! (EDSR x2, Set5: 0.29 dB in ONNX Runtime, 0.05 in tract on the same file); 7-bit
//! weights cannot overflow the pair (255 x 63 x 2 < 32767) and cost 0.003 dB. The
//! workaround is OpenVINO's and ONNX Runtime's own (`reduce_range`).

use super::pb::{self, data_type, GraphProto, ModelProto, NodeProto, TensorProto};
use super::precision::{float32_values, Precision, PRECISION_KEY};
use super::Metadata;
use anyhow::{bail, ensure, Context, Result};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The metadata key recording how an int8 file's activation ranges were found.
pub const CALIBRATION_KEY: &str = "calibration";
/// The metadata key recording the bits an int8 file's weights use.
pub const WEIGHT_BITS_KEY: &str = "weight_bits";
/// The bits weights use unless asked otherwise: 7, which no x86 CPU's uint8 x int8
/// multiply-add saturates on (above).
pub const WEIGHT_BITS: u8 = 7;

/// The largest level of a symmetric signed grid of `bits` bits: 127 for 8, 63 for 7.
pub fn weight_levels(bits: u8) -> f32 {
    ((1i32 << (bits - 1)) - 1) as f32
}

/// The values an activation took on the calibration pictures (after any clipping).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

/// Each quantised activation's range, by tensor name.
pub type Ranges = BTreeMap<String, Range>;

/// A uint8 grid for a tensor: value = (q - zero_point) x scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub scale: f32,
    pub zero_point: u8,
}

impl Grid {
    /// The uint8 grid covering `r`, widened to hold 0 exactly (zero padding and ReLU's
    /// zeros must stay zero).
    pub fn covering(r: Range) -> Grid {
        let (lo, hi) = (r.min.min(0.0), r.max.max(0.0));
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
        Grid { scale, zero_point }
    }
}

/// The convolutions an int8 model computes in integers: every Conv but the first
/// ones (whose input comes from the graph's input through no other conv) and the
/// last ones (whose output reaches the graph's output through no other conv).
pub fn quantised_convs(g: &GraphProto) -> Vec<usize> {
    let convs: Vec<usize> = (0..g.node.len()).filter(|&i| g.node[i].op_type == "Conv").collect();
    let from_input = conv_free_reach(g, true);
    let to_output = conv_free_reach(g, false);
    convs
        .into_iter()
        .filter(|&i| {
            let n = &g.node[i];
            !from_input.contains(&n.input[0]) && !to_output.contains(&n.output[0])
        })
        .collect()
}

/// The values joined to the graph's inputs (`forward`) or outputs by nodes that are
/// not convolutions.
fn conv_free_reach(g: &GraphProto, forward: bool) -> HashSet<String> {
    let ends = if forward { &g.input } else { &g.output };
    let mut reached: HashSet<String> = ends.iter().map(|v| v.name.clone()).collect();
    let mut order: Vec<&NodeProto> = g.node.iter().filter(|n| n.op_type != "Conv").collect();
    if !forward {
        order.reverse();
    }
    for n in order {
        let (from, to) = if forward {
            (&n.input, &n.output)
        } else {
            (&n.output, &n.input)
        };
        if from.iter().any(|v| reached.contains(v)) {
            reached.extend(to.iter().cloned());
        }
    }
    reached
}

/// The activations an int8 model quantises, in graph order: each quantised conv's
/// input, and its output (or the output of the ReLU that alone reads it).
pub fn quantised_activations(g: &GraphProto) -> Vec<String> {
    let mut names = Vec::new();
    for i in quantised_convs(g) {
        let n = &g.node[i];
        for v in [n.input[0].clone(), quantised_output(g, &n.output[0])] {
            if !names.contains(&v) {
                names.push(v);
            }
        }
    }
    names
}

/// `conv_out`, or the output of a ReLU when that ReLU is its only reader.
fn quantised_output(g: &GraphProto, conv_out: &str) -> String {
    let readers: Vec<&NodeProto> = g
        .node
        .iter()
        .filter(|n| n.input.iter().any(|v| v == conv_out))
        .collect();
    let is_output = g.output.iter().any(|v| v.name == conv_out);
    match readers.as_slice() {
        [relu] if relu.op_type == "Relu" && !is_output => relu.output[0].clone(),
        _ => conv_out.to_string(),
    }
}

/// `model`, a float32 inference model as srgraph writes it, quantised to int8 with
/// the activation ranges `ranges` (every name `quantised_activations` gives) and
/// weights of `weight_bits` bits (2..=8); `calibration` says how the ranges were
/// found, for the metadata.
pub fn to_int8(model: &mut ModelProto, ranges: &Ranges, calibration: &str, weight_bits: u8) -> Result<()> {
    ensure!(
        (2..=8).contains(&weight_bits),
        "weights of {weight_bits} bits: int8 holds 2 to 8"
    );
    let g = model.graph.as_mut().context("the model has no graph")?;
    ensure!(
        Precision::of(g) == Precision::Fp32,
        "it is {} already: quantise the float32 model it was made from",
        Precision::of(g).name()
    );
    let convs = quantised_convs(g);
    ensure!(
        !convs.is_empty(),
        "it has no convolution between its first and its last, so int8 would change nothing"
    );
    let mut names = Names::of(g);
    let mut grids = HashMap::new();
    for v in quantised_activations(g) {
        let r = ranges
            .get(&v)
            .with_context(|| format!("calibration gave no range for {v:?}"))?;
        ensure!(
            r.min.is_finite() && r.max.is_finite(),
            "the range of {v:?} is not finite: {r:?}"
        );
        grids.insert(v, Grid::covering(*r));
    }
    let mut weights = Vec::new();
    for &i in &convs {
        let input_scale = grids[&g.node[i].input[0]].scale;
        weights.extend(quantise_conv_weights(g, i, input_scale, weight_bits, &mut names)?);
    }
    insert_activation_qdq(g, &grids, &mut names)?;
    weights.append(&mut g.node);
    g.node = weights;
    drop_unread_initializers(g);
    let mut meta: Metadata = Metadata::from_proto(&model.metadata_props)
        .into_iter()
        .filter(|(k, _)| k != PRECISION_KEY && k != CALIBRATION_KEY && k != WEIGHT_BITS_KEY)
        .collect();
    meta.push(PRECISION_KEY, Precision::Int8.name());
    meta.push(CALIBRATION_KEY, calibration);
    meta.push(WEIGHT_BITS_KEY, weight_bits.to_string());
    model.metadata_props = meta.to_proto();
    Ok(())
}

/// The bytes of a float32 inference model, as the bytes of its int8 model (`to_int8`).
pub fn int8_bytes(bytes: &[u8], ranges: &Ranges, calibration: &str, weight_bits: u8) -> Result<Vec<u8>> {
    use prost::Message;
    let mut model = ModelProto::decode(bytes).context("it does not parse as an ONNX model")?;
    to_int8(&mut model, ranges, calibration, weight_bits)?;
    Ok(model.encode_to_vec())
}

/// Replaces conv `i`'s float weight and bias by int8 and int32 initialisers read
/// through DequantizeLinear; gives those DequantizeLinear nodes.
fn quantise_conv_weights(
    g: &mut GraphProto,
    i: usize,
    input_scale: f32,
    bits: u8,
    names: &mut Names,
) -> Result<Vec<NodeProto>> {
    let conv = g.node[i].clone();
    let weight = initializer(g, &conv.input[1], &conv.name)?;
    let (w, dims) = (float32_values(weight)?, weight.dims.clone());
    let channels = *dims.first().context("a conv weight without dimensions")? as usize;
    ensure!(
        channels > 0 && w.len() % channels == 0,
        "the weight {:?} has dims {dims:?}",
        conv.input[1]
    );
    let (q, scales) = symmetric_int8(&w, channels, bits);
    let mut dq = vec![];
    let w_name = dequantized(
        g,
        &mut dq,
        names,
        &conv.input[1],
        int8_tensor(&q, &dims),
        &scales,
        data_type::INT8,
    )?;
    g.node[i].input[1] = w_name;
    if let Some(bias) = conv.input.get(2).filter(|b| !b.is_empty()) {
        let b = float32_values(initializer(g, bias, &conv.name)?)?;
        ensure!(
            b.len() == channels,
            "the bias {bias:?} has {} values for {channels} filters",
            b.len()
        );
        let bias_scales: Vec<f32> = scales.iter().map(|s| s * input_scale).collect();
        let q = int32_bias(&b, &bias_scales, bias)?;
        let b_name = dequantized(
            g,
            &mut dq,
            names,
            bias,
            int32_tensor(&q),
            &bias_scales,
            data_type::INT32,
        )?;
        g.node[i].input[2] = b_name;
    }
    Ok(dq)
}

/// Per output channel: the int8 values of `w` (`channels` equal runs) on `bits` bits
/// and each run's scale, max |w| / levels (127 for 8 bits), so the grid is symmetric
/// about 0 (zero point 0) and -128 is never used, as ONNX Runtime's own quantiser
/// does for weights.
pub fn symmetric_int8(w: &[f32], channels: usize, bits: u8) -> (Vec<i8>, Vec<f32>) {
    let levels = weight_levels(bits);
    let per = w.len() / channels;
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(channels);
    for run in w.chunks_exact(per) {
        let peak = run.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = if peak > 0.0 { peak / levels } else { 1.0 };
        q.extend(
            run.iter()
                .map(|v| (v / s).round_ties_even().clamp(-levels, levels) as i8),
        );
        scales.push(s);
    }
    (q, scales)
}

fn int32_bias(b: &[f32], scales: &[f32], name: &str) -> Result<Vec<i32>> {
    b.iter()
        .zip(scales)
        .map(|(v, s)| {
            let q = (v / s).round_ties_even();
            ensure!(
                q.abs() < i32::MAX as f32,
                "the bias {name:?} ({v}) does not fit int32 at scale {s}: an activation range is too narrow"
            );
            Ok(q as i32)
        })
        .collect()
}

/// Adds `values` (named after `of`) with per-channel `scales` and zero points of type
/// `zero_type`, and a DequantizeLinear (axis 0) reading them into `nodes`; gives the
/// float value's name.
fn dequantized(
    g: &mut GraphProto,
    nodes: &mut Vec<NodeProto>,
    names: &mut Names,
    of: &str,
    mut values: TensorProto,
    scales: &[f32],
    zero_type: i32,
) -> Result<String> {
    let (q, s, z, out) = (
        names.fresh(&format!("{of}.quantized"))?,
        names.fresh(&format!("{of}.scale"))?,
        names.fresh(&format!("{of}.zero_point"))?,
        names.fresh(&format!("{of}.dequantized"))?,
    );
    values.name = q.clone();
    let zeros = TensorProto {
        name: z.clone(),
        dims: vec![scales.len() as i64],
        data_type: zero_type,
        raw_data: vec![0; scales.len() * if zero_type == data_type::INT32 { 4 } else { 1 }],
        ..Default::default()
    };
    g.initializer.extend([values, float_tensor(&s, scales, true), zeros]);
    nodes.push(qdq_node("DequantizeLinear", &out, [q, s, z], out.clone(), Some(0)));
    Ok(out)
}

/// After the node making each activation in `grids`, a QuantizeLinear and a
/// DequantizeLinear; every reader of the activation reads the DequantizeLinear.
fn insert_activation_qdq(g: &mut GraphProto, grids: &HashMap<String, Grid>, names: &mut Names) -> Result<()> {
    let mut renamed = HashMap::new();
    let mut nodes = Vec::with_capacity(g.node.len() + 2 * grids.len());
    for mut n in std::mem::take(&mut g.node) {
        for v in &mut n.input {
            if let Some(r) = renamed.get(v) {
                *v = String::clone(r);
            }
        }
        let made: Vec<String> = n.output.iter().filter(|v| grids.contains_key(*v)).cloned().collect();
        nodes.push(n);
        for v in made {
            let grid = grids[&v];
            let (s, z) = (
                names.fresh(&format!("{v}.scale"))?,
                names.fresh(&format!("{v}.zero_point"))?,
            );
            let (q, dq) = (
                names.fresh(&format!("{v}.quantized"))?,
                names.fresh(&format!("{v}.dequantized"))?,
            );
            g.initializer.push(float_tensor(&s, &[grid.scale], false));
            g.initializer.push(TensorProto {
                name: z.clone(),
                data_type: data_type::UINT8,
                raw_data: vec![grid.zero_point],
                ..Default::default()
            });
            nodes.push(qdq_node(
                "QuantizeLinear",
                &q,
                [v.clone(), s.clone(), z.clone()],
                q.clone(),
                None,
            ));
            nodes.push(qdq_node("DequantizeLinear", &dq, [q, s, z], dq.clone(), None));
            renamed.insert(v, dq);
        }
    }
    ensure!(
        renamed.len() == grids.len(),
        "no node makes {:?}",
        grids.keys().find(|v| !renamed.contains_key(*v))
    );
    g.node = nodes;
    Ok(())
}

fn qdq_node(op: &str, name: &str, inputs: [String; 3], output: String, axis: Option<i64>) -> NodeProto {
    NodeProto {
        input: inputs.to_vec(),
        output: vec![output],
        name: name.to_string(),
        op_type: op.to_string(),
        attribute: axis
            .map(|a| pb::AttributeProto {
                name: "axis".into(),
                r#type: pb::attribute_type::INT,
                i: a,
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

/// Float weights no node reads any more (replaced by their int8 form), and their
/// entries among the graph's inputs.
fn drop_unread_initializers(g: &mut GraphProto) {
    let read: HashSet<&String> = g.node.iter().flat_map(|n| &n.input).collect();
    let unread: HashSet<String> = g
        .initializer
        .iter()
        .filter(|t| !read.contains(&t.name))
        .map(|t| t.name.clone())
        .collect();
    g.initializer.retain(|t| !unread.contains(&t.name));
    g.input.retain(|v| !unread.contains(&v.name));
}

fn initializer<'a>(g: &'a GraphProto, name: &str, conv: &str) -> Result<&'a TensorProto> {
    match g.initializer.iter().find(|t| t.name == name) {
        Some(t) => Ok(t),
        None => bail!("conv {conv:?} reads {name:?}, which is computed rather than stored: fold the weights first"),
    }
}

fn float_tensor(name: &str, values: &[f32], vector: bool) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: if vector { vec![values.len() as i64] } else { vec![] },
        data_type: data_type::FLOAT,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn int8_tensor(values: &[i8], dims: &[i64]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::INT8,
        raw_data: values.iter().map(|&v| v as u8).collect(),
        ..Default::default()
    }
}

fn int32_tensor(values: &[i32]) -> TensorProto {
    TensorProto {
        dims: vec![values.len() as i64],
        data_type: data_type::INT32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Every name the graph uses, so new ones never collide.
struct Names(HashSet<String>);

impl Names {
    fn of(g: &GraphProto) -> Names {
        let values = g
            .node
            .iter()
            .flat_map(|n| n.input.iter().chain(&n.output).chain([&n.name]));
        let stored = g.initializer.iter().map(|t| &t.name);
        let ends = g.input.iter().chain(&g.output).map(|v| &v.name);
        Names(values.chain(stored).chain(ends).cloned().collect())
    }

    fn fresh(&mut self, name: &str) -> Result<String> {
        ensure!(
            self.0.insert(name.to_string()),
            "the graph already has a value named {name:?}"
        );
        Ok(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_hold_zero_and_relu_ranges_get_zero_point_zero() {
        let relu = Grid::covering(Range { min: 0.0, max: 5.1 });
        assert_eq!(
            relu,
            Grid {
                scale: 0.02,
                zero_point: 0
            }
        );
        let signed = Grid::covering(Range { min: -1.0, max: 3.0 });
        assert_eq!(signed.zero_point, 64);
        assert!((signed.scale - 4.0 / 255.0).abs() < 1e-9);
        // A range away from 0 is widened to reach it.
        assert_eq!(Grid::covering(Range { min: 2.0, max: 4.0 }).zero_point, 0);
        assert_eq!(Grid::covering(Range { min: 0.0, max: 0.0 }).scale, 1.0);
    }

    #[test]
    fn weights_are_symmetric_per_output_channel() {
        let (q, s) = symmetric_int8(&[0.5, -1.0, 0.25, 0.0, 0.0, 0.0], 2, 8);
        assert_eq!(q, vec![64, -127, 32, 0, 0, 0]);
        assert_eq!(s, vec![1.0 / 127.0, 1.0]);
        // 7 bits: -63..63, so a uint8 x int8 pair's sum fits 16 bits (255 x 63 x 2 < 32767).
        let (q, s) = symmetric_int8(&[0.4, -1.0, 0.2, 0.0, 0.0, 0.0], 2, 7);
        assert_eq!(q, vec![25, -63, 13, 0, 0, 0]);
        assert_eq!(s, vec![1.0 / 63.0, 1.0]);
        assert!(255.0 * weight_levels(7) * 2.0 < i16::MAX as f32);
    }
}
