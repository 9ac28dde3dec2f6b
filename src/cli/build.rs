//! `srgraph build`: a preset or an architecture, flags over it, one `.onnx` out.

use crate::compiler::{compile, Loss, TrainConfig};
use crate::export::inference_graph;
use crate::ir::{show, ShuffleMode};
use crate::models::describe;
use crate::models::{self, fit_budget, parse_count, Arch, ConvKind, ModelConfig, Norm};
use crate::onnx::{Model, Provenance};
use crate::runtime::{ort::Device, Runtime};
use crate::util::{check_output, grouped, write_output};
use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

/// The network: an architecture or preset, and flags over it.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Architecture (edsr, wdsr-a, wdsr-b) or preset name (see `srgraph presets`).
    pub arch: String,
    /// Upscaling factor: 2, 3 or 4.
    #[arg(long, short)]
    pub scale: Option<usize>,
    /// Number of residual blocks.
    #[arg(long, short)]
    pub blocks: Option<usize>,
    /// Feature channels between blocks.
    #[arg(long, short)]
    pub filters: Option<usize>,
    /// WDSR: width multiplier before the ReLU (the "wide activation").
    #[arg(long, short)]
    pub expansion: Option<usize>,
    /// WDSR-B: low-rank width as a fraction of the filters (official code: 0.8).
    #[arg(long)]
    pub linear: Option<f32>,
    /// WDSR-B: how the block narrows its wide activation back to the filters. low-rank (WDSR-B's: 1x1 to
    /// --linear x filters, then 3x3), flattened (that 3x3 as 3x1 then 1x3), group:G (3x3 in G groups, then a 1x1
    /// across them), depthwise (3x3 depthwise on the wide features, then 1x1) or inverted-residual (depthwise with
    /// a ReLU after it: MobileNetV2's block). See docs/study.md.
    #[arg(long, value_name = "KIND", value_parser = parse_conv_kind)]
    pub conv: Option<ConvKind>,
    /// Residual scaling applied to each block's output before the skip add.
    #[arg(long)]
    pub res_scale: Option<f32>,
    /// Normalisation: weight (every conv; WDSR's default), batch (after each conv in the residual blocks), or none (EDSR's).
    #[arg(long, value_enum)]
    pub norm: Option<NormArg>,
    /// Pixel-shuffle layout: crd (PyTorch PixelShuffle) or dcr (TensorFlow depth_to_space).
    #[arg(long, value_enum)]
    pub shuffle: Option<ShuffleArg>,
    /// Picture channels in and out: 3 (RGB) or 1 (grey: trained on grey pictures as they are and on RGB
    /// pictures' luma; see docs/pictures.md).
    #[arg(long, value_name = "1|3")]
    pub channels: Option<usize>,
    /// Seed of the parameters' initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Choose the width (and WDSR's expansion, unless given) closest to this many parameters, e.g. 600k or 1.2M.
    #[arg(long, value_name = "COUNT")]
    pub params: Option<String>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  srgraph build wdsr-a --blocks 8 --scale 2 -o wdsr-a-x2.onnx\n  \
    srgraph build study-wdsr-b-8 --scale 4\n  srgraph build edsr --blocks 8 --params 600k\n\n\
    Run `srgraph presets` for the named presets."
)]
pub struct BuildArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Write the training form instead: weight norm as ops, parameters as overridable initialisers.
    #[arg(long)]
    pub unfolded: bool,
    /// Also compile the training graphs: write model.onnx, train_step.onnx, gradients.onnx and eval.onnx into the output folder.
    #[arg(long)]
    pub train: bool,
    /// With --train or --format ort-training: images per batch (the graphs are compiled for this fixed size).
    #[arg(long, value_name = "N (default 16)")]
    pub batch: Option<usize>,
    /// With --train or --format ort-training: high-resolution patch side in pixels (the low-resolution one is
    /// patch / scale).
    #[arg(long, value_name = "PX (default 96)")]
    pub patch: Option<usize>,
    /// With --train or --format ort-training: the loss, l1 (the papers') or mse.
    #[arg(long, value_enum, value_name = "LOSS (default l1)")]
    pub loss: Option<LossArg>,
    /// onnx (srgraph's files), or ort-training: the artefacts ONNX Runtime's training API loads
    /// (training_model.onnx, eval_model.onnx, optimizer_model.onnx, checkpoint) into the output folder.
    #[arg(long, value_enum, default_value = "onnx")]
    pub format: FormatArg,
    /// With --format ort-training: start from a srgraph training run's checkpoint.onnx, with its parameters, Adam
    /// moments and step, so that the training API continues the run (same network, batch, patch and loss).
    #[arg(long, value_name = "CHECKPOINT")]
    pub from: Option<PathBuf>,
    /// With --train: time both spellings of each conv's gradients in this runtime (all cores) and compile the
    /// faster, as `srgraph train` does; cached under $SRGRAPH_CACHE (else ~/.cache/srgraph/data)/spellings. Without
    /// it the graphs follow the rule (docs/speed.md), fit for any runtime.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "ort-cpu", value_name = "RUNTIME", requires = "train")]
    pub tune: Option<TuneFor>,
    /// Output file (default: <name>-x<scale>.onnx), or with --train the output folder (default: <name>-x<scale>/).
    #[arg(long, short, visible_alias = "out")]
    pub output: Option<PathBuf>,
    /// Replace output files that already exist.
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NormArg {
    Weight,
    Batch,
    None,
}

