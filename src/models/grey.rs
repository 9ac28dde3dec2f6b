//! A single-channel network from an RGB network's weights: what the RGB network
//! computes on a grey picture (three equal channels), read out as the luma of its
//! output. The convs that read the picture sum their weights over its three channels,
//! and the difference between the channels' means and the luma's mean goes into their
//! biases; the convs that write it (before a pixel shuffle, in PyTorch's channel
//! order, channel-major) take each output's BT.601 luma combination of the three.
//! That is exact but at the borders, where the mean's offset meets the convs' zero
//! padding: a starting point that fine-tuning on grey pictures finishes, far closer
//! to a good grey network than a fresh initialisation.

use super::{build_dry, ModelConfig, ShuffleMode, LUMA_WEIGHTS};
use crate::ir::Tensor;
use anyhow::{bail, ensure, Context, Result};
use ndarray::{s, Array1, Array4, ArrayD, Axis, Ix4};
use std::collections::HashMap;

/// The single-channel configuration and training-form values for an RGB network's.
pub fn single_channel_from_rgb(
    rgb: &ModelConfig,
    values: Vec<(String, Tensor)>,
) -> Result<(ModelConfig, Vec<(String, Tensor)>)> {
    ensure!(
        rgb.channels == 3,
        "the network already takes {} channel(s)",
        rgb.channels
    );
    ensure!(
        rgb.shuffle == ShuffleMode::Crd,
        "only a network with PyTorch's pixel shuffle (crd) can be made single-channel"
    );
    let grey = ModelConfig {
        channels: 1,
        ..rgb.clone()
    };
    let dry = build_dry(&grey)?;
    let mut values: HashMap<String, Tensor> = values.into_iter().collect();
    let mut out: Vec<(String, Tensor)> = vec![];
    for (name, want) in dry.params().chain(dry.buffers()) {
        if out.iter().any(|(n, _)| n == name) {
            continue; // written with its conv's other parameters
        }
        let have = values
            .get(name)
            .with_context(|| format!("the weights have no {name}"))?;
        if have.shape() == want.shape() {
            out.push((name.to_string(), values.remove(name).unwrap()));
            continue;
        }
        let Some(conv) = conv_of(name) else {
            bail!(
                "{name} is {:?} in the weights and {:?} in a single-channel network",
                have.shape(),
                want.shape()
            )
        };
        let weight = dry
            .params()
            .find(|(n, _)| conv_of(n) == Some(conv) && !n.ends_with("bias") && !n.ends_with("_g"));
        let Some((_, weight)) = weight else {
            bail!("{conv} has no weight in a single-channel network")
        };
        let conv = PictureConv::take(conv, &mut values)?;
        out.extend(conv.into_single_channel(rgb, &grey, weight.shape()).into_values());
    }
    Ok((grey, out))
}

/// The conv a parameter belongs to, if it is one of a conv's own (weight, weight
/// norm's v and g, bias).
fn conv_of(name: &str) -> Option<&str> {
    ["weight", "weight_v", "weight_g", "bias"]
        .iter()
        .find_map(|p| name.strip_suffix(p)?.strip_suffix('.'))
}

/// A conv that reads or writes the picture: its effective weight [out, in, kh, kw]
/// and bias, and whether weight norm spells the weight.
struct PictureConv {
    name: String,
    weight: Array4<f32>,
    bias: Array1<f32>,
    weight_norm: bool,
}

