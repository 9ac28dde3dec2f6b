//! GraphProto to and from the IR.
//!
//! Parameters are initialisers that are also listed among the graph's inputs
//! (ONNX's "overridable initialiser"); constants are initialisers only. That is
//! how the reader tells them apart.

use super::ops;
use super::pb::{self, tensor_shape_proto::dimension::Value as DimValue, type_proto, GraphProto, ValueInfoProto};
use super::tensor::{dtype_of, elem_type, tensor_from_proto, tensor_to_proto};
use crate::ir::{Dim, Fact, Graph, Op, Outlet};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;

/// Marks a graph input that holds state rather than a trained parameter.
const BUFFER_DOC: &str = "srgraph buffer: state updated by the train step, not trained";

pub fn graph_to_proto(g: &Graph, name: &str) -> Result<GraphProto> {
    g.check()?;
    // Values are named after their node (slot 0) or `node:slot`; a graph output
    // renames the value it exposes.
    let mut value_name: HashMap<Outlet, String> = HashMap::new();
    for (id, n) in g.nodes.iter().enumerate() {
        for slot in 0..n.outputs.len() {
            let v = if slot == 0 {
                n.name.clone()
            } else {
                format!("{}:{slot}", n.name)
            };
            value_name.insert(Outlet { node: id, slot }, v);
        }
    }
    // An output renames the value it exposes, unless that value is an input,
    // a stored value or already exposed: those get an Identity node.
    let mut aliases = Vec::new();
    for (out, o) in &g.outputs {
        let stored = matches!(g.nodes[o.node].op, Op::Input) || g.nodes[o.node].op.is_value();
        if stored
            || g.outputs
                .iter()
                .take_while(|(name, _)| name != out)
                .any(|(_, other)| other == o)
        {
            aliases.push((out.clone(), *o));
        } else {
            value_name.insert(*o, out.clone());
        }
    }
    let mut proto = GraphProto {
        name: name.to_string(),
        ..Default::default()
    };
    for &i in &g.inputs {
        proto.input.push(value_info(&g.nodes[i].name, &g.nodes[i].outputs[0]));
    }
    for (id, n) in g.nodes.iter().enumerate() {
        match &n.op {
            Op::Input => {}
            Op::Const(t) => proto.initializer.push(tensor_to_proto(&n.name, t)),
            Op::Param(t) | Op::Buffer(t) => {
                proto.initializer.push(tensor_to_proto(&n.name, t));
                let mut vi = value_info(&n.name, &n.outputs[0]);
                if matches!(n.op, Op::Buffer(_)) {
                    vi.doc_string = BUFFER_DOC.into();
                }
                proto.input.push(vi);
            }
            op => {
                let inputs = n.inputs.iter().map(|o| value_name[o].clone()).collect();
                let outputs = (0..n.outputs.len())
                    .map(|slot| value_name[&Outlet { node: id, slot }].clone())
                    .collect();
                let node = ops::write(op, &n.name, inputs, outputs, &mut proto.initializer)
                    .with_context(|| format!("Writing node {} ({})", n.name, op.name()))?;
                proto.node.push(node);
            }
        }
    }
    for (out, o) in aliases {
        proto.node.push(pb::NodeProto {
            input: vec![value_name[&o].clone()],
            output: vec![out.clone()],
            name: format!("{out}.identity"),
            op_type: "Identity".into(),
            ..Default::default()
        });
    }
    for (out, o) in &g.outputs {
        proto.output.push(value_info(out, g.fact(*o)));
    }
    Ok(proto)
}

pub fn graph_from_proto(p: &GraphProto) -> Result<Graph> {
    let mut g = Graph::new();
    let mut values: HashMap<String, Outlet> = HashMap::new();
    let inits: HashMap<&str, &pb::TensorProto> = p.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let declared = |name: &str| p.input.iter().find(|v| v.name == name);
    for vi in &p.input {
        if !inits.contains_key(vi.name.as_str()) {
            let o = g.input(
                &vi.name,
                fact_of(vi).with_context(|| format!("Reading graph input {}", vi.name))?,
            );
            values.insert(vi.name.clone(), o);
        }
    }
    let constant = |name: &str| inits.get(name).and_then(|t| tensor_from_proto(t).ok());
    for (index, node) in p.node.iter().enumerate() {
        // Identity only gives a value a second name.
        if node.op_type == "Identity" && node.domain.is_empty() && node.input.len() == 1 && node.output.len() == 1 {
            let o = *values
                .get(&node.input[0])
                .with_context(|| format!("Identity {}: '{}' is not defined before it", node.name, node.input[0]))?;
            values.insert(node.output[0].clone(), o);
            continue;
        }
        let what = || format!("Reading node {} ({})", node.name, node.op_type);
        let (op, wired) = ops::read(index, node, &constant).map_err(|e| super::attributes::in_node(e, what))?;
        let mut inputs = Vec::new();
        for name in node.input.iter().take(wired).filter(|n| !n.is_empty()) {
            let o = match values.get(name) {
                Some(o) => *o,
                None => {
                    let t = inits
                        .get(name.as_str())
                        .with_context(|| format!("{}: input '{name}' is not defined before it", what()))?;
                    let tensor = tensor_from_proto(t).with_context(what)?;
                    let op = match declared(name) {
                        Some(vi) if vi.doc_string == BUFFER_DOC => Op::Buffer(tensor),
                        Some(_) => Op::Param(tensor),
                        None => Op::Const(tensor),
                    };
                    let o = g.wire(name.clone(), op, &[])?;
                    values.insert(name.clone(), o);
                    o
                }
            };
            inputs.push(o);
        }
        ensure!(
            node.output.len() == 1,
            "{}: srgraph's ops have one output, this node has {}",
            what(),
            node.output.len()
        );
        let name = if node.name.is_empty() {
            node.output[0].clone()
        } else {
            node.name.clone()
        };
        let o = g.wire(name, op, &inputs).with_context(what)?;
        values.insert(node.output[0].clone(), o);
    }
    for vi in &p.output {
        let o = *values
            .get(&vi.name)
            .with_context(|| format!("graph output {} is not produced by any node", vi.name))?;
        g.output(&vi.name, o);
    }
    Ok(g)
}

fn value_info(name: &str, fact: &Fact) -> ValueInfoProto {
    let dim = fact
        .shape
        .iter()
        .map(|d| pb::tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Known(n) => DimValue::DimValue(*n as i64),
                sym => DimValue::DimParam(sym.onnx_param().unwrap()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor {
        elem_type: elem_type(fact.dtype),
        shape: Some(pb::TensorShapeProto { dim }),
    };
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn fact_of(vi: &ValueInfoProto) -> Result<Fact> {
    let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        bail!("not a tensor")
    };
    let shape = t.shape.as_ref().context("no shape")?;
    let dims = shape
        .dim
        .iter()
        .enumerate()
        .map(|(i, d)| match &d.value {
            Some(DimValue::DimValue(n)) if *n >= 0 => Ok(Dim::Known(*n as usize)),
            Some(DimValue::DimParam(p)) => Ok(Dim::parse_onnx_param(p)),
            _ => Ok(Dim::sym(&format!("{}_{i}", vi.name))),
        })
        .collect::<Result<_>>()?;
    Ok(Fact {
        dtype: dtype_of(t.elem_type)?,
        shape: dims,
    })
}
