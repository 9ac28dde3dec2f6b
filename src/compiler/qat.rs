//! Quantisation-aware training: the training graph computes with the int8 file's
//! rounding, so that fine-tuning learns weights that survive it.
//!
//! Fake quantisation rounds a value to its grid and back, in float32:
//! `clip(round(x / scale), lo, hi) * scale`, where the grid is the one the int8 file
//! will use (`onnx::quantize`): for an activation, the uint8 grid calibration found
//! (zero point z: lo = -z, hi = 255 - z), fixed while training; for a conv's weights,
//! the symmetric grid of each output channel on the file's weight bits (7 unless
//! asked: scale max |w| / 63, lo = -63, hi = 63), recomputed from the current
//! weights at every step as the export will from the final ones. Round's gradient is the straight-through estimator and Clip's
//! passes inside the range (autodiff's rules), as PyTorch's FakeQuantize does; the
//! weight scales are computed under StopGradient, so no gradient reaches them.
//!
//! With learned ranges, each activation's scale is a parameter instead, started at
//! calibration's and trained with the weights (its zero point stays calibration's).
//! The same rules then give LSQ's gradient (Esser et al. 2020, "Learned Step Size
//! Quantization"): `round(x/s) - x/s` inside the range and the clipped level outside
//! it, so a scale grows where clipping costs more than the grid's coarseness.

use crate::ir::{Graph, Node, Op, Outlet, Tensor};
use crate::models::Network;
use crate::onnx::quantize::{weight_levels, Grid, Range, Ranges};
use anyhow::{ensure, Context, Result};
use std::collections::{BTreeMap, HashMap};

/// What quantisation-aware training rounds, by node name: the activations (with the
/// ranges calibration found, from which their grids are made as the export makes them)
/// and the convolutions whose weights are int8.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FakeQuant {
    pub activations: Ranges,
    pub convs: Vec<String>,
    /// Whether the activations' scales are trained (LSQ) rather than fixed.
    pub learn_ranges: bool,
    /// The bits of the weights' grids (`onnx::quantize::WEIGHT_BITS`).
    pub weight_bits: u8,
}

/// The metadata keys of a quantisation-aware run: `qat = int8` (or `int8-learned`), and the activation
/// ranges and weight bits it trained with, which `export --precision int8` uses.
pub const QAT_KEY: &str = "qat";
pub const QAT_RANGES_KEY: &str = "qat_ranges";
pub const QAT_WEIGHT_BITS_KEY: &str = "qat_weight_bits";

impl FakeQuant {
    /// `qat`, `qat_ranges` (JSON: name -> [min, max]) and `qat_weight_bits`.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let ranges: BTreeMap<&str, [f32; 2]> = self
            .activations
            .iter()
            .map(|(k, r)| (k.as_str(), [r.min, r.max]))
            .collect();
        vec![
            (
                QAT_KEY.into(),
                if self.learn_ranges { "int8-learned" } else { "int8" }.into(),
            ),
            (
                QAT_RANGES_KEY.into(),
                serde_json::to_string(&ranges).expect("numbers serialise"),
            ),
            (QAT_WEIGHT_BITS_KEY.into(), self.weight_bits.to_string()),
        ]
    }

    /// The weight bits a `qat_weight_bits` value gives; runs made before it was
    /// recorded trained on 8.
    pub fn weight_bits_of(value: Option<&str>) -> Result<u8> {
        value.map_or(Ok(8), |v| {
            v.parse()
                .ok()
                .filter(|b| (2..=8).contains(b))
                .with_context(|| format!("{QAT_WEIGHT_BITS_KEY} = {v:?} is not a number of bits from 2 to 8"))
        })
    }

    /// The plan with the activation ranges its learned scales (among `values`, by
    /// `scale_name`) now give, each on its calibrated zero point; as it is without them.
    pub fn learned(&self, values: &[(String, Tensor)]) -> Result<FakeQuant> {
        let mut out = self.clone();
        if !self.learn_ranges {
            return Ok(out);
        }
        for (name, range) in out.activations.iter_mut() {
            let key = scale_name(name);
            let (_, s) = values
                .iter()
                .find(|(n, _)| *n == key)
                .with_context(|| format!("the training state has no {key}"))?;
            let scale = s
                .as_f32_scalar()
                .with_context(|| format!("{key} is not a float32 scalar"))?;
            let start = Grid::covering(*range);
            // As the graph reads it (`activation_scale`).
            let scale = scale.max(start.scale * MIN_SCALE);
            let below = start.zero_point as f32;
            *range = Range {
                min: -below * scale,
                max: (255.0 - below) * scale,
            };
        }
        Ok(out)
    }

    /// The activation ranges a `qat_ranges` metadata value holds.
    pub fn ranges_of(json: &str) -> Result<Ranges> {
        let ranges: BTreeMap<String, [f32; 2]> =
            serde_json::from_str(json).context("qat_ranges is not a JSON map of name to [min, max]")?;
        Ok(ranges
            .into_iter()
            .map(|(k, [min, max])| (k, Range { min, max }))
            .collect())
    }
}

/// `net` with fake quantisation (`fake_quantize`).
pub fn fake_quantize_network(net: Network, q: &FakeQuant) -> Result<Network> {
    let (graph, moved) = fake_quantize(&net.graph, q)?;
    let updates = net.updates.into_iter().map(|(name, o)| (name, moved[&o])).collect();
    Ok(Network { graph, updates })
}

