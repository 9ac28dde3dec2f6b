//! Which network a state dict holds, read from its key names and tensor shapes (as
//! Spandrel does for other architectures), and its values under srgraph's names.
//!
//! srgraph's parameter names are the reference PyTorch code's, so three of the four
//! layouts need no renaming: EDSR-PyTorch (`head.0`, `body.i.body.{0,2}`, `body.B`,
//! `tail.0.{0,2}`, `tail.1`, plus its `sub_mean`/`add_mean` 1x1 convs), the official
//! WDSR (`head.0`, `body.i.body.k`, `tail.0`, `skip.0`, weight norm as `weight_g`/
//! `weight_v` or `parametrizations.weight.original0/1`) and srgraph's own. BasicSR's
//! EDSR renames every conv (`conv_first`, `body.i.conv1`, `conv_after_body`,
//! `upsample.j`, `conv_last`).
//!
//! What the weights cannot say (EDSR's residual scaling, the RGB mean where it is a
//! constant of the code, BasicSR's `img_range`) takes the reference default and is
//! reported as assumed.

use super::StateDict;
use crate::ir::Tensor;
use crate::models::{self, Arch, ModelConfig, Norm, DIV2K_MEAN, PIXEL_SCALE};
use anyhow::{bail, ensure, Context, Result};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Srgraph,
    EdsrPytorch,
    BasicSr,
    OfficialWdsr,
    /// krasserm/super-resolution's Keras models (DCR pixel shuffle).
    Keras,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Srgraph => "srgraph",
            Layout::EdsrPytorch => "edsr-pytorch",
            Layout::BasicSr => "basicsr",
            Layout::OfficialWdsr => "official-wdsr",
            Layout::Keras => "keras",
        }
    }
}

/// What the user says about a checkpoint: the layout, checks on what is detected,
/// and the values the weights cannot tell.
#[derive(Clone, Debug, Default)]
pub struct Hints {
    pub layout: Option<Layout>,
    pub arch: Option<Arch>,
    pub scale: Option<usize>,
    pub blocks: Option<usize>,
    pub filters: Option<usize>,
    pub res_scale: Option<f32>,
    /// The RGB mean in 0..1 units, as the reference code's arguments give it.
    pub rgb_mean: Option<[f32; 3]>,
    /// The range the reference network's pixels were in (EDSR-PyTorch's `rgb_range`,
    /// BasicSR's `img_range`): 255 by default.
    pub rgb_range: Option<f32>,
}

pub struct Detected {
    pub layout: Layout,
    pub config: ModelConfig,
    /// The network's training-form parameters and buffers, under srgraph's names.
    pub values: Vec<(String, Tensor)>,
    /// "what: value (how it was found)", for people and for the model's metadata.
    pub read: Vec<String>,
    /// What the file could not say and took a default or a flag.
    pub assumed: Vec<String>,
}

/// The keys detection looks for, named in the error for a file that has none of them.
const LOOKED_FOR: &str = "conv_first.weight (BasicSR EDSR), sub_mean.weight (EDSR-PyTorch), head.0.weight or \
    head.0.weight_v (EDSR-PyTorch, official WDSR, srgraph), skip.0.weight_v (WDSR), tail.1.weight (EDSR), \
    tail.0.weight_v (WDSR)";

/// A state dict's keys in srgraph's spelling: weight norm's parametrization keys as
/// `weight_g`/`weight_v`, and BasicSR's names as EDSR-PyTorch's.
fn canonical(tensors: &[(String, Tensor)], basicsr: bool) -> Result<HashMap<String, Tensor>> {
    let blocks = tensors.iter().filter(|(k, _)| k.ends_with(".conv1.weight")).count();
    let mut out = HashMap::new();
    for (key, t) in tensors {
        let mut k = key
            .replace(".parametrizations.weight.original0", ".weight_g")
            .replace(".parametrizations.weight.original1", ".weight_v");
        if basicsr {
            k = basicsr_to_srgraph(&k, blocks);
        }
        ensure!(
            out.insert(k.clone(), t.clone()).is_none(),
            "the checkpoint holds {k} twice (under two spellings)"
        );
    }
    Ok(out)
}

