//! `srgraph train`: train a network on a folder of images and leave a trained `.onnx`.

use super::build::{resolve, LossArg, ModelArgs};
use super::{EngineArg, EngineArgs};
use crate::compiler::{Loss, TrainConfig};
use crate::data::degrade::Degradation;
use crate::models::describe;
use crate::train::{train, DataOptions, Init, RunOptions, ScheduleOptions, TrainOptions};
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    srgraph train wdsr-b --blocks 8 --data ../shared/data/T91 --val ../shared/data/Set5 --steps 2000\n  \
    srgraph train wdsr-a --blocks 8 --data DIV2K --val DIV2K_valid --device cuda --steps 300000\n  \
    srgraph train wdsr-b --blocks 8 --data ../shared/data/T91 --out runs/b8 --resume\n\n\
    The run folder (--out) receives checkpoint.onnx (written atomically every --checkpoint-every steps),\n\
    log.jsonl, curves.png and, at the end or on Ctrl-C, model.onnx. Exit code 130 after Ctrl-C.\n\n\
    Progress goes to stderr: a bar on a terminal; otherwise (nohup, CI, a Slurm log) a line every\n\
    twentieth of the steps or every 30 s, whichever comes first, and at the last step (step/total,\n\
    loss, steps/s, ETA), with each validation's scores. --quiet prints neither.")]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Training images: a folder of pictures, DIV2K's layout (DIV2K_train_HR, DIV2K_train_LR_bicubic/X{s}), or HR/ + LR_bicubic/X{s}/.
    #[arg(long)]
    pub data: PathBuf,
    /// Validation images (same layouts); PSNR on Y (and on RGB with DIV2K's shave, scale + 6) with bicubic beside
    /// it, every --validate-every steps, in the engine that trains; pictures over 512 px are run in tiles.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Validate on the first N pictures of --val only (DIV2K's 100 validation pictures are 2K).
    #[arg(long, value_name = "N", value_parser = super::positive)]
    pub val_limit: Option<u64>,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// The loss.
    #[arg(long, value_enum, default_value = "l1")]
    pub loss: LossArg,
    /// Write checkpoint.onnx every this many steps (and at the end, and when stopped).
    #[arg(long, default_value_t = 500, value_parser = super::positive)]
    pub checkpoint_every: u64,
    /// Validate on --val every this many steps (and at the end).
    #[arg(long, default_value_t = 500, value_parser = super::positive)]
    pub validate_every: u64,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The run's folder (default: runs/<name>-x<scale>).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Start afresh in an --out that holds another run's files (checkpoint, model, log, curves), deleting them.
    #[arg(long, alias = "overwrite")]
    pub force: bool,
    /// No progress: neither the bar nor, without a terminal, the progress lines.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Start from these weights (any checkpoint `srgraph import` reads: PyTorch, safetensors, srgraph, ONNX
    /// Runtime) with a fresh optimiser: fine-tuning. The network is the checkpoint's; the architecture and any
    /// --scale/--blocks/--filters/--expansion/--norm given must agree with it. An RGB checkpoint with
    /// --channels 1 starts a grey network from what it does to grey pictures (docs/pictures.md).
    #[arg(long, value_name = "CHECKPOINT")]
    pub init: Option<PathBuf>,
    /// Quantisation-aware fine-tuning: train under the rounding of an int8 file (`srgraph export --precision
    /// int8`), so the file keeps what rounding a trained model loses. Needs --init. The activation ranges are
    /// calibrated on the first 32 pictures of --data by the starting weights and recorded in the model, whose int8
    /// export then needs no --calibrate. Validation scores that int8 file. `int8-learned` also trains each
    /// activation's scale from there (LSQ): the ranges recorded are the trained ones.
    #[arg(long, value_enum, requires = "init")]
    pub qat: Option<QatArg>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QatArg {
    /// int8 weights (symmetric, per output channel) and uint8 activations, as `export --precision int8` writes.
    Int8,
    /// As int8, with the activations' ranges trained beside the weights (learned step size, Esser et al. 2020)
    /// instead of fixed where calibration put them.
    Int8Learned,
}

