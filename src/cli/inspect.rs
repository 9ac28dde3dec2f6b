//! `srgraph inspect`: what an `.onnx` file is, how it was made, what it computes.

use super::grouped;
use crate::ir::{show, Op};
use crate::onnx::{pb, Model};
use anyhow::{Context, Result};
use clap::Args;
use prost::Message;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The .onnx file to describe.
    pub file: PathBuf,
}

pub fn run(a: InspectArgs) -> Result<()> {
    let bytes = std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let proto = pb::ModelProto::decode(&bytes[..]).with_context(|| {
        format!(
            "{} is not an ONNX file: it does not parse as an ONNX model (truncated, or another format)",
            a.file.display()
        )
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "file        {} ({:.2} MB)",
        a.file.display(),
        bytes.len() as f64 / 1e6
    )?;
    writeln!(out, "producer    {} {}", proto.producer_name, proto.producer_version)?;
    if proto.producer_name != crate::onnx::PRODUCER {
        let Some(g) = &proto.graph else {
            anyhow::bail!("{} is not an ONNX model: it has no graph", a.file.display())
        };
        writeln!(out, "note        not made by srgraph: showing its ONNX structure only")?;
        let mut ops: Vec<(String, usize)> = Vec::new();
        for n in &g.node {
            match ops.iter_mut().find(|(o, _)| *o == n.op_type) {
                Some((_, c)) => *c += 1,
                None => ops.push((n.op_type.clone(), 1)),
            }
        }
        let ops: Vec<String> = ops.iter().map(|(o, n)| format!("{o} {n}")).collect();
        writeln!(out, "nodes       {} ({})", g.node.len(), ops.join(", "))?;
        return Ok(());
    }
    let model = Model::from_bytes(&bytes)
        .with_context(|| format!("{} says srgraph made it, but srgraph cannot read it", a.file.display()))?;
    let g = &model.graph;
    for &i in &g.inputs {
        writeln!(
            out,
            "input       {} {}",
            g.nodes[i].name,
            show(&g.nodes[i].outputs[0].shape)
        )?;
    }
    for (name, o) in &g.outputs {
        writeln!(out, "output      {name} {}", show(&g.fact(*o).shape))?;
    }
    let weights: usize = g
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Const(t) | Op::Param(t) => Some(t.len()),
            _ => None,
        })
        .sum();
    writeln!(
        out,
        "weights     {} values in constants and parameters",
        grouped(weights)
    )?;
    let ops: Vec<String> = g.op_histogram().iter().map(|(op, n)| format!("{op} {n}")).collect();
    writeln!(out, "ops         {}", ops.join(", "))?;
    for (k, v) in &model.metadata {
        writeln!(out, "meta        {k} = {v}")?;
    }
    Ok(())
}
