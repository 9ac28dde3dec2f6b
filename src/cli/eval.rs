//! `srgraph eval`: PSNR and SSIM of a model on benchmark folders, bicubic beside it.

use super::{RuntimeArg, RuntimeArgs};
use crate::eval::{evaluate_set, EvalOptions};
use crate::infer::SrModel;
use crate::data::degrade::Degradation;
use anyhow::{ensure, Result};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    srgraph eval runs/wdsr-b-x2/model.onnx --data ../shared/data/Set5\n  \
    srgraph eval model.onnx --data ../shared/data/Set5 ../shared/data/Set14 --json\n  \
    srgraph eval model.onnx --data DIV2K_valid_HR --engine ort\n\n\
    A folder is HR images only (LR made by MATLAB-exact bicubic), HR/ + LR_bicubic/X{s}/, or DIV2K's layout.\n\
    PSNR-Y and SSIM-Y shave `scale` pixels from each border (benchmark convention); PSNR-RGB shaves\n\
    scale + 6 (DIV2K's convention, --rgb-shave to change). Bicubic is MATLAB's imresize.\n\n\
    A model trained with --degradation is scored on LR pictures made the same way (give the same\n\
    --degradation; LR folders are bicubic's, so with bd or a kernel LR is made from HR). Scoring it\n\
    against another degradation is refused unless --any-degradation.")]
pub struct EvalArgs {
    /// The inference .onnx (srgraph build or train's model.onnx, or any [N,3,H,W] -> [N,3,sH,sW] graph).
    pub model: PathBuf,
    /// Benchmark folders; several give one row per set.
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// The scale to evaluate; an error if the model's is different (default: the model's).
    #[arg(long)]
    pub scale: Option<usize>,
    /// Pixels shaved from each border for PSNR on RGB (default: scale + 6).
    #[arg(long)]
    pub rgb_shave: Option<usize>,
    /// Run each image in tiles of this many LR pixels (default: whole images).
    #[arg(long)]
    pub tile: Option<usize>,
    /// Per-image rows even with several folders.
    #[arg(long)]
    pub per_image: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub degradation: super::train::DegradationArg,
    /// Score the model even though it was trained on another degradation than --degradation.
    #[arg(long)]
    pub any_degradation: bool,
    #[command(flatten)]
    pub engine: RuntimeArgs,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let engine = a.engine.runtime(RuntimeArg::Tract)?;
    let mut model = SrModel::load(&a.model, engine, a.engine.ort.threads)?;
    let scale = model.ensure_scale(a.scale)?;
    let degradation = a.degradation.degradation;
    if !a.any_degradation {
        ensure_degradation(&model, &degradation)?;
    }
    let o = EvalOptions {
        degradation,
        scale,
        rgb_shave: a.rgb_shave.unwrap_or(scale + 6),
        tile: a.tile.filter(|&t| t > 0),
    };
    let mut sets = vec![];
    for dir in &a.data {
        let status = !a.json && std::io::stderr().is_terminal();
        let mut tell = |name: &str| {
            if status {
                eprint!("\r\x1b[2K{}: {name}", dir.display());
            }
        };
        sets.push(evaluate_set(&mut model, dir, &o, &mut tell)?);
        if status {
            eprint!("\r\x1b[2K");
        }
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let report = serde_json::json!({
            "model": a.model.display().to_string(),
            "scale": scale,
            "engine": engine.name(),
            "rgb_shave": o.rgb_shave,
            "degradation": o.degradation.name(),
            "tile": o.tile,
            "sets": sets,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} x{scale} in {} (Y: shave {scale}; RGB: shave {})",
        a.model.display(),
        engine.name(),
        o.rgb_shave
    )?;
    if model.channels == 1 {
        writeln!(
            out,
            "a single-channel model: scored, and bicubic beside it, on the luma of each picture (BT.601 Y, as a grey \
             picture)"
        )?;
    }
    let per_image = a.per_image || sets.len() == 1;
    writeln!(out, "{}", header(if per_image { "image" } else { "set" }))?;
    for s in &sets {
        if per_image {
            for i in &s.images {
                writeln!(out, "{}", row(&i.image, &i.model, &i.bicubic))?;
            }
            writeln!(
                out,
                "{}",
                row(&format!("mean {} ({})", s.set, s.images.len()), &s.model, &s.bicubic)
            )?;
        } else {
            writeln!(
                out,
                "{}",
                row(&format!("{} ({})", s.set, s.images.len()), &s.model, &s.bicubic)
            )?;
        }
    }
    let sources: Vec<String> = sets.iter().map(|s| format!("{}: {}", s.set, s.lr_source)).collect();
    writeln!(out, "LR images from {}", sources.join(", "))?;
    let deep: Vec<&str> = sets.iter().filter(|s| s.bit_depth == 16).map(|s| s.set.as_str()).collect();
    if !deep.is_empty() {
        writeln!(
            out,
            "16-bit, scored with peak 65535 (Y of values / 257): {}",
            deep.join(", ")
        )?;
    }
    Ok(())
}

/// The model's recorded degradation (absent: bicubic) must be the one asked for.
fn ensure_degradation(model: &SrModel, asked: &Degradation) -> Result<()> {
    let trained = model.metadata.get("degradation").unwrap_or("bicubic");
    ensure!(
        asked.matches(trained),
        "{} was trained on {trained} inputs, but --degradation is {}: give --degradation {} to score it as it was \
         trained, or --any-degradation to score it on {} anyway",
        model.name,
        asked.name(),
        match trained.strip_prefix("kernel:") {
            Some(kernel) => format!("kernel:FILE with the kernel of {kernel}"),
            None => trained.to_string(),
        },
        asked.name()
    );
    Ok(())
}

fn header(first: &str) -> String {
    format!(
        "{first:<20} {:>9} {:>8} {:>9}   {:>9} {:>8} {:>9}   {:>7}\n{:<20} {:>9} {:>8} {:>9}   {:>9} {:>8} {:>9}   {:>7}",
        "model", "", "", "bicubic", "", "", "gain",
        "", "PSNR-Y", "SSIM-Y", "PSNR-RGB", "PSNR-Y", "SSIM-Y", "PSNR-RGB", "PSNR-Y"
    )
}

fn row(name: &str, m: &crate::eval::Scores, b: &crate::eval::Scores) -> String {
    format!(
        "{name:<20} {:>9.3} {:>8.4} {:>9.3}   {:>9.3} {:>8.4} {:>9.3}   {:>+7.3}",
        m.psnr_y,
        m.ssim_y,
        m.psnr_rgb,
        b.psnr_y,
        b.ssim_y,
        b.psnr_rgb,
        m.psnr_y - b.psnr_y
    )
}
