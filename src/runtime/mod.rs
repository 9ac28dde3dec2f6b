//! Runtimes that execute srgraph's ONNX files: tract (pure Rust, the default
//! for checks, needs no native library) and ONNX Runtime (`ort`, CPU or CUDA).

pub mod ort;
pub mod tract;

use crate::ir::Tensor;
use anyhow::{Context, Result};
use ndarray::ArrayD;

/// Which runtime runs a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Ort(ort::Device),
    Tract,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Ort(ort::Device::Cpu) => "onnxruntime-cpu",
            Engine::Ort(ort::Device::Cuda) => "onnxruntime-cuda",
            Engine::Ort(ort::Device::Auto) => "onnxruntime",
            Engine::Tract => "tract",
        }
    }
}

/// A runtime executing a train-step graph (see `compiler`), keeping the
/// parameters, Adam moments and buffers between steps.
pub trait Trainer {
    /// One step on a batch; returns the loss before the update.
    fn step(&mut self, lr: ArrayD<f32>, hr: ArrayD<f32>, learning_rate: f32, step: u64) -> Result<f32>;
    /// The current parameters, moments and buffers, by name.
    fn values(&self) -> Result<Vec<(String, Tensor)>>;
    /// Replace some of them (resuming from a checkpoint).
    fn set_values(&mut self, values: &[(String, Tensor)]) -> Result<()>;
}

/// Where `name` sits among a trainer's state, and its value as float32: the
/// check both trainers make before replacing a state tensor.
fn find_state<'a>(names: &[String], name: &str, value: &'a Tensor) -> Result<(usize, &'a ArrayD<f32>)> {
    let i = names
        .iter()
        .position(|n| n == name)
        .with_context(|| format!("the step has no state named {name}"))?;
    Ok((i, value.as_f32().with_context(|| format!("{name}: state is float32"))?))
}
