//! tract: loads an ONNX file and runs it, optimised for the concrete input
//! shapes it will see (about 4x faster than keeping H and W symbolic), on as
//! many threads as it is given (`--threads`; its matrix products, convolutions
//! and element-wise ops split across a rayon pool).

use super::guarded;
use crate::compiler::state;
use anyhow::{Context, Result};
use ndarray::ArrayD;
use rayon::ThreadPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::multithread::Executor;
use tract_onnx::prelude::*;

pub struct TractModel {
    plan: Arc<TypedSimplePlan>,
}

impl TractModel {
    /// Prepare `onnx` (the bytes of a `.onnx` file) for f32 inputs of these shapes, to run on one thread.
    pub fn new(onnx: &[u8], input_shapes: &[&[usize]]) -> Result<TractModel> {
        Self::with_threads(onnx, input_shapes, 1)
    }

    /// As `new`, to run on `threads` threads (0: all cores).
    pub fn with_threads(onnx: &[u8], input_shapes: &[&[usize]], threads: usize) -> Result<TractModel> {
        Self::planned(
            onnx,
            input_shapes.iter().map(|s| f32::fact(s.to_vec()).into()).collect(),
            threads,
        )
    }

    /// As `with_threads`, for the shapes of these inputs.
    pub fn for_inputs(onnx: &[u8], inputs: &[ArrayD<f32>], threads: usize) -> Result<TractModel> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|a| a.shape()).collect();
        TractModel::with_threads(onnx, &shapes, threads)
    }

    /// As `new`, for a double-precision model (`Model::to_bytes_f64`).
    pub fn new_f64(onnx: &[u8], input_shapes: &[&[usize]]) -> Result<TractModel> {
        Self::planned(
            onnx,
            input_shapes.iter().map(|s| f64::fact(s.to_vec()).into()).collect(),
            1,
        )
    }

    fn planned(onnx: &[u8], inputs: Vec<InferenceFact>, threads: usize) -> Result<TractModel> {
        let options = RunOptions {
            executor: Some(executor(threads)?),
            ..RunOptions::default()
        };
        guarded("tract", "load the model", || {
            let mut model = tract_onnx::onnx()
                .model_for_read(&mut &onnx[..])
                .context("tract could not load the ONNX file")?;
            for (i, fact) in inputs.into_iter().enumerate() {
                model = model.with_input_fact(i, fact)?;
            }
            let plan = model
                .into_optimized()
                .context("tract could not optimise the graph")?
                .into_runnable_with_options(&options)
                .context("tract could not plan the graph")?;
            Ok(TractModel { plan })
        })
    }

    pub fn run_f64(&self, inputs: Vec<ArrayD<f64>>) -> Result<Vec<ArrayD<f64>>> {
        let inputs: TVec<TValue> = inputs.into_iter().map(|a| Tensor::from(a).into()).collect();
        let outputs = guarded("tract", "run the graph", || {
            self.plan.run(inputs).context("tract failed to run the graph")
        })?;
        outputs
            .iter()
            .map(|v| Ok(v.to_plain_array_view::<f64>()?.to_owned()))
            .collect()
    }

    pub fn run(&self, inputs: Vec<ArrayD<f32>>) -> Result<Vec<ArrayD<f32>>> {
        let inputs: TVec<TValue> = inputs.into_iter().map(|a| Tensor::from(a).into()).collect();
        let outputs = guarded("tract", "run the graph", || {
            self.plan.run(inputs).context("tract failed to run the graph")
        })?;
        outputs
            .iter()
            .map(|v| Ok(v.to_plain_array_view::<f32>()?.to_owned()))
            .collect()
    }
}

/// Load and run once on one thread: for one-off checks.
pub fn run_once(onnx: &[u8], inputs: Vec<ArrayD<f32>>) -> Result<Vec<ArrayD<f32>>> {
    run_once_on(onnx, inputs, 1)
}

/// As `run_once`, on `threads` threads (0: all cores).
pub fn run_once_on(onnx: &[u8], inputs: Vec<ArrayD<f32>>, threads: usize) -> Result<Vec<ArrayD<f32>>> {
    TractModel::for_inputs(onnx, &inputs, threads)?.run(inputs)
}

/// The rayon pool of `threads` threads (0: None, rayon's global pool, one thread per
/// core). One per count, made on first use and shared by every plan of the process:
/// a plan per tile size or picture size must not each start threads of their own.
fn pool(threads: usize) -> Result<Option<Arc<ThreadPool>>> {
    static POOLS: Mutex<Option<HashMap<usize, Arc<ThreadPool>>>> = Mutex::new(None);
    if threads == 0 {
        return Ok(None);
    }
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(p) = pools.get(&threads) {
        return Ok(Some(p.clone()));
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("tract-{i}"))
        .build()
        .with_context(|| format!("cannot start {threads} threads for tract"))?;
    let p = Arc::new(p);
    pools.insert(threads, p.clone());
    Ok(Some(p))
}

/// How tract splits a plan's work over `threads` threads (0: all cores; 1: on the
/// calling thread, as each tile of a tiled picture runs inside `on_threads`).
fn executor(threads: usize) -> Result<Executor> {
    Ok(match pool(threads)? {
        None => Executor::RayonGlobal,
        Some(p) if p.current_num_threads() == 1 => Executor::SingleThread,
        Some(p) => Executor::MultiThread(p),
    })
}