/// How long, on what and how fast a network trains: shared by `train` and `study`.
#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// Training steps (of each run, in a study).
    #[arg(long, default_value_t = 1000, value_parser = super::positive)]
    pub steps: u64,
    /// Images per batch.
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    pub batch: usize,
    /// High-resolution patch side in pixels.
    #[arg(long, default_value_t = 96)]
    pub patch: usize,
    /// Learning rate (default: 1e-3 for WDSR, 1e-4 for EDSR, as the reference code).
    #[arg(long)]
    pub lr: Option<f32>,
    /// The learning-rate schedule: step (halve every --halve-every steps, the paper's), multistep:S1,S2,... (halve
    /// at those steps), or cosine (anneal to 0 by the last step).
    #[arg(long, default_value = "step", value_name = "step|multistep:S1,S2|cosine", value_parser = schedule_spec)]
    pub schedule: String,
    /// With --schedule step: halve the learning rate every this many steps.
    #[arg(long, default_value_t = 200_000, value_parser = super::positive)]
    pub halve_every: u64,
    /// Raise the learning rate linearly from base / N to base over the first N steps.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub warmup: u64,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.999, as BasicSR's ema_decay);
    /// the model written is the average, and validation scores both.
    #[arg(long, value_name = "DECAY", value_parser = ema_decay)]
    pub ema: Option<f32>,
    /// Seed of the data: which crops, flips and rotations each step sees.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Compile each conv's gradients with the rule instead of timing both spellings in the engine first. The
    /// timings are cached per engine, thread count and CPU (under --cache, in spellings/), so only the first run of
    /// a network measures (a few seconds).
    #[arg(long)]
    pub no_tune: bool,
}

/// How the training set's LR pictures are made and where its pixels are cached: shared by
/// `train` and `study`.
#[derive(Args, Debug)]
pub struct CacheArgs {
    /// Where the training set's decoded pixels are cached (default: $SRGRAPH_CACHE, else ~/.cache/srgraph/data).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub degradation: DegradationArg,
}

/// `--degradation`: how LR pictures are made from HR ones (`train`, `study`, `prepare`, `eval`).
#[derive(Args, Debug, Clone)]
pub struct DegradationArg {
    /// How LR pictures are made from HR ones: bicubic (MATLAB imresize, and the folder's LR files), bd (Gaussian
    /// blur 7x7, sigma 1.6, then nearest downsampling), dn (bicubic, then Gaussian noise of sigma 30), or
    /// kernel:FILE (a blur kernel of your own, a text file of rows of numbers or a grey PNG, then nearest).
    #[arg(long, value_name = "bicubic|bd|dn|kernel:FILE", default_value = "bicubic", value_parser = degradation)]
    pub degradation: Degradation,
}

/// A usage error (exit code 2) for a degradation that cannot be one.
fn degradation(s: &str) -> Result<Degradation, String> {
    Degradation::parse(s).map_err(|e| format!("{e:#}"))
}

impl CacheArgs {
    pub fn data(&self, data: PathBuf) -> DataOptions {
        DataOptions {
            data,
            cache: self.cache.clone().unwrap_or_else(crate::data::cache::default_root),
            degradation: self.degradation.degradation.clone(),
        }
    }
}

/// A usage error (exit code 2) for a schedule that cannot be one, whatever the run's length.
fn schedule_spec(s: &str) -> Result<String, String> {
    crate::compiler::Schedule::parse(s, 1, 0, u64::MAX).map_err(|e| format!("{e:#}"))?;
    Ok(s.to_string())
}

fn ema_decay(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(d) if d > 0.0 && d < 1.0 => Ok(d),
        _ => Err(format!("'{s}' is not a decay between 0 and 1 (BasicSR uses 0.999)")),
    }
}

