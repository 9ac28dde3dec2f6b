//! `srgraph import` and `srgraph export`: the reference implementations'
//! checkpoints to srgraph's inference graph, and srgraph's weights back under a
//! reference layout's names.

use crate::compiler::qat;
use crate::eval::calibrate;
use crate::interop::{self, ExportLayout, Hints, Layout};
use crate::models::{describe, Arch};
use crate::onnx::{pb, precision, quantize, Metadata, Precision};
use crate::util::{check_output, write_output};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use prost::Message;
use std::io::IsTerminal;
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
pub enum PrecisionArg {
    /// float32, as srgraph builds, trains and writes every model.
    Fp32,
    /// float16 weights and arithmetic; the input and output stay float32.
    Fp16,
    /// int8 weights and activations in the body, in QDQ form (needs --calibrate).
    Int8,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Fp16 => Precision::Fp16,
            PrecisionArg::Int8 => Precision::Int8,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CalibrationArg {
    /// The smallest and largest value each activation took: nothing clipped.
    MinMax,
    /// The --percentile-th percentile of each activation's values: rare outliers clipped, a finer grid for the rest.
    Percentile,
}

/// How `export --precision int8` finds its activation ranges.
#[derive(Args, Debug)]
pub struct CalibrationArgs {
    /// A folder of pictures like those the model will upscale (any layout `train --data` reads; its low-resolution
    /// versions at the model's scale are what the model sees), for --precision int8. A model trained with --qat int8
    /// needs none: it carries the ranges it trained with.
    #[arg(long, value_name = "DIR")]
    pub calibrate: Option<PathBuf>,
    /// How each activation's range is read from the calibration pictures.
    #[arg(long, value_enum, default_value = "percentile", requires = "calibrate")]
    pub calibration: CalibrationArg,
    /// The percentile kept by --calibration percentile (and 100 less it below).
    #[arg(long, default_value_t = 99.99, value_parser = parse_percentile, requires = "calibrate")]
    pub percentile: f64,
    /// Each calibration picture's centre, at most this many low-resolution pixels square.
    #[arg(long, default_value_t = 128, requires = "calibrate")]
    pub calibration_crop: usize,
    /// Threads ONNX Runtime runs calibration on (0: all cores).
    #[arg(long, default_value_t = 0, value_parser = super::parse_threads, requires = "calibrate")]
    pub threads: usize,
    /// Bits of the int8 weights: 7 (the default; a model trained with --qat uses those it trained with) keeps
    /// ONNX Runtime exact on x86 CPUs without VNNI, whose uint8 x int8 multiply-add saturates on 8-bit weights
    /// (docs/shipping.md); 8 for CPUs with VNNI, GPUs and NPUs.
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=8))]
    pub weight_bits: Option<u8>,
}

fn parse_percentile(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (50.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a percentile between 50 and 100, such as 99.99")),
    }
}

