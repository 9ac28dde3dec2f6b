//! Activation statistics: how much passes each ReLU of a network on one picture.
//!
//! WDSR (Yu et al. 2018) argues that what limits a residual block is the information
//! its ReLU lets through: widening the features before the ReLU lets more pass, and
//! group or depthwise convolutions make activations "decay". These numbers let a
//! user check that on a trained model: for every ReLU, the share of its outputs that
//! are exactly zero, their mean, and the channels that are zero everywhere ("dead").
//!
//! The graph itself reduces each ReLU's output to two numbers per channel (its sum and
//! how many of its values are not zero), so a picture costs the memory of one ordinary
//! run, not that of every activation held at once.

use crate::data::dataset::to_nchw;
use crate::data::luma::luma_nchw;
use crate::ir::{Dim, Graph, Op, Outlet};
use crate::onnx::Model;
use crate::runtime::{self, Runtime};
use anyhow::{bail, ensure, Context, Result};
use ndarray::{s, ArrayD, ArrayView3};
use serde::Serialize;
use std::fmt;

/// Where a ReLU sits: residual block N of the body (names `body.N.…`), or a part
/// outside the body, named by the first segment of its name ("head", "tail").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Block {
    Body(usize),
    Outside(String),
}

impl Block {
    /// The block of the node named `relu`: blocks may hold several ReLUs
    /// (`body.3.body.1` and `body.3.body.4` are both block 3).
    pub fn of(relu: &str) -> Block {
        let mut parts = relu.split('.');
        let first = parts.next().unwrap_or_default();
        match (first, parts.next().map(str::parse::<usize>)) {
            ("body", Some(Ok(n))) => Block::Body(n),
            _ => Block::Outside(first.to_string()),
        }
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Block::Body(n) => write!(f, "body.{n}"),
            Block::Outside(part) => f.write_str(part),
        }
    }
}

/// One ReLU's outputs on one picture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReluStats {
    /// The ReLU node's name in the graph.
    pub name: String,
    pub block: Block,
    pub channels: usize,
    /// Share of its outputs (all channels and pixels) that are exactly zero, in [0, 1].
    pub zero_share: f64,
    /// Mean of its outputs: their mean magnitude, as a ReLU's outputs are never negative.
    pub mean: f64,
    /// Channels whose output is zero at every pixel of the picture.
    pub dead_channels: usize,
}

/// A residual block's ReLUs together (or a part outside the body's).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockStats {
    pub block: Block,
    /// Its ReLUs' names, in graph order.
    pub relus: Vec<String>,
    /// Channels of all its ReLUs.
    pub channels: usize,
    /// Share of all its ReLUs' outputs that are exactly zero.
    pub zero_share: f64,
    /// Mean of all its ReLUs' outputs.
    pub mean: f64,
    pub dead_channels: usize,
}

impl BlockStats {
    /// Share of its channels that are dead on the picture, in [0, 1].
    pub fn dead_share(&self) -> f64 {
        self.dead_channels as f64 / self.channels.max(1) as f64
    }
}

/// The statistics of every ReLU of `model_bytes` (an srgraph `.onnx`; `name` names it in
/// messages) run once on `lr`, an RGB picture (HWC values, 8- or 16-bit) that is the
/// network's input, whole (a single-channel network's, its luma). `threads` is for ONNX Runtime (0: all cores).
pub fn activation_stats<P: crate::data::sample::Sample>(
    model_bytes: &[u8],
    name: &str,
    lr: ArrayView3<P>,
    runtime: Runtime,
    threads: usize,
) -> Result<Vec<ReluStats>> {
    let (h, w, c) = lr.dim();
    ensure!(c == 3, "expected an RGB picture, got {c} channels");
    ensure!(h > 0 && w > 0, "the picture is empty");
    let model = Model::from_bytes(model_bytes).with_context(|| format!("{name} is not a model srgraph can read"))?;
    ensure!(
        model.made_by_srgraph(),
        "{name} was not made by srgraph (its producer is '{}'): activation statistics find the residual blocks by \
         the names srgraph gives its nodes; build, train or import the network with srgraph",
        model.producer.0
    );
    let (graph, relus) = channel_sums(&model.graph).with_context(|| format!("{name}: preparing its ReLUs"))?;
    ensure!(
        !relus.is_empty(),
        "{name} has no ReLU: activation statistics are for networks with ReLUs (EDSR, WDSR-A, WDSR-B)"
    );
    let grey = graph
        .inputs
        .first()
        .is_some_and(|&id| graph.nodes[id].outputs[0].shape.get(1) == Some(&Dim::Known(1)));
    let bytes = Model::new(graph, vec![]).to_bytes("activations")?;
    let input = if grey {
        luma_nchw(&lr.to_owned())
    } else {
        to_nchw(&lr.to_owned())
    }
    .into_dyn();
    let outputs = runtime::run_once(runtime, &bytes, vec![input], threads)
        .with_context(|| format!("running {name} on a {w}x{h} picture"))?;
    ensure!(
        outputs.len() == 2 * relus.len(),
        "{name}: the runtime gave {} outputs for {} ReLUs",
        outputs.len(),
        relus.len()
    );
    relus
        .into_iter()
        .zip(outputs.chunks_exact(2))
        .map(|(relu, sums)| relu_stats(relu, &sums[0], &sums[1], h * w, name))
        .collect()
}