/// Run `work`, whose rayon parallel iterators (tiles, say) then use `threads` threads
/// (0: all cores), the pool tract's plans made with that count use.
pub fn on_threads<R: Send>(threads: usize, work: impl FnOnce() -> R + Send) -> Result<R> {
    Ok(match pool(threads)? {
        None => work(),
        Some(p) => p.install(work),
    })
}

/// Runs a train-step graph (see `compiler`) step after step in tract, keeping
/// the parameters, moments and buffers between steps and feeding every `X.new`
/// output back as the input `X`.
pub struct TractTrainer {
    model: TractModel,
    names: Vec<String>,
    state: Vec<ArrayD<f32>>,
    /// For each state input, the index of the output that updates it.
    feed: Vec<usize>,
}

impl TractTrainer {
    /// A trainer that runs `step` on one thread.
    pub fn new(step: &crate::ir::Graph) -> Result<TractTrainer> {
        Self::with_threads(step, 1)
    }

    /// A trainer that runs `step` on `threads` threads (0: all cores).
    pub fn with_threads(step: &crate::ir::Graph, threads: usize) -> Result<TractTrainer> {
        let LiftedStep {
            graph: lifted,
            values,
            shapes,
        } = lifted_step(step)?;
        let refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        let bytes = crate::onnx::Model::new(lifted.clone(), vec![]).to_bytes("train_step")?;
        let model = TractModel::with_threads(&bytes, &refs, threads)?;
        let feed = values
            .iter()
            .map(|(name, _)| {
                let out = state::next(name);
                lifted
                    .outputs
                    .iter()
                    .position(|(o, _)| *o == out)
                    .with_context(|| format!("the step does not update {name}"))
            })
            .collect::<Result<_>>()?;
        let state = values
            .iter()
            .map(|(_, t)| t.as_f32().cloned().context("state is float32"))
            .collect::<Result<_>>()?;
        Ok(TractTrainer {
            model,
            names: values.into_iter().map(|(n, _)| n).collect(),
            state,
            feed,
        })
    }
}

/// A train step as tract is fed it: the graph with its state lifted to inputs (after
/// lr, hr, learning_rate and step), the state's values, and every input's shape.
pub struct LiftedStep {
    pub graph: crate::ir::Graph,
    pub values: Vec<(String, crate::ir::Tensor)>,
    pub shapes: Vec<Vec<usize>>,
}

pub fn lifted_step(step: &crate::ir::Graph) -> Result<LiftedStep> {
    let (lifted, values) = step.lift_values();
    let mut shapes: Vec<Vec<usize>> = step
        .inputs
        .iter()
        .map(|&i| {
            step.nodes[i].outputs[0]
                .shape
                .iter()
                .map(|d| d.known().context("a train step has fixed shapes"))
                .collect()
        })
        .collect::<Result<_>>()?;
    anyhow::ensure!(
        shapes.len() == 4,
        "a train step takes lr, hr, learning_rate and step before its state"
    );
    shapes.extend(values.iter().map(|(_, t)| t.shape().to_vec()));
    Ok(LiftedStep {
        graph: lifted,
        values,
        shapes,
    })
}

impl super::Trainer for TractTrainer {
    fn step(&mut self, lr: ArrayD<f32>, hr: ArrayD<f32>, learning_rate: f32, step: u64) -> Result<f32> {
        let scalar = |v: f32| ArrayD::from_elem(ndarray::IxDyn(&[]), v);
        let mut inputs = vec![lr, hr, scalar(learning_rate), scalar(step as f32)];
        inputs.extend(self.state.iter().cloned());
        let mut outputs = self.model.run(inputs)?;
        let loss = outputs[0].iter().next().copied().context("no loss")?;
        for (slot, &out) in self.state.iter_mut().zip(&self.feed) {
            *slot = std::mem::take(&mut outputs[out]);
        }
        Ok(loss)
    }

    fn values(&self) -> Result<Vec<(String, crate::ir::Tensor)>> {
        Ok(self
            .names
            .iter()
            .cloned()
            .zip(self.state.iter().map(|a| crate::ir::Tensor::F32(a.clone())))
            .collect())
    }

    fn set_values(&mut self, values: &[(String, crate::ir::Tensor)]) -> Result<()> {
        for (name, value) in values {
            let (i, a) = super::find_state(&self.names, name, value)?;
            anyhow::ensure!(
                a.shape() == self.state[i].shape(),
                "{name}: shape {:?}, expected {:?}",
                a.shape(),
                self.state[i].shape()
            );
            self.state[i] = a.clone();
        }
        Ok(())
    }
}

/// As `ort::median_run_time`, in tract on `threads` threads (0: all cores).
pub fn median_run_time(onnx: &[u8], inputs: &[ArrayD<f32>], threads: usize, runs: usize) -> Result<f64> {
    let model = TractModel::for_inputs(onnx, inputs, threads)?;
    super::median_seconds(runs, || {
        model.run(inputs.to_vec())?;
        Ok(())
    })
}