impl From<NormArg> for Norm {
    fn from(n: NormArg) -> Norm {
        match n {
            NormArg::Weight => Norm::Weight,
            NormArg::Batch => Norm::Batch,
            NormArg::None => Norm::None,
        }
    }
}

/// The runtime `--tune` measures in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TuneFor {
    OrtCpu,
    OrtCuda,
    Tract,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Onnx,
    OrtTraining,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LossArg {
    L1,
    Mse,
}

impl From<LossArg> for Loss {
    fn from(l: LossArg) -> Loss {
        match l {
            LossArg::L1 => Loss::L1,
            LossArg::Mse => Loss::Mse,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ShuffleArg {
    Crd,
    Dcr,
}

/// `--conv`'s values, with the message `ConvKind::parse` gives.
pub fn parse_conv_kind(s: &str) -> Result<ConvKind, String> {
    ConvKind::parse(s).map_err(|e| format!("{e:#}"))
}

/// The configuration the arguments describe: preset (or architecture defaults), then flags.
pub fn resolve(a: &ModelArgs) -> Result<(ModelConfig, Vec<String>)> {
    let mut notes = Vec::new();
    let mut c = match Arch::parse(&a.arch) {
        Some(arch) => ModelConfig::new(arch),
        None => match models::preset(&a.arch)? {
            Some(p) => {
                notes.push(format!("preset {}: {}", p.name, p.description));
                p.config()?
            }
            None => {
                let names: Vec<String> = models::presets()?.into_iter().map(|p| p.name).collect();
                bail!(
                    "'{}' is neither an architecture (edsr, wdsr-a, wdsr-b) nor a preset ({})",
                    a.arch,
                    names.join(", ")
                );
            }
        },
    };
    if !c.arch.is_wdsr() && a.expansion.is_some() {
        bail!("--expansion applies to wdsr-a and wdsr-b, not {}", c.arch.name());
    }
    if c.arch != Arch::WdsrB && a.linear.is_some() {
        bail!("--linear applies to wdsr-b only, not {}", c.arch.name());
    }
    if c.arch != Arch::WdsrB && a.conv.is_some() {
        bail!("--conv applies to wdsr-b's block only, not {}", c.arch.name());
    }
    c.conv = a.conv.unwrap_or(c.conv);
    if a.linear.is_some() && !c.conv.uses_low_rank() {
        bail!(
            "--linear sets the low-rank width, which --conv {} does not have",
            c.conv
        );
    }
    if a.params.is_some() && a.filters.is_some() {
        bail!("--params chooses the filters itself: give --params or --filters, not both");
    }
    c.scale = a.scale.unwrap_or(c.scale);
    c.blocks = a.blocks.unwrap_or(c.blocks);
    c.filters = a.filters.unwrap_or(c.filters);
    c.expansion = a.expansion.unwrap_or(c.expansion);
    c.linear = a.linear.unwrap_or(c.linear);
    c.res_scale = a.res_scale.unwrap_or(c.res_scale);
    c.norm = a.norm.map_or(c.norm, Norm::from);
    c.shuffle = match a.shuffle {
        Some(ShuffleArg::Crd) => ShuffleMode::Crd,
        Some(ShuffleArg::Dcr) => ShuffleMode::Dcr,
        None => c.shuffle,
    };
    c.seed = a.seed;
    c.channels = a.channels.unwrap_or(c.channels);
    c.validate().context("Invalid configuration")?;
    if let Some(budget) = &a.params {
        let budget = parse_count(budget).context("--params")?;
        let fit = fit_budget(&c, budget, a.expansion.is_none(), 4)?;
        let mut chose = format!("--params {}: chose {} filters", grouped(budget), fit.config.filters);
        if c.arch.is_wdsr() {
            chose += &format!(", expansion {}", fit.config.expansion);
        }
        chose += &format!(" ({} parameters)", grouped(fit.params));
        notes.push(chose);
        c = fit.config;
    }
    Ok((c, notes))
}

pub fn run(a: BuildArgs) -> Result<()> {
    let (c, notes) = resolve(&a.model)?;
    if !a.train && a.format == FormatArg::Onnx && (a.batch.is_some() || a.patch.is_some() || a.loss.is_some()) {
        // A usage error (exit code 2), as clap gives for a flag out of place.
        clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "--batch, --patch and --loss need --train or --format ort-training\n",
        )
        .exit();
    }
    if a.format == FormatArg::Onnx && a.from.is_some() {
        clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "--from needs --format ort-training\n",
        )
        .exit();
    }
    if a.format == FormatArg::OrtTraining {
        return run_ort_training(&a, &c, notes);
    }
    if a.train {
        return run_train(&a, &c, notes);
    }
    let name = a.model.name(&c);
    let path = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}-x{}.onnx", c.scale)));
    check_output(&path, a.force, &[])?;
    let training_form = models::build(&c)?;
    let params = training_form.param_count();
    let graph = if a.unfolded {
        training_form
    } else {
        inference_graph(&training_form)?
    };
    let kind = if a.unfolded { "training-form" } else { "inference" };
    let provenance = Provenance {
        graph: kind,
        parameters: params,
        training_steps: Some(0),
        command: true,
    };
    let model = Model::with_provenance(graph, c.metadata(), &provenance);
    write_output(&path, &model.to_bytes(&name)?, a.force)?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    let mut out = std::io::stdout().lock();
    for n in notes {
        writeln!(out, "{n}")?;
    }
    writeln!(out, "network     {}", describe(&c))?;
    writeln!(
        out,
        "parameters  {}{}",
        grouped(params),
        if c.norm == Norm::Weight {
            " (weight norm's g included)"
        } else {
            ""
        }
    )?;
    let (i, o) = (&model.graph.nodes[model.graph.inputs[0]], model.graph.outputs[0].1);
    writeln!(
        out,
        "graph       {kind}: {} {} -> {} {}",
        i.name,
        show(&i.outputs[0].shape),
        model.graph.outputs[0].0,
        show(&model.graph.fact(o).shape)
    )?;
    let ops: Vec<String> = model
        .graph
        .op_histogram()
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect();
    writeln!(out, "ops         {}", ops.join(", "))?;
    writeln!(out, "wrote       {} ({:.2} MB)", path.display(), size as f64 / 1e6)?;
    Ok(())
}