impl PictureConv {
    fn take(name: &str, values: &mut HashMap<String, Tensor>) -> Result<PictureConv> {
        let mut take = |p: &str| match values.remove(&format!("{name}.{p}")) {
            Some(Tensor::F32(a)) => Ok(a),
            Some(_) => bail!("{name}.{p} is not float32"),
            None => bail!("the weights have no {name}.{p}"),
        };
        let four = |a: ArrayD<f32>| {
            a.into_dimensionality::<Ix4>()
                .with_context(|| format!("{name}'s weight is not 4-d"))
        };
        let bias = take("bias")?
            .into_dimensionality()
            .with_context(|| format!("{name}.bias is not 1-d"))?;
        let (weight, weight_norm) = match take("weight_v") {
            Ok(v) => (with_norms(four(v)?, four(take("weight_g")?)?.iter().copied()), true),
            Err(_) => (four(take("weight")?)?, false),
        };
        Ok(PictureConv {
            name: name.to_string(),
            weight,
            bias,
            weight_norm,
        })
    }

    /// The conv as the single-channel network has it (`want`: its weight's shape there):
    /// one input channel where it read three, a third of its outputs where it wrote
    /// three per shuffled pixel.
    fn into_single_channel(mut self, rgb: &ModelConfig, grey: &ModelConfig, want: &[usize]) -> PictureConv {
        let (outputs, inputs) = (self.weight.dim().0, self.weight.dim().1);
        if inputs == 3 && want[1] == 1 {
            self.read_grey(rgb, grey);
        }
        if outputs == 3 * want[0] {
            self.write_luma();
        }
        self
    }

    /// Sums the weights over the three input channels; the bias takes what the
    /// channels' means subtracted beyond the luma's mean.
    fn read_grey(&mut self, rgb: &ModelConfig, grey: &ModelConfig) {
        let luma_mean = grey.channel_mean()[0];
        for (o, b) in self.bias.iter_mut().enumerate() {
            for (c, m) in rgb.pixel_mean.iter().enumerate() {
                let taps: f32 = self.weight.slice(s![o, c, .., ..]).sum();
                *b += taps * (luma_mean - m) / rgb.pixel_range;
            }
        }
        self.weight = self.weight.sum_axis(Axis(1)).insert_axis(Axis(1));
    }

    /// Output k of the single-channel conv is the luma of outputs k, q + k and 2q + k
    /// (R, G and B of the same shuffled pixel, q = outputs / 3).
    fn write_luma(&mut self) {
        let q = self.weight.dim().0 / 3;
        let luma = |c: usize| LUMA_WEIGHTS[c];
        let mut weight = Array4::zeros((q, self.weight.dim().1, self.weight.dim().2, self.weight.dim().3));
        let mut bias = Array1::zeros(q);
        for c in 0..3 {
            weight.scaled_add(luma(c), &self.weight.slice(s![c * q..(c + 1) * q, .., .., ..]));
            bias.scaled_add(luma(c), &self.bias.slice(s![c * q..(c + 1) * q]));
        }
        self.weight = weight;
        self.bias = bias;
    }

    /// The conv's parameters under their names, weight norm's v and g where it had them.
    fn into_values(self) -> Vec<(String, Tensor)> {
        let n = |p: &str| format!("{}.{p}", self.name);
        let mut out = vec![];
        if self.weight_norm {
            let norms: Vec<f32> = self
                .weight
                .outer_iter()
                .map(|w| w.iter().map(|x| x * x).sum::<f32>().sqrt())
                .collect();
            out.push((n("weight_v"), Tensor::F32(self.weight.into_dyn())));
            let g = Tensor::f32(&[norms.len(), 1, 1, 1], norms);
            out.push((n("weight_g"), g));
        } else {
            out.push((n("weight"), Tensor::F32(self.weight.into_dyn())));
        }
        out.push((n("bias"), Tensor::F32(self.bias.into_dyn())));
        out
    }
}

/// Weight norm's weight: each output channel of v scaled to norm g.
fn with_norms(mut v: Array4<f32>, g: impl Iterator<Item = f32>) -> Array4<f32> {
    for (mut w, g) in v.outer_iter_mut().zip(g) {
        let norm = w.iter().map(|x| x * x).sum::<f32>().sqrt();
        w.mapv_inplace(|x| x * g / norm);
    }
    v
}
