//! The training loop: data on worker threads, the compiled train step in ONNX
//! Runtime or tract, the learning-rate schedule, validation, checkpoints,
//! a JSONL log, curves and the exported model.

mod ema;
mod engine;
mod folder;
mod log;
mod options;
mod plot;
mod progress;
pub mod qat;
mod report;
mod validate;
mod weights;

use crate::checkpoint;
pub use crate::eval::Pictures;
pub use ema::Ema;
pub use engine::Engine;
pub use folder::RUN_FILES;
pub use log::{read_log, LogLine, Losses, StepLine, ValidationLine, Validations};
pub use options::{DataOptions, Init, RunOptions, ScheduleOptions, TrainOptions};
pub use validate::{bicubic_psnr, bicubic_scores, model_psnr, model_scores, Psnr};
pub use weights::export;

use crate::compiler::{compile, TrainConfig};
use crate::data::cache::PixelCache;
use crate::data::dataset::{ImageSet, PatchSampler, Prefetcher};
use crate::distributed::Group;
use crate::runtime::ort::OrtTrainer;
use crate::runtime::tract::TractTrainer;
use crate::runtime::Runtime;
use crate::runtime::Trainer;
use anyhow::{bail, ensure, Context, Result};
use report::{Reporter, Scored, ValidationSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use weights::Weights;

pub struct TrainReport {
    pub steps: u64,
    pub last_loss: f32,
    /// (model, bicubic) mean PSNR-Y on the validation set at the end.
    pub psnr: Option<(f64, f64)>,
    pub model: PathBuf,
    pub interrupted: bool,
}

/// Train until `o.steps` or until `stop` is set (checked after each step).
pub fn train(o: &TrainOptions, stop: &AtomicBool) -> Result<TrainReport> {
    o.validate()?;
    check_engine(o)?;
    let mut group = join_ranks(o)?;
    // Under mpirun rank 0, the leader, alone writes the run's files, validates and prints.
    let mut reporter = report::reporter(o, group.as_ref().is_none_or(|g| g.rank() == 0))?;
    let (sampler, val) = load_data(o, &mut group, &*reporter)?;
    let share = Share::of(o, group.as_deref());
    let mut weights = Weights::new(make_trainer(o, share, group, stop)?, o.schedule.train.qat.clone());
    let start = resume(o, &mut weights, reporter.average())?;
    let prefetch = Prefetcher::items(Arc::new(sampler), share.items(), start, 2);
    let end = train_loop(o, &mut weights, &mut *reporter, prefetch, val.as_ref(), start, stop)?;
    let psnr = reporter.finish(&weights, end.step, end.last_loss)?;
    Ok(TrainReport {
        steps: end.step,
        last_loss: end.last_loss,
        psnr,
        model: o.out.join("model.onnx"),
        interrupted: end.interrupted,
    })
}

/// Under mpirun, the ranks training this one model; None for a single process.
fn join_ranks(o: &TrainOptions) -> Result<Option<Box<dyn Group>>> {
    let group = crate::distributed::join()?;
    if let Some(g) = &group {
        check_data_parallel_engine(o)?;
        let batch = o.schedule.train.batch;
        ensure!(
            batch.is_multiple_of(g.size()),
            "--batch {} does not divide among {} ranks: give a multiple of {} (--batch is the whole batch, split \
             across the ranks)",
            batch,
            g.size(),
            g.size()
        );
    }
    Ok(group)
}

/// The training patches and, for the leader, the validation set. The training pixels
/// are memory-mapped from the data cache (made on first use), so the process holds none
/// of them however many there are. Rank 0 makes it; the other ranks wait, then map the
/// same one.
fn load_data(
    o: &TrainOptions,
    group: &mut Option<Box<dyn Group>>,
    reporter: &dyn Reporter,
) -> Result<(PatchSampler, Option<ValidationSet>)> {
    let scale = o.model.scale;
    let set = ImageSet::open(&o.data.data, scale)
        .context("Training data")?
        .degraded(o.data.degradation.clone());
    let open_cache =
        || PixelCache::open_or_build(&set, &o.data.cache, reporter.shows_progress()).context("Training data");
    let cache = match group {
        Some(g) if g.rank() == 0 => {
            let cache = open_cache();
            g.barrier()?;
            cache?
        }
        Some(g) => {
            g.barrier()?;
            open_cache()?
        }
        None => open_cache()?,
    };
    let warnings = cache.warnings.clone();
    let s = &o.schedule;
    let sampler = PatchSampler::from_cache(cache, s.train.patch, scale, s.data_seed)
        .context("Training data")?
        .with_channels(o.model.channels);
    reporter.warn(&warnings);
    reporter.warn(sampler.warnings());
    Ok((sampler, reporter.validation_set()?))
}

/// This rank's share of each step's batch: items [rank b, (rank + 1) b).
#[derive(Clone, Copy)]
struct Share {
    rank: usize,
    ranks: usize,
    batch: usize,
}

impl Share {
    fn of(o: &TrainOptions, group: Option<&dyn Group>) -> Share {
        let ranks = group.map_or(1, |g| g.size());
        Share {
            rank: group.map_or(0, |g| g.rank()),
            ranks,
            batch: o.schedule.train.batch / ranks,
        }
    }

    fn items(&self) -> std::ops::Range<usize> {
        self.rank * self.batch..(self.rank + 1) * self.batch
    }
}

/// Sets the weights training starts from: `--init`'s, or a resumed run's checkpoint;
/// starts the moving average (`average`: its decay) at them. The step to start after.
fn resume(o: &TrainOptions, weights: &mut Weights, average: Option<f32>) -> Result<u64> {
    let c = &o.model;
    if !o.resume {
        if let Some(init) = &o.init {
            weights
                .trainer
                .set_values(&init.values)
                .with_context(|| format!("starting from {}", init.source))?;
        }
        if let Some(decay) = average {
            weights.start_average(decay, c, None)?;
        }
        return Ok(0);
    }
    let path = o.out.join("checkpoint.onnx");
    let ckpt = checkpoint::load(&path)?;
    // Bicubic records no degradation, so the identity alone would not catch a BD run resumed as bicubic.
    let trained = ckpt.metadata.get("degradation").unwrap_or("bicubic");
    ensure!(
        o.data.degradation.matches(trained),
        "{} was trained on {trained} inputs and this run asks for {}: resume it with the same --degradation, \
         or start a new run with another --out",
        path.display(),
        o.data.degradation.name()
    );
    checkpoint::ensure_same(&ckpt, &o.identity(), &path)?;
    if let Some(decay) = average {
        weights
            .start_average(decay, c, Some(&ckpt.values))
            .with_context(|| path.display().to_string())?;
    }
    let state: Vec<String> = weights.trainer.values()?.into_iter().map(|(n, _)| n).collect();
    let values: Vec<_> = ckpt.values.into_iter().filter(|(n, _)| state.contains(n)).collect();
    ensure!(
        values.len() == state.len(),
        "{} lacks some of the run's state",
        path.display()
    );
    // A run stops before checkpointing a non-finite loss, so these were damaged on disk.
    if let Some((name, _)) = values.iter().find(|(_, t)| !t.is_finite()) {
        bail!(
            "{} holds non-finite values (NaN or infinity) in {name}: the checkpoint is damaged; start afresh \
             with --force",
            path.display()
        );
    }
    weights.trainer.set_values(&values)?;
    ensure!(
        ckpt.step <= o.schedule.steps,
        "the checkpoint is at step {}, past --steps {}",
        ckpt.step,
        o.schedule.steps
    );
    Ok(ckpt.step)
}

/// Where the loop ended.
struct End {
    step: u64,
    last_loss: f32,
    interrupted: bool,
}

/// Steps from `start` to `o.steps`, validating and checkpointing on the way, until the
/// end or a stop agreed after a step.
fn train_loop(
    o: &TrainOptions,
    weights: &mut Weights,
    reporter: &mut dyn Reporter,
    mut prefetch: Prefetcher,
    val: Option<&ValidationSet>,
    start: u64,
    stop: &AtomicBool,
) -> Result<End> {
    let s = &o.schedule;
    let (mut step, mut last_loss) = (start, reporter.begin(start)?);
    while step < s.steps {
        let (_, lr, hr) = prefetch.next()?;
        step += 1;
        let rate = s.rates.rate(o.learning_rate(), step);
        let loss = weights.step(lr.into_dyn(), hr.into_dyn(), rate, step)?;
        ensure!(
            loss.is_finite(),
            "the loss became {loss} at step {step}; try a lower --lr"
        );
        last_loss = loss;
        reporter.step(step, loss, rate)?;
        let stopping = weights.trainer.stop_agreed(stop.load(Ordering::Relaxed));
        let due = |every: u64| step.is_multiple_of(every) || step == s.steps || stopping;
        if let (Some(set), true) = (val, due(o.validate_every)) {
            reporter.validated(step, &validate(o, weights, set)?, &set.bicubic)?;
        }
        if due(o.checkpoint_every) {
            reporter.checkpoint(step, weights)?;
        }
        if stopping {
            return Ok(End {
                step,
                last_loss,
                interrupted: true,
            });
        }
    }
    Ok(End {
        step,
        last_loss,
        interrupted: false,
    })
}

/// The run's model on the validation set, in the engine that trains; under EMA the
/// weights being trained beside it.
fn validate(o: &TrainOptions, weights: &Weights, set: &ValidationSet) -> Result<Scored> {
    let (c, r) = (&o.model, &o.run);
    // At the set's depth: a 16-bit one against peak 65535.
    let (p, runtime) = (&set.pictures, r.engine.runtime());
    let score = |model: &[u8]| match p.bit_depth {
        16 => model_scores::<u16>(model, p, c.scale, runtime, r.threads),
        _ => model_scores::<u8>(model, p, c.scale, runtime, r.threads),
    };
    // A quantisation-aware run is scored as the int8 file it trains for.
    let qat = weights.qat()?;
    let shipped = |model: Vec<u8>| match &qat {
        Some(q) => crate::onnx::quantize::int8_bytes(&model, &q.activations, "validation", q.weight_bits),
        None => Ok(model),
    };
    Ok(Scored {
        model: score(&shipped(weights.model(c, &[])?)?)?,
        raw: weights
            .raw_model(c)?
            .map(|m| score(&shipped(m)?).map(|p| p.y))
            .transpose()?,
    })
}

// The engines: which can train how.

/// `--engine ort-training` needs ONNX Runtime's training API: checked before the data
/// is loaded, which can take minutes.
fn check_engine(o: &TrainOptions) -> Result<()> {
    if let Engine::TrainingApi(_) = o.run.engine {
        crate::runtime::ensure_training_api()?;
    }
    Ok(())
}

fn check_data_parallel_engine(o: &TrainOptions) -> Result<()> {
    ensure!(
        matches!(o.run.engine, Engine::Runtime(Runtime::Ort(_))),
        "data-parallel training (mpirun) runs in ONNX Runtime: leave out --engine, or use --engine ort"
    );
    Ok(())
}

/// The train step compiled for this rank's share of the batch, in the engine.
fn make_trainer<'a>(
    o: &TrainOptions,
    share: Share,
    group: Option<Box<dyn Group>>,
    stop: &'a AtomicBool,
) -> Result<Box<dyn Trainer + 'a>> {
    let (c, t, r) = (&o.model, &o.schedule.train, &o.run);
    let mut step_config = TrainConfig {
        batch: share.batch,
        ..t.clone()
    };
    if let (true, Engine::Runtime(runtime)) = (o.schedule.tune, r.engine) {
        let target = crate::tune::Target {
            runtime,
            threads: r.threads,
        };
        // The ranks of a data-parallel run must compile the same graph: they only read
        // spellings measured before (by a single-process run on the same machine).
        step_config.spellings = crate::tune::spellings(c, &step_config, &target, &o.data.cache, share.ranks == 1)
            .context("Measuring the gradient spellings (--no-tune skips it)")?;
    }
    let graphs = compile(c, &step_config)?;
    Ok(match (r.engine, group) {
        (Engine::Runtime(Runtime::Ort(device)), Some(g)) => Box::new(crate::distributed::DataParallelTrainer::new(
            &graphs.gradients,
            &t.adam,
            device,
            r.threads,
            g,
            stop,
        )?),
        (Engine::Runtime(Runtime::Ort(device)), None) => {
            Box::new(OrtTrainer::new(&graphs.train_step, device, r.threads)?)
        }
        (Engine::TrainingApi(device), _) => {
            crate::runtime::training_api_trainer(crate::ortapi::artefacts(c, t, None)?, device, r.threads)?
        }
        (Engine::Runtime(Runtime::Tract), _) => Box::new(TractTrainer::with_threads(&graphs.train_step, r.threads)?),
    })
}
