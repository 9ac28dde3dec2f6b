//! The train step split at the gradients, for data-parallel training: each rank runs the
//! gradients graph on its share of the batch, the ranks sum one flat buffer (the
//! gradients, the batch-norm statistics, the loss and a stop request), and each runs
//! the same Adam graph on the mean gradient. Gradients of a mean loss over equal shares
//! average to the gradient over the whole batch, so N ranks with `--batch B` step as one
//! process with `--batch B` does, up to the order of floating-point sums.
//!
//! The state (parameters, Adam moments, buffers) has the train step's names, so a
//! checkpoint moves freely between one process and N.

use super::Group;
use crate::compiler::{adam_graph, state, Adam};
use crate::ir::{Graph, Tensor};
use crate::onnx::Model;
use crate::runtime::ort::{training_session, Device};
use crate::runtime::Trainer;
use anyhow::{ensure, Context, Result};
use ndarray::{ArrayD, IxDyn};
use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor as OrtTensor, TensorRef};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct DataParallelTrainer<'a> {
    group: Box<dyn Group>,
    gradients: Session,
    adam: Session,
    /// Parameters, in the flat buffer's order.
    params: Vec<String>,
    /// What the forward pass updates (batch norm's running statistics): averaged over ranks.
    buffers: Vec<String>,
    /// Every state tensor: parameters, their Adam moments, buffers.
    state: Vec<(String, ArrayD<f32>)>,
    index: HashMap<String, usize>,
    flat: Vec<f32>,
    /// This rank's Ctrl-C / SIGTERM flag; the group stops together, at the step after any rank asks.
    stop: &'a AtomicBool,
    agreed_stop: bool,
}

fn bytes(g: Graph, name: &str) -> Result<Vec<u8>> {
    Model::new(g, vec![]).to_bytes(name)
}

impl<'a> DataParallelTrainer<'a> {
    /// `gradients`: the compiler's gradients graph for one rank's share of the batch.
    pub fn new(
        gradients: &Graph,
        adam: &Adam,
        device: Device,
        threads: usize,
        group: Box<dyn Group>,
        stop: &'a AtomicBool,
    ) -> Result<DataParallelTrainer<'a>> {
        let (lifted, values) = gradients.lift_values();
        let outputs: Vec<&str> = gradients.outputs.iter().map(|(n, _)| n.as_str()).collect();
        let has = |output: String| outputs.contains(&output.as_str());
        let params: Vec<(String, Tensor)> = values.iter().filter(|(n, _)| has(state::grad(n))).cloned().collect();
        let buffers: Vec<String> = values
            .iter()
            .filter(|(n, _)| has(state::next(n)))
            .map(|(n, _)| n.clone())
            .collect();
        let (adam_lifted, adam_values) = adam_graph(&params, adam)?.lift_values();
        let mut state: Vec<(String, ArrayD<f32>)> = Vec::new();
        for (name, t) in adam_values
            .iter()
            .chain(values.iter().filter(|(n, _)| buffers.contains(n)))
        {
            let a = t.as_f32().with_context(|| format!("{name}: state is float32"))?.clone();
            state.push((name.clone(), a));
        }
        let index = state.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        Ok(DataParallelTrainer {
            gradients: training_session(&bytes(lifted, "gradients")?, device, threads)?.0,
            adam: training_session(&bytes(adam_lifted, "adam")?, device, threads)?.0,
            params: params.into_iter().map(|(n, _)| n).collect(),
            buffers,
            state,
            index,
            flat: Vec::new(),
            group,
            stop,
            agreed_stop: false,
        })
    }
}

