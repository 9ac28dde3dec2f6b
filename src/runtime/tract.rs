//! tract: loads an ONNX file and runs it, optimised for the concrete input
//! shapes it will see (about 4x faster than keeping H and W symbolic).

use super::guarded;
use crate::compiler::state;
use anyhow::{Context, Result};
use ndarray::ArrayD;
use tract_onnx::prelude::*;

pub struct TractModel {
    plan: std::sync::Arc<TypedSimplePlan>,
}

impl TractModel {
    /// Prepare `onnx` (the bytes of a `.onnx` file) for f32 inputs of these shapes.
    pub fn new(onnx: &[u8], input_shapes: &[&[usize]]) -> Result<TractModel> {
        Self::planned(
            onnx,
            input_shapes.iter().map(|s| f32::fact(s.to_vec()).into()).collect(),
        )
    }

    /// As `new`, for the shapes of these inputs.
    pub fn for_inputs(onnx: &[u8], inputs: &[ArrayD<f32>]) -> Result<TractModel> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|a| a.shape()).collect();
        TractModel::new(onnx, &shapes)
    }

    /// As `new`, for a double-precision model (`Model::to_bytes_f64`).
    pub fn new_f64(onnx: &[u8], input_shapes: &[&[usize]]) -> Result<TractModel> {
        Self::planned(
            onnx,
            input_shapes.iter().map(|s| f64::fact(s.to_vec()).into()).collect(),
        )
    }

    fn planned(onnx: &[u8], inputs: Vec<InferenceFact>) -> Result<TractModel> {
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
                .into_runnable()
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

/// Load and run once: for one-off checks.
pub fn run_once(onnx: &[u8], inputs: Vec<ArrayD<f32>>) -> Result<Vec<ArrayD<f32>>> {
    TractModel::for_inputs(onnx, &inputs)?.run(inputs)
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
    pub fn new(step: &crate::ir::Graph) -> Result<TractTrainer> {
        let (lifted, values) = step.lift_values();
        let data_shapes: Vec<Vec<usize>> = step
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
            data_shapes.len() == 4,
            "a train step takes lr, hr, learning_rate and step before its state"
        );
        let mut shapes = data_shapes;
        shapes.extend(values.iter().map(|(_, t)| t.shape().to_vec()));
        let refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        let bytes = crate::onnx::Model::new(lifted.clone(), vec![]).to_bytes("train_step")?;
        let model = TractModel::new(&bytes, &refs)?;
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

/// As `ort::median_run_time`, in tract.
pub fn median_run_time(onnx: &[u8], inputs: &[ArrayD<f32>], runs: usize) -> Result<f64> {
    let model = TractModel::for_inputs(onnx, inputs)?;
    super::median_seconds(runs, || {
        model.run(inputs.to_vec())?;
        Ok(())
    })
}
