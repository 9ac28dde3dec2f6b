//! The training loop: data on worker threads, the compiled train step in ONNX
//! Runtime or tract, the learning-rate schedule, validation, checkpoints,
//! a JSONL log, curves and the exported model.

mod checkpoint;
mod ema;
mod log;
mod plot;
mod schedule;
mod validate;

pub use checkpoint::{ensure_same_config, from_bytes as checkpoint_from_bytes, load as load_checkpoint, Checkpoint};
pub use ema::Ema;
use log::History;
pub use log::{read_log, Losses, Validations};
pub use schedule::{Decay, Schedule};
pub use validate::{bicubic_psnr, bicubic_scores, model_psnr, model_scores, Pictures, Psnr};

use crate::compiler::{compile, TrainConfig};
use crate::data::cache::PixelCache;
use crate::data::dataset::{ImageSet, PatchSampler, Prefetcher};
use crate::export::inference_graph;
use crate::ir::Tensor;
use crate::models::{self, ModelConfig};
use crate::onnx::Model;
use crate::runtime::ort::OrtTrainer;
use crate::runtime::tract::TractTrainer;
pub use crate::runtime::Engine;
use crate::runtime::Trainer;
use anyhow::{bail, ensure, Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub data: PathBuf,
    pub val: Option<PathBuf>,
    /// The run's folder: checkpoint, log, curves, model.
    pub out: PathBuf,
    pub steps: u64,
    pub learning_rate: f32,
    /// How the learning rate changes over the run (the paper's: halve every 200,000 steps).
    pub schedule: Schedule,
    /// Keep an exponential moving average of the weights with this decay (`--ema 0.999`); the
    /// exported model is the average.
    pub ema: Option<f32>,
    pub checkpoint_every: u64,
    pub validate_every: u64,
    pub engine: Engine,
    pub threads: usize,
    /// Seed of the data: which crops, flips and rotations each step sees.
    pub data_seed: u64,
    pub resume: bool,
    /// Start afresh in a folder that holds another run's files, deleting them.
    pub overwrite: bool,
    pub progress: bool,
    /// Weights to start from instead of the initialisation (`--init`): fine-tuning, with a fresh optimiser.
    pub init: Option<Init>,
    /// Where the training set's pixel cache lives (`data::cache::default_root()` unless `--cache`).
    pub cache: PathBuf,
    /// Validate on the first N pictures of `val` only.
    pub val_limit: Option<usize>,
    /// Time each conv's gradient spellings in the engine and compile the faster (`tune`).
    pub tune: bool,
}

/// A network's starting weights, from a checkpoint `srgraph import` reads.
#[derive(Clone, Debug)]
pub struct Init {
    /// The file, as the user named it.
    pub source: String,
    /// Training-form parameters and buffers under srgraph's names.
    pub values: Vec<(String, Tensor)>,
}

/// The files a run leaves in its folder; a folder holding any of them holds a run.
pub const RUN_FILES: [&str; 4] = ["checkpoint.onnx", "model.onnx", "log.jsonl", "curves.png"];

