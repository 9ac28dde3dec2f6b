//! `srgraph inspect`: what an `.onnx` file is, how it was made, what it computes;
//! with `--activations`, how much passes each of its ReLUs on a picture.

use super::{RuntimeArg, RuntimeArgs};
use crate::data::picture::{AnyPicture, Picture};
use crate::data::sample::Sample;
use crate::eval::activations::{activation_stats, block_stats, centre, mean_zero_share, BlockStats, ReluStats};
use crate::infer::Signature;
use crate::ir::{show, Op};
use crate::onnx::{pb, Metadata, Model, Precision};
use crate::runtime::Runtime;
use crate::util::grouped;
use anyhow::{Context, Result};
use clap::Args;
use prost::Message;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    srgraph inspect runs/wdsr-b-x2/model.onnx\n  \
    srgraph inspect assets/wdsr-b-x2.onnx --activations ../shared/data/Set5/LR_bicubic/X2/babyx2.png\n\n\
    --activations runs the network once on the picture (its low-resolution input, as\n\
    `srgraph upscale` takes it) and prints what each residual block's ReLU lets through:\n  \
    zero %          share of the ReLU's outputs that are exactly zero: what the block drops\n  \
    mean            mean of its outputs (their mean size: a ReLU's outputs are never negative)\n  \
    dead channels   channels that are zero at every pixel of the picture (and their share)\n\
    then the mean zero share over the blocks. The WDSR paper (Yu et al. 2018, \"Wide Activation\n\
    for Efficient and Accurate Image Super-Resolution\") argues that a block is limited by how\n\
    much information passes its ReLU: widening the features before the ReLU (WDSR's expansion)\n\
    lets more through, and group or depthwise convolutions make activations decay. Lower zero\n\
    shares and fewer dead channels mean more passes; compare models on the same picture.\n\
    Only srgraph's models (built, trained or imported) are read: their node names say which\n\
    block a ReLU is in.")]
pub struct InspectArgs {
    /// The .onnx file to describe.
    pub file: PathBuf,
    /// Instead of the summary, run the model on this picture (PNG, JPEG, BMP: the low-resolution input) and
    /// print each residual block's ReLU statistics (see below).
    #[arg(long, value_name = "PICTURE")]
    pub activations: Option<PathBuf>,
    /// With --activations: a picture wider or taller than this many pixels runs its centre SIDE x SIDE only,
    /// so that a large photo takes the time and memory of a small one.
    #[arg(long, value_name = "SIDE", default_value_t = 256, requires = "activations", value_parser = clap::value_parser!(u32).range(1..))]
    pub crop: u32,
    /// With --activations: which runtime runs the model.
    #[command(flatten)]
    pub engine: RuntimeArgs,
}