/// The graph cut after its last ReLU, whose outputs are, for each ReLU in graph
/// order, its per-channel sum and its per-channel count of values that are not zero
/// (the sum of their signs: a ReLU's values are 0 or positive). The ReLUs' names too.
fn channel_sums(graph: &Graph) -> Result<(Graph, Vec<String>)> {
    let mut g = graph.clone();
    g.outputs.clear();
    let relus: Vec<usize> = (0..g.nodes.len()).filter(|&id| g.nodes[id].op == Op::Relu).collect();
    let per_channel = || Op::ReduceSum {
        axes: vec![0, 2, 3],
        keepdims: false,
    };
    let mut names = vec![];
    for id in relus {
        let relu = g.nodes[id].name.clone();
        let y = Outlet { node: id, slot: 0 };
        ensure!(
            g.fact(y).shape.len() == 4,
            "ReLU {relu} gives a tensor of rank {}, not [N, C, H, W] features",
            g.fact(y).shape.len()
        );
        let sum = g.wire(format!("{relu}.channel_sum"), per_channel(), &[y])?;
        let sign = g.wire(format!("{relu}.sign"), Op::Sign, &[y])?;
        let nonzero = g.wire(format!("{relu}.channel_nonzero"), per_channel(), &[sign])?;
        g.output(format!("{relu}.channel_sum"), sum);
        g.output(format!("{relu}.channel_nonzero"), nonzero);
        names.push(relu);
    }
    g.prune();
    Ok((g, names))
}

/// One ReLU's numbers from its per-channel sums over `pixels` pixels.
fn relu_stats(name: String, sum: &ArrayD<f32>, nonzero: &ArrayD<f32>, pixels: usize, model: &str) -> Result<ReluStats> {
    let channels = sum.len();
    ensure!(
        channels > 0 && nonzero.len() == channels,
        "{model}: ReLU {name} gave {channels} channel sums and {} counts",
        nonzero.len()
    );
    if sum.iter().chain(nonzero).any(|v| !v.is_finite()) {
        bail!(
            "{model}: ReLU {name} gave NaN or infinite values: its weights are damaged (NaN or infinity in them) or \
             overflow; retrain it, or export it again from a good checkpoint"
        );
    }
    let values = (channels * pixels) as f64;
    Ok(ReluStats {
        block: Block::of(&name),
        name,
        channels,
        zero_share: 1.0 - nonzero.iter().map(|&n| n as f64).sum::<f64>() / values,
        mean: sum.iter().map(|&v| v as f64).sum::<f64>() / values,
        dead_channels: nonzero.iter().filter(|&&n| n == 0.0).count(),
    })
}

/// The ReLUs grouped by block, blocks in the order their first ReLU comes in the graph.
/// Shares and means are over all the block's outputs (every ReLU of a picture has as
/// many pixels, so a ReLU counts by its channels).
pub fn block_stats(relus: &[ReluStats]) -> Vec<BlockStats> {
    let mut blocks: Vec<BlockStats> = vec![];
    for r in relus {
        let at = match blocks.iter().position(|b| b.block == r.block) {
            Some(at) => at,
            None => {
                blocks.push(BlockStats {
                    block: r.block.clone(),
                    relus: vec![],
                    channels: 0,
                    zero_share: 0.0,
                    mean: 0.0,
                    dead_channels: 0,
                });
                blocks.len() - 1
            }
        };
        let b = &mut blocks[at];
        let (before, added) = (b.channels as f64, r.channels as f64);
        let weighted = |old: f64, new: f64| (old * before + new * added) / (before + added);
        b.zero_share = weighted(b.zero_share, r.zero_share);
        b.mean = weighted(b.mean, r.mean);
        b.channels += r.channels;
        b.dead_channels += r.dead_channels;
        b.relus.push(r.name.clone());
    }
    blocks
}

/// The mean over blocks of their zero share: one number for a network on a picture.
pub fn mean_zero_share(blocks: &[BlockStats]) -> f64 {
    blocks.iter().map(|b| b.zero_share).sum::<f64>() / blocks.len().max(1) as f64
}