/// `g` with fake quantisation after each activation of `q` and on the weight of each
/// of its convs; every reader of an activation reads its rounded value. Also where
/// each of `g`'s values went.
pub fn fake_quantize(g: &Graph, q: &FakeQuant) -> Result<(Graph, HashMap<Outlet, Outlet>)> {
    for name in q.activations.keys().chain(&q.convs) {
        ensure!(
            g.nodes.iter().any(|n| &n.name == name),
            "the network has no node named {name:?} to quantise: quantisation-aware training starts from the network \
             the ranges were calibrated on"
        );
    }
    let mut out = Graph::new();
    let mut moved: HashMap<Outlet, Outlet> = HashMap::new();
    for (id, n) in g.nodes.iter().enumerate() {
        let mut inputs: Vec<Outlet> = n.inputs.iter().map(|o| moved[o]).collect();
        if matches!(n.op, Op::Conv { .. }) && q.convs.contains(&n.name) {
            inputs[1] = fake_quantize_weight(&mut out, &n.name, inputs[1], weight_levels(q.weight_bits))?;
        }
        out.nodes.push(Node { inputs, ..n.clone() });
        let new_id = out.nodes.len() - 1;
        for slot in 0..n.outputs.len() {
            moved.insert(Outlet { node: id, slot }, Outlet { node: new_id, slot });
        }
        if let Some(range) = q.activations.get(&n.name) {
            let grid = Grid::covering(*range);
            let x = Outlet { node: new_id, slot: 0 };
            let lo = -(grid.zero_point as f32);
            let scale = activation_scale(&mut out, &n.name, grid.scale, q.learn_ranges)?;
            let y = round_to_grid(&mut out, &n.name, x, scale, lo, lo + 255.0)?;
            moved.insert(Outlet { node: id, slot: 0 }, y);
        }
    }
    out.inputs = g
        .inputs
        .iter()
        .map(|&i| moved[&Outlet { node: i, slot: 0 }].node)
        .collect();
    out.outputs = g.outputs.iter().map(|(name, o)| (name.clone(), moved[o])).collect();
    out.check().context("after inserting fake quantisation")?;
    Ok((out, moved))
}

/// The name of an activation's scale, a parameter when ranges are learned.
pub fn scale_name(activation: &str) -> String {
    format!("{activation}.fake_quant.scale")
}

/// Whether a training state's value is a learned activation scale, which the
/// inference file holds as its ranges rather than as a weight.
pub fn is_scale(name: &str) -> bool {
    name.ends_with(".fake_quant.scale")
}

/// The smallest a learned scale may become, as a share of where it started.
const MIN_SCALE: f32 = 1e-3;

/// An activation's grid step: calibration's, fixed or as a parameter's start.
fn activation_scale(g: &mut Graph, activation: &str, calibrated: f32, learned: bool) -> Result<Outlet> {
    let name = scale_name(activation);
    if !learned {
        return Ok(g.constant(name, Tensor::scalar(calibrated)));
    }
    let scale = g.wire(name.clone(), Op::Param(Tensor::scalar(calibrated)), &[])?;
    // A step pushed to zero or below would divide by it: it stays above a thousandth of where it started.
    g.wire(
        format!("{name}.positive"),
        Op::Clip {
            min: calibrated * MIN_SCALE,
            max: f32::MAX,
        },
        &[scale],
    )
}

/// `w` [O, ...] rounded to the symmetric grid of each output channel, -levels..levels.
fn fake_quantize_weight(g: &mut Graph, conv: &str, w: Outlet, levels: f32) -> Result<Outlet> {
    let name = format!("{conv}.weight.fake_quant");
    let rank = g.fact(w).shape.len();
    let magnitude = g.wire(format!("{name}.abs"), Op::Abs, &[w])?;
    let peak = g.wire(
        format!("{name}.peak"),
        Op::ReduceMax {
            axes: (1..rank).collect(),
        },
        &[magnitude],
    )?;
    // A channel of zeros divides by 1/levels rather than 0 (the export uses 1): its values round to 0 either way.
    let zero = g.constant(format!("{name}.zero"), Tensor::scalar(0.0));
    let empty = g.wire(format!("{name}.empty"), Op::Greater, &[zero, peak])?;
    let empty = g.wire(
        format!("{name}.empty.f32"),
        Op::Cast {
            to: crate::ir::DType::F32,
        },
        &[empty],
    )?;
    let peak = g.wire(format!("{name}.peak.nonzero"), Op::Add, &[peak, empty])?;
    // max |w| / levels, the division the export makes, so the grids agree to the bit.
    let divisor = g.constant(format!("{name}.levels"), Tensor::scalar(levels));
    let scale = g.wire(format!("{name}.scale.value"), Op::Div, &[peak, divisor])?;
    let scale = g.wire(format!("{name}.scale"), Op::StopGradient, &[scale])?;
    round_to_grid(g, &name, w, scale, -levels, levels)
}

/// clip(round(x / scale), lo, hi) * scale.
fn round_to_grid(g: &mut Graph, name: &str, x: Outlet, scale: Outlet, lo: f32, hi: f32) -> Result<Outlet> {
    let steps = g.wire(format!("{name}.fake_quant.div"), Op::Div, &[x, scale])?;
    let steps = g.wire(format!("{name}.fake_quant.round"), Op::Round, &[steps])?;
    let steps = g.wire(
        format!("{name}.fake_quant.clip"),
        Op::Clip { min: lo, max: hi },
        &[steps],
    )?;
    g.wire(format!("{name}.fake_quant"), Op::Mul, &[steps, scale])
}
