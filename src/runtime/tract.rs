//! tract: loads an ONNX file and runs it, optimised for the concrete input
//! shapes it will see (about 4x faster than keeping H and W symbolic).

use anyhow::{Context, Result};
use ndarray::ArrayD;
use tract_onnx::prelude::*;

pub struct TractModel {
    plan: std::sync::Arc<TypedSimplePlan>,
}

impl TractModel {
    /// Prepare `onnx` (the bytes of a `.onnx` file) for f32 inputs of these shapes.
    pub fn new(onnx: &[u8], input_shapes: &[&[usize]]) -> Result<TractModel> {
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .context("tract could not load the ONNX file")?;
        for (i, shape) in input_shapes.iter().enumerate() {
            model = model.with_input_fact(i, f32::fact(shape.to_vec()).into())?;
        }
        let plan = model
            .into_optimized()
            .context("tract could not optimise the graph")?
            .into_runnable()
            .context("tract could not plan the graph")?;
        Ok(TractModel { plan })
    }

    pub fn run(&self, inputs: Vec<ArrayD<f32>>) -> Result<Vec<ArrayD<f32>>> {
        let inputs: TVec<TValue> = inputs.into_iter().map(|a| Tensor::from(a).into()).collect();
        let outputs = self.plan.run(inputs).context("tract failed to run the graph")?;
        outputs
            .iter()
            .map(|v| Ok(v.to_plain_array_view::<f32>()?.to_owned()))
            .collect()
    }
}

/// Load and run once: for one-off checks.
pub fn run_once(onnx: &[u8], inputs: Vec<ArrayD<f32>>) -> Result<Vec<ArrayD<f32>>> {
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|a| a.shape().to_vec()).collect();
    let shape_refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
    TractModel::new(onnx, &shape_refs)?.run(inputs)
}