/// The centre `side` x `side` of a picture (the whole of any side that is shorter):
/// what `srgraph inspect --activations` runs, so that a large photo takes the time
/// and memory of a small one.
pub fn centre<P>(picture: ArrayView3<P>, side: usize) -> ArrayView3<P> {
    let (h, w, _) = picture.dim();
    let (ch, cw) = (h.min(side), w.min(side));
    let (top, left) = ((h - ch) / 2, (w - cw) / 2);
    picture.slice_move(s![top..top + ch, left..left + cw, ..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Dim, Fact, Tensor};
    use ndarray::Array3;

    #[test]
    fn blocks_are_read_from_names() {
        assert_eq!(Block::of("body.3.body.1"), Block::Body(3));
        assert_eq!(Block::of("body.12.body.4"), Block::Body(12));
        assert_eq!(Block::of("head.relu"), Block::Outside("head".into()));
        assert_eq!(Block::of("relu"), Block::Outside("relu".into()));
        assert_eq!(Block::of("body.x.relu"), Block::Outside("body".into()));
        assert_eq!(Block::Body(3).to_string(), "body.3");
    }

    fn picture_input(g: &mut Graph) -> Outlet {
        let shape = vec![Dim::Known(1), Dim::Known(3), Dim::sym("H"), Dim::sym("W")];
        g.input("lr", Fact::f32(shape))
    }

    /// x - 128 through three ReLUs: two in block 0, one in the tail. On a picture whose
    /// red is 200 everywhere, green 0 and blue 100 on the left half and 200 on the right,
    /// x - 128 is 72 (never zero), -128 (zero: a dead channel) and -28 | 72 (half zero).
    fn known_graph() -> Result<Vec<u8>> {
        let mut g = Graph::new();
        let x = picture_input(&mut g);
        let mean = g.constant("mean", Tensor::F32(ArrayD::from_elem(vec![1, 3, 1, 1], 128.0)));
        let centred = g.wire("centred", Op::Sub, &[x, mean])?;
        let a = g.wire("body.0.body.1", Op::Relu, &[centred])?;
        let b = g.wire("body.0.body.4", Op::Relu, &[a])?;
        let t = g.wire("tail.relu", Op::Relu, &[centred])?;
        let sum = g.wire("sum", Op::Add, &[b, t])?;
        g.output("sr", sum);
        Model::new(g, vec![]).to_bytes("known")
    }

    fn known_picture() -> Array3<u8> {
        Array3::from_shape_fn((4, 6, 3), |(_, x, c)| match c {
            0 => 200,
            1 => 0,
            _ if x < 3 => 100,
            _ => 200,
        })
    }

    #[test]
    fn a_graph_of_known_zeros_gives_them_exactly() -> Result<()> {
        let picture = known_picture();
        let relus = activation_stats(&known_graph()?, "known", picture.view(), Runtime::Tract, 0)?;
        let names: Vec<&str> = relus.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["body.0.body.1", "body.0.body.4", "tail.relu"]);
        for r in &relus {
            assert_eq!(r.channels, 3);
            assert_eq!(r.zero_share, 0.5, "{r:?}");
            assert_eq!(r.mean, (72.0 + 0.0 + 36.0) / 3.0, "{r:?}");
            assert_eq!(r.dead_channels, 1);
        }
        let blocks = block_stats(&relus);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].block, Block::Body(0));
        assert_eq!(blocks[0].relus, ["body.0.body.1", "body.0.body.4"]);
        assert_eq!((blocks[0].channels, blocks[0].dead_channels), (6, 2));
        assert_eq!(blocks[0].dead_share(), 1.0 / 3.0);
        assert_eq!(blocks[1].block, Block::Outside("tail".into()));
        assert_eq!(mean_zero_share(&blocks), 0.5);
        Ok(())
    }

    #[test]
    fn the_centre_is_cut_from_a_large_picture_only() {
        let picture = Array3::from_shape_fn((10, 7, 3), |(y, x, _)| (10 * y + x) as u8);
        let c = centre(picture.view(), 4);
        assert_eq!(c.dim(), (4, 4, 3));
        assert_eq!(c[[0, 0, 0]], 31);
        assert_eq!(centre(picture.view(), 20).dim(), (10, 7, 3));
    }

    #[test]
    fn a_graph_without_relu_is_refused() -> Result<()> {
        let mut g = Graph::new();
        let x = picture_input(&mut g);
        g.output("sr", x);
        let bytes = Model::new(g, vec![]).to_bytes("plain")?;
        let err = activation_stats(&bytes, "plain.onnx", known_picture().view(), Runtime::Tract, 0).unwrap_err();
        assert!(format!("{err:#}").contains("plain.onnx has no ReLU"), "{err:#}");
        Ok(())
    }
}
