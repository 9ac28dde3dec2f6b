//! srgraph's train-step state (`<p>`, `<p>.adam_m`, `<p>.adam_v`) and a training-API
//! checkpoint, each from the other: how a run moves between srgraph's engines and ONNX
//! Runtime's training API.

use super::checkpoint::{self, NamedTensor, TrainingApiCheckpoint};
use crate::compiler::state;
use crate::ir::Tensor;
use anyhow::{bail, Context, Result};

/// srgraph's train-step state after `step` steps as a training-API checkpoint: every
/// parameter `<p>` trainable, and, when the state has Adam's moments `<p>.adam_m` and
/// `<p>.adam_v`, the optimiser group ORT keeps them in (`momentum0`, `momentum1`, and the
/// step count, which ORT's `Optimizer` resumes from, and `learning_rate` as its initial rate).
pub fn checkpoint_of_state(
    values: &[(String, Tensor)],
    step: u64,
    learning_rate: f32,
) -> Result<TrainingApiCheckpoint> {
    let named = |name: &str, t: &Tensor| -> Result<NamedTensor> {
        let data = t.as_f32().with_context(|| format!("{name} is not float32"))?;
        Ok(NamedTensor::new(
            name,
            t.shape().iter().map(|&d| d as i64).collect(),
            data.iter().copied().collect(),
        ))
    };
    let find = |name: &str| values.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let mut trainable = vec![];
    let (mut first, mut second) = (vec![], vec![]);
    for (name, t) in values.iter().filter(|(n, _)| !state::is_adam_moment(n)) {
        trainable.push(named(name, t)?);
        match (find(&state::adam_m(name)), find(&state::adam_v(name))) {
            (Some(m), Some(v)) => {
                first.push(named(name, m)?);
                second.push(named(name, v)?);
            }
            (None, None) => {}
            _ => bail!("{name} has only one of its two Adam moments"),
        }
    }
    let optimizer = match first.len() {
        0 => None,
        n if n == trainable.len() => Some(checkpoint::OptimizerState {
            step: step as i64,
            first_moments: first,
            second_moments: second,
            ..checkpoint::OptimizerState::zeros_for(&[], learning_rate)
        }),
        _ => bail!(
            "some values have Adam moments and some do not: a training-API checkpoint holds the moments of every \
             trainable parameter (batch norm's running statistics cannot be carried)"
        ),
    };
    Ok(TrainingApiCheckpoint {
        trainable,
        frozen: vec![],
        optimizer,
        properties: vec![],
    })
}

/// A training-API checkpoint as srgraph's train-step state (`<p>`, `<p>.adam_m`,
/// `<p>.adam_v`) and the number of steps taken; moments are zero and the step 0 when the
/// checkpoint has no optimiser state.
pub fn state_of_checkpoint(ckpt: &TrainingApiCheckpoint) -> Result<(Vec<(String, Tensor)>, u64)> {
    let tensor = |t: &NamedTensor| -> Result<Tensor> {
        let shape: Vec<usize> = t.dims.iter().map(|&d| usize::try_from(d)).collect::<Result<_, _>>()?;
        Ok(Tensor::f32(&shape, t.data.clone()))
    };
    let moment = |moments: Option<&Vec<NamedTensor>>, p: &NamedTensor| -> Result<Tensor> {
        match moments {
            None => tensor(&p.zeros_like(p.name.clone())),
            Some(m) => tensor(
                m.iter()
                    .find(|m| m.name == p.name)
                    .with_context(|| format!("the checkpoint's optimiser state has no moments for {}", p.name))?,
            ),
        }
    };
    let opt = ckpt.optimizer.as_ref();
    let mut values = vec![];
    for p in &ckpt.trainable {
        values.push((p.name.clone(), tensor(p)?));
        values.push((state::adam_m(&p.name), moment(opt.map(|o| &o.first_moments), p)?));
        values.push((state::adam_v(&p.name), moment(opt.map(|o| &o.second_moments), p)?));
    }
    let step = opt.map_or(0, |o| o.step);
    Ok((
        values,
        u64::try_from(step).context("the checkpoint's step count is negative")?,
    ))
}