impl ScheduleArgs {
    /// The schedule, training with `loss`.
    pub fn options(&self, loss: Loss) -> Result<ScheduleOptions> {
        Ok(ScheduleOptions {
            train: TrainConfig {
                batch: self.batch,
                patch: self.patch,
                loss,
                ..TrainConfig::default()
            },
            steps: self.steps,
            learning_rate: self.lr,
            rates: crate::compiler::Schedule::parse(&self.schedule, self.halve_every, self.warmup, self.steps)
                .context("--schedule")?,
            ema: self.ema,
            data_seed: self.data_seed,
            tune: !self.no_tune,
        })
    }
}

/// Ok(true) when the run was interrupted by Ctrl-C.
pub fn run(a: TrainArgs) -> Result<bool> {
    let (c, notes, init) = match &a.init {
        None => {
            let (c, notes) = resolve(&a.model)?;
            (c, notes, None)
        }
        Some(path) => {
            let (c, init) = init_from(path, &a.model)?;
            (
                c,
                vec![format!("starting from {} (a fresh optimiser)", path.display())],
                Some(init),
            )
        }
    };
    let name = a.model.name(&c);
    let mut o = TrainOptions {
        data: a.cache.data(a.data),
        run: RunOptions {
            engine: a.engine.engine(EngineArg::Ort)?,
            threads: a.engine.ort.threads,
            progress: !a.quiet,
        },
        schedule: a.schedule.options(a.loss.into())?,
        val: a.val,
        val_limit: a.val_limit.map(|n| n as usize),
        out: a
            .out
            .unwrap_or_else(|| PathBuf::from(format!("runs/{name}-x{}", c.scale))),
        checkpoint_every: a.checkpoint_every,
        validate_every: a.validate_every,
        resume: a.resume,
        overwrite: a.force,
        model: c,
        init,
    };
    if let (Some(qat), Some(init)) = (a.qat, &o.init) {
        anyhow::ensure!(
            o.model.norm != crate::models::Norm::Batch,
            "--qat trains weight-normalised or plain networks: batch norm is folded into the convs only at export, \
             so the training graph's convs are not the file's"
        );
        let learn_ranges = qat == QatArg::Int8Learned;
        let plan = crate::train::qat::plan(
            &o.model,
            init,
            &o.data.data,
            learn_ranges,
            o.run.threads,
            o.run.progress,
        )?;
        o.schedule.train.qat = Some(plan);
    }
    let stop = super::stop_on_signals("stopping after this step: the checkpoint and model will be written")?;
    // Under mpirun, rank 0 speaks for the job.
    let leader = crate::distributed::is_leader();
    if leader {
        let mut out = std::io::stdout().lock();
        for n in notes {
            writeln!(out, "{n}")?;
        }
        writeln!(out, "network     {}", describe(&o.model))?;
        let s = &o.schedule;
        writeln!(
            out,
            "training    {} steps, batch {} of {} px patches, {} loss, lr {} {}{}, engine {}",
            s.steps,
            s.train.batch,
            s.train.patch,
            s.train.loss.name(),
            o.learning_rate(),
            s.rates.describe(),
            s.ema.map(|d| format!(", EMA {d}")).unwrap_or_default(),
            o.run.engine.name()
        )?;
        if let Some((_, name)) = o.data.metadata() {
            writeln!(out, "degradation {name} (the LR pictures, of training and validation)")?;
        }
        if o.data.bit_depth(o.model.scale) == 16 {
            writeln!(
                out,
                "pictures    16-bit (the network sees values / 257; the model records bit_depth = 16)"
            )?;
        }
        writeln!(out, "run folder  {}", o.out.display())?;
        if let Some(l) = crate::distributed::launch() {
            writeln!(
                out,
                "ranks       {} (mpirun), {} patches each per step, gradients summed with MPI's allreduce",
                l.size,
                o.schedule.train.batch / l.size.max(1)
            )?;
        }
    }
    let report = train(&o, &stop)?;
    if !leader {
        return Ok(report.interrupted);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "steps       {}{}",
        report.steps,
        if report.interrupted {
            " (stopped by a signal)"
        } else {
            ""
        }
    )?;
    writeln!(out, "last loss   {:.4}", report.last_loss)?;
    if let Some((m, b)) = report.psnr {
        writeln!(
            out,
            "validation  PSNR-Y {m:.2} dB (bicubic {b:.2} dB, {:+.2} dB)",
            m - b
        )?;
    }
    writeln!(
        out,
        "wrote       {} (and checkpoint.onnx, log.jsonl, curves.png beside it)",
        report.model.display()
    )?;
    Ok(report.interrupted)
}