impl TrainOptions {
    /// The checks both `train` and `study` rely on, in one place.
    pub fn validate(&self) -> Result<()> {
        self.train.validate(self.model.scale)?;
        ensure!(self.steps >= 1, "--steps must be at least 1");
        ensure!(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            "--lr must be a positive number"
        );
        for (flag, every) in [
            ("--checkpoint-every", self.checkpoint_every),
            ("--validate-every", self.validate_every),
        ] {
            ensure!(every >= 1, "{flag} must be at least 1 (got {every})");
        }
        if let Some(d) = self.ema {
            ensure!(
                d > 0.0 && d < 1.0,
                "--ema is a decay between 0 and 1, e.g. 0.999 (got {d})"
            );
        }
        ensure!(
            !(self.resume && self.overwrite),
            "--resume continues the run in --out and --force deletes it: give one"
        );
        // Activations kept for the backward pass, their gradients and the runtime's
        // working copies: about three times the forward pass's, refused before the
        // runtime would abort on an allocation.
        let lr_pixels = (self.train.patch / self.model.scale).pow(2) as f64;
        let bytes = 3.0 * 4.0 * self.train.batch as f64 * lr_pixels * self.model.activations_per_pixel();
        if let Some(available) = crate::util::short_of_memory(bytes) {
            bail!(
                "training {} with {} blocks of {} filters on batches of {} patches of {} px needs about {:.1} GB, \
                 more than the {:.1} GB of memory available: lower --batch or --patch, or use a smaller network",
                self.model.arch.name(),
                self.model.blocks,
                self.model.filters,
                self.train.batch,
                self.train.patch,
                bytes / 1e9,
                available / 1e9
            );
        }
        Ok(())
    }
}

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
    let (c, t) = (&o.model, &o.train);
    o.validate()?;
    if let Engine::OrtTraining(_) = o.engine {
        // Before the data is loaded, which can take minutes.
        crate::runtime::ensure_training_api()?;
    }
    // Under mpirun, the ranks training this one model; rank 0 (the leader) alone writes the
    // run's files, validates and prints.
    let mut group = crate::distributed::join()?;
    let leader = group.as_ref().is_none_or(|g| g.rank() == 0);
    if let Some(g) = &group {
        ensure!(
            matches!(o.engine, Engine::Ort(_)),
            "data-parallel training (mpirun) runs in ONNX Runtime: leave out --engine, or use --engine ort"
        );
        ensure!(
            t.batch.is_multiple_of(g.size()),
            "--batch {} does not divide among {} ranks: give a multiple of {} (--batch is the whole batch, split \
             across the ranks)",
            t.batch,
            g.size(),
            g.size()
        );
    }
    let _lock = if leader { Some(open_run_folder(o)?) } else { None };
    let ckpt_path = o.out.join("checkpoint.onnx");

    // The training pixels are memory-mapped from the data cache (made on first use), so
    // the process holds none of them however many there are. The leader makes it; the
    // other ranks wait, then map the same one.
    let set = ImageSet::open(&o.data, c.scale).context("Training data")?;
    let open_cache = || PixelCache::open_or_build(&set, &o.cache, o.progress && leader).context("Training data");
    let cache = match &mut group {
        Some(g) if leader => {
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
    let sampler = PatchSampler::from_cache(cache, t.patch, c.scale, o.data_seed).context("Training data")?;
    if leader {
        for w in warnings.iter().chain(sampler.warnings()) {
            eprintln!("warning: {w}");
        }
    }
    let val = match &o.val {
        Some(dir) if leader => {
            // Mapped from the data cache too, so that DIV2K's 2K validation pictures are read
            // one at a time rather than held.
            let mut set = ImageSet::open(dir, c.scale).context("Validation data")?;
            if let Some(n) = o.val_limit {
                set.files.truncate(n);
            }
            let pictures = PixelCache::open_or_build(&set, &o.cache, o.progress).context("Validation data")?;
            pictures.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
            let bicubic = bicubic_scores(&pictures, c.scale)?;
            Some((pictures, bicubic))
        }
        _ => None,
    };

    // Each rank computes its share of the batch: items [rank b, (rank + 1) b) of each step's.
    let ranks = group.as_ref().map_or(1, |g| g.size());
    let rank = group.as_ref().map_or(0, |g| g.rank());
    let share = t.batch / ranks;
    let mut step_config = TrainConfig {
        batch: share,
        ..t.clone()
    };
    if o.tune && !matches!(o.engine, Engine::OrtTraining(_)) {
        let target = crate::tune::Target {
            engine: o.engine,
            threads: o.threads,
        };
        // The ranks of a data-parallel run must compile the same graph: they only read
        // spellings measured before (by a single-process run on the same machine).
        step_config.spellings = crate::tune::spellings(c, &step_config, &target, &o.cache, ranks == 1)
            .context("Measuring the gradient spellings (--no-tune skips it)")?;
    }
    let graphs = compile(c, &step_config)?;
    let mut trainer: Box<dyn Trainer + '_> = match (o.engine, group) {
        (Engine::Ort(device), Some(g)) => Box::new(crate::distributed::DataParallelTrainer::new(
            &graphs.gradients,
            &t.adam,
            device,
            o.threads,
            g,
            stop,
        )?),
        (Engine::Ort(device), None) => Box::new(OrtTrainer::new(&graphs.train_step, device, o.threads)?),
        (Engine::OrtTraining(device), _) => crate::runtime::training_api_trainer(c, t, device, o.threads)?,
        (Engine::Tract, _) => Box::new(TractTrainer::new(&graphs.train_step)?),
    };
    let identity = identity(o);
    let mut start = 0;
    if let (Some(init), false) = (&o.init, o.resume) {
        trainer
            .set_values(&init.values)
            .with_context(|| format!("starting from {}", init.source))?;
    }
    // The average starts at the starting weights (a resumed run's comes from its checkpoint).
    let mut ema = match o.ema {
        Some(decay) if !o.resume && leader => Some(Ema::new(decay, c, &trainer.values()?)?),
        _ => None,
    };
    if o.resume {
        let ckpt = checkpoint::load(&ckpt_path)?;
        checkpoint::ensure_same(&ckpt, &identity, &ckpt_path)?;
        if let (Some(decay), true) = (o.ema, leader) {
            ema = Some(Ema::from_checkpoint(decay, c, &ckpt.values).with_context(|| ckpt_path.display().to_string())?);
        }
        let state: Vec<String> = trainer.values()?.into_iter().map(|(n, _)| n).collect();
        let values: Vec<_> = ckpt.values.into_iter().filter(|(n, _)| state.contains(n)).collect();
        ensure!(
            values.len() == state.len(),
            "{} lacks some of the run's state",
            ckpt_path.display()
        );
        // A run stops before checkpointing a non-finite loss, so these were damaged on disk.
        if let Some((name, _)) = values.iter().find(|(_, t)| !t.is_finite()) {
            bail!(
                "{} holds non-finite values (NaN or infinity) in {name}: the checkpoint is damaged; start afresh \
                 with --force",
                ckpt_path.display()
            );
        }
        trainer.set_values(&values)?;
        start = ckpt.step;
        ensure!(
            start <= o.steps,
            "the checkpoint is at step {start}, past --steps {}",
            o.steps
        );
    }

    // The log is the leader's: it trims the lines a resumed run redoes and appends.
    let mut history = if leader {
        History::load(&o.out.join("log.jsonl"), start)?
    } else {
        History::default()
    };
    let mut log: Box<dyn Write> = if leader {
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(o.out.join("log.jsonl"))?,
        )
    } else {
        Box::new(std::io::sink())
    };
    let bar = progress_bar(o.progress && leader, o.steps, start);
    let mut prefetch = Prefetcher::items(Arc::new(sampler), rank * share..(rank + 1) * share, start, 2);
    let began = Instant::now();
    // A run resumed at its last step trains no more: its last loss is the log's.
    let last_logged = history.losses.last().map_or(f32::NAN, |l| l.1);
    let (mut step, mut last_loss, mut interrupted) = (start, last_logged, false);
    while step < o.steps {
        let (_, lr, hr) = prefetch.next()?;
        step += 1;
        let rate = o.schedule.rate(o.learning_rate, step);
        let loss = trainer.step(lr.into_dyn(), hr.into_dyn(), rate, step)?;
        if let Some(e) = &mut ema {
            e.update(&trainer.values()?)?;
        }
        ensure!(
            loss.is_finite(),
            "the loss became {loss} at step {step}; try a lower --lr"
        );
        last_loss = loss;
        history.losses.push((step, loss));
        writeln!(
            log,
            "{{\"step\":{step},\"loss\":{loss},\"lr\":{rate},\"seconds\":{:.3}}}",
            began.elapsed().as_secs_f64()
        )?;
        bar.set_position(step);
        bar.set_message(format!("loss {loss:.3}"));
        let stopping = trainer.stop_agreed(stop.load(Ordering::Relaxed));
        if let Some((pairs, bicubic)) = &val {
            if step % o.validate_every == 0 || step == o.steps || stopping {
                let m = &model(c, &*trainer, ema.as_ref(), &[])?;
                let psnr = model_scores(m, pairs, c.scale, o.engine, o.threads)?;
                history.psnr.push((step, psnr.y, bicubic.y));
                // With EMA the model is the average; the weights being trained are scored beside it.
                let (raw, raw_text) = match &ema {
                    Some(_) => {
                        let raw = model_scores(&export(c, &*trainer, &[])?, pairs, c.scale, o.engine, o.threads)?.y;
                        history.raw.push((step, raw));
                        (
                            format!(",\"val_psnr_raw\":{raw:.4}"),
                            format!(", without EMA {raw:.2} dB"),
                        )
                    }
                    None => (String::new(), String::new()),
                };
                // How the run is going, for whoever reads the folder rather than the terminal.
                let seconds = began.elapsed().as_secs_f64();
                let per_second = (step - start) as f64 / seconds.max(1e-9);
                let eta = (o.steps - step) as f64 / per_second.max(1e-9);
                writeln!(
                    log,
                    "{{\"step\":{step},\"val_psnr\":{:.4},\"val_psnr_rgb\":{:.4},\"bicubic_psnr\":{:.4},\
                     \"bicubic_psnr_rgb\":{:.4}{raw},\"steps_per_s\":{per_second:.4},\"pictures_per_s\":{:.2},\
                     \"eta_s\":{eta:.0}}}",
                    psnr.y,
                    psnr.rgb,
                    bicubic.y,
                    bicubic.rgb,
                    per_second * t.batch as f64
                )?;
                bar.println(format!(
                    "step {step}: validation PSNR {:.2} dB (RGB {:.2}){raw_text}, bicubic {:.2} dB",
                    psnr.y, psnr.rgb, bicubic.y
                ));
                plot::curves(
                    &o.out.join("curves.png"),
                    &curve_title(c),
                    &history.losses,
                    &history.psnr,
                    &history.raw,
                )?;
            }
        }
        if leader && (step % o.checkpoint_every == 0 || step == o.steps || stopping) {
            let mut values = trainer.values()?;
            if let Some(e) = &ema {
                values.extend(e.checkpoint_values());
            }
            checkpoint::save(&ckpt_path, c, &identity, step, &values)?;
        }
        if stopping {
            interrupted = true;
            break;
        }
    }
    bar.finish_and_clear();
    let model_path = o.out.join("model.onnx");
    if !leader {
        return Ok(TrainReport {
            steps: step,
            last_loss,
            psnr: None,
            model: model_path,
            interrupted,
        });
    }

    let psnr = history.psnr.last().map(|p| (p.1, p.2));
    let mut meta = vec![
        ("training_steps".to_string(), step.to_string()),
        ("data".to_string(), o.data.display().to_string()),
        ("last_loss".to_string(), last_loss.to_string()),
    ];
    if let (Some((model, bicubic)), Some(v)) = (psnr, &o.val) {
        meta.push(("validation".to_string(), v.display().to_string()));
        meta.push(("validation_psnr_y".to_string(), format!("{model:.4}")));
        meta.push(("bicubic_psnr_y".to_string(), format!("{bicubic:.4}")));
        if let Some(n) = o.val_limit {
            meta.push(("validation_limit".to_string(), n.to_string()));
        }
    }
    meta.extend(t.metadata());
    if let Some(init) = &o.init {
        meta.push(("initialised_from".to_string(), init.source.clone()));
    }
    // The model before the curves: it is what the run is for.
    if let Some(d) = o.ema {
        meta.push(("ema_decay".to_string(), d.to_string()));
    }
    crate::util::write_atomic(&model_path, &model(c, &*trainer, ema.as_ref(), &meta)?)?;
    plot::curves(
        &o.out.join("curves.png"),
        &curve_title(c),
        &history.losses,
        &history.psnr,
        &history.raw,
    )?;
    Ok(TrainReport {
        steps: step,
        last_loss,
        psnr,
        model: model_path,
        interrupted,
    })
}

