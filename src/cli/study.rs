//! `srgraph study`: the WDSR paper's study from one command.

use super::build::{parse_conv_kind, NormArg};
use super::train::{CacheArgs, ScheduleArgs};
use super::{EngineArg, EngineArgs};
use crate::models::{Arch, ConvKind, ModelConfig, Norm};
use crate::study::slurm::{self, Resources};
use crate::study::{collect_study, plan_blocks, plan_conv, plan_norm, run_study, Kind, RunSpec, StudyOptions};
use crate::train::{Init, RunOptions};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    srgraph study blocks --steps 300 --patch 48 --out runs/study\n  \
    srgraph study blocks --archs wdsr-a,wdsr-b --blocks 1,3 --equal-params\n  \
    srgraph study norm --steps 500\n  \
    srgraph study conv --steps 1000 --patch 64\n  \
    srgraph study norm --channels 1 --steps 500\n  \
    srgraph study blocks --data /data/DIV2K --val /data/DIV2K_valid_HR --steps 300000 --device cuda\n\n\
    The output folder receives table.md and table.csv, curves.png, psnr_vs_params.png and\n\
    psnr_vs_blocks.png (blocks) or psnr_vs_multiply_adds.png (conv), and runs/NAME/ with each run's model.onnx, log.jsonl, curves.png and\n\
    result.json. Stopped (Ctrl-C, exit code 130)? The same command with --resume continues it.")]
pub struct StudyArgs {
    #[command(subcommand)]
    pub which: Which,
}

#[derive(Subcommand, Debug)]
pub enum Which {
    /// EDSR vs WDSR-A vs WDSR-B at 1, 3, 5 and 8 residual blocks (the study-* presets).
    Blocks(BlocksArgs),
    /// One network with weight norm, batch norm and none.
    Norm(NormArgs),
    /// WDSR-B's block with each efficient convolution (low-rank, flattened, group, depthwise, inverted residual) at
    /// equal parameters and depth; the table adds multiply-adds, time per step and the share of ReLU outputs that
    /// are zero.
    Conv(ConvArgs),
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    Arch::parse(s).ok_or_else(|| format!("'{s}' is not an architecture (edsr, wdsr-a, wdsr-b)"))
}

