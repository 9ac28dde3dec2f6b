//! `train --init MODEL --qat int8`: the fake quantisation a fine-tune trains under
//! (`compiler::qat`), with activation ranges calibrated on the first training pictures
//! by the starting weights, as `export --precision int8` calibrates (percentile 99.99).

use super::options::Init;
use crate::compiler::qat::FakeQuant;
use crate::eval::calibrate::{calibrate, Method, Pictures};
use crate::models::ModelConfig;
use crate::onnx::pb::ModelProto;
use crate::onnx::quantize::quantised_convs;
use crate::runtime::{ort::Device, Runtime};
use anyhow::{Context, Result};
use prost::Message;
use std::path::Path;

/// How many training pictures calibrate, each cut to its centre this many LR pixels square.
pub const CALIBRATION_PICTURES: usize = 32;
pub const CALIBRATION_CROP: usize = 128;

/// What a quantisation-aware fine-tune of `init` on the pictures of `data` rounds;
/// `learn_ranges`: whether the activations' scales train from there.
pub fn plan(
    c: &ModelConfig,
    init: &Init,
    data: &Path,
    learn_ranges: bool,
    threads: usize,
    progress: bool,
) -> Result<FakeQuant> {
    let model = super::weights::export_values(c, init.values.clone(), &[])?;
    let pictures = Pictures::load(data, c.scale, CALIBRATION_CROP, Some(CALIBRATION_PICTURES))
        .with_context(|| format!("calibrating on {}", data.display()))?;
    let activations = calibrate(
        &model,
        &init.source,
        &pictures,
        Method::Percentile(99.99),
        Runtime::Ort(Device::Cpu),
        threads,
        progress,
    )?;
    let proto = ModelProto::decode(&model[..]).context("srgraph's own model does not parse")?;
    let g = proto.graph.context("the model has no graph")?;
    let convs = quantised_convs(&g)
        .into_iter()
        .map(|i| g.node[i].output[0].clone())
        .collect();
    Ok(FakeQuant {
        activations,
        convs,
        learn_ranges,
        weight_bits: crate::onnx::quantize::WEIGHT_BITS,
    })
}
