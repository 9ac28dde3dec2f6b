//! The layers the three networks are made of, as calls on a `Net`: a graph, a
//! seed and the normalisation every conv gets. Parameter names follow the
//! reference PyTorch code (`body.3.body.0.weight_v`), so checkpoints line up.

use crate::ir::{Fact, Graph, Op, Outlet, ShuffleMode, Tensor};
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    None,
    /// w = g * v / ||v||, per output channel (Salimans & Kingma 2016), on every conv.
    Weight,
    /// Batch normalisation after each conv inside the residual blocks (Ioffe & Szegedy 2015).
    Batch,
}

impl Norm {
    pub fn name(self) -> &'static str {
        match self {
            Norm::None => "none",
            Norm::Weight => "weight",
            Norm::Batch => "batch",
        }
    }

    pub fn parse(s: &str) -> Option<Norm> {
        [Norm::None, Norm::Weight, Norm::Batch]
            .into_iter()
            .find(|n| n.name() == s)
    }
}

/// PyTorch's BatchNorm2d defaults.
const BN_EPS: f32 = 1e-5;
const MOMENTUM: f32 = 0.1;

/// A conv's kernel, rows x columns, and its groups: 3x3, the flattened 3x1 and 1x3,
/// and group or depthwise (group = channels) convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub size: [usize; 2],
    pub group: usize,
}

impl Kernel {
    pub fn square(k: usize) -> Kernel {
        Kernel { size: [k, k], group: 1 }
    }

    /// k x 1: a column of taps (the vertical half of a flattened k x k).
    pub fn column(k: usize) -> Kernel {
        Kernel { size: [k, 1], group: 1 }
    }

    /// 1 x k: a row of taps (the horizontal half).
    pub fn row(k: usize) -> Kernel {
        Kernel { size: [1, k], group: 1 }
    }

    pub fn grouped(self, group: usize) -> Kernel {
        Kernel { group, ..self }
    }
}

pub struct Net {
    pub g: Graph,
    /// Zero parameters and no random draws: for counting parameters quickly.
    pub dry: bool,
    /// Batch norm uses batch statistics (training) or running ones (evaluation).
    pub training: bool,
    /// New values of buffers (running statistics) that a training step outputs.
    pub updates: Vec<(String, Outlet)>,
    seed: u64,
    norm: Norm,
    shuffle: ShuffleMode,
}

impl Net {
    pub fn new(seed: u64, norm: Norm, shuffle: ShuffleMode) -> Net {
        Net {
            g: Graph::new(),
            dry: false,
            training: false,
            updates: vec![],
            seed,
            norm,
            shuffle,
        }
    }

