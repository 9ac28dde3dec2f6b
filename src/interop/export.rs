//! The way back: a network's training-form parameters under a reference layout's
//! names, written as safetensors, so that
//! `model.load_state_dict(safetensors.torch.load_file(path))` works in the reference
//! PyTorch code. Weight norm stays g and v where the layout has it (the official
//! WDSR); EDSR's layouts have plain weights, into which it is folded.

use crate::ir::{eval::eval, Op, ShuffleMode, Tensor};
use crate::models::{Arch, ConvKind, ModelConfig, Norm, PIXEL_SCALE};
use crate::onnx::Metadata;
use anyhow::{bail, ensure, Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportLayout {
    /// The architecture's own reference code: EDSR-PyTorch for EDSR, JiahuiYu/wdsr_ntire2018 for WDSR.
    Official,
    EdsrPytorch,
    BasicSr,
}

/// The tensors under the layout's names, and how to build the reference network that loads them.
pub struct Exported {
    pub tensors: Vec<(String, Tensor)>,
    pub constructor: String,
    /// The network the tensors describe: the source's, with PyTorch's pixel shuffle.
    pub config: ModelConfig,
}

pub fn export_state(c: &ModelConfig, values: &[(String, Tensor)], layout: ExportLayout) -> Result<Exported> {
    ensure!(
        c.norm != Norm::Batch,
        "a network with batch norm has no reference layout to export to (EDSR-PyTorch, BasicSR and the official WDSR \
         have none)"
    );
    ensure!(
        c.conv == ConvKind::LowRank,
        "a WDSR-B with {} convolutions has no reference layout to export to: the official WDSR code builds only the \
         low-rank block",
        c.conv
    );
    ensure!(
        c.channels == 3,
        "a single-channel (grey) network has no reference layout to export to: EDSR-PyTorch's MeanShift, BasicSR's \
         and the official WDSR's mean are RGB (3 values); use its .onnx"
    );
    let layout = match (layout, c.arch) {
        (ExportLayout::Official, Arch::Edsr) => ExportLayout::EdsrPytorch,
        (ExportLayout::EdsrPytorch | ExportLayout::BasicSr, a) if a.is_wdsr() => bail!(
            "{} is not an EDSR: export WDSR with --layout official (JiahuiYu/wdsr_ntire2018's names)",
            a.name()
        ),
        (l, _) => l,
    };
    // PyTorch's PixelShuffle is CRD: a DCR network (TensorFlow's) has the output channels
    // of the convs before each shuffle reordered, which is exact.
    let crd_values;
    let values = if c.shuffle == ShuffleMode::Dcr {
        crd_values = to_crd(c, values)?;
        &crd_values[..]
    } else {
        values
    };
    let mut config = c.clone();
    config.shuffle = ShuffleMode::Crd;
    let mean01 = c.pixel_mean.map(|m| m / 255.0);
    let (tensors, constructor) = match layout {
        ExportLayout::Official => {
            ensure!(
                c.pixel_range == PIXEL_SCALE,
                "the official WDSR code divides pixels by 127.5, and this network by {}: it cannot load these weights",
                c.pixel_range
            );
            let mut args = format!(
                "wdsr_{}.MODEL(args) with n_resblocks={}, n_feats={}, scale=[{}], n_colors=3, res_scale={}, \
                 r_mean={}, g_mean={}, b_mean={}",
                if c.arch == Arch::WdsrA { "a" } else { "b" },
                c.blocks,
                c.filters,
                c.scale,
                c.res_scale,
                mean01[0],
                mean01[1],
                mean01[2]
            );
            if c.arch == Arch::WdsrA {
                args += &format!(", block_feats={}", c.wide());
            } else if c.wide() != c.filters * 6 || c.low_rank() != (c.filters as f32 * 0.8) as usize {
                args += &format!(
                    " (and its Block changed to expand {} and low rank {}: the official code fixes 6 and 0.8)",
                    c.wide() as f32 / c.filters as f32,
                    c.low_rank()
                );
            }
            if c.norm == Norm::None {
                args += " (and wn = lambda x: x: these weights have no weight norm)";
            }
            (values.to_vec(), args)
        }
        ExportLayout::EdsrPytorch => {
            let mut t = plain_weights(values)?;
            // MeanShift convs that compute srgraph's (x - mean) / range on 0..255 pixels and
            // its inverse; EDSR-PyTorch loads them from the state dict whatever its rgb_range.
            let eye = |d: f32| {
                Tensor::f32(
                    &[3, 3, 1, 1],
                    (0..9).map(|i| if i % 4 == 0 { d } else { 0.0 }).collect(),
                )
            };
            let r = c.pixel_range;
            t.push(("sub_mean.weight".into(), eye(1.0 / r)));
            t.push((
                "sub_mean.bias".into(),
                Tensor::f32(&[3], c.pixel_mean.map(|m| -m / r).to_vec()),
            ));
            t.push(("add_mean.weight".into(), eye(r)));
            t.push(("add_mean.bias".into(), Tensor::f32(&[3], c.pixel_mean.to_vec())));
            let args = format!(
                "edsr.EDSR(args) with n_resblocks={}, n_feats={}, scale=[{}], rgb_range=255, n_colors=3, res_scale={} \
                 (the mean shift is in the weights)",
                c.blocks, c.filters, c.scale, c.res_scale
            );
            (t, args)
        }
        ExportLayout::BasicSr => {
            let t = plain_weights(values)?
                .into_iter()
                .map(|(k, v)| (srgraph_to_basicsr(&k, c.blocks), v))
                .collect();
            let args = format!(
                "EDSR(num_in_ch=3, num_out_ch=3, num_feat={}, num_block={}, upscale={}, res_scale={}, img_range={}, \
                 rgb_mean=({}, {}, {}))",
                c.filters,
                c.blocks,
                c.scale,
                c.res_scale,
                255.0 / c.pixel_range,
                mean01[0],
                mean01[1],
                mean01[2]
            );
            (t, args)
        }
    };
    Ok(Exported {
        tensors,
        constructor,
        config,
    })
}

/// The convs that feed a pixel shuffle, with the channels each shuffled output has.
fn shuffled_convs(c: &ModelConfig) -> Vec<(String, usize, usize)> {
    match c.arch {
        Arch::Edsr => match c.scale {
            4 => vec![("tail.0.0".into(), c.filters, 2), ("tail.0.2".into(), c.filters, 2)],
            s => vec![("tail.0.0".into(), c.filters, s)],
        },
        _ => vec![("tail.0".into(), 3, c.scale), ("skip.0".into(), 3, c.scale)],
    }
}

/// DCR-ordered conv outputs reordered for CRD: output channel `Crd.source(ch, k)` takes
/// what `Dcr.source(ch, k)` held, in the weight (or g and v) and the bias alike.
fn to_crd(c: &ModelConfig, values: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
    let mut out = values.to_vec();
    for (conv, channels, s) in shuffled_convs(c) {
        let mut from = vec![0usize; channels * s * s];
        for ch in 0..channels {
            for k in 0..s * s {
                from[ShuffleMode::Crd.source_channel(ch, k, channels, s)] =
                    ShuffleMode::Dcr.source_channel(ch, k, channels, s);
            }
        }
        for (name, t) in out.iter_mut() {
            let Some(suffix) = name.strip_prefix(conv.as_str()) else {
                continue;
            };
            if !matches!(suffix, ".weight" | ".weight_v" | ".weight_g" | ".bias") {
                continue;
            }
            let a = t.as_f32().with_context(|| format!("{name} is not float32"))?;
            ensure!(
                a.shape()[0] == from.len(),
                "{name} has {} output channels, not {}",
                a.shape()[0],
                from.len()
            );
            let rows: Vec<_> = from.iter().map(|&f| a.index_axis(ndarray::Axis(0), f)).collect();
            let stacked = ndarray::stack(ndarray::Axis(0), &rows).context("reordering channels")?;
            *t = Tensor::F32(stacked);
        }
    }
    Ok(out)
}

/// Weight norm folded into plain weights, w = g * v / ||v||, by the ops the graph runs.
fn plain_weights(values: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
    let find = |n: &str| values.iter().find(|(k, _)| k == n).map(|(_, t)| t);
    let mut out = vec![];
    for (name, t) in values {
        if name.ends_with(".weight_g") {
            continue;
        }
        if let Some(conv) = name.strip_suffix(".weight_v") {
            let g =
                find(&format!("{conv}.weight_g")).with_context(|| format!("{conv} has weight_v but no weight_g"))?;
            let scale = eval(&Op::Div, &[g, &super::unfold::channel_norms(t)?])?;
            out.push((format!("{conv}.weight"), eval(&Op::Mul, &[t, &scale])?));
        } else {
            out.push((name.clone(), t.clone()));
        }
    }
    Ok(out)
}

fn srgraph_to_basicsr(k: &str, blocks: usize) -> String {
    if let Some(rest) = k.strip_prefix("head.0.") {
        return format!("conv_first.{rest}");
    }
    if let Some(rest) = k.strip_prefix(&format!("body.{blocks}.")) {
        return format!("conv_after_body.{rest}");
    }
    if let Some(rest) = k.strip_prefix("tail.1.") {
        return format!("conv_last.{rest}");
    }
    if let Some(rest) = k.strip_prefix("tail.0.") {
        return format!("upsample.{rest}");
    }
    k.replacen(".body.0.", ".conv1.", 1).replacen(".body.2.", ".conv2.", 1)
}

/// The tensors as a safetensors file, with `metadata` in its header.
pub fn to_safetensors(tensors: &[(String, Tensor)], metadata: impl Into<Metadata>) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| {
            let a = t.as_f32().with_context(|| format!("{k} is not float32"))?;
            let data = a.iter().flat_map(|x| x.to_le_bytes()).collect();
            Ok((k.clone(), a.shape().to_vec(), data))
        })
        .collect::<Result<_>>()?;
    let views = bytes
        .iter()
        .map(|(k, shape, data)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map_err(|e| anyhow::anyhow!("{k}: {e}"))?;
            Ok((k.clone(), v))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata.into().into_iter().collect())).map_err(|e| anyhow::anyhow!("{e}"))
}