fn basicsr_to_srgraph(k: &str, blocks: usize) -> String {
    if let Some(rest) = k.strip_prefix("conv_first.") {
        return format!("head.0.{rest}");
    }
    if let Some(rest) = k.strip_prefix("conv_after_body.") {
        return format!("body.{blocks}.{rest}");
    }
    if let Some(rest) = k.strip_prefix("conv_last.") {
        return format!("tail.1.{rest}");
    }
    if let Some(rest) = k.strip_prefix("upsample.") {
        return format!("tail.0.{rest}");
    }
    if let Some(rest) = k.strip_prefix("body.") {
        let rest = rest
            .replacen(".conv1.", ".body.0.", 1)
            .replacen(".conv2.", ".body.2.", 1);
        return format!("body.{rest}");
    }
    k.to_string()
}

/// Detects the network `state` holds and gathers its values under srgraph's names.
pub fn detect(state: &StateDict, hints: &Hints) -> Result<Detected> {
    let keys: HashSet<&str> = state.tensors.iter().map(|(k, _)| k.as_str()).collect();
    let has = |k: &str| keys.contains(k);
    let ours = state.config.is_some() || state.format.starts_with("ONNX Runtime");
    let layout = match hints.layout.or(state.layout) {
        Some(l) => l,
        None if has("conv_first.weight") => Layout::BasicSr,
        None if ours => Layout::Srgraph,
        None if has("sub_mean.weight") => Layout::EdsrPytorch,
        None if keys.iter().any(|k| k.starts_with("skip.0.")) => Layout::OfficialWdsr,
        None if has("head.0.weight") || has("head.0.weight_v") => Layout::EdsrPytorch,
        None => {
            let mut sample: Vec<&str> = keys.iter().copied().collect();
            sample.sort();
            let more = if sample.len() > 8 { ", ..." } else { "" };
            sample.truncate(8);
            bail!(
                "it matches no layout srgraph knows: it has none of {LOOKED_FOR}; its keys are {}{more}",
                sample.join(", ")
            );
        }
    };
    let t = canonical(&state.tensors, layout == Layout::BasicSr)?;
    let mut read = vec![format!("layout: {}", layout.name())];
    let mut assumed = vec![];
    let mut c = match &state.config {
        Some(c) => c.clone(),
        None => structure(&t, &mut read)?,
    };
    if layout == Layout::Keras {
        // TensorFlow's depth_to_space.
        c.shuffle = crate::ir::ShuffleMode::Dcr;
        read.push("pixel shuffle: DCR (TensorFlow's depth_to_space)".into());
    }
    check_hints(&c, hints)?;
    if state.config.is_none() {
        // srgraph's export records what the weights cannot say in the file's metadata.
        let recorded = ModelConfig::from_metadata(&state.recorded).ok();
        normalisation(&t, layout, hints, recorded.as_ref(), &mut c, &mut read, &mut assumed)?;
        match (hints.res_scale, &recorded) {
            (Some(r), _) => c.res_scale = r,
            (None, Some(r)) => {
                c.res_scale = r.res_scale;
                read.push(format!("res-scale {} (from the file's metadata)", r.res_scale));
            }
            (None, None) => {
                // EDSR's 256-filter model scales its residuals by 0.1; the baseline and WDSR by 1.
                c.res_scale = if c.arch == Arch::Edsr && c.filters >= 256 {
                    0.1
                } else {
                    1.0
                };
                assumed.push(format!(
                    "res-scale {} (the reference default for this width; set it with --res-scale)",
                    c.res_scale
                ));
            }
        }
    } else if hints.res_scale.is_some_and(|r| r != c.res_scale) || hints.rgb_mean.is_some() || hints.rgb_range.is_some()
    {
        bail!("it is srgraph's own file and records its res-scale, mean and range: --res-scale, --rgb-mean and --rgb-range do not apply");
    }
    c.validate()?;
    let values = gather(&t, &c, layout)?;
    Ok(Detected {
        layout,
        config: c,
        values,
        read,
        assumed,
    })
}

