//! ONNX Runtime's (deprecated) on-device training API, spoken both ways: srgraph
//! writes the artefact set that API loads, with gradients from srgraph's own
//! compiler, and reads the API's checkpoints back into inference graphs.
//!
//! The artefacts (what ORT 1.19.2's `Module` and `Optimizer` bind, by name):
//! - `training_model.onnx`: inputs `lr`, `hr`, every parameter `<p>` (inputs, not
//!   initialisers), one `<p>_grad.accumulation.buffer` each and `lazy_reset_grad`
//!   (bool [1]); outputs `loss` and `<p>_grad.accumulation.out`. Each gradient is
//!   added to (or, when `lazy_reset_grad`, written over) its buffer by
//!   `com.microsoft.InPlaceAccumulatorV2`.
//! - `eval_model.onnx`: `lr`, `hr` and the parameters in, `loss` out.
//! - `optimizer_model.onnx`: one `com.microsoft.AdamWOptimizer` over tensor
//!   sequences, in its PyTorch mode (adam_mode 0, epsilon 1e-8, bias correction): the
//!   same update as srgraph's own train step.
//! - `checkpoint`: the parameters in ORT's flatbuffer.

pub mod checkpoint;
mod train_state;

pub use train_state::{checkpoint_of_state, state_of_checkpoint};

use crate::checkpoint::RunCheckpoint;
use crate::compiler::{compile, state, Schedule, TrainConfig};
use crate::ir::{Graph, Op, ShuffleMode, Tensor};
use crate::models::{ModelConfig, Norm};
use crate::onnx::{pb, Model, IR_VERSION, OPSET};
use anyhow::{bail, ensure, Context, Result};
use pb::data_type::{BOOL, FLOAT, INT64};
use pb::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
use pb::type_proto::Value as TypeValue;
use prost::Message;
use std::path::Path;

const MS: &str = "com.microsoft";

/// The four artefacts, as bytes.
pub struct Artefacts {
    pub training_model: Vec<u8>,
    pub eval_model: Vec<u8>,
    pub optimizer_model: Vec<u8>,
    pub checkpoint: Vec<u8>,
    /// The forward pass and loss alone (pixel shuffle as Reshape/Transpose, parameters as
    /// initialisers): what ORT's own gradient builder is given to check srgraph's.
    pub forward_loss: Vec<u8>,
}

