//! `srgraph inspect`: what an `.onnx` file is, how it was made, what it computes.

use crate::infer::Signature;
use crate::ir::{show, Op};
use crate::onnx::{pb, Metadata, Model};
use crate::util::grouped;
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
    let bytes = crate::onnx::external::inline_external_data(bytes, &a.file)?;
    let name = a.file.display().to_string();
    let proto = pb::ModelProto::decode(&bytes[..]).with_context(|| {
        format!("{name} is not an ONNX file: it does not parse as an ONNX model (truncated, or another format)")
    })?;
    let Some(g) = &proto.graph else {
        anyhow::bail!("{name} is not an ONNX model: it has no graph")
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "file        {name} ({:.2} MB)", bytes.len() as f64 / 1e6)?;
    writeln!(out, "producer    {} {}", proto.producer_name, proto.producer_version)?;
    // srgraph's IR reads the ops srgraph writes; any other graph is shown as ONNX nodes.
    let ir = if proto.producer_name == crate::onnx::PRODUCER {
        Some(Model::from_bytes(&bytes))
    } else {
        None
    };
    match ir {
        Some(Ok(model)) => describe_ir(&mut out, &model)?,
        Some(Err(e)) => {
            writeln!(
                out,
                "note        srgraph's IR does not read it ({e:#}): showing its ONNX structure"
            )?;
            describe_proto(&mut out, g)?;
        }
        None => {
            writeln!(out, "note        not made by srgraph: showing its ONNX structure")?;
            describe_proto(&mut out, g)?;
        }
    }
    for (key, value) in Metadata::from_proto(&proto.metadata_props).iter() {
        writeln!(out, "meta        {key} = {value}")?;
    }
    // The same check eval and upscale make before they load a model.
    match Signature::read(&bytes, &name) {
        Ok(_) => writeln!(out, "runs        eval and upscale accept its signature and attributes")?,
        Err(e) => writeln!(out, "runs        eval and upscale refuse it: {e:#}")?,
    }
    Ok(())
}

fn describe_proto(out: &mut impl Write, g: &pb::GraphProto) -> Result<()> {
    let mut ops: Vec<(String, usize)> = Vec::new();
    for n in &g.node {
        match ops.iter_mut().find(|(o, _)| *o == n.op_type) {
            Some((_, c)) => *c += 1,
            None => ops.push((n.op_type.clone(), 1)),
        }
    }
    let ops: Vec<String> = ops.iter().map(|(o, n)| format!("{o} {n}")).collect();
    writeln!(out, "nodes       {} ({})", g.node.len(), ops.join(", "))?;
    Ok(())
}

fn describe_ir(out: &mut impl Write, model: &Model) -> Result<()> {
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
    Ok(())
}
