//! The folding passes. Each keeps the graph's order (nodes only ever read
//! earlier nodes) and leaves dead nodes for `Graph::prune`.

use crate::ir::eval::{eval, is_foldable};
use crate::ir::{Graph, Op, Outlet, Tensor};
use anyhow::{Context, Result};
use ndarray::ArrayD;
use std::collections::HashMap;

fn const_of(g: &Graph, o: Outlet) -> Option<&Tensor> {
    match &g.node(o.node).op {
        Op::Const(t) => Some(t),
        _ => None,
    }
}

/// Evaluate every node whose inputs are all constants.
pub fn fold_constants(g: &mut Graph) -> Result<()> {
    for id in 0..g.nodes.len() {
        let n = &g.nodes[id];
        if !is_foldable(&n.op) || n.inputs.is_empty() {
            continue;
        }
        let Some(inputs) = n.inputs.iter().map(|&o| const_of(g, o)).collect::<Option<Vec<_>>>() else {
            continue;
        };
        let value = eval(&n.op, &inputs).with_context(|| format!("Folding node {}", n.name))?;
        let n = &mut g.nodes[id];
        n.op = Op::Const(value);
        n.inputs.clear();
    }
    Ok(())
}

/// `Conv(x * c, W, b)` = `Conv(x, W * c, b)` for a scalar c: scaling commutes
/// with zero padding, so this is exact. Folds `x / c` and `x * c` into every
/// conv that reads it, when all its readers are convs with constant weights.
pub fn fold_input_scale(g: &mut Graph) {
    let readers = g.consumers();
    for id in 0..g.nodes.len() {
        let n = &g.nodes[id];
        let c = match (
            &n.op,
            n.inputs
                .get(1)
                .and_then(|&o| const_of(g, o))
                .and_then(Tensor::as_f32_scalar),
        ) {
            (Op::Div, Some(c)) => 1.0 / c,
            (Op::Mul, Some(c)) => c,
            _ => continue,
        };
        let x = n.inputs[0];
        let me = Outlet { node: id, slot: 0 };
        let users = readers.get(&me).cloned().unwrap_or_default();
        let weights: Option<Vec<usize>> = users
            .iter()
            .map(|&u| {
                let un = g.node(u);
                let w = *un.inputs.get(1)?;
                let ok = matches!(un.op, Op::Conv { .. })
                    && un.inputs[0] == me
                    && !un.inputs[1..].contains(&me)
                    && const_of(g, w).is_some()
                    && readers[&w].len() == 1;
                ok.then_some(w.node)
            })
            .collect();
        let Some(weights) = weights.filter(|w| !w.is_empty()) else {
            continue;
        };
        if g.outputs.iter().any(|(_, o)| *o == me) {
            continue;
        }
        for (&u, &w) in users.iter().zip(&weights) {
            if let Op::Const(Tensor::F32(a)) = &mut g.nodes[w].op {
                a.mapv_inplace(|v| v * c);
            }
            g.nodes[u].inputs[0] = x;
        }
    }
}

/// A pending change: a constant node's new value.
type Edits = Vec<(usize, Tensor)>;

/// `y * c + m` at a graph output, with c a scalar and m one value per channel,
/// pushed back into the convs that make y: through Add (scale both sides, bias
/// one), through DepthToSpace (each channel's bias to the sub-pixel channels that
/// feed it), into Conv's weights and bias. Exact up to float rounding.
pub fn fold_output_affine(g: &mut Graph) {
    let readers = g.consumers();
    for k in 0..g.outputs.len() {
        let Some((y, c, m)) = output_affine(g, g.outputs[k].1) else {
            continue;
        };
        let mut edits = Edits::new();
        if plan_absorb(g, &readers, y, c, Some(m), &mut edits) {
            for (id, t) in edits {
                g.nodes[id].op = Op::Const(t);
            }
            g.outputs[k].1 = y;
        }
    }
}

/// Match `Add(Mul(y, c), m)` with a scalar c and m of shape [1, C, 1, 1].
fn output_affine(g: &Graph, out: Outlet) -> Option<(Outlet, f32, Vec<f32>)> {
    let add = g.node(out.node);
    let (Op::Add, [mul, m]) = (&add.op, add.inputs.as_slice()) else {
        return None;
    };
    let m = const_of(g, *m)?.as_f32()?;
    (m.ndim() == 4 && m.shape()[0] == 1 && m.shape()[2] == 1 && m.shape()[3] == 1).then_some(())?;
    let mul_n = g.node(mul.node);
    let (Op::Mul, [y, c]) = (&mul_n.op, mul_n.inputs.as_slice()) else {
        return None;
    };
    let c = const_of(g, *c)?.as_f32_scalar()?;
    Some((*y, c, m.iter().copied().collect()))
}

