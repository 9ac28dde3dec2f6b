//! Runtimes that execute srgraph's ONNX files: tract (pure Rust, the default
//! for checks, needs no native library) and ONNX Runtime (`ort`, CPU or CUDA).

pub mod ort;
#[cfg(feature = "ort-training")]
pub mod ort_training;
pub mod tract;

use crate::ir::Tensor;
use crate::ortapi::Artefacts;
pub(crate) use crate::util::guarded;
use anyhow::{Context, Result};
use ndarray::ArrayD;

/// Which runtime runs a graph: a model (inference, evaluation, validation, serving), a
/// timing (`tune`) or srgraph's own train step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Ort(ort::Device),
    Tract,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Ort(ort::Device::Cpu) => "onnxruntime-cpu",
            Runtime::Ort(ort::Device::Cuda) => "onnxruntime-cuda",
            Runtime::Ort(ort::Device::Auto) => "onnxruntime",
            Runtime::Tract => "tract",
        }
    }
}

/// The median seconds of `runs` runs (after a warm-up) of `onnx` on `inputs` (in graph
/// order) in `runtime` with `threads` (0: all cores): how `tune` compares spellings.
pub fn median_run_time(
    runtime: Runtime,
    onnx: &[u8],
    inputs: &[ArrayD<f32>],
    threads: usize,
    runs: usize,
) -> Result<f64> {
    match runtime {
        Runtime::Ort(device) => ort::median_run_time(onnx, inputs, device, threads, runs),
        Runtime::Tract => tract::median_run_time(onnx, inputs, threads, runs),
    }
}

/// Every output of `onnx` (in graph order) for `inputs` (in graph order), run once in
/// `runtime` with `threads` (0: all cores): for a graph made for one run, not a model
/// run picture after picture.
pub fn run_once(runtime: Runtime, onnx: &[u8], inputs: Vec<ArrayD<f32>>, threads: usize) -> Result<Vec<ArrayD<f32>>> {
    match runtime {
        Runtime::Ort(device) => ort::run_once(onnx, inputs, device, threads),
        Runtime::Tract => tract::run_once_on(onnx, inputs, threads),
    }
}

/// Call `run` once to warm up, then `runs` times; the median seconds of a call.
fn median_seconds(runs: usize, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    run()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = std::time::Instant::now();
        run()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times.get(times.len() / 2).copied().unwrap_or(f64::NAN))
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
    /// Whether the run stops after this step, given this process's own Ctrl-C / SIGTERM flag.
    /// A data-parallel trainer answers what all ranks agreed in the step, so that they stop together.
    fn stop_agreed(&self, local: bool) -> bool {
        local
    }
}

/// A trainer under ONNX Runtime's own training API (`--engine ort-training`), on the
/// training-API artefacts of a network (`ortapi::artefacts`).
#[cfg(feature = "ort-training")]
pub fn training_api_trainer(artefacts: Artefacts, device: ort::Device, threads: usize) -> Result<Box<dyn Trainer>> {
    Ok(Box::new(ort_training::OrtApiTrainer::new(artefacts, device, threads)?))
}

/// Ok when `--engine ort-training` can run: the library loads and has the training API.
#[cfg(feature = "ort-training")]
pub fn ensure_training_api() -> Result<()> {
    ort_training::ensure_available()
}

#[cfg(not(feature = "ort-training"))]
pub fn training_api_trainer(_: Artefacts, _: ort::Device, _: usize) -> Result<Box<dyn Trainer>> {
    Err(anyhow::anyhow!(NO_TRAINING_FEATURE))
}

#[cfg(not(feature = "ort-training"))]
pub fn ensure_training_api() -> Result<()> {
    Err(anyhow::anyhow!(NO_TRAINING_FEATURE))
}

#[cfg(not(feature = "ort-training"))]
const NO_TRAINING_FEATURE: &str = "--engine ort-training needs an srgraph built with the `ort-training` cargo feature \
     (cargo install --path . --features ort-training) and an ONNX Runtime library built with its training API \
     (1.19.2 was the last release of such packages). Train with the default engine instead (leave out --engine): it \
     runs srgraph's own train-step graphs in ONNX Runtime and needs neither";

/// Where `name` sits among a trainer's state, and its value as float32: the
/// check both trainers make before replacing a state tensor.
fn find_state<'a>(names: &[String], name: &str, value: &'a Tensor) -> Result<(usize, &'a ArrayD<f32>)> {
    let i = names
        .iter()
        .position(|n| n == name)
        .with_context(|| format!("the step has no state named {name}"))?;
    Ok((i, value.as_f32().with_context(|| format!("{name}: state is float32"))?))
}
