//! The training compiler: from one network, the graphs that train it, in
//! standard ONNX ops that any runtime executes.
//!
//! * train step: inputs `lr` [B, 3, P/s, P/s], `hr` [B, 3, P, P], `learning_rate`
//!   and `step` (float32 scalars, step counted from 1), every parameter `<p>`,
//!   its Adam moments `<p>.adam_m` and `<p>.adam_v`, every buffer `<b>`;
//!   outputs `loss`, `<p>.new`, `<p>.adam_m.new`, `<p>.adam_v.new`, `<b>.new`.
//! * gradients: inputs `lr`, `hr`, parameters and buffers; outputs `loss`,
//!   `<p>.grad` and `<b>.new`, for users with their own optimiser.
//! * eval: inputs `lr`, `hr`, parameters and buffers; outputs `sr` and `loss`
//!   per image [B]; batch norm on its running statistics.
//!
//! Parameters, moments and buffers are inputs with their current values as
//! defaults (ONNX's overridable initialisers): each file runs as it is, and a
//! training loop feeds every `X.new` back as `X`. Shapes are fixed (batch B and
//! HR patch P): fixed shapes let runtimes plan memory and tract optimise.

mod adam;
mod loss;
pub mod qat;
mod schedule;
pub mod state;

pub use adam::Adam;
pub use loss::{loss, Loss};
pub use schedule::{Decay, Schedule};

use crate::autodiff::{gradients, Spellings};
use crate::ir::{Dim, Fact, Graph, Op, Outlet, Tensor};
use crate::models::{build_network, ModelConfig, Network};
use anyhow::{ensure, Context, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub batch: usize,
    /// High-resolution patch side; the low-resolution one is patch / scale.
    pub patch: usize,
    pub loss: Loss,
    pub adam: Adam,
    /// How each conv's gradients are spelled in ONNX ops (`tune` measures them).
    pub spellings: Spellings,
    /// Quantisation-aware training: what the graphs round as the int8 file will.
    pub qat: Option<qat::FakeQuant>,
}