impl CalibrationArgs {
    fn method(&self) -> calibrate::Method {
        match self.calibration {
            CalibrationArg::MinMax => calibrate::Method::MinMax,
            CalibrationArg::Percentile => calibrate::Method::Percentile(self.percentile),
        }
    }
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
    srgraph export edsr-x2.onnx --layout basicsr -o edsr.safetensors\n  \
    srgraph export runs/wdsr-b-x2 --precision fp16 -o wdsr-b-x2-fp16.onnx   (an ONNX model for shipping)\n\n\
    --precision fp16 writes an ONNX inference model (not weights) whose weights and arithmetic are float16, half \
    the bytes, with float32 input and output: every runtime's caller, and srgraph eval and upscale, use it as the \
    float32 model. Its metadata records `precision = fp16`; srgraph inspect shows it.\n\n\
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
    /// Write an ONNX inference model in this precision instead of weights (fp16: float16 weights and arithmetic,
    /// float32 input and output; fp32: the float32 model).
    #[arg(long, value_enum, conflicts_with_all = ["format", "to"])]
    pub precision: Option<PrecisionArg>,
    #[command(flatten)]
    pub calibration: CalibrationArgs,
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
    if let Some(precision) = a.precision {
        return export_onnx(&a, precision.into());
    }
    // The weights as trained: the checkpoint before the model (which may be their average).
    let source = in_run_folder(&a.source, ["checkpoint.onnx", "model.onnx"])?;
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

/// `source` itself, or in a run folder the first of `files` it holds.
fn in_run_folder(source: &Path, files: [&str; 2]) -> Result<PathBuf> {
    if !source.is_dir() {
        return Ok(source.to_path_buf());
    }
    files
        .iter()
        .map(|f| source.join(f))
        .find(|p| p.exists())
        .with_context(|| {
            format!(
                "{} holds neither {} nor {}: give a run folder, a model or a checkpoint",
                source.display(),
                files[0],
                files[1]
            )
        })
}

/// `export --precision`: the inference model of `a.source` in `precision`. A run folder
/// gives its model.onnx (what it shipped), an srgraph model is narrowed as it is (its
/// metadata kept), and any other checkpoint is imported first.
fn export_onnx(a: &ExportArgs, precision: Precision) -> Result<()> {
    let source = in_run_folder(&a.source, ["model.onnx", "checkpoint.onnx"])?;
    check_output(&a.output, a.force, &[&source])?;
    let name = source.display().to_string();
    let bytes = std::fs::read(&source).with_context(|| format!("cannot read {name}"))?;
    if let Some(proto) = onnx_model(&bytes) {
        ensure_exportable(&proto, &name)?;
    }
    let (state, d) = interop::load(&source, &a.checkpoint_args.hints())?;
    let float32 = if state.format == "srgraph model" && crate::infer::Signature::read(&bytes, &name).is_ok() {
        bytes.clone()
    } else {
        interop::inference_model(&state, &d, &name)?
    };
    let mut model = pb::ModelProto::decode(&float32[..]).context("srgraph's own model does not parse")?;
    match precision {
        Precision::Fp32 => {}
        Precision::Fp16 => {
            precision::to_fp16(&mut model).with_context(|| format!("{name} cannot be written in float16"))?
        }
        Precision::Int8 => quantise(&mut model, &float32, &name, &d.config, &a.calibration)?,
    }
    let mut meta = Metadata::from_proto(&model.metadata_props);
    meta.push("exported_from", &name);
    model.metadata_props = meta.to_proto();
    let out = model.encode_to_vec();
    write_output(&a.output, &out, a.force)?;
    print_detection(&source, &state, &d);
    println!(
        "wrote       {} ({}: {}; {:.2} MB, float32 {:.2} MB)",
        a.output.display(),
        precision.name(),
        precision.describe(),
        out.len() as f64 / 1e6,
        float32.len() as f64 / 1e6
    );
    Ok(())
}

/// `model` (whose float32 bytes are `float32`) quantised to int8 with activation
/// ranges calibrated on `a.calibrate`'s pictures.
fn quantise(
    model: &mut pb::ModelProto,
    float32: &[u8],
    name: &str,
    config: &crate::models::ModelConfig,
    a: &CalibrationArgs,
) -> Result<()> {
    let meta = Metadata::from_proto(&model.metadata_props);
    let trained = meta.get(qat::QAT_RANGES_KEY).map(str::to_string);
    let weight_bits = match (a.weight_bits, &trained) {
        (Some(bits), _) => bits,
        (None, Some(_)) => qat::FakeQuant::weight_bits_of(meta.get(qat::QAT_WEIGHT_BITS_KEY))
            .with_context(|| format!("{name}'s metadata"))?,
        (None, None) => quantize::WEIGHT_BITS,
    };
    let (ranges, how) = match (&a.calibrate, trained) {
        (Some(dir), _) => calibrated(float32, name, config.scale, dir, a)?,
        (None, Some(json)) => (
            qat::FakeQuant::ranges_of(&json).with_context(|| format!("{name}'s metadata"))?,
            "the ranges it was trained with (train --qat int8)".to_string(),
        ),
        (None, None) => bail!(
            "--precision int8 needs --calibrate DIR, a folder of pictures like those {name} will upscale (its \
             training data, say): it was not trained with --qat int8, so it carries no activation ranges"
        ),
    };
    quantize::to_int8(model, &ranges, &how, weight_bits).with_context(|| format!("{name} cannot be written in int8"))
}

/// The activation ranges of `float32` on the pictures of `dir`, and how they were found.
fn calibrated(
    float32: &[u8],
    name: &str,
    scale: usize,
    dir: &Path,
    a: &CalibrationArgs,
) -> Result<(quantize::Ranges, String)> {
    anyhow::ensure!(
        crate::infer::Signature::read(float32, name)?.channels != Some(1),
        "{name} is a single-channel (grey) network: --calibrate runs RGB pictures, so int8 calibration does not \
         apply to it; write it in float32"
    );
    let pictures = calibrate::Pictures::load(dir, scale, a.calibration_crop, None)
        .with_context(|| format!("--calibrate {}", dir.display()))?;
    let method = a.method();
    let ranges = calibrate::calibrate(
        float32,
        name,
        &pictures,
        method,
        crate::runtime::Runtime::Ort(crate::runtime::ort::Device::Cpu),
        a.threads,
        std::io::stderr().is_terminal(),
    )?;
    let how = format!(
        "{}, {} pictures of {} (centre {} px)",
        method.describe(),
        pictures.inputs.len(),
        pictures.folder,
        a.calibration_crop
    );
    Ok((ranges, how))
}

/// The ONNX model `bytes` hold, when they hold one (the other formats `export` reads
/// start with signatures an ONNX file never has, and rarely parse as one).
fn onnx_model(bytes: &[u8]) -> Option<pb::ModelProto> {
    pb::ModelProto::decode(bytes).ok().filter(|m| m.graph.is_some())
}

/// An ONNX source must be one of srgraph's float32 models: another producer's graph
/// holds ops and names srgraph does not know, and a float16 model has lost the bits
/// an export would start from.
fn ensure_exportable(proto: &pb::ModelProto, name: &str) -> Result<()> {
    if proto.producer_name != crate::onnx::PRODUCER {
        bail!(
            "{name} was not made by srgraph (its producer is {:?}): srgraph exports its own models; `srgraph import` \
             reads the PyTorch, safetensors and Keras checkpoints of EDSR and WDSR",
            proto.producer_name
        );
    }
    let graph = proto.graph.as_ref().context("no graph")?;
    let meta = Metadata::from_proto(&proto.metadata_props);
    let declared = meta.get(precision::PRECISION_KEY).unwrap_or("fp32");
    if Precision::of(graph) != Precision::Fp32 || declared != "fp32" {
        bail!(
            "{name} is {} already: export from the float32 model it came from (a run folder, its model.onnx or its \
             checkpoint)",
            if declared == "fp32" {
                Precision::of(graph).name()
            } else {
                declared
            }
        );
    }
    Ok(())
}
