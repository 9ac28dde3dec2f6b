//! Inference export: the training-form graph turned into the plain graph any
//! runtime loads. Parameters become constants, constant subgraphs (weight norm's
//! g * v / ||v||) fold into plain conv weights, and the mean shift's scales and
//! output bias fold into the convs next to them. What cannot fold exactly stays:
//! the input's mean subtraction sits before zero-padded convolutions, whose
//! borders would change if the mean moved into their biases.

mod fold;

pub use fold::{fold_constants, fold_input_scale, fold_output_affine};

use crate::ir::{Graph, Op};
use anyhow::{Context, Result};

/// The folded inference graph of a training-form graph.
pub fn inference_graph(training_form: &Graph) -> Result<Graph> {
    let mut g = training_form.clone();
    for n in &mut g.nodes {
        if let Op::Param(t) = &n.op {
            n.op = Op::Const(t.clone());
        }
    }
    fold_constants(&mut g).context("Folding constants")?;
    fold_input_scale(&mut g);
    fold_output_affine(&mut g);
    g.prune();
    g.check().context("Checking the folded graph")?;
    Ok(g)
}