    /// A parameter drawn from U(-bound, bound), from a stream that depends only on
    /// the seed and the parameter's name: adding a block leaves the others as they were.
    fn uniform_param(&mut self, name: &str, shape: &[usize], bound: f32) -> Result<Outlet> {
        let n = shape.iter().product();
        let data = if self.dry {
            vec![0.0; n]
        } else {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ fnv1a(name));
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        };
        self.g.wire(name, Op::Param(Tensor::f32(shape, data)), &[])
    }

    /// 2-D convolution with bias and "same" padding, initialised as PyTorch's
    /// `nn.Conv2d` (kaiming-uniform with a = sqrt(5): bound 1/sqrt(fan_in)).
    pub fn conv(&mut self, name: &str, x: Outlet, cin: usize, cout: usize, k: usize) -> Result<Outlet> {
        self.conv_with_bias(name, x, cin, cout, Kernel::square(k), true)
    }

    /// A k x k conv inside a residual block: under batch norm it is followed by one
    /// (and has no bias, which the normalisation would cancel).
    pub fn block_conv(&mut self, name: &str, x: Outlet, cin: usize, cout: usize, k: usize) -> Result<Outlet> {
        self.block_conv_shaped(name, x, cin, cout, Kernel::square(k))
    }

    /// As `block_conv`, with any kernel shape and group count (flattened, group and
    /// depthwise convolutions).
    pub fn block_conv_shaped(&mut self, name: &str, x: Outlet, cin: usize, cout: usize, k: Kernel) -> Result<Outlet> {
        if self.norm != Norm::Batch {
            return self.conv_with_bias(name, x, cin, cout, k, true);
        }
        let y = self.conv_with_bias(name, x, cin, cout, k, false)?;
        self.batch_norm(&format!("{name}.bn"), y, cout)
    }

    fn conv_with_bias(
        &mut self,
        name: &str,
        x: Outlet,
        cin: usize,
        cout: usize,
        k: Kernel,
        bias: bool,
    ) -> Result<Outlet> {
        let [kh, kw] = k.size;
        let shape = [cout, cin / k.group, kh, kw];
        let bound = 1.0 / ((shape[1] * kh * kw) as f32).sqrt();
        let w = match self.norm {
            Norm::None | Norm::Batch => self.uniform_param(&format!("{name}.weight"), &shape, bound)?,
            Norm::Weight => {
                // torch.nn.utils.weight_norm starts g at ||v||, so w starts as v.
                let v = self.uniform_param(&format!("{name}.weight_v"), &shape, bound)?;
                let g0 = channel_norms(self.g.node(v.node));
                let g = self.g.wire(
                    format!("{name}.weight_g"),
                    Op::Param(Tensor::f32(&[cout, 1, 1, 1], g0)),
                    &[],
                )?;
                self.weight_norm(name, v, g)?
            }
        };
        let (ph, pw) = (kh / 2, kw / 2);
        let mut inputs = vec![x, w];
        if bias {
            inputs.push(self.uniform_param(&format!("{name}.bias"), &[cout], bound)?);
        }
        // The node is `<name>.conv`: tract names helper nodes `<node>.bias`, which
        // must not collide with the parameter `<name>.bias`.
        let conv = Op::Conv {
            pads: [ph, pw, ph, pw],
            group: k.group,
        };
        self.g.wire(format!("{name}.conv"), conv, &inputs)
    }

    /// w = g * v / sqrt(sum(v^2)) over each output channel, in graph ops, so the
    /// training compiler differentiates through it and export can fold it.
    fn weight_norm(&mut self, name: &str, v: Outlet, g: Outlet) -> Result<Outlet> {
        let sq = self.g.wire(format!("{name}.wn.sq"), Op::Mul, &[v, v])?;
        let ss = self.g.wire(
            format!("{name}.wn.sum"),
            Op::ReduceSum {
                axes: vec![1, 2, 3],
                keepdims: true,
            },
            &[sq],
        )?;
        let norm = self.g.wire(format!("{name}.wn.norm"), Op::Sqrt, &[ss])?;
        let s = self.g.wire(format!("{name}.wn.scale"), Op::Div, &[g, norm])?;
        self.g.wire(format!("{name}.wn.weight"), Op::Mul, &[v, s])
    }

    /// y = (x - mean) / sqrt(var + eps) * weight + bias per channel, as PyTorch's
    /// BatchNorm2d (eps 1e-5, momentum 0.1, weight 1 and bias 0 at start). In
    /// training, the batch's mean and biased variance, in plain ops (so it needs
    /// no gradient rule of its own), and the running statistics updated with the
    /// unbiased variance; in evaluation, the running statistics.
    fn batch_norm(&mut self, name: &str, x: Outlet, c: usize) -> Result<Outlet> {
        let n = |what: &str| format!("{name}.{what}");
        let weight = self
            .g
            .wire(n("weight"), Op::Param(Tensor::f32(&[c], vec![1.0; c])), &[])?;
        let bias = self
            .g
            .wire(n("bias"), Op::Param(Tensor::f32(&[c], vec![0.0; c])), &[])?;
        let running_mean = self
            .g
            .wire(n("running_mean"), Op::Buffer(Tensor::f32(&[c], vec![0.0; c])), &[])?;
        let running_var = self
            .g
            .wire(n("running_var"), Op::Buffer(Tensor::f32(&[c], vec![1.0; c])), &[])?;
        let per_channel = Op::Reshape {
            shape: vec![1, c as i64, 1, 1],
        };
        let (mean, var) = if self.training {
            let s = &self.g.fact(x).shape;
            let count = [&s[0], &s[2], &s[3]]
                .iter()
                .map(|d| d.known())
                .product::<Option<usize>>();
            let m = count.context("batch norm in training needs a fixed batch and patch size")?;
            let count = self.g.constant(n("count"), Tensor::scalar(m as f32));
            let sum = self.g.wire(
                n("sum"),
                Op::ReduceSum {
                    axes: vec![0, 2, 3],
                    keepdims: true,
                },
                &[x],
            )?;
            let mean = self.g.wire(n("mean"), Op::Div, &[sum, count])?;
            let centred = self.g.wire(n("centred"), Op::Sub, &[x, mean])?;
            let sq = self.g.wire(n("sq"), Op::Mul, &[centred, centred])?;
            let sq_sum = self.g.wire(
                n("sq_sum"),
                Op::ReduceSum {
                    axes: vec![0, 2, 3],
                    keepdims: true,
                },
                &[sq],
            )?;
            let var = self.g.wire(n("var"), Op::Div, &[sq_sum, count])?;
            let unbiased = m as f32 / (m as f32 - 1.0).max(1.0);
            self.running_update(&n("running_mean"), running_mean, mean, c, MOMENTUM)?;
            self.running_update(&n("running_var"), running_var, var, c, MOMENTUM * unbiased)?;
            (mean, var)
        } else {
            let mean = self.g.wire(n("mean"), per_channel.clone(), &[running_mean])?;
            let var = self.g.wire(n("var"), per_channel.clone(), &[running_var])?;
            (mean, var)
        };
        let eps = self.g.constant(n("eps"), Tensor::scalar(BN_EPS));
        let centred = self.g.wire(n("sub"), Op::Sub, &[x, mean])?;
        let var_eps = self.g.wire(n("var_eps"), Op::Add, &[var, eps])?;
        let std = self.g.wire(n("std"), Op::Sqrt, &[var_eps])?;
        let normed = self.g.wire(n("normed"), Op::Div, &[centred, std])?;
        let weight = self.g.wire(n("weight_c"), per_channel.clone(), &[weight])?;
        let bias = self.g.wire(n("bias_c"), per_channel, &[bias])?;
        let scaled = self.g.wire(n("scaled"), Op::Mul, &[normed, weight])?;
        self.g.wire(n("out"), Op::Add, &[scaled, bias])
    }

    /// running' = (1 - momentum) * running + take * batch_stat
    fn running_update(&mut self, name: &str, running: Outlet, stat: Outlet, c: usize, take: f32) -> Result<()> {
        let keep = self.g.constant(format!("{name}.keep"), Tensor::scalar(1.0 - MOMENTUM));
        let take = self.g.constant(format!("{name}.take"), Tensor::scalar(take));
        let flat = self
            .g
            .wire(format!("{name}.batch"), Op::Reshape { shape: vec![c as i64] }, &[stat])?;
        let old = self.g.wire(format!("{name}.old"), Op::Mul, &[running, keep])?;
        let new = self.g.wire(format!("{name}.new_part"), Op::Mul, &[flat, take])?;
        let updated = self.g.wire(format!("{name}.updated"), Op::Add, &[old, new])?;
        self.updates.push((name.to_string(), updated));
        Ok(())
    }

    pub fn relu(&mut self, name: &str, x: Outlet) -> Result<Outlet> {
        self.g.wire(name, Op::Relu, &[x])
    }

    pub fn add(&mut self, name: &str, a: Outlet, b: Outlet) -> Result<Outlet> {
        self.g.wire(name, Op::Add, &[a, b])
    }

    /// Multiply by a constant; scaling by 1 adds nothing to the graph.
    pub fn scale(&mut self, name: &str, x: Outlet, factor: f32) -> Result<Outlet> {
        if factor == 1.0 {
            return Ok(x);
        }
        let c = self.g.constant(format!("{name}.factor"), Tensor::scalar(factor));
        self.g.wire(name, Op::Mul, &[x, c])
    }

    pub fn pixel_shuffle(&mut self, name: &str, x: Outlet, s: usize) -> Result<Outlet> {
        self.g.wire(
            name,
            Op::DepthToSpace {
                block: s,
                mode: self.shuffle,
            },
            &[x],
        )
    }

    pub fn input(&mut self, name: &str, fact: Fact) -> Outlet {
        self.g.input(name, fact)
    }
}

/// The L2 norm of each output channel of a [O, I, kh, kw] parameter.
fn channel_norms(v: &crate::ir::Node) -> Vec<f32> {
    let Op::Param(Tensor::F32(a)) = &v.op else {
        unreachable!("weight_v is an f32 parameter")
    };
    let per = a.len() / a.shape()[0];
    a.as_slice()
        .expect("contiguous")
        .chunks(per)
        .map(|c| c.iter().map(|x| x * x).sum::<f32>().sqrt())
        .collect()
}

/// FNV-1a: a stable hash (unlike std's) for deriving per-parameter seeds.
fn fnv1a(s: &str) -> u64 {
    s.bytes()
        .fold(0xcbf29ce484222325, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}
