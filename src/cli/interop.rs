//! `srgraph import` and `srgraph export`: the reference implementations'
//! checkpoints to srgraph's inference graph, and srgraph's weights back under a
//! reference layout's names.

use crate::interop::{self, ExportLayout, Hints, Layout};
use crate::models::{describe, Arch};
use crate::util::{check_output, write_output};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// What the user says about a checkpoint: what detection must find, and what the
/// weights cannot tell.
#[derive(Args, Debug, Clone, Default)]
pub struct CheckpointArgs {
    /// EDSR's residual scaling, which no checkpoint records (reference default: 1, or 0.1 for 256 filters).
    #[arg(long)]
    pub res_scale: Option<f32>,
    /// The RGB mean the network subtracts, in 0..1, as R,G,B (default: DIV2K's 0.4488,0.4371,0.4040), where the
    /// checkpoint does not hold it (BasicSR, the official WDSR).
    #[arg(long, value_name = "R,G,B", value_parser = parse_mean)]
    pub rgb_mean: Option<[f32; 3]>,
    /// The pixel range the reference network worked in: EDSR-PyTorch's rgb_range or BasicSR's img_range (default 255).
    #[arg(long, value_name = "RANGE")]
    pub rgb_range: Option<f32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    Srgraph,
    EdsrPytorch,
    Basicsr,
    OfficialWdsr,
    Keras,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Layout {
        match l {
            LayoutArg::Srgraph => Layout::Srgraph,
            LayoutArg::EdsrPytorch => Layout::EdsrPytorch,
            LayoutArg::Basicsr => Layout::BasicSr,
            LayoutArg::OfficialWdsr => Layout::OfficialWdsr,
            LayoutArg::Keras => Layout::Keras,
        }
    }
}

fn parse_mean(s: &str) -> Result<[f32; 3], String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>().map_err(|_| format!("'{x}' is not a number")))
        .collect::<Result<_, _>>()?;
    let m: [f32; 3] = v.try_into().map_err(|_| "give three numbers, R,G,B".to_string())?;
    if m.iter().any(|x| !(0.0..=1.0).contains(x)) {
        return Err("the mean is in 0..1 units (DIV2K's is 0.4488,0.4371,0.4040)".into());
    }
    Ok(m)
}

