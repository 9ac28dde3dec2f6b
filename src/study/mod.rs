//! The WDSR paper's study in one command: EDSR, WDSR-A and WDSR-B trained alike at
//! 1, 3, 5 and 8 residual blocks (or at equal parameter budgets), WDSR-A with
//! weight norm, batch norm and none, or WDSR-B's block with each efficient
//! convolution at equal parameters; then the table and plots the paper reports.
//!
//! Every run is an ordinary `srgraph train` run in `OUT/runs/NAME`, scored afterwards
//! by `srgraph eval`'s code on the saved model (tract, whole images, PSNR on Y with
//! shave = scale), and its result kept in `result.json` beside it: a stopped study
//! resumes where it stopped, and any cell of the table traces to its run.

mod plan;
mod plot;
pub mod slurm;
mod table;

pub use plan::{paper_psnr, plan_blocks, plan_conv, plan_norm, same_network};

use crate::data::dataset::ImageSet;
use crate::eval::{activations, evaluate_set, EvalOptions};
use crate::infer::SrModel;
use crate::models::{multiply_adds_per_pixel, param_count, ConvKind, ModelConfig};
use crate::runtime::Runtime;
use crate::train::{read_log, train, DataOptions, LogLine, RunOptions, ScheduleOptions, TrainOptions};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Architectures against residual blocks.
    Blocks,
    /// Normalisations of one architecture.
    Norm,
    /// WDSR-B's block with each efficient convolution, at equal parameters.
    Conv,
}

/// One training run of a study.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Folder name under `runs/`.
    pub name: String,
    pub config: ModelConfig,
}

/// What a finished run measured; `result.json` in its folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub name: String,
    pub arch: String,
    pub blocks: usize,
    pub filters: usize,
    pub expansion: usize,
    pub norm: String,
    /// Picture channels: 3 (RGB) or 1 (luma); results written before single-channel networks have none: 3.
    #[serde(default = "rgb_channels")]
    pub channels: usize,
    /// WDSR-B's block kind (results written before block kinds have none: low-rank).
    #[serde(default = "low_rank_name")]
    pub conv: String,
    pub params: usize,
    /// Multiply-adds per LR pixel of the inference network.
    #[serde(default)]
    pub multiply_adds: f64,
    /// What passes the saved model's ReLUs (results written before have none).
    #[serde(default)]
    pub relu: Option<ReluSummary>,
    /// Milliseconds per training step: the median over the run's validations of its pace.
    #[serde(default)]
    pub ms_per_step: Option<f64>,
    pub steps: u64,
    /// Mean PSNR-Y (shave = scale) of the saved model on the validation set, as `srgraph eval` gives it.
    pub psnr_y: f64,
    pub bicubic_psnr_y: f64,
    pub ssim_y: f64,
    pub last_loss: f32,
    pub seconds: f64,
    /// Validation PSNR during training: (step, dB).
    pub curve: Vec<(u64, f64)>,
    pub model: String,
}

/// What passes a saved model's ReLUs on the centre 128 x 128 of the first validation
/// picture (`srgraph inspect --activations`), averaged over the residual blocks.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ReluSummary {
    /// Share of ReLU outputs that are zero.
    pub zero_share: f64,
    /// Mean ReLU output (its magnitude: a ReLU's outputs are never negative).
    pub mean: f64,
    /// Share of ReLU channels that are zero at every pixel.
    pub dead_channel_share: f64,
}

/// Everything a study shares between its runs.
#[derive(Clone, Debug)]
pub struct StudyOptions {
    pub kind: Kind,
    pub runs: Vec<RunSpec>,
    pub data: DataOptions,
    pub val: PathBuf,
    pub scale: usize,
    /// Every run's picture channels: 3 (RGB) or 1 (luma).
    pub channels: usize,
    /// Each run's; a learning rate of None is each architecture's default (1e-3 for WDSR, 1e-4 for EDSR).
    pub schedule: ScheduleOptions,
    pub validate_every: u64,
    /// Each run's engine and threads, when the runs train one at a time.
    pub run: RunOptions,
    pub out: PathBuf,
    pub resume: bool,
    pub jobs: usize,
    pub equal_params: bool,
    /// Weights that the runs of their network start from (`--init`), with that network.
    pub init: Option<(ModelConfig, crate::train::Init)>,
    /// Train and score this run alone (0-based; a Slurm array task's index), leaving the
    /// table to `collect_study`. Runs of one study may then train at once, on other machines.
    pub only: Option<usize>,
}

fn low_rank_name() -> String {
    ConvKind::LowRank.name()
}

fn rgb_channels() -> usize {
    3
}

/// How a study ended.
pub struct StudyReport {
    pub results: Vec<RunResult>,
    pub interrupted: bool,
}

