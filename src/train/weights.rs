//! The weights a run trains and, under `--ema`, their moving average: what is stepped,
//! validated, checkpointed and exported, in one place.

use super::Ema;
use crate::compiler::qat::{self, FakeQuant};
use crate::export::inference_graph;
use crate::ir::Tensor;
use crate::models::{self, ModelConfig};
use crate::onnx::Model;
use crate::runtime::Trainer;
use anyhow::Result;
use ndarray::ArrayD;

pub(super) struct Weights<'a> {
    pub trainer: Box<dyn Trainer + 'a>,
    /// The moving average, kept by the rank that writes the run's files.
    average: Option<Ema>,
    /// What a quantisation-aware run rounds, as it started.
    qat: Option<FakeQuant>,
}

impl<'a> Weights<'a> {
    pub fn new(trainer: Box<dyn Trainer + 'a>, qat: Option<FakeQuant>) -> Weights<'a> {
        Weights {
            trainer,
            average: None,
            qat,
        }
    }

    /// What a quantisation-aware run rounds now: its activation ranges as trained
    /// where they are learned.
    pub fn qat(&self) -> Result<Option<FakeQuant>> {
        match &self.qat {
            Some(q) if q.learn_ranges => Ok(Some(q.learned(&self.trainer.values()?)?)),
            q => Ok(q.clone()),
        }
    }

    /// Starts the moving average with this decay: at the current weights, or at the
    /// average a checkpoint holds (a resumed run's).
    pub fn start_average(
        &mut self,
        decay: f32,
        c: &ModelConfig,
        checkpoint: Option<&[(String, Tensor)]>,
    ) -> Result<()> {
        self.average = Some(match checkpoint {
            None => Ema::new(decay, c, &self.trainer.values()?)?,
            Some(values) => Ema::from_checkpoint(decay, c, values)?,
        });
        Ok(())
    }

    /// One training step (and the average's); the loss before the update.
    pub fn step(&mut self, lr: ArrayD<f32>, hr: ArrayD<f32>, rate: f32, step: u64) -> Result<f32> {
        let loss = self.trainer.step(lr, hr, rate, step)?;
        if let Some(e) = &mut self.average {
            e.update(&self.trainer.values()?)?;
        }
        Ok(loss)
    }

    /// The run's model: the weights' moving average when there is one, else the weights;
    /// a quantisation-aware run's with the activation ranges its int8 file takes.
    pub fn model(&self, c: &ModelConfig, extra: &[(String, String)]) -> Result<Vec<u8>> {
        let mut extra = extra.to_vec();
        extra.extend(self.qat()?.iter().flat_map(|q| q.metadata()));
        match &self.average {
            Some(e) => export_values(c, e.values().to_vec(), &extra),
            None => export(c, &*self.trainer, &extra),
        }
    }

    /// Under EMA, the model of the weights being trained, scored beside the average.
    pub fn raw_model(&self, c: &ModelConfig) -> Result<Option<Vec<u8>>> {
        self.average
            .as_ref()
            .map(|_| export(c, &*self.trainer, &[]))
            .transpose()
    }

    /// What a checkpoint holds: the training state, and the average as `<p>.ema`.
    pub fn checkpoint_values(&self) -> Result<Vec<(String, Tensor)>> {
        let mut values = self.trainer.values()?;
        if let Some(e) = &self.average {
            values.extend(e.checkpoint_values());
        }
        Ok(values)
    }
}

/// The inference `.onnx` of the trainer's current parameters.
pub fn export(c: &ModelConfig, trainer: &dyn Trainer, extra: &[(String, String)]) -> Result<Vec<u8>> {
    let values: Vec<(String, Tensor)> = trainer
        .values()?
        .into_iter()
        .filter(|(n, _)| !crate::compiler::state::is_adam_moment(n) && !qat::is_scale(n))
        .collect();
    export_values(c, values, extra)
}

/// The inference `.onnx` of these parameters and buffers.
pub(crate) fn export_values(
    c: &ModelConfig,
    values: Vec<(String, Tensor)>,
    extra: &[(String, String)],
) -> Result<Vec<u8>> {
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