impl CheckpointArgs {
    pub fn hints(&self) -> Hints {
        Hints {
            res_scale: self.res_scale,
            rgb_mean: self.rgb_mean,
            rgb_range: self.rgb_range,
            ..Hints::default()
        }
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    srgraph import edsr_baseline_x2-1bc95232.pt -o edsr-x2.onnx     (EDSR-PyTorch)\n  \
    srgraph import net_g_latest.pth -o edsr-basicsr.onnx           (BasicSR: params_ema preferred)\n  \
    srgraph import wdsr_b_x2.pt -o wdsr-b-x2.onnx                  (JiahuiYu/wdsr_ntire2018)\n  \
    srgraph import weights.h5 -o wdsr-b-x4.onnx                    (krasserm/super-resolution, Keras)\n  \
    srgraph import model.safetensors -o model.onnx\n  \
    srgraph import trained/checkpoint wdsr-b -o wdsr-b-x2.onnx      (ONNX Runtime training)\n\n\
    Reads PyTorch .pth/.pt (zip or legacy; no pickled code is ever run), .safetensors, Keras .h5 weights (with the \
    keras feature), srgraph's run checkpoints and models, and ONNX Runtime training checkpoints. The architecture, \
    scale, depth and widths are read from the key names and shapes; what the weights cannot say (EDSR's res-scale, \
    a mean that is a constant of the code) takes the reference default and is printed. The architecture and the \
    --scale, --blocks, --filters and --expansion flags, when given, are checks: the import fails if the weights say \
    otherwise.")]
pub struct ImportArgs {
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// The architecture the checkpoint must hold (edsr, wdsr-a, wdsr-b); detected when left out.
    pub arch: Option<String>,
    /// The scale the checkpoint must have.
    #[arg(long, short)]
    pub scale: Option<usize>,
    /// The number of residual blocks it must have.
    #[arg(long, short)]
    pub blocks: Option<usize>,
    /// The feature channels it must have.
    #[arg(long, short)]
    pub filters: Option<usize>,
    /// WDSR: the width multiplier it must have.
    #[arg(long, short)]
    pub expansion: Option<usize>,
    /// The layout, when detection should not choose it.
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
    #[command(flatten)]
    pub checkpoint_args: CheckpointArgs,
    /// The inference .onnx to write.
    #[arg(long, short, visible_alias = "out")]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run_import(a: ImportArgs) -> Result<()> {
    let mut hints = a.checkpoint_args.hints();
    hints.layout = a.layout.map(Layout::from);
    hints.arch = a
        .arch
        .as_deref()
        .map(|s| Arch::parse(s).with_context(|| format!("'{s}' is not an architecture (edsr, wdsr-a, wdsr-b)")))
        .transpose()?;
    hints.scale = a.scale;
    hints.blocks = a.blocks;
    hints.filters = a.filters;
    check_output(&a.output, a.force, &[&a.checkpoint])?;
    let (state, d) = interop::load(&a.checkpoint, &hints)?;
    if let Some(e) = a.expansion.filter(|&e| d.config.wide() != e * d.config.filters) {
        bail!(
            "{}: its wide activation is {} channels, not --expansion {e} x {} filters",
            a.checkpoint.display(),
            d.config.wide(),
            d.config.filters
        );
    }
    let onnx = interop::inference_model(&state, &d, &a.checkpoint.display().to_string())?;
    write_output(&a.output, &onnx, a.force)?;
    print_detection(&a.checkpoint, &state, &d);
    println!("wrote       {}", a.output.display());
    Ok(())
}

fn print_detection(path: &Path, state: &interop::StateDict, d: &interop::Detected) {
    let wrapper = state
        .wrapper
        .as_deref()
        .map(|w| format!(", under {w}"))
        .unwrap_or_default();
    println!("read        {} ({}{wrapper})", path.display(), state.format);
    for r in &d.read {
        println!("  found     {r}");
    }
    for r in &d.assumed {
        println!("  assumed   {r}");
    }
    println!("network     {}", describe(&d.config));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Safetensors,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportLayoutArg {
    /// The architecture's own reference code: EDSR-PyTorch for EDSR, JiahuiYu/wdsr_ntire2018 for WDSR.
    Official,
    EdsrPytorch,
    Basicsr,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    srgraph export runs/wdsr-b-x2 -o wdsr-b-x2.safetensors          (a run folder: its checkpoint)\n  \
    srgraph export edsr-x2.onnx --layout basicsr -o edsr.safetensors\n\n\
    In PyTorch: model.load_state_dict(safetensors.torch.load_file(path)) in the reference code, built as printed. \
    Weight norm stays g and v where the layout has it (the official WDSR); a TensorFlow (DCR) network's shuffled \
    channels are reordered for PyTorch's PixelShuffle. `srgraph import` of the file gives back the same model, bit \
    for bit.")]
pub struct ExportArgs {
    /// A run folder (its checkpoint.onnx), an srgraph .onnx, or any checkpoint `srgraph import` reads.
    pub source: PathBuf,
    /// The file format.
    #[arg(long, value_enum, default_value = "safetensors")]
    pub format: ExportFormat,
    /// Whose parameter names to write.
    #[arg(long = "layout", value_enum, default_value = "official")]
    pub to: ExportLayoutArg,
    #[command(flatten)]
    pub checkpoint_args: CheckpointArgs,
    /// The file to write.
    #[arg(long, short, visible_alias = "out")]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run_export(a: ExportArgs) -> Result<()> {
    let source = if a.source.is_dir() {
        let ckpt = a.source.join("checkpoint.onnx");
        if ckpt.exists() {
            ckpt
        } else {
            let model = a.source.join("model.onnx");
            anyhow::ensure!(
                model.exists(),
                "{} holds neither checkpoint.onnx nor model.onnx: give a run folder, a model or a checkpoint",
                a.source.display()
            );
            model
        }
    } else {
        a.source.clone()
    };
    check_output(&a.output, a.force, &[&source])?;
    let (state, d) = interop::load(&source, &a.checkpoint_args.hints())?;
    let layout = match a.to {
        ExportLayoutArg::Official => ExportLayout::Official,
        ExportLayoutArg::EdsrPytorch => ExportLayout::EdsrPytorch,
        ExportLayoutArg::Basicsr => ExportLayout::BasicSr,
    };
    let e = interop::export_state(&d.config, &d.values, layout)?;
    let mut meta = e
        .config
        .metadata()
        .with("format", "pt")
        .with("exported_from", source.display())
        .with("export_layout", format!("{layout:?}"))
        .with("reference_constructor", &e.constructor);
    if let Some(s) = state.steps {
        meta.push("training_steps", s);
    }
    write_output(&a.output, &interop::to_safetensors(&e.tensors, meta)?, a.force)?;
    print_detection(&source, &state, &d);
    println!("build it as {}", e.constructor);
    println!("wrote       {} ({} tensors)", a.output.display(), e.tensors.len());
    Ok(())
}