impl Default for TrainConfig {
    /// The WDSR paper's setting: batch 16 of 96 x 96 HR patches, L1, PyTorch's Adam.
    fn default() -> TrainConfig {
        TrainConfig {
            batch: 16,
            patch: 96,
            loss: Loss::L1,
            adam: Adam::default(),
            spellings: Spellings::default(),
            qat: None,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self, scale: usize) -> Result<()> {
        ensure!(self.batch >= 1, "batch must be at least 1");
        ensure!(
            self.patch >= scale && self.patch.is_multiple_of(scale),
            "patch {} must be a positive multiple of the scale {scale}",
            self.patch
        );
        // The HR batch alone, before any activation: 16 x 96 px is 1.8 MB.
        let hr_bytes = self.batch as f64 * (self.patch as f64).powi(2) * 3.0 * 4.0;
        ensure!(
            hr_bytes <= 1024.0 * 1024.0 * 1024.0,
            "a batch of {} patches of {} px would take {:.1} GB before the network runs: lower --batch or --patch",
            self.batch,
            self.patch,
            hr_bytes / 1e9
        );
        Ok(())
    }

    pub fn metadata(&self) -> Vec<(String, String)> {
        [
            ("batch", self.batch.to_string()),
            ("patch", self.patch.to_string()),
            ("loss", self.loss.name().to_string()),
            ("adam_beta1", self.adam.beta1.to_string()),
            ("adam_beta2", self.adam.beta2.to_string()),
            ("adam_eps", self.adam.eps.to_string()),
            ("weight_decay", self.adam.weight_decay.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

pub struct TrainingGraphs {
    pub train_step: Graph,
    pub gradients: Graph,
    pub eval: Graph,
}

/// Compile the training graphs of a model configuration.
pub fn compile(c: &ModelConfig, t: &TrainConfig) -> Result<TrainingGraphs> {
    t.validate(c.scale)?;
    let lr_side = Dim::Known(t.patch / c.scale);
    let dims = [Dim::Known(t.batch), lr_side.clone(), lr_side];
    let mut train = build_network(c, dims.clone(), true, false)?;
    let mut eval = build_network(c, dims, false, false)?.graph;
    if let Some(q) = &t.qat {
        train = qat::fake_quantize_network(train, q)?;
        eval = qat::fake_quantize(&eval, q)?.0;
    }
    compile_network(train, eval, t)
}

/// Compile the training graphs of any network: `train` in training mode (batch
/// statistics) and `eval` in evaluation mode, both with input `lr`, output `sr`
/// and fixed shapes. Ops without a gradient rule are refused by name.
pub fn compile_network(train: Network, eval: Graph, t: &TrainConfig) -> Result<TrainingGraphs> {
    let (gradients_graph, train_step) = gradient_and_step(train, t)?;
    Ok(TrainingGraphs {
        train_step,
        gradients: gradients_graph,
        eval: eval_graph(eval, t)?,
    })
}

fn with_loss(g: &mut Graph, t: &TrainConfig, per_image: bool) -> Result<(Outlet, Outlet)> {
    let (_, sr) = g
        .outputs
        .iter()
        .find(|(name, _)| name == "sr")
        .cloned()
        .context("the network has no output 'sr'")?;
    let mut hr_shape = g.fact(sr).shape.clone();
    hr_shape[0] = Dim::Known(t.batch);
    let hr = g.input("hr", Fact::f32(hr_shape));
    let l = loss(g, sr, hr, t.loss, per_image)?;
    Ok((sr, l))
}

fn gradient_and_step(net: Network, t: &TrainConfig) -> Result<(Graph, Graph)> {
    let mut g = net.graph;
    let (_, loss) = with_loss(&mut g, t, false)?;
    g.outputs.clear();
    let params: Vec<(String, Outlet)> = (0..g.nodes.len())
        .filter(|&i| matches!(g.nodes[i].op, Op::Param(_)))
        .map(|i| (g.nodes[i].name.clone(), Outlet { node: i, slot: 0 }))
        .collect();
    let outlets: Vec<Outlet> = params.iter().map(|(_, o)| *o).collect();
    let grads = gradients(&mut g, loss, &outlets, &t.spellings).context("Differentiating the loss")?;

    let mut grad_graph = g.clone();
    grad_graph.output("loss", loss);
    for ((name, _), grad) in params.iter().zip(&grads) {
        grad_graph.output(state::grad(name), *grad);
    }
    for (name, updated) in &net.updates {
        grad_graph.output(state::next(name), *updated);
    }
    grad_graph.prune();
    grad_graph.check()?;

    let mut step = g;
    let learning_rate = step.input("learning_rate", Fact::f32(vec![]));
    let step_no = step.input("step", Fact::f32(vec![]));
    let scalars = t.adam.scalars(&mut step, learning_rate, step_no)?;
    step.output("loss", loss);
    let mut outputs = Vec::new();
    for ((name, p), grad) in params.iter().zip(&grads) {
        let Op::Param(value) = &step.node(p.node).op else {
            unreachable!("params are Param nodes")
        };
        let zeros = Tensor::f32(value.shape(), vec![0.0; value.len()]);
        let m = step.wire(state::adam_m(name), Op::Buffer(zeros.clone()), &[])?;
        let v = step.wire(state::adam_v(name), Op::Buffer(zeros), &[])?;
        let [p2, m2, v2] = t.adam.update(&mut step, &scalars, name, *p, *grad, (m, v))?;
        outputs.push((state::next(name), p2));
        outputs.push((state::next(&state::adam_m(name)), m2));
        outputs.push((state::next(&state::adam_v(name)), v2));
    }
    for (name, updated) in &net.updates {
        outputs.push((state::next(name), *updated));
    }
    for (name, o) in outputs {
        step.output(name, o);
    }
    step.prune();
    step.check()?;
    Ok((grad_graph, step))
}

fn eval_graph(mut g: Graph, t: &TrainConfig) -> Result<Graph> {
    let (sr, loss) = with_loss(&mut g, t, true)?;
    g.outputs.clear();
    g.output("sr", sr);
    g.output("loss", loss);
    g.prune();
    g.check()?;
    Ok(g)
}

/// Adam on its own: inputs `learning_rate`, `step`, and per parameter `<p>.grad`, with the
/// state `<p>`, `<p>.adam_m` and `<p>.adam_v` (overridable initialisers, as in the train
/// step); outputs the `.new` of each. Data-parallel training runs it after summing the
/// ranks' gradients, so every rank applies the same update.
pub fn adam_graph(params: &[(String, Tensor)], adam: &Adam) -> Result<Graph> {
    let mut g = Graph::new();
    let learning_rate = g.input("learning_rate", Fact::f32(vec![]));
    let step_no = g.input("step", Fact::f32(vec![]));
    let scalars = adam.scalars(&mut g, learning_rate, step_no)?;
    let mut outputs = Vec::new();
    for (name, value) in params {
        let shape: Vec<Dim> = value.shape().iter().map(|&d| Dim::Known(d)).collect();
        let grad = g.input(state::grad(name), Fact::f32(shape));
        let p = g.wire(name.clone(), Op::Param(value.clone()), &[])?;
        let zeros = Tensor::f32(value.shape(), vec![0.0; value.len()]);
        let m = g.wire(state::adam_m(name), Op::Buffer(zeros.clone()), &[])?;
        let v = g.wire(state::adam_v(name), Op::Buffer(zeros), &[])?;
        let [p2, m2, v2] = adam.update(&mut g, &scalars, name, p, grad, (m, v))?;
        outputs.push((state::next(name), p2));
        outputs.push((state::next(&state::adam_m(name)), m2));
        outputs.push((state::next(&state::adam_v(name)), v2));
    }
    for (name, o) in outputs {
        g.output(name, o);
    }
    g.check()?;
    Ok(g)
}

/// How a training loop threads state through a step graph: the input each
/// `X.new` output feeds at the next step.
pub fn state_pairs(step: &Graph) -> Vec<(String, String)> {
    step.outputs
        .iter()
        .filter_map(|(name, _)| state::updated_by(name).map(|input| (input.to_string(), name.clone())))
        .collect()
}