/// Trains and scores every run not already done, then writes the table and plots.
/// `announce` gets one line per run as it starts or is found done.
pub fn run_study(o: &StudyOptions, stop: &AtomicBool, announce: &(dyn Fn(String) + Sync)) -> Result<StudyReport> {
    ensure!(o.jobs >= 1, "--jobs must be at least 1");
    ensure!(
        !o.out.exists() || o.out.is_dir(),
        "--out {} is a file, not a folder: give a folder for the study",
        o.out.display()
    );
    std::fs::create_dir_all(o.out.join("runs")).with_context(|| format!("cannot create {}", o.out.display()))?;
    if let Some(i) = o.only {
        return run_only(o, i, stop, announce);
    }
    let _lock = crate::util::FolderLock::acquire(&o.out, "study")?;
    crate::util::remove_stale_temporaries(&o.out);
    let started: Vec<&RunSpec> = o
        .runs
        .iter()
        .filter(|r| o.out.join("runs").join(&r.name).exists())
        .collect();
    if !o.resume && !started.is_empty() {
        bail!(
            "{} already holds runs of a study ({}...): continue it with --resume, or choose another --out",
            o.out.display(),
            started[0].name
        );
    }
    // Every run's options are checked before the first one trains.
    for spec in &o.runs {
        ensure_same_channels(o, spec)?;
        train_options(o, spec)
            .validate()
            .with_context(|| format!("run {}", spec.name))?;
    }
    let total = o.runs.len();
    let results: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; total]);
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let worker = || loop {
        if stop.load(Ordering::Relaxed) || failure.lock().unwrap().is_some() {
            return;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(spec) = o.runs.get(i) else { return };
        match one_run(o, spec, i, total, stop, announce) {
            Ok(Some(r)) => results.lock().unwrap()[i] = Some(r),
            Ok(None) => {}
            Err(e) => {
                failure
                    .lock()
                    .unwrap()
                    .get_or_insert(e.context(format!("run {}", spec.name)));
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..o.jobs.min(total) {
            s.spawn(worker);
        }
    });
    let results: Vec<RunResult> = results.into_inner().unwrap().into_iter().flatten().collect();
    // Whatever finished goes in the table, even when a run failed or Ctrl-C came.
    if !results.is_empty() {
        write_outputs(o, &results)?;
    }
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    Ok(StudyReport {
        interrupted: results.len() < total,
        results,
    })
}

/// `--only i`: run i alone, resumed if it has a checkpoint, skipped if it has a result.
/// Neither the study's lock nor its stale-file sweep applies: other runs of the study may
/// be training in the same folder at the same time, on other machines (whose process ids
/// mean nothing here). The run's own folder is locked by its training.
fn run_only(o: &StudyOptions, i: usize, stop: &AtomicBool, announce: &(dyn Fn(String) + Sync)) -> Result<StudyReport> {
    let total = o.runs.len();
    let spec = o.runs.get(i).with_context(|| {
        format!(
            "--only {i}: the study has {total} runs, numbered 0 to {}",
            total.saturating_sub(1)
        )
    })?;
    ensure_same_channels(o, spec)?;
    train_options(o, spec)
        .validate()
        .with_context(|| format!("run {}", spec.name))?;
    let result = one_run(o, spec, i, total, stop, announce).with_context(|| format!("run {}", spec.name))?;
    Ok(StudyReport {
        interrupted: result.is_none(),
        results: result.into_iter().collect(),
    })
}

/// `--collect`: the table and plots of the runs that have finished (each one's
/// `result.json`), whichever order they finished in; the runs still missing, by name.
pub fn collect_study(o: &StudyOptions) -> Result<(StudyReport, Vec<String>)> {
    ensure!(
        o.out.join("runs").is_dir(),
        "{} holds no study (no runs/ folder): run the study first",
        o.out.display()
    );
    let _lock = crate::util::FolderLock::acquire(&o.out, "study")?;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for spec in &o.runs {
        ensure_same_channels(o, spec)?;
        match read_result(&o.out.join("runs").join(&spec.name).join("result.json"))? {
            Some(r) => results.push(r),
            None => missing.push(spec.name.clone()),
        }
    }
    ensure!(
        !results.is_empty(),
        "no run of the study in {} has finished yet ({} runs, none with a result.json)",
        o.out.display(),
        o.runs.len()
    );
    write_outputs(o, &results)?;
    Ok((
        StudyReport {
            interrupted: !missing.is_empty(),
            results,
        },
        missing,
    ))
}

/// A run of the study already in its folder must take the pictures' channels this one
/// asks for: its `result.json` says so once finished, its checkpoint's metadata before
/// (which names the channels only when they are not 3).
fn ensure_same_channels(o: &StudyOptions, spec: &RunSpec) -> Result<()> {
    let dir = o.out.join("runs").join(&spec.name);
    let (trained, file) = if let Some(r) = read_result(&dir.join("result.json"))? {
        (r.channels, dir.join("result.json"))
    } else if dir.join("checkpoint.onnx").is_file() {
        let path = dir.join("checkpoint.onnx");
        let ckpt = crate::checkpoint::load(&path)?;
        let channels = ckpt.metadata.get("channels").unwrap_or("3");
        let channels = channels
            .parse()
            .with_context(|| format!("{}: its channels '{channels}' are not a number", path.display()))?;
        (channels, path)
    } else {
        return Ok(());
    };
    let wanted = spec.config.channels;
    ensure!(
        trained == wanted,
        "{}: this run was trained with --channels {trained}, and the study now asks for --channels {wanted}: \
         give --channels {trained} to continue it, or choose another --out",
        file.display()
    );
    Ok(())
}

/// A finished run's `result.json`, or None when the run has not finished.
fn read_result(path: &std::path::Path) -> Result<Option<RunResult>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let r = serde_json::from_slice(&bytes).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(r))
}

