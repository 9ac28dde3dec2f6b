//! The graph: nodes in a `Vec` in topological order, id = position, values named
//! by `Outlet { node, slot }`. `wire` infers the new node's output facts, so a
//! shape bug fails at the line of the model that made it.

use super::ops::{Fact, Op};
use super::tensor::Tensor;
use anyhow::{ensure, Context, Result};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Outlet {
    pub node: usize,
    pub slot: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<Outlet>,
    pub outputs: Vec<Fact>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Node ids of the graph's inputs, in order.
    pub inputs: Vec<usize>,
    /// The graph's outputs, each a name and the value it exposes.
    pub outputs: Vec<(String, Outlet)>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Add a node; its output facts are inferred from its inputs.
    pub fn wire(&mut self, name: impl Into<String>, op: Op, inputs: &[Outlet]) -> Result<Outlet> {
        let name = name.into();
        let facts: Vec<&Fact> = inputs.iter().map(|o| self.fact(*o)).collect();
        let outputs = op
            .infer(&facts)
            .with_context(|| format!("Wiring node {name} ({})", op.name()))?;
        self.nodes.push(Node {
            name,
            op,
            inputs: inputs.to_vec(),
            outputs,
        });
        Ok(Outlet {
            node: self.nodes.len() - 1,
            slot: 0,
        })
    }

    pub fn input(&mut self, name: impl Into<String>, fact: Fact) -> Outlet {
        self.nodes.push(Node {
            name: name.into(),
            op: Op::Input,
            inputs: vec![],
            outputs: vec![fact],
        });
        let id = self.nodes.len() - 1;
        self.inputs.push(id);
        Outlet { node: id, slot: 0 }
    }

    pub fn constant(&mut self, name: impl Into<String>, t: Tensor) -> Outlet {
        self.wire(name, Op::Const(t), &[]).expect("a constant always wires")
    }

    pub fn output(&mut self, name: impl Into<String>, value: Outlet) {
        self.outputs.push((name.into(), value));
    }

    pub fn fact(&self, o: Outlet) -> &Fact {
        &self.nodes[o.node].outputs[o.slot]
    }

    pub fn node(&self, id: usize) -> &Node {
        &self.nodes[id]
    }

    /// The parameters of the graph, in the order they were created.
    pub fn params(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.nodes.iter().filter_map(|n| match &n.op {
            Op::Param(t) => Some((n.name.as_str(), t)),
            _ => None,
        })
    }

    /// The graph's buffers (untrained state), in the order they were created.
    pub fn buffers(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.nodes.iter().filter_map(|n| match &n.op {
            Op::Buffer(t) => Some((n.name.as_str(), t)),
            _ => None,
        })
    }

    pub fn param_count(&self) -> usize {
        self.params().map(|(_, t)| t.len()).sum()
    }

    /// The same graph with every parameter and buffer turned into a graph input
    /// (after the existing inputs, in node order), and their current values in
    /// that order: for runtimes that are fed the values at each step.
    pub fn lift_values(&self) -> (Graph, Vec<(String, Tensor)>) {
        let mut g = self.clone();
        let mut values = Vec::new();
        for id in 0..g.nodes.len() {
            if let Op::Param(t) | Op::Buffer(t) = &g.nodes[id].op {
                values.push((g.nodes[id].name.clone(), t.clone()));
                g.nodes[id].op = Op::Input;
                g.inputs.push(id);
            }
        }
        (g, values)
    }

    /// Replace the values of named parameters and buffers; names not in the graph are an error.
    pub fn set_values(&mut self, values: &[(String, Tensor)]) -> Result<()> {
        for (name, t) in values {
            let n = self
                .nodes
                .iter_mut()
                .find(|n| &n.name == name)
                .with_context(|| format!("no parameter named {name}"))?;
            match &mut n.op {
                Op::Param(old) | Op::Buffer(old) => {
                    ensure!(
                        old.shape() == t.shape(),
                        "{name}: shape {:?}, given {:?}",
                        old.shape(),
                        t.shape()
                    );
                    *old = t.clone();
                }
                _ => anyhow::bail!("{name} is not a parameter or buffer"),
            }
        }
        Ok(())
    }

    /// For every outlet, the nodes that read it.
    pub fn consumers(&self) -> HashMap<Outlet, Vec<usize>> {
        let mut map: HashMap<Outlet, Vec<usize>> = HashMap::new();
        for (id, n) in self.nodes.iter().enumerate() {
            for &i in &n.inputs {
                map.entry(i).or_default().push(id);
            }
        }
        map
    }

    /// Op counts, for summaries: `[("Conv", 12), ("Relu", 4), ...]`, constants and params left out.
    pub fn op_histogram(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for n in &self.nodes {
            if matches!(n.op, Op::Input) || n.op.is_value() {
                continue;
            }
            match counts.iter_mut().find(|(name, _)| *name == n.op.name()) {
                Some((_, c)) => *c += 1,
                None => counts.push((n.op.name(), 1)),
            }
        }
        counts
    }

    /// The invariants every pass must keep: inputs come before their users,
    /// names are unique, facts agree with inference.
    pub fn check(&self) -> Result<()> {
        let mut names = HashSet::new();
        for (id, n) in self.nodes.iter().enumerate() {
            ensure!(names.insert(n.name.as_str()), "node name {} is used twice", n.name);
            for i in &n.inputs {
                ensure!(
                    i.node < id,
                    "node {} ({}) reads node {} that comes after it",
                    n.name,
                    n.op.name(),
                    i.node
                );
                ensure!(
                    i.slot < self.nodes[i.node].outputs.len(),
                    "node {} reads a missing slot",
                    n.name
                );
            }
            if !matches!(n.op, Op::Input) {
                let facts: Vec<&Fact> = n.inputs.iter().map(|o| self.fact(*o)).collect();
                let inferred =
                    n.op.infer(&facts)
                        .with_context(|| format!("Checking node {} ({})", n.name, n.op.name()))?;
                ensure!(
                    inferred == n.outputs,
                    "node {}: stored facts differ from inferred ones",
                    n.name
                );
            }
        }
        for &i in &self.inputs {
            ensure!(
                matches!(self.nodes[i].op, Op::Input),
                "graph input {} is not an Input node",
                self.nodes[i].name
            );
        }
        for (name, o) in &self.outputs {
            ensure!(o.node < self.nodes.len(), "output {name} points past the graph");
        }
        Ok(())
    }

    /// Drop every node the outputs do not need (graph inputs are kept) and renumber.
    pub fn prune(&mut self) {
        let mut live = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = self.outputs.iter().map(|(_, o)| o.node).collect();
        stack.extend(&self.inputs);
        while let Some(id) = stack.pop() {
            if !std::mem::replace(&mut live[id], true) {
                stack.extend(self.nodes[id].inputs.iter().map(|o| o.node));
            }
        }
        let mut new_id = vec![usize::MAX; self.nodes.len()];
        let old = std::mem::take(&mut self.nodes);
        for (id, mut n) in old.into_iter().enumerate() {
            if live[id] {
                new_id[id] = self.nodes.len();
                for i in &mut n.inputs {
                    i.node = new_id[i.node];
                }
                self.nodes.push(n);
            }
        }
        for i in &mut self.inputs {
            *i = new_id[*i];
        }
        for (_, o) in &mut self.outputs {
            o.node = new_id[o.node];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{known, Dim};

    fn x(g: &mut Graph) -> Outlet {
        g.input(
            "x",
            Fact::f32(vec![Dim::sym("N"), Dim::Known(3), Dim::sym("H"), Dim::sym("W")]),
        )
    }

    #[test]
    fn shape_errors_name_the_node_that_made_them() {
        let mut g = Graph::new();
        let x = x(&mut g);
        let w = g.constant("w", Tensor::f32(&[8, 4, 3, 3], vec![0.0; 288]));
        let err = g
            .wire("body.0.conv", Op::Conv { pads: [1; 4], group: 1 }, &[x, w])
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("body.0.conv (Conv)") && msg.contains("3 channels"),
            "{msg}"
        );
    }

    #[test]
    fn same_padding_keeps_symbolic_sizes_and_other_padding_is_refused() -> Result<()> {
        let mut g = Graph::new();
        let x = x(&mut g);
        let w = g.constant("w", Tensor::f32(&[8, 3, 3, 3], vec![0.0; 216]));
        let y = g.wire("same", Op::Conv { pads: [1; 4], group: 1 }, &[x, w])?;
        assert_eq!(
            g.fact(y).shape[1..],
            known(&[8])[..1]
                .iter()
                .cloned()
                .chain([Dim::sym("H"), Dim::sym("W")])
                .collect::<Vec<_>>()[..]
        );
        assert!(g.wire("valid", Op::Conv { pads: [0; 4], group: 1 }, &[x, w]).is_err());
        let up = g.wire(
            "up",
            Op::DepthToSpace {
                block: 2,
                mode: crate::ir::ShuffleMode::Crd,
            },
            &[y],
        )?;
        assert_eq!(
            g.fact(up).shape,
            vec![
                Dim::sym("N"),
                Dim::Known(2),
                Dim::Sym("H".into(), 2),
                Dim::Sym("W".into(), 2)
            ]
        );
        Ok(())
    }

    #[test]
    fn prune_drops_dead_nodes_and_keeps_order() -> Result<()> {
        let mut g = Graph::new();
        let x = x(&mut g);
        let c = g.constant("c", Tensor::scalar(2.0));
        let _dead = g.wire("dead", Op::Mul, &[x, c])?;
        let y = g.wire("y", Op::Relu, &[x])?;
        g.output("out", y);
        g.prune();
        g.check()?;
        let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["x", "y"]);
        Ok(())
    }
}