pub fn run(a: InspectArgs) -> Result<()> {
    if a.activations.is_none() && a.engine.engine.is_some() {
        clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "--engine runs a model on a picture: it needs --activations PICTURE\n",
        )
        .exit();
    }
    let bytes = std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let bytes = crate::onnx::external::inline_external_data(bytes, &a.file)?;
    let name = a.file.display().to_string();
    if let Some(picture) = &a.activations {
        return activations(&a, &bytes, &name, picture);
    }
    let proto = pb::ModelProto::decode(&bytes[..]).with_context(|| {
        format!("{name} is not an ONNX file: it does not parse as an ONNX model (truncated, or another format)")
    })?;
    let Some(g) = &proto.graph else {
        anyhow::bail!("{name} is not an ONNX model: it has no graph")
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "file        {name} ({:.2} MB)", bytes.len() as f64 / 1e6)?;
    writeln!(out, "producer    {} {}", proto.producer_name, proto.producer_version)?;
    let precision = Precision::of(g);
    writeln!(out, "precision   {} ({})", precision.name(), precision.describe())?;
    // srgraph's IR reads the ops srgraph writes, in float32; any other graph, and srgraph's
    // float16 and int8 files, are shown as ONNX nodes.
    match (proto.producer_name == crate::onnx::PRODUCER, precision) {
        (true, Precision::Fp32) => match Model::from_bytes(&bytes) {
            Ok(model) => describe_ir(&mut out, &model)?,
            Err(e) => {
                writeln!(
                    out,
                    "note        srgraph's IR does not read it ({e:#}): showing its ONNX structure"
                )?;
                describe_proto(&mut out, g)?;
            }
        },
        (true, Precision::Fp16 | Precision::Int8) => describe_proto(&mut out, g)?,
        (false, _) => {
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

/// A picture's (width, height), its centre's, and the ReLU statistics of the centre.
type CentreStats = ((usize, usize), (usize, usize), Vec<ReluStats>);

/// The statistics of the model's ReLUs on `pic`'s centre `side` x `side`.
fn centre_stats<P: Sample>(
    pic: &Picture<P>,
    side: usize,
    bytes: &[u8],
    name: &str,
    engine: Runtime,
    threads: usize,
) -> Result<CentreStats> {
    let lr = centre(pic.rgb.view(), side);
    let (ch, cw, _) = lr.dim();
    Ok((
        pic.size(),
        (cw, ch),
        activation_stats(bytes, name, lr, engine, threads)?,
    ))
}

/// `--activations`: the model run once on the picture's centre, a table of its blocks.
fn activations(a: &InspectArgs, bytes: &[u8], name: &str, picture: &Path) -> Result<()> {
    let engine = a.engine.runtime(RuntimeArg::Tract)?;
    let side = a.crop as usize;
    // At the picture's own depth: a 16-bit one enters the network as v / 257.
    let ((w, h), (cw, ch), relus) = match AnyPicture::open(picture)? {
        AnyPicture::Eight(pic) => centre_stats(&pic, side, bytes, name, engine, a.engine.ort.threads)?,
        AnyPicture::Sixteen(pic) => centre_stats(&pic, side, bytes, name, engine, a.engine.ort.threads)?,
    };
    let blocks = block_stats(&relus);
    let mut out = std::io::stdout().lock();
    writeln!(out, "model       {name}")?;
    let run = if (cw, ch) == (w, h) {
        "whole".to_string()
    } else {
        format!("its centre {cw}x{ch} runs, --crop {side}")
    };
    writeln!(out, "picture     {} ({w}x{h}, {run})", picture.display())?;
    writeln!(out, "engine      {}", engine.name())?;
    writeln!(out)?;
    write_blocks(&mut out, &blocks)?;
    let channels: usize = blocks.iter().map(|b| b.channels).sum();
    let dead: usize = blocks.iter().map(|b| b.dead_channels).sum();
    writeln!(
        out,
        "mean zero share over {} blocks: {:.1}%; dead channels: {dead} of {channels} ({:.1}%)",
        blocks.len(),
        100.0 * mean_zero_share(&blocks),
        100.0 * dead as f64 / channels.max(1) as f64
    )?;
    Ok(())
}

/// One row per block: block, ReLU(s), channels, zero %, mean, dead channels.
fn write_blocks(out: &mut impl Write, blocks: &[BlockStats]) -> Result<()> {
    let relus: Vec<String> = blocks.iter().map(|b| b.relus.join(" ")).collect();
    let block_width = blocks
        .iter()
        .map(|b| b.block.to_string().len())
        .max()
        .unwrap_or(0)
        .max(5);
    let relu_width = relus.iter().map(String::len).max().unwrap_or(0).max(7);
    writeln!(
        out,
        "{:<block_width$}  {:<relu_width$}  {:>8}  {:>6}  {:>9}  dead channels",
        "block", "ReLU(s)", "channels", "zero %", "mean"
    )?;
    for (b, relus) in blocks.iter().zip(&relus) {
        writeln!(
            out,
            "{:<block_width$}  {relus:<relu_width$}  {:>8}  {:>6.1}  {:>9}  {} ({:.1}%)",
            b.block.to_string(),
            b.channels,
            100.0 * b.zero_share,
            four_figures(b.mean),
            b.dead_channels,
            100.0 * b.dead_share()
        )?;
    }
    Ok(())
}

/// `v` to four significant figures (at most six decimals): means range from
/// hundredths to hundreds, depending on how a network scales its features.
fn four_figures(v: f64) -> String {
    let decimals = if v > 0.0 { 3 - v.log10().floor() as i64 } else { 3 };
    format!("{v:.*}", decimals.clamp(0, 6) as usize)
}