/// Trains (or resumes) one run and scores its model; None when stopped by Ctrl-C.
fn one_run(
    o: &StudyOptions,
    spec: &RunSpec,
    i: usize,
    total: usize,
    stop: &AtomicBool,
    announce: &(dyn Fn(String) + Sync),
) -> Result<Option<RunResult>> {
    let dir = o.out.join("runs").join(&spec.name);
    let result_path = dir.join("result.json");
    let c = &spec.config;
    let params = param_count(c)?;
    let what = format!(
        "[{}/{total}] {} x{}, {} block{}, {} filters{}{}, {} norm{}: {} parameters",
        i + 1,
        c.arch.name(),
        c.scale,
        c.blocks,
        if c.blocks == 1 { "" } else { "s" },
        c.filters,
        if c.arch.is_wdsr() {
            format!(", expansion {}", c.expansion)
        } else {
            String::new()
        },
        if c.conv == ConvKind::LowRank {
            String::new()
        } else {
            format!(", {} conv", c.conv)
        },
        c.norm.name(),
        if c.channels == 1 { ", 1 channel (luma)" } else { "" },
        crate::util::grouped(params)
    );
    if let Some(mut r) = read_result(&result_path)? {
        // A result written before ReLU statistics gets them from its saved model.
        if r.relu.is_none() && Path::new(&r.model).is_file() {
            r.relu = Some(relu_summary(Path::new(&r.model), o)?);
            crate::util::write_atomic(&result_path, serde_json::to_string_pretty(&r)?.as_bytes())?;
        }
        announce(format!("{what}: done earlier, {:.2} dB", r.psnr_y));
        return Ok(Some(r));
    }
    let opts = train_options(o, spec);
    announce(format!("{what}{}", if opts.resume { " (resuming)" } else { "" }));
    let began = std::time::Instant::now();
    let report = train(&opts, stop)?;
    if report.interrupted {
        return Ok(None);
    }
    // The table's number is what `srgraph eval` says of the saved model.
    let mut model = SrModel::load(&report.model, Runtime::Tract, 0)?;
    let eval = EvalOptions {
        degradation: o.data.degradation.clone(),
        scale: c.scale,
        rgb_shave: c.scale + 6,
        tile: None,
    };
    let scores = evaluate_set(&mut model, &o.val, &eval, &mut |_| {})?;
    let (_, psnr) = read_log(&dir.join("log.jsonl"))?;
    let relu = relu_summary(&report.model, o)?;
    let r = RunResult {
        name: spec.name.clone(),
        arch: c.arch.name().to_string(),
        blocks: c.blocks,
        filters: c.filters,
        expansion: c.expansion,
        norm: c.norm.name().to_string(),
        channels: c.channels,
        conv: c.conv.name(),
        params,
        multiply_adds: multiply_adds_per_pixel(c)?,
        relu: Some(relu),
        ms_per_step: ms_per_step(&dir.join("log.jsonl")),
        steps: report.steps,
        psnr_y: scores.model.psnr_y,
        bicubic_psnr_y: scores.bicubic.psnr_y,
        ssim_y: scores.model.ssim_y,
        last_loss: report.last_loss,
        seconds: began.elapsed().as_secs_f64(),
        curve: psnr.iter().map(|p| (p.0, p.1)).collect(),
        model: report.model.display().to_string(),
    };
    crate::util::write_atomic(&result_path, serde_json::to_string_pretty(&r)?.as_bytes())?;
    announce(format!(
        "{what}: {:.3} dB (bicubic {:.3} dB) in {:.0} s",
        r.psnr_y, r.bicubic_psnr_y, r.seconds
    ));
    Ok(Some(r))
}