/// `--train`: the inference graph and the three training graphs, in one folder.
impl BuildArgs {
    fn train_config(&self) -> TrainConfig {
        train_config(self.batch, self.patch, self.loss)
    }
}

/// The training configuration `--batch`, `--patch` and `--loss` give, defaults elsewhere.
pub fn train_config(batch: Option<usize>, patch: Option<usize>, loss: Option<LossArg>) -> TrainConfig {
    let d = TrainConfig::default();
    TrainConfig {
        batch: batch.unwrap_or(d.batch),
        patch: patch.unwrap_or(d.patch),
        loss: loss.map_or(d.loss, Loss::from),
        ..d
    }
}

/// The artefact set of ONNX Runtime's training API, gradients from srgraph's compiler.
fn run_ort_training(a: &BuildArgs, c: &ModelConfig, notes: Vec<String>) -> Result<()> {
    ensure!(!a.unfolded, "--unfolded does not apply to --format ort-training");
    let t = a.train_config();
    t.validate(c.scale).context("Invalid training configuration")?;
    let name = a.model.name(c);
    let dir = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}-x{}-ort-training", c.scale)));
    let from: Vec<&std::path::Path> = a.from.iter().map(PathBuf::as_path).collect();
    for file in crate::ortapi::ARTEFACT_FILES {
        check_output(&dir.join(file), a.force, &from)?;
    }
    let run = match &a.from {
        Some(path) => {
            let run = crate::checkpoint::load(path)?;
            let mut wanted = c.metadata();
            wanted.extend(t.metadata());
            crate::checkpoint::ensure_same_config(&run, &wanted, path, "the flags").map_err(|e| {
                anyhow::anyhow!(
                    "--from: {e}; give the run's network and its --batch, --patch and --loss (`srgraph inspect` \
                     shows them)"
                )
            })?;
            Some(run)
        }
        None => None,
    };
    crate::ortapi::write_artefacts(&dir, &crate::ortapi::artefacts(c, &t, run.as_ref())?)?;
    let mut out = std::io::stdout().lock();
    for n in notes {
        writeln!(out, "{n}")?;
    }
    writeln!(out, "network     {}", describe(c))?;
    writeln!(
        out,
        "training    batch {} of {} px patches, {} loss, AdamW (PyTorch mode, weight decay 0)",
        t.batch,
        t.patch,
        t.loss.name()
    )?;
    if let (Some(run), Some(path)) = (&run, &a.from) {
        writeln!(
            out,
            "from        {} after {} steps: its parameters, Adam moments and step are in the checkpoint",
            path.display(),
            run.step
        )?;
    }
    writeln!(
        out,
        "wrote       {}/: training_model.onnx, eval_model.onnx, optimizer_model.onnx, checkpoint (ONNX Runtime \
         training API, 1.19)",
        dir.display()
    )?;
    Ok(())
}

