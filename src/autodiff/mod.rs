//! Reverse-mode differentiation over the IR.
//!
//! The driver owns the walk: which nodes lie between the parameters and the
//! loss, the reverse topological order, summing the gradients of values read
//! more than once, and reducing broadcast gradients back to their input's shape.
//! The rules (`rules.rs`, one arm per op) only say how one op's output gradient
//! becomes its inputs' gradients, in ordinary IR ops.

mod conv;
mod rules;

pub use conv::{input_grad, weight_grad};
pub use conv::{ConvShape, ConvSpelling, InputGrad, Spellings, WeightGrad};

use crate::ir::{show, Dim, Graph, Op, Outlet, Tensor};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;

/// Adds nodes named `{prefix}.{n}` to a graph: every node a rule emits gets a
/// unique name that says which forward node it differentiates.
pub struct Emitter<'g> {
    pub g: &'g mut Graph,
    prefix: String,
    n: usize,
}

impl<'g> Emitter<'g> {
    pub fn new(g: &'g mut Graph, prefix: impl Into<String>) -> Emitter<'g> {
        Emitter {
            g,
            prefix: prefix.into(),
            n: 0,
        }
    }

    fn next_name(&mut self) -> String {
        self.n += 1;
        format!("{}.{}", self.prefix, self.n)
    }

    pub fn op(&mut self, op: Op, inputs: &[Outlet]) -> Result<Outlet> {
        let name = self.next_name();
        self.g.wire(name, op, inputs)
    }

    pub fn scalar(&mut self, v: f32) -> Outlet {
        let name = self.next_name();
        self.g.constant(name, Tensor::scalar(v))
    }

    pub fn shape(&self, o: Outlet) -> Result<Vec<usize>> {
        let s = &self.g.fact(o).shape;
        s.iter().map(Dim::known).collect::<Option<_>>().with_context(|| {
            format!(
                "gradients need fixed shapes; {} is {}",
                self.g.node(o.node).name,
                show(s)
            )
        })
    }
}

/// Gradients of the scalar `loss` with respect to each of `wrt`, added to `g`.
pub fn gradients(g: &mut Graph, loss: Outlet, wrt: &[Outlet], spellings: &Spellings) -> Result<Vec<Outlet>> {
    ensure!(
        g.fact(loss).shape.is_empty(),
        "the loss must be a scalar, not {}",
        show(&g.fact(loss).shape)
    );
    let end = loss.node + 1;
    // Forward: which nodes depend on something we differentiate with respect to.
    let mut needs = vec![false; end];
    for id in 0..end {
        let n = g.node(id);
        needs[id] = wrt.iter().any(|w| w.node == id) || n.inputs.iter().any(|i| needs[i.node]);
    }
    let mut grads: HashMap<Outlet, Outlet> = HashMap::new();
    let one = g.constant(format!("{}.grad_seed", g.node(loss.node).name), Tensor::scalar(1.0));
    grads.insert(loss, one);
    // Backward, in reverse topological order.
    for id in (0..end).rev() {
        let Some(&dy) = grads.get(&Outlet { node: id, slot: 0 }) else {
            continue;
        };
        if !needs[id] || g.node(id).inputs.is_empty() {
            continue;
        }
        let node = g.node(id).clone();
        let input_needs: Vec<bool> = node.inputs.iter().map(|i| needs[i.node]).collect();
        let mut e = Emitter::new(g, format!("grad.{}", node.name));
        let dxs = rules::backward(&mut e, id, dy, &input_needs, spellings)
            .with_context(|| format!("Differentiating node {} ({})", node.name, node.op.name()))?;
        ensure!(
            dxs.len() == node.inputs.len(),
            "{}: the rule gave {} gradients for {} inputs",
            node.name,
            dxs.len(),
            node.inputs.len()
        );
        for ((input, dx), needed) in node.inputs.iter().zip(dxs).zip(input_needs) {
            let Some(dx) = dx.filter(|_| needed) else { continue };
            let dx = unbroadcast(&mut e, dx, *input)?;
            let total = match grads.get(input) {
                Some(&acc) => e.op(Op::Add, &[acc, dx])?,
                None => dx,
            };
            grads.insert(*input, total);
        }
    }
    wrt.iter()
        .map(|w| {
            grads
                .get(w)
                .copied()
                .with_context(|| format!("the loss does not depend on {}", g.node(w.node).name))
        })
        .collect()
}

/// Sum a gradient of a broadcast result back to the shape of the input it flows to.
fn unbroadcast(e: &mut Emitter, dx: Outlet, input: Outlet) -> Result<Outlet> {
    let (have, want) = (e.shape(dx)?, e.shape(input)?);
    if have == want {
        return Ok(dx);
    }
    let lead = have
        .len()
        .checked_sub(want.len())
        .context("a gradient of lower rank than its input")?;
    let axes: Vec<usize> = (0..have.len())
        .filter(|&i| i < lead || (want[i - lead] == 1 && have[i] != 1))
        .collect();
    let summed = e.op(Op::ReduceSum { axes, keepdims: true }, &[dx])?;
    if e.shape(summed)? == want {
        return Ok(summed);
    }
    let shape = want.iter().map(|&d| d as i64).collect();
    let r = e.op(Op::Reshape { shape }, &[summed])?;
    if e.shape(r)? != want {
        bail!("cannot reduce a gradient of {have:?} to {want:?}");
    }
    Ok(r)
}