/// The shape of conv `name`'s weight (`weight`, or weight norm's `weight_v`).
fn conv(t: &HashMap<String, Tensor>, name: &str) -> Option<Vec<usize>> {
    t.get(&format!("{name}.weight"))
        .or_else(|| t.get(&format!("{name}.weight_v")))
        .map(|w| w.shape().to_vec())
        .filter(|s| s.len() == 4)
}

/// Architecture, widths, depth and scale from the conv shapes.
fn structure(t: &HashMap<String, Tensor>, read: &mut Vec<String>) -> Result<ModelConfig> {
    let need = |name: &str| conv(t, name).with_context(|| format!("it has no 4-D {name}.weight or {name}.weight_v"));
    let head = need("head.0")?;
    let (filters, colours) = (head[0], head[1]);
    ensure!(filters >= 1, "its first conv makes no channels");
    ensure!(
        colours == 3 || colours == 1,
        "its first conv reads {colours} colour channels; srgraph's networks read RGB (3) or grey (1)"
    );
    let blocks = (0..)
        .take_while(|i| conv(t, &format!("body.{i}.body.0")).is_some())
        .count();
    let wdsr = conv(t, "skip.0").is_some();
    let arch = match (wdsr, conv(t, "body.0.body.3").is_some()) {
        (false, _) => Arch::Edsr,
        (true, false) => Arch::WdsrA,
        (true, true) => Arch::WdsrB,
    };
    let mut c = ModelConfig::new(arch);
    c.blocks = blocks;
    c.filters = filters;
    c.channels = colours;
    ensure!(blocks >= 1, "it has no residual blocks (no body.0.body.0 conv)");
    c.norm = if t.contains_key("head.0.weight_v") {
        Norm::Weight
    } else if t.contains_key("body.0.body.0.bn.weight") {
        Norm::Batch
    } else {
        Norm::None
    };
    c.scale = match arch {
        Arch::Edsr => {
            need(&format!("body.{blocks}"))?;
            let stages: Vec<usize> = (0..)
                .map_while(|j| conv(t, &format!("tail.0.{}", 2 * j)))
                .map(|s| s[0] / filters.max(1))
                .collect();
            match stages.as_slice() {
                [4] => 2,
                [9] => 3,
                [4, 4] => 4,
                [] => bail!("it has no upsampler (tail.0.0)"),
                s => bail!(
                    "its upsampler has {} stage(s) widening {s:?} times: srgraph's EDSR upsamples x2, x3 (one stage) \
                     or x4 (two x2 stages)",
                    s.len()
                ),
            }
        }
        _ => {
            let out = need("tail.0")?[0];
            let s = (1..=16).find(|s| colours * s * s == out);
            s.with_context(|| format!("its tail.0 makes {out} channels, not {colours} x scale^2"))?
        }
    };
    if arch.is_wdsr() {
        let wide = need("body.0.body.0")?[0];
        if wide % filters == 0 {
            c.expansion = wide / filters;
        } else {
            c.wide_feats = Some(wide);
        }
        read.push(format!("wide activation: {wide} channels"));
    }
    if arch == Arch::WdsrB {
        let low = need("body.0.body.2")?[0];
        if low != c.low_rank() {
            c.low_rank_feats = Some(low);
        }
        read.push(format!("low-rank width: {low}"));
    }
    read.insert(
        0,
        format!(
            "architecture: {} x{}, {blocks} blocks, {filters} filters, {} norm{}",
            arch.name(),
            c.scale,
            c.norm.name(),
            if colours == 1 { ", 1 channel (grey)" } else { "" }
        ),
    );
    Ok(c)
}

