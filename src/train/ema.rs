//! An exponential moving average of the weights (BasicSR's `ema_decay`, Polyak
//! averaging): after each step, avg = decay * avg + (1 - decay) * w for every
//! parameter; buffers (batch norm's running statistics) are taken as they are. It is
//! kept on the host beside the train step, checkpointed as `<p>.ema` and restored bit
//! for bit, and it is what a run exports when it is on.

use crate::compiler::state;
use crate::ir::Tensor;
use crate::models::{self, ModelConfig};
use anyhow::{Context, Result};

pub struct Ema {
    decay: f32,
    /// The network's parameters and buffers, by name, in the network's order.
    values: Vec<(String, Tensor)>,
    /// Which of them are parameters (averaged) rather than buffers (copied).
    averaged: Vec<bool>,
}

fn names(c: &ModelConfig) -> Result<Vec<(String, bool)>> {
    let g = models::build_dry(c)?;
    let params = g.params().map(|(n, _)| (n.to_string(), true));
    let buffers = g.buffers().map(|(n, _)| (n.to_string(), false));
    Ok(params.chain(buffers).collect())
}

fn find<'a>(values: &'a [(String, Tensor)], name: &str) -> Result<&'a Tensor> {
    values
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .with_context(|| format!("the training state has no {name}"))
}

impl Ema {
    /// The average starting at the trainer's current weights.
    pub fn new(decay: f32, c: &ModelConfig, state: &[(String, Tensor)]) -> Result<Ema> {
        let names = names(c)?;
        let values = names
            .iter()
            .map(|(n, _)| Ok((n.clone(), find(state, n)?.clone())))
            .collect::<Result<_>>()?;
        Ok(Ema {
            decay,
            values,
            averaged: names.iter().map(|(_, p)| *p).collect(),
        })
    }

    /// The average a checkpoint holds (`<p>.ema`).
    pub fn from_checkpoint(decay: f32, c: &ModelConfig, ckpt: &[(String, Tensor)]) -> Result<Ema> {
        let names = names(c)?;
        let values = names
            .iter()
            .map(|(n, _)| {
                let t =
                    find(ckpt, &state::ema(n)).context("the checkpoint holds no moving average (--ema) to resume")?;
                Ok((n.clone(), t.clone()))
            })
            .collect::<Result<_>>()?;
        Ok(Ema {
            decay,
            values,
            averaged: names.iter().map(|(_, p)| *p).collect(),
        })
    }

    /// One step: avg = decay * avg + (1 - decay) * w.
    pub fn update(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let (keep, take) = (self.decay, 1.0 - self.decay);
        for ((name, avg), &averaged) in self.values.iter_mut().zip(&self.averaged) {
            let now = find(state, name)?;
            if !averaged {
                *avg = now.clone();
                continue;
            }
            let (Tensor::F32(a), Some(w)) = (avg, now.as_f32()) else {
                anyhow::bail!("{name} is not float32");
            };
            a.zip_mut_with(w, |a, &w| *a = keep * *a + take * w);
        }
        Ok(())
    }

    /// The averaged parameters and buffers, under the network's names.
    pub fn values(&self) -> &[(String, Tensor)] {
        &self.values
    }

    /// The average as a checkpoint stores it: `<p>.ema`.
    pub fn checkpoint_values(&self) -> Vec<(String, Tensor)> {
        self.values.iter().map(|(n, t)| (state::ema(n), t.clone())).collect()
    }
}