/// Plan folding `v * scale + bias[channel]` into the node producing `v`.
fn plan_absorb(
    g: &Graph,
    readers: &HashMap<Outlet, Vec<usize>>,
    v: Outlet,
    scale: f32,
    bias: Option<Vec<f32>>,
    edits: &mut Edits,
) -> bool {
    if readers.get(&v).map_or(0, Vec::len) != 1 || g.outputs.iter().any(|(_, o)| *o == v) {
        return false;
    }
    let n = g.node(v.node);
    let sole_const = |o: Outlet| {
        const_of(g, o)
            .and_then(Tensor::as_f32)
            .filter(|_| readers[&o].len() == 1)
    };
    match &n.op {
        Op::Conv { .. } => {
            let (Some(w), Some(b)) = (sole_const(n.inputs[1]), n.inputs.get(2).and_then(|&b| sole_const(b))) else {
                return false;
            };
            let mut b: ArrayD<f32> = b.mapv(|x| x * scale);
            if let Some(bias) = &bias {
                if bias.len() != b.len() {
                    return false;
                }
                b.iter_mut().zip(bias).for_each(|(x, m)| *x += m);
            }
            edits.push((n.inputs[1].node, Tensor::F32(w.mapv(|x| x * scale))));
            edits.push((n.inputs[2].node, Tensor::F32(b)));
            true
        }
        Op::Add => {
            plan_absorb(g, readers, n.inputs[0], scale, bias, edits)
                && plan_absorb(g, readers, n.inputs[1], scale, None, edits)
        }
        Op::DepthToSpace { block: s, mode } => {
            let pre = match &bias {
                None => None,
                Some(bias) => {
                    let cout = bias.len();
                    let mut pre = vec![0.0; cout * s * s];
                    for (c, &m) in bias.iter().enumerate() {
                        for k in 0..s * s {
                            pre[mode.source_channel(c, k, cout, *s)] = m;
                        }
                    }
                    Some(pre)
                }
            };
            plan_absorb(g, readers, n.inputs[0], scale, pre, edits)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Dim, Fact, ShuffleMode};

    /// y = DepthToSpace(Conv(x / 2, W, b)) * 3 + m: both affine ends fold into
    /// W and b, exactly as computed here by hand.
    #[test]
    fn scale_and_channel_bias_fold_into_the_conv() -> Result<()> {
        for mode in [ShuffleMode::Crd, ShuffleMode::Dcr] {
            let mut g = Graph::new();
            let x = g.input(
                "x",
                Fact::f32(vec![Dim::Known(1), Dim::Known(1), Dim::Known(2), Dim::Known(2)]),
            );
            let two = g.constant("two", Tensor::scalar(2.0));
            let half = g.wire("half", Op::Div, &[x, two])?;
            let w = g.constant("w", Tensor::f32(&[4, 1, 1, 1], vec![1.0, 2.0, 3.0, 4.0]));
            let b = g.constant("b", Tensor::f32(&[4], vec![0.5; 4]));
            let y = g.wire("conv", Op::Conv { pads: [0; 4], group: 1 }, &[half, w, b])?;
            let y = g.wire("shuffle", Op::DepthToSpace { block: 2, mode }, &[y])?;
            let three = g.constant("three", Tensor::scalar(3.0));
            let y = g.wire("mul", Op::Mul, &[y, three])?;
            let m = g.constant("m", Tensor::f32(&[1, 1, 1, 1], vec![10.0]));
            let y = g.wire("add", Op::Add, &[y, m])?;
            g.output("y", y);
            fold_input_scale(&mut g);
            fold_output_affine(&mut g);
            g.prune();
            g.check()?;
            let hist = g.op_histogram();
            assert_eq!(hist, [("Conv", 1), ("DepthToSpace", 1)], "{mode:?}");
            let conv = g.nodes.iter().find(|n| n.name == "conv").unwrap();
            let value = |o: Outlet| {
                const_of(&g, o)
                    .unwrap()
                    .as_f32()
                    .unwrap()
                    .iter()
                    .copied()
                    .collect::<Vec<_>>()
            };
            assert_eq!(value(conv.inputs[1]), [1.5, 3.0, 4.5, 6.0], "W * 3 / 2");
            assert_eq!(value(conv.inputs[2]), [11.5; 4], "b * 3 + 10");
        }
        Ok(())
    }

    #[test]
    fn a_scale_with_a_non_conv_reader_stays() -> Result<()> {
        let mut g = Graph::new();
        let x = g.input(
            "x",
            Fact::f32(vec![Dim::Known(1), Dim::Known(1), Dim::Known(2), Dim::Known(2)]),
        );
        let two = g.constant("two", Tensor::scalar(2.0));
        let half = g.wire("half", Op::Div, &[x, two])?;
        let w = g.constant("w", Tensor::f32(&[1, 1, 1, 1], vec![1.0]));
        let y = g.wire("conv", Op::Conv { pads: [0; 4], group: 1 }, &[half, w])?;
        let r = g.wire("relu", Op::Relu, &[half])?;
        let s = g.wire("sum", Op::Add, &[y, r])?;
        g.output("y", s);
        let before = g.clone();
        fold_input_scale(&mut g);
        assert_eq!(g, before);
        Ok(())
    }
}