fn curve_title(c: &ModelConfig) -> String {
    format!(
        "{} x{}, {} blocks, {} filters",
        c.arch.name(),
        c.scale,
        c.blocks,
        c.filters
    )
}

/// Makes (or reopens) the run folder and locks it for this process. A folder holding
/// another run's files is refused unless the run resumes (`--resume`) or starts
/// afresh (`--force`, which deletes them); stale temporaries of killed runs go.
fn open_run_folder(o: &TrainOptions) -> Result<crate::util::FolderLock> {
    ensure!(
        !o.out.exists() || o.out.is_dir(),
        "--out {} is a file, not a folder: give a folder for the run",
        o.out.display()
    );
    // Checked before the lock is taken, so a refused run leaves the folder as it was,
    // and again under the lock, against a run that started in between.
    refuse_existing_run(o)?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("cannot create the run folder {}", o.out.display()))?;
    let lock = crate::util::FolderLock::acquire(&o.out, "training run")?;
    refuse_existing_run(o)?;
    crate::util::remove_stale_temporaries(&o.out);
    if o.overwrite {
        for f in RUN_FILES.into_iter().map(|f| o.out.join(f)).filter(|f| f.exists()) {
            std::fs::remove_file(&f).with_context(|| format!("cannot delete {}", f.display()))?;
        }
    }
    Ok(lock)
}