/// What `build --train` writes into its folder.
const TRAIN_FILES: [&str; 4] = ["model.onnx", "train_step.onnx", "gradients.onnx", "eval.onnx"];

fn run_train(a: &BuildArgs, c: &ModelConfig, notes: Vec<String>) -> Result<()> {
    if a.unfolded {
        bail!("--unfolded and --train do not go together: the training graphs are written unfolded anyway");
    }
    let t = a.train_config();
    t.validate(c.scale).context("Invalid training configuration")?;
    let name = a.model.name(c);
    let dir = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}-x{}", c.scale)));
    for file in TRAIN_FILES {
        check_output(&dir.join(file), a.force, &[])?;
    }
    let mut t = t;
    if let Some(tune_for) = a.tune {
        let runtime = match tune_for {
            TuneFor::OrtCpu => Runtime::Ort(Device::Cpu),
            TuneFor::OrtCuda => Runtime::Ort(Device::Cuda),
            TuneFor::Tract => Runtime::Tract,
        };
        let target = crate::tune::Target { runtime, threads: 0 };
        t.spellings = crate::tune::spellings(c, &t, &target, &crate::data::cache::default_root(), true)?;
    }
    let graphs = compile(c, &t)?;
    let training_form = models::build(c)?;
    let params = training_form.param_count();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
    // Training graphs record their training configuration with the network's.
    let network = |fixed: bool| {
        let mut m = c.metadata();
        if fixed {
            m.extend(t.metadata());
        }
        m
    };
    let files = [
        ("inference", inference_graph(&training_form)?, false),
        ("train-step", graphs.train_step, true),
        ("gradients", graphs.gradients, true),
        ("eval", graphs.eval, true),
    ];
    let mut out = std::io::stdout().lock();
    for n in notes {
        writeln!(out, "{n}")?;
    }
    writeln!(out, "network     {}", describe(c))?;
    writeln!(out, "parameters  {}", grouped(params))?;
    writeln!(
        out,
        "training    batch {} of {}x{} HR patches ({}x{} LR), {} loss, Adam",
        t.batch,
        t.patch,
        t.patch,
        t.patch / c.scale,
        t.patch / c.scale,
        t.loss.name()
    )?;
    for (file, (kind, graph, fixed)) in TRAIN_FILES.into_iter().zip(files) {
        let ops: usize = graph.op_histogram().iter().map(|(_, n)| n).sum();
        let inputs = graph.inputs.len() + graph.params().count() + graph.buffers().count();
        let path = dir.join(file);
        let provenance = Provenance {
            graph: kind,
            parameters: params,
            training_steps: Some(0),
            command: true,
        };
        write_output(
            &path,
            &Model::with_provenance(graph, network(fixed), &provenance).to_bytes(kind)?,
            a.force,
        )?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        writeln!(
            out,
            "wrote       {} ({kind}: {ops} ops, {inputs} inputs, {:.2} MB)",
            path.display(),
            size as f64 / 1e6
        )?;
    }
    writeln!(
        out,
        "initial parameters, Adam moments and batch-norm statistics are the defaults of the training graphs' inputs"
    )?;
    Ok(())
}

pub fn list_presets() -> Result<()> {
    let mut out = std::io::stdout().lock();
    for p in models::presets()? {
        let c = p.config()?;
        writeln!(
            out,
            "{:<18} {:>10} params (x2)  {}",
            p.name,
            grouped(models::param_count(&c)?),
            p.description
        )?;
    }
    Ok(())
}

impl ModelArgs {
    /// The name files are called after: the preset's, or the architecture's.
    pub fn name(&self, c: &ModelConfig) -> String {
        if Arch::parse(&self.arch).is_some() {
            c.arch.name().to_string()
        } else {
            self.arch.clone()
        }
    }
}
