//! What a rank says and writes besides training. The leader (the only process, or
//! rank 0 under mpirun) locks the run's folder, validates, keeps the log, the progress,
//! the curves and the checkpoints, and writes the model; the other ranks are silent.

use super::folder::open_run_folder;
use super::log::{rounded, History, LogLine, StepLine, ValidationLine};
use super::progress::{pace, Progress};
use super::validate::{bicubic_scores, Psnr};
use super::weights::Weights;
use super::{plot, TrainOptions};
use crate::checkpoint;
use crate::data::cache::PixelCache;
use crate::data::dataset::ImageSet;
use crate::models::ModelConfig;
use anyhow::{Context, Result};
use std::fs::File;
use std::time::Instant;

/// The validation pictures, with bicubic's scores on them (measured once).
pub(super) struct ValidationSet {
    pub pictures: PixelCache,
    pub bicubic: Psnr,
}

/// One validation's scores: the run's model, and under EMA the raw weights' PSNR-Y.
pub(super) struct Scored {
    pub model: Psnr,
    pub raw: Option<f64>,
}

pub(super) trait Reporter {
    /// Whether the data cache shows its progress as it is built.
    fn shows_progress(&self) -> bool;
    /// Warnings about the data.
    fn warn(&self, warnings: &[String]);
    /// The validation set: the leader's alone.
    fn validation_set(&self) -> Result<Option<ValidationSet>>;
    /// The moving average's decay, when this rank keeps one (it exports the model).
    fn average(&self) -> Option<f32>;
    /// Reporting starts after step `start`: the loss logged there (NaN when none).
    fn begin(&mut self, start: u64) -> Result<f32>;
    fn step(&mut self, step: u64, loss: f32, rate: f32) -> Result<()>;
    fn validated(&mut self, step: u64, scored: &Scored, bicubic: &Psnr) -> Result<()>;
    fn checkpoint(&mut self, step: u64, weights: &Weights) -> Result<()>;
    /// Writes the model; the last validation's (model, bicubic) PSNR-Y.
    fn finish(&mut self, weights: &Weights, step: u64, last_loss: f32) -> Result<Option<(f64, f64)>>;
}

/// The reporter of this rank, chosen once; the leader's locks the run's folder.
pub(super) fn reporter<'a>(o: &'a TrainOptions, leader: bool) -> Result<Box<dyn Reporter + 'a>> {
    Ok(match leader {
        true => Box::new(Leader::open(o)?),
        false => Box::new(Follower),
    })
}

/// The other ranks of a data-parallel run: silent.
struct Follower;

impl Reporter for Follower {
    fn shows_progress(&self) -> bool {
        false
    }
    fn warn(&self, _: &[String]) {}
    fn validation_set(&self) -> Result<Option<ValidationSet>> {
        Ok(None)
    }
    fn average(&self) -> Option<f32> {
        None
    }
    fn begin(&mut self, _: u64) -> Result<f32> {
        Ok(f32::NAN)
    }
    fn step(&mut self, _: u64, _: f32, _: f32) -> Result<()> {
        Ok(())
    }
    fn validated(&mut self, _: u64, _: &Scored, _: &Psnr) -> Result<()> {
        Ok(())
    }
    fn checkpoint(&mut self, _: u64, _: &Weights) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: &Weights, _: u64, _: f32) -> Result<Option<(f64, f64)>> {
        Ok(None)
    }
}

/// The rank that writes the run's files and speaks.
struct Leader<'a> {
    o: &'a TrainOptions,
    _lock: crate::util::FolderLock,
    /// The curves so far (a resumed run's from its log).
    history: History,
    /// `log.jsonl`, appended to once the run begins.
    log: Option<File>,
    progress: Progress,
    /// When, and after which step, this process began training.
    began: Instant,
    start: u64,
}

impl<'a> Leader<'a> {
    fn open(o: &'a TrainOptions) -> Result<Leader<'a>> {
        Ok(Leader {
            _lock: open_run_folder(o)?,
            o,
            history: History::default(),
            log: None,
            progress: Progress::hidden(),
            began: Instant::now(),
            start: 0,
        })
    }

    fn write(&mut self, line: &LogLine) -> Result<()> {
        line.write(self.log.as_mut().expect("the log opens when the run begins"))
    }

    fn plot(&self) -> Result<()> {
        let h = &self.history;
        plot::curves(
            &self.o.out.join("curves.png"),
            &curve_title(&self.o.model),
            &h.losses,
            &h.psnr,
            &h.raw,
        )
    }
}

impl Reporter for Leader<'_> {
    fn shows_progress(&self) -> bool {
        self.o.run.progress
    }

    fn warn(&self, warnings: &[String]) {
        for w in warnings {
            eprintln!("warning: {w}");
        }
    }