/// A run that resumes needs a checkpoint; one that does not needs a folder without
/// another run's files, unless it may delete them (`overwrite`).
fn refuse_existing_run(o: &TrainOptions) -> Result<()> {
    let present: Vec<&str> = RUN_FILES.into_iter().filter(|f| o.out.join(f).exists()).collect();
    if o.resume {
        ensure!(
            o.out.join("checkpoint.onnx").exists(),
            "--resume: {} has no checkpoint.onnx to continue from{}",
            o.out.display(),
            if present.is_empty() {
                String::new()
            } else {
                format!(" (it holds {}); --force starts afresh there", present.join(", "))
            }
        );
    } else if !present.is_empty() && !o.overwrite {
        bail!(
            "{} already holds a run ({}): continue it with --resume, start afresh with --force (deleting them), \
             or choose another --out",
            o.out.display(),
            present.join(", ")
        );
    }
    Ok(())
}

/// The run's model: the weights' moving average when there is one, else the weights.
fn model(c: &ModelConfig, trainer: &dyn Trainer, ema: Option<&Ema>, extra: &[(String, String)]) -> Result<Vec<u8>> {
    match ema {
        Some(e) => export_values(c, e.values().to_vec(), extra),
        None => export(c, trainer, extra),
    }
}

/// The inference `.onnx` of the trainer's current parameters.
pub fn export(c: &ModelConfig, trainer: &dyn Trainer, extra: &[(String, String)]) -> Result<Vec<u8>> {
    let values: Vec<(String, Tensor)> = trainer
        .values()?
        .into_iter()
        .filter(|(n, _)| !n.contains(".adam_"))
        .collect();
    export_values(c, values, extra)
}

