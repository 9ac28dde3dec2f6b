//! Training through ONNX Runtime's own training API (`ort::training`) on srgraph's
//! training-API artefacts (`ortapi`): for libraries built with that API, which no
//! package released since 1.19.2 is. The state srgraph checkpoints, validates and
//! exports (parameters and Adam moments) goes in and out in the API's checkpoint
//! format, written and read by `ortapi::checkpoint`: the API hands out parameters
//! one by one, but the optimiser's moments only inside a saved checkpoint.

use super::ort::{builder, environment, library_path, on_device, Device};
use super::Trainer;
use crate::ir::Tensor;
use crate::ortapi::{self, checkpoint, Artefacts};
use anyhow::{anyhow, Context, Result};
use ndarray::ArrayD;
use ort::memory::Allocator;
use ort::value::Tensor as OrtTensor;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Ok when the loaded library has the training API; else the error that says what to do.
pub fn ensure_available() -> Result<()> {
    environment()?;
    ort::training::training_api().map_err(|_| {
        anyhow!(
            "{}",
            no_training_api(&library_path().map_or("?".into(), |p| p.display().to_string()))
        )
    })?;
    Ok(())
}

/// What to say when the library at `path` lacks the training API.
pub fn no_training_api(path: &str) -> String {
    format!(
        "the ONNX Runtime library {path} has no training API (GetTrainingApi returns null): it was built without \
         --enable_training_apis, as the standard onnxruntime packages are. --engine ort-training needs a library \
         built with it (the training packages ended at 1.19.2; the API is deprecated): point ORT_DYLIB_PATH at one. \
         Train with the default engine instead (leave out --engine): it runs srgraph's own train-step graphs in any ONNX \
         Runtime, on the CPU or CUDA, and writes the same run folder"
    )
}

/// A training session of the training API over srgraph's artefacts.
pub struct OrtApiTrainer {
    artefacts: Artefacts,
    device: Device,
    threads: usize,
    /// The session, made at the first step (whose number the optimiser's step count must match).
    session: Option<ort::training::Trainer>,
    /// The state while no session holds it: at the start and after `set_values`.
    values: Vec<(String, Tensor)>,
}

impl OrtApiTrainer {
    /// A trainer from a network's artefacts, as `ortapi::artefacts` makes them.
    pub fn new(artefacts: Artefacts, device: Device, threads: usize) -> Result<OrtApiTrainer> {
        ensure_available()?;
        let ckpt = checkpoint::read(&artefacts.checkpoint).map_err(|e| anyhow!("srgraph's own checkpoint: {e}"))?;
        let (values, _) = ortapi::state_of_checkpoint(&ckpt)?;
        Ok(OrtApiTrainer {
            artefacts,
            device,
            threads,
            session: None,
            values,
        })
    }

    /// The session, made from `values` when there is none, with the optimiser at `step - 1` steps.
    fn session(&mut self, step: u64, learning_rate: f32) -> Result<&ort::training::Trainer> {
        if self.session.is_none() {
            let ckpt = ortapi::checkpoint_of_state(&self.values, step - 1, learning_rate)?;
            let bytes = checkpoint::write(&ckpt);
            let a = &self.artefacts;
            let (trainer, _) = on_device(self.device, |cuda| {
                let state = ort::training::Checkpoint::load_from_buffer(&bytes)?;
                Ok(ort::training::Trainer::new_from_memory(
                    builder(cuda, self.threads)?,
                    Allocator::default(),
                    state,
                    &a.training_model,
                    &a.eval_model,
                    &a.optimizer_model,
                )?)
            })
            .context("the training API cannot load srgraph's artefacts")?;
            self.session = Some(trainer);
        }
        Ok(self.session.as_ref().expect("made above"))
    }
}

impl Trainer for OrtApiTrainer {
    fn step(&mut self, lr: ArrayD<f32>, hr: ArrayD<f32>, learning_rate: f32, step: u64) -> Result<f32> {
        let session = self.session(step, learning_rate)?;
        let outputs = session.step(
            ort::inputs![OrtTensor::from_array(lr)?],
            ort::inputs![OrtTensor::from_array(hr)?],
        )?;
        let loss = outputs
            .get("loss")
            .context("the training model has no output named loss")?
            .try_extract_scalar::<f32>()?;
        drop(outputs);
        // Module.train_step, Optimizer.step, Module.lazy_reset_grad: as the API's own examples.
        let mut optimizer = session.optimizer();
        optimizer.set_lr(learning_rate)?;
        optimizer.step()?;
        optimizer.reset_grad()?;
        Ok(loss)
    }

    fn values(&self) -> Result<Vec<(String, Tensor)>> {
        let Some(session) = &self.session else {
            return Ok(self.values.clone());
        };
        static SAVES: AtomicUsize = AtomicUsize::new(0);
        let file = std::env::temp_dir().join(format!(
            "srgraph-{}-{}.ckpt",
            std::process::id(),
            SAVES.fetch_add(1, Ordering::Relaxed)
        ));
        session.checkpoint().save(&file, true)?;
        let bytes = std::fs::read(&file);
        let _ = std::fs::remove_file(&file);
        let ckpt = checkpoint::read(&bytes.context("cannot read back the training API's checkpoint")?)
            .map_err(|e| anyhow!("the training API's checkpoint: {e}"))?;
        Ok(ortapi::state_of_checkpoint(&ckpt)?.0)
    }

    fn set_values(&mut self, values: &[(String, Tensor)]) -> Result<()> {
        let mut state = self.values()?;
        for (name, value) in values {
            let (i, a) = super::find_state(&state.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), name, value)?;
            anyhow::ensure!(state[i].1.shape() == a.shape(), "{name}: shape mismatch");
            state[i].1 = value.clone();
        }
        self.values = state;
        // The next step makes a session from these values, at its own step number.
        self.session = None;
        Ok(())
    }
}