/// The network a checkpoint holds and its weights, checked against the flags given:
/// a flag that disagrees with the weights is an error naming both.
fn init_from(path: &std::path::Path, m: &ModelArgs) -> Result<(crate::models::ModelConfig, Init)> {
    use crate::models::{Arch, Norm};
    let arch = Arch::parse(&m.arch).with_context(|| {
        format!(
            "with --init give the architecture (edsr, wdsr-a, wdsr-b), not '{}': the checkpoint decides the rest",
            m.arch
        )
    })?;
    anyhow::ensure!(
        m.params.is_none(),
        "--params chooses a width, and --init's checkpoint has one: give one of them"
    );
    let hints = crate::interop::Hints {
        arch: Some(arch),
        scale: m.scale,
        blocks: m.blocks,
        filters: m.filters,
        res_scale: m.res_scale,
        ..Default::default()
    };
    let (state, mut d) = crate::interop::load(path, &hints)?;
    if m.channels == Some(1) && d.config.channels == 3 {
        // A grey network starts from what the RGB one does to grey pictures.
        (d.config, d.values) = crate::models::single_channel_from_rgb(&d.config, d.values)
            .with_context(|| format!("{}: making its RGB network single-channel", path.display()))?;
        eprintln!(
            "note: {}: an RGB network, started as one channel: its convs that read the picture sum over R, G and B, \
             those that write it give the luma of their three outputs",
            path.display()
        );
    }
    let c = d.config;
    let mut wrong = vec![];
    if let Some(e) = m.expansion.filter(|&e| c.wide() != e * c.filters) {
        wrong.push(format!(
            "its wide activation is {} channels, not --expansion {e}",
            c.wide()
        ));
    }
    if let Some(l) = m.linear.filter(|&l| c.low_rank() != (c.filters as f32 * l) as usize) {
        wrong.push(format!("its low-rank width is {}, not --linear {l}", c.low_rank()));
    }
    if let Some(k) = m.conv.filter(|&k| k != c.conv) {
        wrong.push(format!("its block is {}, not --conv {k}", c.conv));
    }
    if let Some(n) = m.norm.map(Norm::from).filter(|&n| n != c.norm) {
        wrong.push(format!("it has {} norm, not --norm {}", c.norm.name(), n.name()));
    }
    if let Some(ch) = m.channels.filter(|&ch| ch != c.channels) {
        wrong.push(format!("it takes {} channels, not --channels {ch}", c.channels));
    }
    if m.shuffle.is_some_and(|s| !matches!(s, super::build::ShuffleArg::Crd)) {
        wrong.push("its pixel shuffle is PyTorch's (crd)".into());
    }
    anyhow::ensure!(wrong.is_empty(), "{}: {}", path.display(), wrong.join("; "));
    for r in d.assumed.iter() {
        eprintln!("note: {}: assumed {r}", path.display());
    }
    let source = format!("{} ({})", path.display(), state.format);
    Ok((
        c,
        Init {
            source,
            values: d.values,
        },
    ))
}