/// The inference `.onnx` of these parameters and buffers.
fn export_values(c: &ModelConfig, values: Vec<(String, Tensor)>, extra: &[(String, String)]) -> Result<Vec<u8>> {
    let mut g = models::build(c)?;
    g.set_values(&values)?;
    let params = g.param_count();
    let provenance = crate::onnx::Provenance {
        graph: "inference",
        parameters: params,
        training_steps: None,
        command: false,
    };
    let mut meta = provenance.record(c.metadata());
    meta.extend(extra.iter().cloned());
    Model::new(inference_graph(&g)?, meta).to_bytes("inference")
}

/// What a resumed run must share with its checkpoint.
fn identity(o: &TrainOptions) -> Vec<(String, String)> {
    let mut m = o.model.metadata().into_pairs();
    m.extend(o.train.metadata());
    m.push(("data_seed".into(), o.data_seed.to_string()));
    m.push(("base_learning_rate".into(), o.learning_rate.to_string()));
    m.extend(o.schedule.metadata());
    if let Some(d) = o.ema {
        m.push(("ema".into(), d.to_string()));
    }
    m
}

fn progress_bar(shown: bool, steps: u64, start: u64) -> indicatif::ProgressBar {
    if !shown {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  {msg}  ETA {eta}")
            .expect("a valid template"),
    );
    bar.set_position(start);
    bar
}
