//! What a training run is told. The options `srgraph train` and a study's runs share
//! come in groups, each declared once: the data, the schedule, how the run executes.

use super::Engine;
use crate::compiler::Schedule;
use crate::compiler::TrainConfig;
use crate::data::degrade::Degradation;
use crate::ir::Tensor;
use crate::models::ModelConfig;
use anyhow::{bail, ensure, Result};
use std::path::PathBuf;

/// The training pictures.
#[derive(Clone, Debug)]
pub struct DataOptions {
    /// The training set's folder.
    pub data: PathBuf,
    /// Where the training set's pixel cache lives (`data::cache::default_root()` unless `--cache`).
    pub cache: PathBuf,
    /// How the LR pictures, of training and of validation, are made from the HR ones.
    pub degradation: Degradation,
}

impl DataOptions {
    /// `degradation = <name>` unless bicubic, so that a bicubic run's files read as before.
    pub fn metadata(&self) -> Option<(String, String)> {
        (self.degradation != Degradation::Bicubic).then(|| ("degradation".into(), self.degradation.name()))
    }

    /// The training pictures' bits per value at scale `scale`: 16 if any is 16-bit (the
    /// model then records `bit_depth = 16`), else 8.
    pub fn bit_depth(&self, scale: usize) -> u32 {
        crate::data::dataset::ImageSet::open(&self.data, scale).map_or(8, |set| set.bit_depth())
    }
}

/// How long and how a network trains: the batches, the learning rate and its schedule,
/// the moving average, the data's seed.
#[derive(Clone, Debug)]
pub struct ScheduleOptions {
    pub train: TrainConfig,
    pub steps: u64,
    /// None: the architecture's default (1e-3 for WDSR, 1e-4 for EDSR, as the reference code).
    pub learning_rate: Option<f32>,
    /// How the learning rate changes over the run (the paper's: halve every 200,000 steps).
    pub rates: Schedule,
    /// Keep an exponential moving average of the weights with this decay (`--ema 0.999`); the
    /// exported model is the average.
    pub ema: Option<f32>,
    /// Seed of the data: which crops, flips and rotations each step sees.
    pub data_seed: u64,
    /// Time each conv's gradient spellings in the engine and compile the faster (`tune`).
    pub tune: bool,
}

/// Where a run computes and whether it shows its progress.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub engine: Engine,
    pub threads: usize,
    pub progress: bool,
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub model: ModelConfig,
    pub data: DataOptions,
    pub schedule: ScheduleOptions,
    pub run: RunOptions,
    pub val: Option<PathBuf>,
    /// Validate on the first N pictures of `val` only.
    pub val_limit: Option<usize>,
    /// The run's folder: checkpoint, log, curves, model.
    pub out: PathBuf,
    pub checkpoint_every: u64,
    pub validate_every: u64,
    pub resume: bool,
    /// Start afresh in a folder that holds another run's files, deleting them.
    pub overwrite: bool,
    /// Weights to start from instead of the initialisation (`--init`): fine-tuning, with a fresh optimiser.
    pub init: Option<Init>,
}

/// A network's starting weights, from a checkpoint `srgraph import` reads.
#[derive(Clone, Debug)]
pub struct Init {
    /// The file, as the user named it.
    pub source: String,
    /// Training-form parameters and buffers under srgraph's names.
    pub values: Vec<(String, Tensor)>,
}

impl TrainOptions {
    /// The base learning rate: the one given, else the architecture's.
    pub fn learning_rate(&self) -> f32 {
        self.schedule
            .learning_rate
            .unwrap_or(self.model.arch.default_learning_rate())
    }

    /// The checks both `train` and `study` rely on, in one place.
    pub fn validate(&self) -> Result<()> {
        let (s, t) = (&self.schedule, &self.schedule.train);
        t.validate(self.model.scale)?;
        ensure!(s.steps >= 1, "--steps must be at least 1");
        let lr = self.learning_rate();
        ensure!(lr > 0.0 && lr.is_finite(), "--lr must be a positive number");
        for (flag, every) in [
            ("--checkpoint-every", self.checkpoint_every),
            ("--validate-every", self.validate_every),
        ] {
            ensure!(every >= 1, "{flag} must be at least 1 (got {every})");
        }
        if let Some(d) = s.ema {
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
        let lr_pixels = (t.patch / self.model.scale).pow(2) as f64;
        let bytes = 3.0 * 4.0 * t.batch as f64 * lr_pixels * self.model.activations_per_pixel();
        if let Some(available) = crate::util::short_of_memory(bytes) {
            bail!(
                "training {} with {} blocks of {} filters on batches of {} patches of {} px needs about {:.1} GB, \
                 more than the {:.1} GB of memory available: lower --batch or --patch, or use a smaller network",
                self.model.arch.name(),
                self.model.blocks,
                self.model.filters,
                t.batch,
                t.patch,
                bytes / 1e9,
                available / 1e9
            );
        }
        Ok(())
    }

    /// What a resumed run must share with its checkpoint.
    pub(super) fn identity(&self) -> Vec<(String, String)> {
        let s = &self.schedule;
        let mut m = self.model.metadata().into_pairs();
        m.extend(s.train.metadata());
        // The plan as it started: a resumed run calibrates again and must find the same.
        m.extend(s.train.qat.iter().flat_map(|q| q.metadata()));
        m.push(("data_seed".into(), s.data_seed.to_string()));
        m.push(("base_learning_rate".into(), self.learning_rate().to_string()));
        m.extend(s.rates.metadata());
        if let Some(d) = s.ema {
            m.push(("ema".into(), d.to_string()));
        }
        m.extend(self.data.metadata());
        m
    }
}