/// The training-API artefacts of `c` trained with `t`. From its initial parameters, the
/// checkpoint holds the parameters only (ORT's `Optimizer` starts Adam's moments at zero);
/// `from` a srgraph training run, it holds that run's parameters, Adam moments and step, so
/// the training API continues the run where srgraph left it. ORT's `Optimizer` takes its
/// learning rate from the caller either way.
pub fn artefacts(c: &ModelConfig, t: &TrainConfig, from: Option<&RunCheckpoint>) -> Result<Artefacts> {
    ensure!(
        c.norm != Norm::Batch,
        "the training API's format cannot carry batch norm's running statistics (a training model returns only \
         its loss and gradients): use --norm weight or --norm none, or train with srgraph's own engine"
    );
    let mut grads = compile(c, t)?.gradients;
    let ckpt = match from {
        Some(run) => {
            let names: Vec<String> = grads.params().map(|(n, _)| n.to_string()).collect();
            // The parameters and their moments: a checkpoint.onnx also holds the graph's constants.
            let state: Vec<(String, Tensor)> = run
                .values
                .iter()
                .filter(|(n, _)| names.iter().any(|p| p == state::param_of(n)))
                .cloned()
                .collect();
            let ckpt = checkpoint_of_state(&state, run.step, next_learning_rate(run))?;
            ensure!(
                ckpt.trainable.len() == names.len(),
                "the run's checkpoint lacks some of the network's parameters"
            );
            let trained: Vec<(String, Tensor)> = state.into_iter().filter(|(n, _)| names.contains(n)).collect();
            grads.set_values(&trained)?;
            ckpt
        }
        None => {
            let params: Vec<(String, Tensor)> = grads.params().map(|(n, t)| (n.to_string(), t.clone())).collect();
            checkpoint_of_state(&params, 0, c.arch.default_learning_rate())?
        }
    };
    let params: Vec<(String, Tensor)> = grads.params().map(|(n, t)| (n.to_string(), t.clone())).collect();
    let mut meta = c.metadata();
    meta.extend(t.metadata());
    meta.push("graph", "ort-training");

    // training_model: srgraph's gradients, accumulated in place.
    let mut training = Model::new(grads.clone(), meta.clone()).to_proto("training_model")?;
    {
        let g = training.graph.as_mut().context("a graph")?;
        params_as_plain_inputs(g, &params);
        let flag = "lazy_reset_grad";
        g.input.push(value_info(flag, BOOL, &[1]));
        let loss = g
            .output
            .iter()
            .find(|o| o.name == "loss")
            .cloned()
            .context("a loss output")?;
        g.output = vec![loss];
        for (name, value) in &params {
            let buffer = format!("{name}_grad.accumulation.buffer");
            let done = format!("{name}_grad.accumulation.out");
            g.input.push(value_info(&buffer, FLOAT, value.shape()));
            g.node.push(pb::NodeProto {
                input: vec![buffer, state::grad(name), flag.into()],
                output: vec![done.clone()],
                name: format!("{name}.accumulate"),
                op_type: "InPlaceAccumulatorV2".into(),
                domain: MS.into(),
                ..Default::default()
            });
            g.output.push(value_info(&done, BOOL, &[1]));
        }
    }
    training.opset_import.push(pb::OperatorSetIdProto {
        domain: MS.into(),
        version: 1,
    });

    // eval_model and forward_loss: the loss alone.
    let mut forward = grads;
    forward.outputs.retain(|(n, _)| n == "loss");
    forward.prune();
    let mut eval = Model::new(forward.clone(), meta.clone()).to_proto("eval_model")?;
    params_as_plain_inputs(eval.graph.as_mut().context("a graph")?, &params);
    let mut forward_loss = Model::new(forward.clone(), meta.clone()).to_proto("forward_loss")?;
    {
        let g = forward_loss.graph.as_mut().context("a graph")?;
        let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        g.input.retain(|i| !names.contains(&i.name.as_str()));
        pixel_shuffle_as_reshape(g, &forward)?;
    }

    let optimizer = optimizer_model(t)?;
    Ok(Artefacts {
        training_model: training.encode_to_vec(),
        eval_model: eval.encode_to_vec(),
        optimizer_model: optimizer.encode_to_vec(),
        checkpoint: checkpoint::write(&ckpt),
        forward_loss: forward_loss.encode_to_vec(),
    })
}

/// The rate of the step a srgraph run would take next, from its recorded schedule.
fn next_learning_rate(run: &RunCheckpoint) -> f32 {
    let base = run.metadata.parse::<f32>("base_learning_rate").ok().flatten();
    match (base, Schedule::from_metadata(&run.metadata)) {
        (Some(base), Some(schedule)) => schedule.rate(base, run.step + 1),
        _ => 1e-3,
    }
}

/// The files `write_artefacts` writes into its folder.
pub const ARTEFACT_FILES: [&str; 4] = [
    "training_model.onnx",
    "eval_model.onnx",
    "optimizer_model.onnx",
    "checkpoint",
];

/// Writes the artefacts into `dir` under the names ORT's examples use.
pub fn write_artefacts(dir: &Path, a: &Artefacts) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let contents = [&a.training_model, &a.eval_model, &a.optimizer_model, &a.checkpoint];
    for (name, bytes) in ARTEFACT_FILES.into_iter().zip(contents) {
        crate::util::write_atomic(&dir.join(name), bytes)?;
    }
    Ok(())
}

/// Parameters stay graph inputs, but without initialisers: the training API binds
/// them by name to the checkpoint's tensors.
fn params_as_plain_inputs(g: &mut pb::GraphProto, params: &[(String, Tensor)]) {
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    g.initializer.retain(|t| !names.contains(&t.name.as_str()));
}