#[derive(Args, Debug)]
pub struct BlocksArgs {
    /// Architectures, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "edsr,wdsr-a,wdsr-b", value_parser = parse_arch)]
    pub archs: Vec<Arch>,
    /// Residual block counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,3,5,8")]
    pub blocks: Vec<usize>,
    /// Compare at equal parameter counts: WDSR's width is fitted to EDSR's count at each depth.
    #[arg(long)]
    pub equal_params: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct NormArgs {
    #[arg(long, default_value = "wdsr-a", value_parser = parse_arch)]
    pub arch: Arch,
    #[arg(long, default_value_t = 8)]
    pub blocks: usize,
    /// Normalisations, comma-separated.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "weight,batch,none")]
    pub norms: Vec<NormArg>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct ConvArgs {
    /// Block kinds, comma-separated (see `srgraph build --help`, --conv). Every kind's width is fitted to the
    /// parameter count of WDSR-B's own low-rank block at this depth, listed or not.
    #[arg(long, value_delimiter = ',', value_parser = parse_conv_kind,
          default_value = "low-rank,flattened,group:4,depthwise,inverted-residual")]
    pub kinds: Vec<ConvKind>,
    /// Residual blocks of every network (the widths of the study-wdsr-b presets).
    #[arg(long, default_value_t = 8)]
    pub blocks: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Training images (any layout `srgraph train` reads).
    #[arg(long, default_value = "../shared/data/T91")]
    pub data: PathBuf,
    /// Validation images; the table's PSNR is measured on them.
    #[arg(long, default_value = "../shared/data/Set5")]
    pub val: PathBuf,
    #[arg(long, default_value_t = 2)]
    pub scale: usize,
    /// Picture channels of every network: 3 (RGB) or 1 (trained on the pictures' luma and scored on it; see
    /// `srgraph build --help`).
    #[arg(long, value_name = "1|3", default_value_t = 3)]
    pub channels: usize,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Validate (and checkpoint) every this many steps (default: a tenth of --steps).
    #[arg(long, value_parser = super::positive)]
    pub validate_every: Option<u64>,
    /// The study's folder (default: runs/study-blocks, runs/study-norm or runs/study-conv).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Continue a stopped study: finished runs are kept, the unfinished one resumes from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Runs trained at once (they share the cores).
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub jobs: usize,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Start the runs whose network is this checkpoint's (any file `srgraph import` reads) from its weights, with
    /// a fresh optimiser; the other runs start from the initialisation.
    #[arg(long, value_name = "CHECKPOINT")]
    pub init: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EmitArg {
    Slurm,
}

/// Running a study's runs as separate jobs.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Train and score only run INDEX (0-based, in the order the study lists them; a Slurm array task's
    /// $SLURM_ARRAY_TASK_ID), resuming it from its checkpoint; other runs may train at the same time. The table is
    /// left to --collect.
    #[arg(long, value_name = "INDEX", conflicts_with_all = ["collect", "emit"])]
    pub only: Option<usize>,
    /// Train nothing: write the table and plots from the runs that have finished, naming those that have not.
    #[arg(long, conflicts_with = "emit")]
    pub collect: bool,
    /// Train nothing: write OUT/slurm/study.sbatch (an array job, one task per run), collect.sbatch (the table,
    /// after every run) and submit.sh (sbatch of both, chained).
    #[arg(long, value_enum)]
    pub emit: Option<EmitArg>,
    /// With --emit slurm: GPUs for each run (#SBATCH --gpus-per-task); use with --device cuda.
    #[arg(long, value_name = "N", requires = "emit")]
    pub gpus_per_run: Option<usize>,
    /// With --emit slurm: CPU cores for each run (#SBATCH --cpus-per-task).
    #[arg(long, value_name = "N", requires = "emit")]
    pub cpus_per_run: Option<usize>,
    /// With --emit slurm: each run's time limit, as Slurm writes it (04:00:00, 2-00:00:00).
    #[arg(long, requires = "emit")]
    pub time: Option<String>,
    /// With --emit slurm: the partition to run in.
    #[arg(long, requires = "emit")]
    pub partition: Option<String>,
}

/// Ok(true) when stopped by Ctrl-C.
pub fn run(a: StudyArgs) -> Result<bool> {
    let (kind, runs, c, equal_params) = plan(a.which)?;
    let init = match &c.init {
        None => None,
        Some(path) => Some(init_from(path, &runs)?),
    };
    let o = options(kind, runs, &c, equal_params, init)?;
    if c.cluster.emit == Some(EmitArg::Slurm) {
        emit_slurm(&o, &c.cluster)?;
        return Ok(false);
    }
    if c.cluster.collect {
        collect(&o)?;
        return Ok(false);
    }
    train_all(&o)
}

/// The study's runs, and the options they share.
fn plan(which: Which) -> Result<(Kind, Vec<RunSpec>, CommonArgs, bool)> {
    Ok(match which {
        Which::Blocks(b) => {
            let runs = plan_blocks(&b.archs, &b.blocks, b.common.scale, b.common.channels, b.equal_params)?;
            (Kind::Blocks, runs, b.common, b.equal_params)
        }
        Which::Norm(n) => {
            let norms: Vec<Norm> = n.norms.iter().map(|&x| x.into()).collect();
            let runs = plan_norm(n.arch, n.blocks, &norms, n.common.scale, n.common.channels)?;
            (Kind::Norm, runs, n.common, false)
        }
        Which::Conv(k) => {
            let runs = plan_conv(&k.kinds, k.blocks, k.common.scale, k.common.channels)?;
            (Kind::Conv, runs, k.common, true)
        }
    })
}

