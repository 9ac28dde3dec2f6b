//! The layers the three networks are made of, as calls on a `Net`: a graph, a
//! seed and the normalisation every conv gets. Parameter names follow the
//! reference PyTorch code (`body.3.body.0.weight_v`), so checkpoints line up.

use crate::ir::{Fact, Graph, Op, Outlet, ShuffleMode, Tensor};
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    None,
    /// w = g * v / ||v||, per output channel (Salimans & Kingma 2016).
    Weight,
}

impl Norm {
    pub fn name(self) -> &'static str {
        match self {
            Norm::None => "none",
            Norm::Weight => "weight",
        }
    }
}

pub struct Net {
    pub g: Graph,
    /// Zero parameters and no random draws: for counting parameters quickly.
    pub dry: bool,
    seed: u64,
    norm: Norm,
    shuffle: ShuffleMode,
}

impl Net {
    pub fn new(seed: u64, norm: Norm, shuffle: ShuffleMode) -> Net {
        Net {
            g: Graph::new(),
            dry: false,
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
    /// `nn.Conv2d` (kaiming-uniform with a = sqrt(5): bound 1/sqrt(fan_in)), and,
    /// under weight norm, `g` initialised to `||v||` as `torch.nn.utils.weight_norm` does.
    pub fn conv(&mut self, name: &str, x: Outlet, cin: usize, cout: usize, k: usize) -> Result<Outlet> {
        let bound = 1.0 / ((cin * k * k) as f32).sqrt();
        let w = match self.norm {
            Norm::None => self.uniform_param(&format!("{name}.weight"), &[cout, cin, k, k], bound)?,
            Norm::Weight => {
                let v = self.uniform_param(&format!("{name}.weight_v"), &[cout, cin, k, k], bound)?;
                let g0 = channel_norms(self.g.node(v.node));
                let g = self.g.wire(
                    format!("{name}.weight_g"),
                    Op::Param(Tensor::f32(&[cout, 1, 1, 1], g0)),
                    &[],
                )?;
                self.weight_norm(name, v, g)?
            }
        };
        let b = self.uniform_param(&format!("{name}.bias"), &[cout], bound)?;
        let p = k / 2;
        self.g.wire(name, Op::Conv { pads: [p, p, p, p] }, &[x, w, b])
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