fn value_info(name: &str, elem_type: i32, shape: &[usize]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(TypeValue::TensorType(pb::type_proto::Tensor {
                elem_type,
                shape: Some(pb::TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(DimValue::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn float_sequence(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(TypeValue::SequenceType(pb::type_proto::Sequence {
                elem_type: Some(Box::new(pb::TypeProto {
                    value: Some(TypeValue::TensorType(pb::type_proto::Tensor {
                        elem_type: FLOAT,
                        shape: None,
                    })),
                    ..Default::default()
                })),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One AdamWOptimizer node over the parameter, gradient and moment sequences. Mode 0
/// is PyTorch's Adam(W): bias-corrected moments, epsilon outside the square root.
fn optimizer_model(t: &TrainConfig) -> Result<pb::ModelProto> {
    let attr_f = |name: &str, f: f32| pb::AttributeProto {
        name: name.into(),
        f,
        r#type: pb::attribute_type::FLOAT,
        ..Default::default()
    };
    let attr_i = |name: &str, i: i64| pb::AttributeProto {
        name: name.into(),
        i,
        r#type: pb::attribute_type::INT,
        ..Default::default()
    };
    let a = &t.adam;
    let inputs = [
        "learning_rate",
        "step",
        "params",
        "gradients",
        "first_order_moments",
        "second_order_moments",
    ];
    let graph = pb::GraphProto {
        name: "optimizer_model".into(),
        node: vec![pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec!["updated_flag".into()],
            name: "adamw".into(),
            op_type: "AdamWOptimizer".into(),
            domain: MS.into(),
            attribute: vec![
                attr_f("alpha", a.beta1),
                attr_f("beta", a.beta2),
                attr_f("epsilon", a.eps),
                attr_f("weight_decay", a.weight_decay),
                attr_i("correct_bias", 1),
                attr_i("adam_mode", 0),
            ],
            ..Default::default()
        }],
        input: [
            value_info("learning_rate", FLOAT, &[1]),
            value_info("step", INT64, &[1]),
        ]
        .into_iter()
        .chain(inputs[2..].iter().map(|n| float_sequence(n)))
        .collect(),
        output: vec![value_info("updated_flag", BOOL, &[1])],
        ..Default::default()
    };
    Ok(pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![
            pb::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            },
            pb::OperatorSetIdProto {
                domain: MS.into(),
                version: 1,
            },
        ],
        producer_name: crate::onnx::PRODUCER.into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    })
}

/// DepthToSpace spelled as Reshape, Transpose, Reshape (ORT's gradient builder has
/// no DepthToSpace). `g` is the IR graph `proto` was written from, for the shapes.
fn pixel_shuffle_as_reshape(proto: &mut pb::GraphProto, g: &Graph) -> Result<()> {
    let mut nodes = vec![];
    for n in std::mem::take(&mut proto.node) {
        if n.op_type != "DepthToSpace" {
            nodes.push(n);
            continue;
        }
        let ir = g
            .nodes
            .iter()
            .find(|m| m.name == n.name)
            .context("the IR node of a DepthToSpace")?;
        let Op::DepthToSpace { block, mode } = ir.op else {
            bail!("{} is not a DepthToSpace", n.name)
        };
        let shape: Vec<i64> = g
            .fact(ir.inputs[0])
            .shape
            .iter()
            .map(|d| d.known().map(|v| v as i64).context("a training graph has fixed shapes"))
            .collect::<Result<_>>()?;
        let (b, s) = (shape[0], block as i64);
        let (c, h, w) = (shape[1] / (s * s), shape[2], shape[3]);
        let (split, perm) = match mode {
            ShuffleMode::Crd => (vec![b, c, s, s, h, w], vec![0, 1, 4, 2, 5, 3]),
            ShuffleMode::Dcr => (vec![b, s, s, c, h, w], vec![0, 3, 4, 1, 5, 2]),
        };
        let name = &n.name;
        let shape_const = |suffix: &str, dims: Vec<i64>| pb::TensorProto {
            name: format!("{name}.{suffix}"),
            dims: vec![dims.len() as i64],
            data_type: INT64,
            raw_data: dims.iter().flat_map(|d| d.to_le_bytes()).collect(),
            ..Default::default()
        };
        proto.initializer.push(shape_const("split_shape", split));
        proto
            .initializer
            .push(shape_const("merged_shape", vec![b, c, h * s, w * s]));
        let node =
            |op: &str, suffix: &str, inputs: Vec<String>, output: String, perm: Option<&Vec<i64>>| pb::NodeProto {
                input: inputs,
                output: vec![output],
                name: format!("{name}.{suffix}"),
                op_type: op.into(),
                attribute: perm
                    .map(|p| pb::AttributeProto {
                        name: "perm".into(),
                        ints: p.clone(),
                        r#type: pb::attribute_type::INTS,
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            };
        nodes.push(node(
            "Reshape",
            "split",
            vec![n.input[0].clone(), format!("{name}.split_shape")],
            format!("{name}.split"),
            None,
        ));
        nodes.push(node(
            "Transpose",
            "transpose",
            vec![format!("{name}.split")],
            format!("{name}.moved"),
            Some(&perm),
        ));
        nodes.push(node(
            "Reshape",
            "merge",
            vec![format!("{name}.moved"), format!("{name}.merged_shape")],
            n.output[0].clone(),
            None,
        ));
    }
    proto.node = nodes;
    Ok(())
}