/// A run's time per step: the median gap between consecutive step lines of its
/// log (so validations and checkpoints, which fall between a few steps, count not);
/// None when it logged fewer than two steps.
fn ms_per_step(log: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let steps: Vec<(u64, f64)> = text
        .lines()
        .filter_map(|l| match serde_json::from_str::<LogLine>(l) {
            Ok(LogLine::Step(s)) => Some((s.step, s.seconds)),
            _ => None,
        })
        .collect();
    let mut gaps: Vec<f64> = steps
        .windows(2)
        .filter(|w| w[1].0 == w[0].0 + 1 && w[1].1 >= w[0].1)
        .map(|w| 1000.0 * (w[1].1 - w[0].1))
        .collect();
    gaps.sort_by(f64::total_cmp);
    gaps.get(gaps.len() / 2).copied()
}

/// The saved model's ReLU statistics on the centre of the first validation picture.
fn relu_summary(model: &Path, o: &StudyOptions) -> Result<ReluSummary> {
    let (pairs, _) = ImageSet::open(&o.val, o.scale)?.load()?;
    let first = pairs.first().context("the validation set has no pictures")?;
    let bytes = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let lr = activations::centre(first.lr.view(), 128);
    let relus = activations::activation_stats(&bytes, &model.display().to_string(), lr, Runtime::Tract, 0)?;
    let blocks: Vec<_> = activations::block_stats(&relus)
        .into_iter()
        .filter(|b| matches!(b.block, activations::Block::Body(_)))
        .collect();
    ensure!(
        !blocks.is_empty(),
        "{} has no ReLU in a residual block",
        model.display()
    );
    let channels: usize = blocks.iter().map(|b| b.channels).sum();
    let dead: usize = blocks.iter().map(|b| b.dead_channels).sum();
    Ok(ReluSummary {
        zero_share: activations::mean_zero_share(&blocks),
        mean: blocks.iter().map(|b| b.mean).sum::<f64>() / blocks.len() as f64,
        dead_channel_share: dead as f64 / channels.max(1) as f64,
    })
}

/// The training options of one run: the study's, with the run's network and folder;
/// it resumes when its folder holds a checkpoint.
fn train_options(o: &StudyOptions, spec: &RunSpec) -> TrainOptions {
    let dir = o.out.join("runs").join(&spec.name);
    let c = &spec.config;
    let resume = dir.join("checkpoint.onnx").exists();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // A run of the checkpoint's network starts from its weights, under its mean shift.
    let init = o.init.as_ref().filter(|(ic, _)| same_network(ic, c));
    let model = match init {
        Some((ic, _)) => ModelConfig {
            seed: c.seed,
            ..ic.clone()
        },
        None => c.clone(),
    };
    TrainOptions {
        model,
        data: o.data.clone(),
        schedule: o.schedule.clone(),
        run: RunOptions {
            engine: o.run.engine,
            // Runs side by side share the cores.
            threads: if o.jobs > 1 {
                (cores / o.jobs).max(1)
            } else {
                o.run.threads
            },
            progress: o.run.progress && o.jobs == 1,
        },
        val: Some(o.val.clone()),
        val_limit: None,
        out: dir,
        checkpoint_every: o.validate_every,
        validate_every: o.validate_every,
        resume,
        // The run's folder belongs to the study, whose own --resume check guards it.
        overwrite: !resume,
        init: init.map(|(_, values)| values.clone()),
    }
}

fn write_outputs(o: &StudyOptions, results: &[RunResult]) -> Result<()> {
    let (md, csv) = match o.kind {
        Kind::Blocks => table::blocks(o, results),
        Kind::Norm => table::norm(o, results),
        Kind::Conv => table::conv(o, results),
    };
    crate::util::write_atomic(&o.out.join("table.md"), md.as_bytes())?;
    crate::util::write_atomic(&o.out.join("table.csv"), csv.as_bytes())?;
    match o.kind {
        Kind::Blocks => {
            plot::curves_by_blocks(&o.out.join("curves.png"), results)?;
            plot::psnr_against(&o.out.join("psnr_vs_params.png"), results, "parameters", |r| {
                r.params as f64
            })?;
            plot::psnr_against(&o.out.join("psnr_vs_blocks.png"), results, "residual blocks", |r| {
                r.blocks as f64
            })?;
        }
        Kind::Norm => plot::curves_by_norm(&o.out.join("curves.png"), results)?,
        Kind::Conv => {
            plot::curves_by_conv(&o.out.join("curves.png"), results)?;
            plot::conv_against(&o.out.join("psnr_vs_params.png"), results, "parameters", |r| {
                r.params as f64
            })?;
            plot::conv_against(
                &o.out.join("psnr_vs_multiply_adds.png"),
                results,
                "multiply-adds per LR pixel",
                |r| r.multiply_adds,
            )?;
        }
    }
    Ok(())
}