fn check_hints(c: &ModelConfig, h: &Hints) -> Result<()> {
    let mut wrong = vec![];
    if let Some(a) = h.arch.filter(|&a| a != c.arch) {
        wrong.push(format!("it is {}, not {}", c.arch.name(), a.name()));
    }
    for (flag, given, found) in [
        ("--scale", h.scale, c.scale),
        ("--blocks", h.blocks, c.blocks),
        ("--filters", h.filters, c.filters),
    ] {
        if let Some(g) = given.filter(|&g| g != found) {
            wrong.push(format!("its weights give {} {found}, not {flag} {g}", &flag[2..]));
        }
    }
    ensure!(wrong.is_empty(), "{}", wrong.join("; "));
    Ok(())
}

/// The mean shift and pixel range: from EDSR-PyTorch's `sub_mean`/`add_mean` when
/// present, else the layout's constants (DIV2K's mean unless --rgb-mean).
fn normalisation(
    t: &HashMap<String, Tensor>,
    layout: Layout,
    h: &Hints,
    recorded: Option<&ModelConfig>,
    c: &mut ModelConfig,
    read: &mut Vec<String>,
    assumed: &mut Vec<String>,
) -> Result<()> {
    let mean_from_hint = |assumed: &mut Vec<String>, c: &mut ModelConfig| match (h.rgb_mean, recorded) {
        (Some(m), _) => c.pixel_mean = m.map(|v| v * 255.0),
        (None, Some(r)) => c.pixel_mean = r.pixel_mean,
        (None, None) => {
            c.pixel_mean = DIV2K_MEAN.map(|v| v * 255.0);
            assumed.push(format!(
                "RGB mean {:?} (DIV2K's, the reference default; set it with --rgb-mean){}",
                DIV2K_MEAN,
                if c.channels == 1 {
                    ", of which a grey network subtracts the BT.601 luma"
                } else {
                    ""
                }
            ));
        }
    };
    match layout {
        Layout::Srgraph => {
            ensure!(
                h.rgb_range.is_none(),
                "--rgb-range does not apply to srgraph's own files"
            );
            c.pixel_range = PIXEL_SCALE;
            mean_from_hint(assumed, c);
        }
        Layout::OfficialWdsr | Layout::Keras => {
            ensure!(
                h.rgb_range.is_none(),
                "the official WDSR code and krasserm's Keras models map pixels with (x - mean * 255) / 127.5: \
                 --rgb-range does not apply"
            );
            c.pixel_range = PIXEL_SCALE;
            mean_from_hint(assumed, c);
        }
        Layout::BasicSr => {
            c.pixel_range = match (h.rgb_range, recorded) {
                (Some(range), _) => 255.0 / range,
                (None, Some(r)) => r.pixel_range,
                (None, None) => {
                    assumed.push("img_range 255 (BasicSR's default; set it with --rgb-range)".into());
                    1.0
                }
            };
            mean_from_hint(assumed, c);
        }
        Layout::EdsrPytorch => match (t.get("sub_mean.weight"), t.get("add_mean.weight")) {
            (Some(_), Some(_)) => {
                ensure!(
                    h.rgb_mean.is_none(),
                    "its sub_mean and add_mean hold the mean: --rgb-mean does not apply"
                );
                mean_shift(t, h, c, read)?;
            }
            _ => {
                let range = h.rgb_range.unwrap_or(255.0);
                c.pixel_range = 255.0 / range;
                assumed.push(format!(
                    "rgb_range {range} (no sub_mean/add_mean in the file; set it with --rgb-range)"
                ));
                mean_from_hint(assumed, c);
            }
        },
    }
    Ok(())
}

