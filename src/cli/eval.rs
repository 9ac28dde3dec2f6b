//! `srgraph eval`: PSNR and SSIM of a model, or of pictures upscaled elsewhere (`--upscaled`), on benchmark
//! folders, bicubic beside them; `--save-inputs` writes the LR pictures they are made from.

use super::{RuntimeArg, RuntimeArgs};
use crate::data::degrade::Degradation;
use crate::eval::upscaled::{evaluate_upscaled, save_inputs};
use crate::eval::{evaluate_set, EvalOptions, SetScores};
use crate::infer::SrModel;
use anyhow::{ensure, Result};
use clap::{ArgGroup, Args};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    srgraph eval runs/wdsr-b-x2/model.onnx --data ../shared/data/Set5\n  \
    srgraph eval model.onnx --data ../shared/data/Set5 ../shared/data/Set14 --json\n  \
    srgraph eval model.onnx --data DIV2K_valid_HR --engine ort\n  \
    srgraph eval --data ../shared/data/Set5 --scale 4 --save-inputs lr/\n  \
    srgraph eval --data ../shared/data/Set5 --scale 4 --upscaled sr/\n\n\
    A folder is HR images only (LR made by MATLAB-exact bicubic), HR/ + LR_bicubic/X{s}/, or DIV2K's layout.\n\
    PSNR-Y and SSIM-Y shave `scale` pixels from each border (benchmark convention); PSNR-RGB shaves\n\
    scale + 6 (DIV2K's convention, --rgb-shave to change). Bicubic is MATLAB's imresize.\n\n\
    A model trained with --degradation is scored on LR pictures made the same way (give the same\n\
    --degradation; LR folders are bicubic's, so with bd or a kernel LR is made from HR). Scoring it\n\
    against another degradation is refused unless --any-degradation.\n\n\
    --save-inputs DIR writes the LR pictures eval gives a model, as NAME.png, for another program to\n\
    upscale; --upscaled DIR scores its pictures as a model's: one per HR picture, named by its stem\n\
    (baby.png, or baby_x4.png as srgraph upscale names it), the size of the HR picture cropped to a\n\
    multiple of the scale. With several --data folders, each flag takes a subfolder per set, named\n\
    as the set's folder (DIR/Set5/, DIR/Set14/).")]
#[command(group(ArgGroup::new("what").required(true).multiple(true).args(["model", "upscaled", "save_inputs"])))]
pub struct EvalArgs {
    /// The inference .onnx (srgraph build or train's model.onnx, or any [N,3,H,W] -> [N,3,sH,sW] graph).
    pub model: Option<PathBuf>,
    /// Score the pictures in this folder, upscaled elsewhere from the LR pictures, instead of a model's
    /// (needs --scale).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "tile"], requires = "scale")]
    pub upscaled: Option<PathBuf>,
    /// Write the LR pictures eval gives a model (the set's LR files, or those the degradation makes) into
    /// this folder as NAME.png; without a model or --upscaled, only that.
    #[arg(long, value_name = "DIR")]
    pub save_inputs: Option<PathBuf>,
    /// Replace files --save-inputs finds in its folder.
    #[arg(long, requires = "save_inputs")]
    pub force: bool,
    /// Benchmark folders; several give one row per set.
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// The scale to evaluate; an error if the model's is different (default: the model's).
    #[arg(long, required_unless_present = "model")]
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
    if let Some(path) = &a.model {
        return score_model(&a, path);
    }
    let o = options(&a, a.scale.expect("clap requires --scale without a model"));
    if let Some(out) = &a.save_inputs {
        write_inputs(&a, &o, out)?;
    }
    match &a.upscaled {
        Some(upscaled) => score_upscaled(&a, &o, upscaled),
        None => Ok(()),
    }
}

fn score_upscaled(a: &EvalArgs, o: &EvalOptions, upscaled: &Path) -> Result<()> {
    let sets = a
        .data
        .iter()
        .map(|dir| evaluate_upscaled(&for_set(upscaled, dir, a.data.len()), dir, o))
        .collect::<Result<Vec<_>>>()?;
    let json = serde_json::json!({ "upscaled": upscaled.display().to_string() });
    let title = format!("{} (upscaled elsewhere) x{}", upscaled.display(), o.scale);
    report(a, o, &sets, json, &title, false)
}

/// The options every set is scored with.
fn options(a: &EvalArgs, scale: usize) -> EvalOptions {
    EvalOptions {
        degradation: a.degradation.degradation.clone(),
        scale,
        rgb_shave: a.rgb_shave.unwrap_or(scale + 6),
        tile: a.tile.filter(|&t| t > 0),
    }
}

/// `dir` itself for a single set; its subfolder named as the set's folder for several.
fn for_set(dir: &Path, set: &Path, sets: usize) -> PathBuf {
    match set.file_name() {
        Some(name) if sets > 1 => dir.join(name),
        _ => dir.to_path_buf(),
    }
}

fn write_inputs(a: &EvalArgs, o: &EvalOptions, out: &Path) -> Result<()> {
    for dir in &a.data {
        let folder = for_set(out, dir, a.data.len());
        let n = save_inputs(dir, o, &folder, a.force)?;
        // On stderr, so that --json's stdout stays one document.
        eprintln!(
            "wrote the {n} x{} LR pictures of {} to {}",
            o.scale,
            dir.display(),
            folder.display()
        );
    }
    Ok(())
}

fn score_model(a: &EvalArgs, path: &Path) -> Result<()> {
    let engine = a.engine.runtime(RuntimeArg::Tract)?;
    let mut model = SrModel::load(path, engine, a.engine.ort.threads)?;
    let scale = model.ensure_scale(a.scale)?;
    if !a.any_degradation {
        ensure_degradation(&model, &a.degradation.degradation)?;
    }
    let o = options(a, scale);
    if let Some(out) = &a.save_inputs {
        write_inputs(a, &o, out)?;
    }
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
    let json = serde_json::json!({
        "model": path.display().to_string(),
        "engine": engine.name(),
        "tile": o.tile,
    });
    let title = format!("{} x{scale} in {}", path.display(), engine.name());
    report(a, &o, &sets, json, &title, model.channels == 1)
}

/// The scores as JSON (`about`'s fields first) or as tables, one row per picture or per set.
fn report(
    a: &EvalArgs,
    o: &EvalOptions,
    sets: &[SetScores],
    about: serde_json::Value,
    title: &str,
    grey: bool,
) -> Result<()> {
    let scale = o.scale;
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut report = about;
        report["scale"] = scale.into();
        report["rgb_shave"] = o.rgb_shave.into();
        report["degradation"] = o.degradation.name().into();
        report["sets"] = serde_json::to_value(sets)?;
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    writeln!(out, "{title} (Y: shave {scale}; RGB: shave {})", o.rgb_shave)?;
    if grey {
        writeln!(
            out,
            "a single-channel model: scored, and bicubic beside it, on the luma of each picture (BT.601 Y, as a grey \
             picture)"
        )?;
    }
    let per_image = a.per_image || sets.len() == 1;
    writeln!(out, "{}", header(if per_image { "image" } else { "set" }))?;
    for s in sets {
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
    let deep: Vec<&str> = sets
        .iter()
        .filter(|s| s.bit_depth == 16)
        .map(|s| s.set.as_str())
        .collect();
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