/// `--init`: the checkpoint's network and weights, which some of the runs must train.
fn init_from(path: &std::path::Path, runs: &[RunSpec]) -> Result<(ModelConfig, Init)> {
    let (state, d) = crate::interop::load(path, &crate::interop::Hints::default())?;
    let matching: Vec<&str> = runs
        .iter()
        .filter(|r| crate::study::same_network(&r.config, &d.config))
        .map(|r| r.name.as_str())
        .collect();
    anyhow::ensure!(
        !matching.is_empty(),
        "--init {} holds {}, which is none of the study's runs ({})",
        path.display(),
        crate::models::describe(&d.config),
        runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    println!(
        "--init {}: the runs {} start from its weights",
        path.display(),
        matching.join(", ")
    );
    let values = Init {
        source: format!("{} ({})", path.display(), state.format),
        values: d.values,
    };
    Ok((d.config, values))
}

fn options(
    kind: Kind,
    runs: Vec<RunSpec>,
    c: &CommonArgs,
    equal_params: bool,
    init: Option<(ModelConfig, Init)>,
) -> Result<StudyOptions> {
    Ok(StudyOptions {
        init,
        data: c.cache.data(c.data.clone()),
        kind,
        runs,
        val: c.val.clone(),
        scale: c.scale,
        channels: c.channels,
        validate_every: c.validate_every.unwrap_or((c.schedule.steps / 10).max(1)),
        // The study's loss is the paper's, L1.
        schedule: c.schedule.options(crate::compiler::TrainConfig::default().loss)?,
        run: RunOptions {
            engine: c.engine.engine(EngineArg::Ort)?,
            threads: c.engine.ort.threads,
            progress: !c.quiet,
        },
        out: c.out.clone().unwrap_or_else(|| {
            PathBuf::from(match kind {
                Kind::Blocks => "runs/study-blocks",
                Kind::Norm => "runs/study-norm",
                Kind::Conv => "runs/study-conv",
            })
        }),
        resume: c.resume,
        jobs: c.jobs,
        equal_params,
        only: c.cluster.only,
    })
}

/// `--emit slurm`: the job scripts, and how to submit them.
fn emit_slurm(o: &StudyOptions, cluster: &ClusterArgs) -> Result<()> {
    let resources = Resources {
        gpus_per_run: cluster.gpus_per_run,
        cpus_per_run: cluster.cpus_per_run,
        time: cluster.time.clone(),
        partition: cluster.partition.clone(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exe = std::env::current_exe().context("cannot tell where this srgraph is")?;
    let files = slurm::emit(o, &args, &std::env::current_dir()?, &exe, &resources)?;
    let mut out = std::io::stdout().lock();
    for f in &files {
        writeln!(out, "wrote       {}", f.display())?;
    }
    writeln!(out, "submit with {}", files[2].display())?;
    writeln!(
        out,
        "            ({} runs as one array job, then the table; `squeue --me` follows them; \
         `srgraph study ... --collect` writes the table of what has finished at any time)",
        o.runs.len()
    )?;
    Ok(())
}

/// `--collect`: the table of the runs that have finished, and those that have not.
fn collect(o: &StudyOptions) -> Result<()> {
    let (report, missing) = collect_study(o)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&std::fs::read(o.out.join("table.md"))?)?;
    writeln!(
        out,
        "\nwrote {}/table.md, table.csv and the plots from {} finished run{}",
        o.out.display(),
        report.results.len(),
        if report.results.len() == 1 { "" } else { "s" }
    )?;
    if !missing.is_empty() {
        writeln!(out, "not finished yet: {}", missing.join(", "))?;
    }
    Ok(())
}

/// Trains the runs (or `--only` one), then shows the table; Ok(true) when stopped by Ctrl-C.
fn train_all(o: &StudyOptions) -> Result<bool> {
    let stop = super::stop_on_signals("stopping after this step: the run's checkpoint is kept; --resume continues")?;
    let report = run_study(o, &stop, &|line| println!("{line}"))?;
    let mut out = std::io::stdout().lock();
    if o.only.is_some() {
        if let Some(r) = report.results.first() {
            writeln!(
                out,
                "run {} done: its result is in {}/runs/{}/result.json; --collect writes the table",
                r.name,
                o.out.display(),
                r.name
            )?;
        }
    } else if !report.results.is_empty() {
        writeln!(out)?;
        out.write_all(&std::fs::read(o.out.join("table.md"))?)?;
        writeln!(
            out,
            "\nwrote {}/table.md, table.csv, the plots and runs/",
            o.out.display()
        )?;
    }
    if report.interrupted {
        writeln!(out, "stopped: continue with the same command and --resume")?;
    }
    Ok(report.interrupted)
}