impl Trainer for DataParallelTrainer<'_> {
    fn step(&mut self, lr: ArrayD<f32>, hr: ArrayD<f32>, learning_rate: f32, step: u64) -> Result<f32> {
        let DataParallelTrainer {
            group,
            gradients,
            adam,
            params,
            buffers,
            state,
            index,
            flat,
            stop,
            agreed_stop,
        } = self;
        let get = |name: &str| &state[index[name]].1;

        // This rank's gradients.
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = vec![
            ("lr".into(), OrtTensor::from_array(lr)?.into()),
            ("hr".into(), OrtTensor::from_array(hr)?.into()),
        ];
        for name in params.iter().chain(buffers.iter()) {
            inputs.push((name.clone(), TensorRef::from_array_view(get(name).view())?.into()));
        }
        let out = gradients.run(inputs)?;
        flat.clear();
        for p in params.iter() {
            flat.extend(out[state::grad(p).as_str()].try_extract_array::<f32>()?.iter());
        }
        for b in buffers.iter() {
            flat.extend(out[state::next(b).as_str()].try_extract_array::<f32>()?.iter());
        }
        flat.push(out["loss"].try_extract_scalar::<f32>()?);
        drop(out);
        flat.push(if stop.load(Ordering::Relaxed) { 1.0 } else { 0.0 });

        // One allreduce for everything: sums, then means.
        group.sum(flat)?;
        *agreed_stop = flat.pop().unwrap_or(0.0) > 0.0;
        let n = group.size() as f32;
        flat.iter_mut().for_each(|v| *v /= n);
        let loss = flat.pop().unwrap_or(f32::NAN);

        // The same Adam update on every rank.
        let mut at = 0;
        let mut grads = Vec::with_capacity(params.len());
        for p in params.iter() {
            let shape = get(p).shape().to_vec();
            let len: usize = shape.iter().product();
            grads.push(ArrayD::from_shape_vec(IxDyn(&shape), flat[at..at + len].to_vec())?);
            at += len;
        }
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = vec![
            (
                "learning_rate".into(),
                OrtTensor::from_array(ArrayD::from_elem(IxDyn(&[]), learning_rate))?.into(),
            ),
            (
                "step".into(),
                OrtTensor::from_array(ArrayD::from_elem(IxDyn(&[]), step as f32))?.into(),
            ),
        ];
        let moments = |p: &str| [p.to_string(), state::adam_m(p), state::adam_v(p)];
        for (p, g) in params.iter().zip(&grads) {
            inputs.push((state::grad(p), TensorRef::from_array_view(g.view())?.into()));
            for name in moments(p) {
                let value = TensorRef::from_array_view(get(&name).view())?;
                inputs.push((name, value.into()));
            }
        }
        let out = adam.run(inputs)?;
        let mut updated = Vec::new();
        for p in params.iter() {
            for name in moments(p) {
                let v = out[state::next(&name).as_str()].try_extract_array::<f32>()?.to_owned();
                updated.push((index[&name], v));
            }
        }
        drop(out);
        for (i, v) in updated {
            state[i].1 = v;
        }
        for b in buffers.iter() {
            let i = index[b];
            let shape = state[i].1.shape().to_vec();
            let len = state[i].1.len();
            state[i].1 = ArrayD::from_shape_vec(IxDyn(&shape), flat[at..at + len].to_vec())?;
            at += len;
        }
        ensure!(
            at == flat.len(),
            "the flat buffer holds {} values, {at} were read",
            flat.len()
        );
        Ok(loss)
    }

    fn values(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(self
            .state
            .iter()
            .map(|(n, a)| (n.clone(), Tensor::F32(a.clone())))
            .collect())
    }

    fn set_values(&mut self, values: &[(String, Tensor)]) -> Result<()> {
        for (name, value) in values {
            let i = *self
                .index
                .get(name)
                .with_context(|| format!("the step has no state named {name}"))?;
            let a = value.as_f32().with_context(|| format!("{name}: state is float32"))?;
            ensure!(
                a.shape() == self.state[i].1.shape(),
                "{name}: shape {:?}, the step's {:?}",
                a.shape(),
                self.state[i].1.shape()
            );
            self.state[i].1 = a.as_standard_layout().into_owned();
        }
        Ok(())
    }

    fn stop_agreed(&self, _local: bool) -> bool {
        self.agreed_stop
    }
}