    fn validation_set(&self) -> Result<Option<ValidationSet>> {
        let (o, scale) = (self.o, self.o.model.scale);
        let Some(dir) = &o.val else { return Ok(None) };
        // Mapped from the data cache too, so that DIV2K's 2K validation pictures are read
        // one at a time rather than held.
        let mut set = ImageSet::open(dir, scale)
            .context("Validation data")?
            .degraded(o.data.degradation.clone());
        if let Some(n) = o.val_limit {
            set.files.truncate(n);
        }
        let pictures = PixelCache::open_or_build(&set, &o.data.cache, o.run.progress).context("Validation data")?;
        self.warn(&pictures.warnings);
        let bicubic = match pictures.bit_depth {
            16 => bicubic_scores::<u16>(&pictures, scale, o.model.channels)?,
            _ => bicubic_scores::<u8>(&pictures, scale, o.model.channels)?,
        };
        Ok(Some(ValidationSet { pictures, bicubic }))
    }

    fn average(&self) -> Option<f32> {
        self.o.schedule.ema
    }

    fn begin(&mut self, start: u64) -> Result<f32> {
        // The log is the leader's: it trims the lines a resumed run redoes and appends.
        let path = self.o.out.join("log.jsonl");
        self.history = History::load(&path, start)?;
        self.log = Some(std::fs::OpenOptions::new().create(true).append(true).open(&path)?);
        self.progress = Progress::new(self.o.run.progress, self.o.schedule.steps, start);
        (self.began, self.start) = (Instant::now(), start);
        // A run resumed at its last step trains no more: its last loss is the log's.
        Ok(self.history.losses.last().map_or(f32::NAN, |l| l.1))
    }

    fn step(&mut self, step: u64, loss: f32, rate: f32) -> Result<()> {
        let line = LogLine::Step(StepLine {
            step,
            loss,
            lr: rate,
            seconds: rounded(self.began.elapsed().as_secs_f64(), 3),
        });
        self.history.push(&line);
        self.write(&line)?;
        self.progress.step(step, loss);
        Ok(())
    }

    fn validated(&mut self, step: u64, scored: &Scored, bicubic: &Psnr) -> Result<()> {
        let (psnr, raw) = (scored.model, scored.raw);
        // How the run is going, for whoever reads the folder rather than the terminal.
        let (per_second, eta) = pace(self.start, step, self.o.schedule.steps, self.began);
        let line = LogLine::Validation(ValidationLine {
            step,
            val_psnr: rounded(psnr.y, 4),
            val_psnr_rgb: rounded(psnr.rgb, 4),
            bicubic_psnr: rounded(bicubic.y, 4),
            bicubic_psnr_rgb: rounded(bicubic.rgb, 4),
            val_psnr_raw: raw.map(|r| rounded(r, 4)),
            steps_per_s: rounded(per_second, 4),
            pictures_per_s: rounded(per_second * self.o.schedule.train.batch as f64, 2),
            eta_s: eta.round() as u64,
        });
        self.history.push(&line);
        self.write(&line)?;
        // With EMA the model is the average; the weights being trained are scored beside it.
        let raw_text = raw.map(|r| format!(", without EMA {r:.2} dB")).unwrap_or_default();
        self.progress.println(format!(
            "step {step}: validation PSNR {:.2} dB (RGB {:.2}){raw_text}, bicubic {:.2} dB",
            psnr.y, psnr.rgb, bicubic.y
        ));
        self.plot()
    }

    fn checkpoint(&mut self, step: u64, weights: &Weights) -> Result<()> {
        let o = self.o;
        let path = o.out.join("checkpoint.onnx");
        checkpoint::save(&path, &o.model, &o.identity(), step, &weights.checkpoint_values()?)
    }

    fn finish(&mut self, weights: &Weights, step: u64, last_loss: f32) -> Result<Option<(f64, f64)>> {
        self.progress.finish();
        let psnr = self.history.psnr.last().map(|p| (p.1, p.2));
        let meta = model_metadata(self.o, step, last_loss, psnr);
        // The model before the curves: it is what the run is for.
        crate::util::write_atomic(&self.o.out.join("model.onnx"), &weights.model(&self.o.model, &meta)?)?;
        self.plot()?;
        Ok(psnr)
    }
}

/// What the exported model says of its run.
fn model_metadata(o: &TrainOptions, step: u64, last_loss: f32, psnr: Option<(f64, f64)>) -> Vec<(String, String)> {
    let mut meta = vec![
        ("training_steps".to_string(), step.to_string()),
        ("data".to_string(), o.data.data.display().to_string()),
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
    meta.extend(o.schedule.train.metadata());
    meta.extend(o.data.metadata());
    if o.data.bit_depth(o.model.scale) == 16 {
        meta.push(("bit_depth".to_string(), "16".to_string()));
    }
    if let Some(init) = &o.init {
        meta.push(("initialised_from".to_string(), init.source.clone()));
    }
    if let Some(d) = o.schedule.ema {
        meta.push(("ema_decay".to_string(), d.to_string()));
    }
    meta
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