/// EDSR-PyTorch's MeanShift convs: sub_mean computes d * x + b and add_mean d' * y + b',
/// with the pixels in 0..rgb_range. srgraph's (x - mean) / range and y * range + mean
/// in 0..255 are the same maps when d' = range * rgb_range / 255, b' = mean * rgb_range
/// / 255, and sub_mean is add_mean's inverse.
fn mean_shift(t: &HashMap<String, Tensor>, h: &Hints, c: &mut ModelConfig, read: &mut Vec<String>) -> Result<()> {
    let diag = |name: &str| -> Result<([f32; 3], [f32; 3])> {
        let w = t[&format!("{name}.weight")].as_f32().context("float weights")?;
        let b = t
            .get(&format!("{name}.bias"))
            .and_then(Tensor::as_f32)
            .with_context(|| format!("it has {name}.weight but no {name}.bias"))?;
        ensure!(
            w.shape() == [3, 3, 1, 1] && b.len() == 3,
            "{name} is not a 3 x 3 1x1 conv: shape {:?}",
            w.shape()
        );
        let w: Vec<f32> = w.iter().copied().collect();
        for i in 0..3 {
            for j in (0..3).filter(|&j| j != i) {
                ensure!(
                    w[i * 3 + j] == 0.0,
                    "{name} mixes colour channels (weight[{i}][{j}] = {}): it is not a mean shift",
                    w[i * 3 + j]
                );
            }
        }
        let b: Vec<f32> = b.iter().copied().collect();
        Ok(([w[0], w[4], w[8]], [b[0], b[1], b[2]]))
    };
    let (d, b) = diag("sub_mean")?;
    let (d2, b2) = diag("add_mean")?;
    ensure!(
        d2.iter().all(|&x| x == d2[0]) && d2[0] > 0.0,
        "add_mean scales the channels differently ({d2:?}): srgraph's mean shift has one range for all three"
    );
    for i in 0..3 {
        let inverse = (d[i] * d2[i] - 1.0).abs() < 1e-4 && (b[i] + b2[i] * d[i]).abs() <= 1e-4 * b2[i].abs().max(1.0);
        ensure!(
            inverse,
            "sub_mean (x {} + {}) does not undo add_mean (x {} + {}) in channel {i} (an rgb_std other than 1?): \
             srgraph's mean shift subtracts and adds back the same mean",
            d[i],
            b[i],
            d2[i],
            b2[i]
        );
    }
    // rgb_range 255 puts the mean near 110; rgb_range 1 near 0.44.
    let range = h
        .rgb_range
        .unwrap_or(if b2.iter().any(|m| m.abs() > 2.0) { 255.0 } else { 1.0 });
    c.pixel_range = d2[0] * 255.0 / range;
    c.pixel_mean = b2.map(|m| m * 255.0 / range);
    read.push(format!(
        "mean shift: mean {:?} of {range} (from add_mean), range {} (rgb_range {range}{})",
        b2,
        c.pixel_range,
        if h.rgb_range.is_some() {
            ", from --rgb-range"
        } else {
            ", from the mean's size"
        }
    ));
    Ok(())
}

/// Every parameter and buffer of `c`'s training-form network, from the checkpoint;
/// a key the network has no use for is an error (it means another network).
fn gather(t: &HashMap<String, Tensor>, c: &ModelConfig, layout: Layout) -> Result<Vec<(String, Tensor)>> {
    let g = models::build_dry(c)?;
    let mut values = vec![];
    let mut used = HashSet::new();
    for (name, want) in g.params().chain(g.buffers()) {
        let got = t.get(name).with_context(|| {
            format!(
                "it has no {name}, which {} needs ({})",
                models::describe(c),
                if name.ends_with("_g") || name.ends_with("_v") {
                    "weight norm's g and v"
                } else {
                    "a plain parameter"
                }
            )
        })?;
        ensure!(
            got.shape() == want.shape(),
            "its {name} is {:?}, but {} has {:?} there",
            got.shape(),
            models::describe(c),
            want.shape()
        );
        used.insert(name.to_string());
        values.push((name.to_string(), got.clone()));
    }
    let mut unused: Vec<&str> = t
        .keys()
        .map(String::as_str)
        .filter(|k| !used.contains(*k))
        .filter(|k| !(layout == Layout::EdsrPytorch && (k.starts_with("sub_mean.") || k.starts_with("add_mean."))))
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .collect();
    unused.sort();
    ensure!(
        unused.is_empty(),
        "it holds tensors {} has no place for: {} (another architecture, or a layout srgraph does not know)",
        models::describe(c),
        unused.join(", ")
    );
    Ok(values)
}
