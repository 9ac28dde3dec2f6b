//! What an `.onnx` file must look like for srgraph to super-resolve with it, read
//! from the protobuf before any runtime sees it, so a wrong file gets an error that
//! says what is wrong rather than a runtime's shape error.

use crate::onnx::{pb, Attributes, Metadata};
use anyhow::{bail, ensure, Context, Result};
use pb::tensor_shape_proto::dimension::Value as DimValue;
use pb::type_proto::Value as TypeValue;
use prost::Message;
use std::collections::HashMap;

pub struct Signature {
    /// `metadata_props` (srgraph records its architecture and scale there).
    pub metadata: Metadata,
    /// The scale the metadata declares, if it declares one.
    pub scale: Option<usize>,
    /// Upper bound on the receptive-field radius, LR pixels.
    pub radius: usize,
    /// The input's channels, 1 (grey) or 3 (RGB), where the file fixes them.
    pub channels: Option<usize>,
}

impl Signature {
    pub fn read(bytes: &[u8], name: &str) -> Result<Signature> {
        let model = pb::ModelProto::decode(bytes).with_context(|| {
            format!("{name} is not an ONNX file: it does not parse as an ONNX model (truncated, or another format)")
        })?;
        let g = model
            .graph
            .as_ref()
            .with_context(|| format!("{name} is not an ONNX model: it has no graph"))?;
        let initialised: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&pb::ValueInfoProto> = g
            .input
            .iter()
            .filter(|i| !initialised.contains(&i.name.as_str()))
            .collect();
        if inputs.len() != 1 {
            let names: Vec<&str> = inputs.iter().take(6).map(|i| i.name.as_str()).collect();
            bail!(
                "{name} takes {} inputs ({}{}): srgraph runs super-resolution graphs with one image input. \
                 A training graph (train_step.onnx, gradients.onnx) is not one: use the run's model.onnx",
                inputs.len(),
                names.join(", "),
                if inputs.len() > 6 { ", ..." } else { "" }
            );
        }
        ensure!(
            g.output.len() == 1,
            "{name} has {} outputs: srgraph runs super-resolution graphs with one image output",
            g.output.len()
        );
        let channels = check_image(inputs[0], name, "input")?;
        let out_channels = check_image(&g.output[0], name, "output")?;
        if let (Some(i), Some(o)) = (channels, out_channels) {
            ensure!(
                i == o,
                "{name}: its input has {i} channel(s) and its output {o}: srgraph runs networks whose output has the \
                 input's channels"
            );
        }
        super::attributes::check_graph(g).with_context(|| format!("{name} is not a model srgraph can run"))?;
        let metadata = Metadata::from_proto(&model.metadata_props);
        let scale = match metadata.get("scale") {
            Some(v) => Some(
                v.parse()
                    .with_context(|| format!("{name}: metadata scale {v:?} is not a number"))?,
            ),
            None => None,
        };
        Ok(Signature {
            metadata,
            scale,
            radius: receptive_radius(g),
            channels,
        })
    }
}

/// A float32 tensor of rank 4 with 1 or 3 channels, where the file says; returns the
/// channels when the file fixes them.
fn check_image(v: &pb::ValueInfoProto, name: &str, role: &str) -> Result<Option<usize>> {
    let Some(TypeValue::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        bail!("{name}: the {role} {:?} is not a tensor", v.name)
    };
    ensure!(
        t.elem_type == pb::data_type::FLOAT,
        "{name}: the {role} {:?} has element type {} (ONNX code), not float32: srgraph runs float32 graphs",
        v.name,
        t.elem_type
    );
    if let Some(shape) = &t.shape {
        ensure!(
            shape.dim.len() == 4,
            "{name}: the {role} {:?} has rank {}, not 4: srgraph runs graphs on [N, C, H, W] images",
            v.name,
            shape.dim.len()
        );
        if let Some(DimValue::DimValue(c)) = shape.dim[1].value {
            ensure!(
                c == 3 || c == 1,
                "{name}: the {role} {:?} has {c} channels, not 3 or 1: srgraph runs RGB networks ([N, 3, H, W] in \
                 [0, 255]) and single-channel ones ([N, 1, H, W])",
                v.name
            );
            return Ok(Some(c as usize));
        }
    }
    Ok(None)
}

/// How far an output pixel can see, in input pixels: the sum over the spatial ops of
/// each one's reach. A sum over all ops bounds the longest path through any graph;
/// reaches of ops that work after the upsampler (in HR pixels) are counted as LR
/// pixels, which only overestimates. Exact for srgraph's networks, which are
/// convolutional; a graph with global operations (attention, global pooling) cannot
/// be tiled exactly and should run whole.
pub fn receptive_radius(g: &pb::GraphProto) -> usize {
    let weights: HashMap<&str, &pb::TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut radius = 0;
    for (i, n) in g.node.iter().enumerate() {
        // Called on graphs `Signature::read` has checked; elsewhere a list of the wrong
        // type counts as absent, as it does for a runtime that ignores it.
        let a = Attributes::of(i, n);
        let ints = |name: &str| a.ints(name).ok().flatten().map(<[i64]>::to_vec);
        let reach = match n.op_type.as_str() {
            "Conv" | "ConvTranspose" | "MaxPool" | "AveragePool" | "LpPool" => {
                let kernel = ints("kernel_shape")
                    .or_else(|| {
                        let w = weights.get(n.input.get(1)?.as_str())?;
                        Some(w.dims.iter().skip(2).copied().collect())
                    })
                    .unwrap_or_else(|| vec![3, 3]);
                let dilations = ints("dilations").unwrap_or_default();
                let pads = ints("pads").unwrap_or_default();
                (0..kernel.len())
                    .map(|i| {
                        let extent =
                            (kernel[i].saturating_sub(1)).saturating_mul(dilations.get(i).copied().unwrap_or(1));
                        let half = extent.saturating_add(1) / 2;
                        let pad = pads.get(i).max(pads.get(i + kernel.len())).copied().unwrap_or(0);
                        half.max(pad).max(0) as usize
                    })
                    .max()
                    .unwrap_or(0)
            }
            // Cubic interpolation looks two pixels each way.
            "Resize" | "Upsample" => 2,
            _ => 0,
        };
        radius = usize::saturating_add(radius, reach);
    }
    radius
}
