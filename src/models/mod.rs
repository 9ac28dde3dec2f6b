//! EDSR, WDSR-A and WDSR-B on the graph IR, their configurations and presets.

mod budget;
mod conv_kind;
mod edsr;
mod grey;
mod layers;
mod presets;
mod wdsr;

pub use budget::{fit_budget, parse_count, BudgetFit};
pub use conv_kind::ConvKind;
pub use grey::single_channel_from_rgb;
pub use layers::{Kernel, Net, Norm};
pub use presets::{preset, presets, Preset};

use crate::ir::{Dim, Fact, Graph, Op, Outlet, ShuffleMode, Tensor};
use crate::onnx::Metadata;
use anyhow::{bail, ensure, Context, Result};

/// DIV2K's RGB mean, which the reference code subtracts (scaled to 0..255).
pub const DIV2K_MEAN: [f32; 3] = [0.4488, 0.4371, 0.4040];
/// BT.601's luma weights (the Y the PSNR-Y is measured on): a single-channel network
/// subtracts the luma of the RGB mean, so that its mean shift is the one the RGB network
/// applies to a picture seen as its Y channel.
pub const LUMA_WEIGHTS: [f32; 3] = [0.299, 0.587, 0.114];
/// Inputs are mapped from [0, 255] to about [-1, 1]: (x - mean * 255) / 127.5.
pub const PIXEL_SCALE: f32 = 127.5;

/// DIV2K's mean in 0..255 units, as the reference code computes it (mean * 255 in f32).
pub fn div2k_pixel_mean() -> [f32; 3] {
    DIV2K_MEAN.map(|m| m * 255.0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Edsr,
    WdsrA,
    WdsrB,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::Edsr, Arch::WdsrA, Arch::WdsrB];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Edsr => "edsr",
            Arch::WdsrA => "wdsr-a",
            Arch::WdsrB => "wdsr-b",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == s)
    }

    pub fn is_wdsr(self) -> bool {
        self != Arch::Edsr
    }

    /// Adam's learning rate in the reference code: 1e-4 for EDSR, 1e-3 for WDSR.
    pub fn default_learning_rate(self) -> f32 {
        if self == Arch::Edsr {
            1e-4
        } else {
            1e-3
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub scale: usize,
    pub blocks: usize,
    pub filters: usize,
    /// Width multiplier before the ReLU (WDSR only).
    pub expansion: usize,
    /// WDSR-B's low-rank width as a fraction of `filters`.
    pub linear: f32,
    pub res_scale: f32,
    pub norm: Norm,
    pub shuffle: ShuffleMode,
    pub seed: u64,
    /// WDSR's wide width when it is not filters x expansion (the official WDSR-A takes
    /// it as its own argument, `block_feats`).
    pub wide_feats: Option<usize>,
    /// WDSR-B's low-rank width when it is not `int(filters * linear)`.
    pub low_rank_feats: Option<usize>,
    /// How WDSR-B's block narrows its wide activation (low-rank unless asked otherwise).
    pub conv: ConvKind,
    /// The mean the network subtracts from its input, per RGB channel, in 0..255 units
    /// (a single-channel network subtracts its luma: `channel_mean`).
    pub pixel_mean: [f32; 3],
    /// Picture channels in and out: 3 (RGB) or 1 (grey, or the luma of an RGB picture).
    pub channels: usize,
    /// What the input is divided by after the mean (and the output multiplied by):
    /// 127.5 maps [0, 255] to about [-1, 1] (WDSR); 1 keeps 0..255 (EDSR-PyTorch, BasicSR).
    pub pixel_range: f32,
}

impl ModelConfig {
    /// The reference implementations' defaults: EDSR-baseline (16 x 64),
    /// WDSR-A (16 x 32, e = 4, weight norm), WDSR-B (16 x 32, e = 6, linear 0.8, weight norm).
    pub fn new(arch: Arch) -> ModelConfig {
        let (filters, expansion, norm) = match arch {
            Arch::Edsr => (64, 1, Norm::None),
            Arch::WdsrA => (32, 4, Norm::Weight),
            Arch::WdsrB => (32, 6, Norm::Weight),
        };
        ModelConfig {
            arch,
            scale: 2,
            blocks: 16,
            filters,
            expansion,
            linear: 0.8,
            res_scale: 1.0,
            norm,
            shuffle: ShuffleMode::Crd,
            seed: 0,
            wide_feats: None,
            low_rank_feats: None,
            conv: ConvKind::LowRank,
            pixel_mean: div2k_pixel_mean(),
            pixel_range: PIXEL_SCALE,
            channels: 3,
        }
    }

    /// The mean subtracted from each input channel: the RGB mean, or for one channel
    /// its BT.601 luma (DIV2K's: 0.4368 * 255 = 111.39).
    pub fn channel_mean(&self) -> Vec<f32> {
        if self.channels == 1 {
            vec![self.pixel_mean.iter().zip(LUMA_WEIGHTS).map(|(m, w)| m * w).sum()]
        } else {
            self.pixel_mean.to_vec()
        }
    }

    /// WDSR-B's low-rank width, `int(filters * linear)` as in the official code.
    pub fn low_rank(&self) -> usize {
        self.low_rank_feats
            .unwrap_or((self.filters as f32 * self.linear) as usize)
    }

    /// WDSR's width before the ReLU: filters x expansion unless set on its own.
    pub fn wide(&self) -> usize {
        self.wide_feats.unwrap_or(self.filters.saturating_mul(self.expansion))
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(
            matches!(self.scale, 2..=4),
            "scale {} is not supported: use 2, 3 or 4",
            self.scale
        );
        ensure!(
            matches!(self.channels, 1 | 3),
            "{} channels are not supported: use --channels 1 (grey) or 3 (RGB)",
            self.channels
        );
        ensure!(self.blocks >= 1, "blocks must be at least 1 (got {})", self.blocks);
        ensure!(self.filters >= 1, "filters must be at least 1 (got {})", self.filters);
        ensure!(self.res_scale.is_finite(), "res-scale must be a finite number");
        ensure!(
            self.pixel_range.is_finite() && self.pixel_range > 0.0,
            "the pixel range must be a positive number (got {})",
            self.pixel_range
        );
        ensure!(
            self.pixel_mean.iter().all(|m| m.is_finite()),
            "the RGB mean must be finite numbers"
        );
        ensure!(
            self.wide_feats != Some(0) && self.low_rank_feats != Some(0),
            "WDSR's wide and low-rank widths must be at least 1"
        );
        if self.arch.is_wdsr() {
            ensure!(
                self.expansion >= 1,
                "expansion must be at least 1 (got {})",
                self.expansion
            );
        }
        ensure!(
            self.arch == Arch::WdsrB || self.conv == ConvKind::LowRank,
            "--conv {} applies to wdsr-b's block, not {}",
            self.conv,
            self.arch.name()
        );
        if self.arch == Arch::WdsrB {
            self.conv.check(self.filters, self.wide())?;
        }
        if self.arch == Arch::WdsrB && self.conv.uses_low_rank() {
            ensure!(
                self.linear > 0.0 && self.low_rank() >= 1,
                "linear {} leaves WDSR-B's low-rank conv with no channels at {} filters",
                self.linear,
                self.filters
            );
        }
        self.ensure_buildable()
    }

    /// Refuses a network too large to build: its weights must fit in one ONNX file
    /// (protobuf caps a message at 2 GB) and its graph in memory. Counted from the
    /// configuration, before anything is allocated.
    fn ensure_buildable(&self) -> Result<()> {
        let (weights, nodes) = self.size_estimate();
        let weight_bytes = weights * 4.0;
        // Building, folding and encoding hold about three copies of the weights; a node
        // with its name, shape facts and edges takes about a kilobyte.
        let memory = 3.0 * weight_bytes + 1024.0 * nodes;
        const ONNX_LIMIT: f64 = 2.0 * 1024.0 * 1024.0 * 1024.0;
        ensure!(
            weight_bytes < ONNX_LIMIT,
            "{} with {} blocks of {} filters would have about {:.3e} weights ({:.1} GB): an ONNX file holds at most \
             2 GB; use fewer --blocks or --filters",
            self.arch.name(),
            self.blocks,
            self.filters,
            weights,
            weight_bytes / 1e9
        );
        if let Some(available) = crate::util::short_of_memory(memory) {
            anyhow::bail!(
                "{} with {} blocks of {} filters would need about {:.1} GB to build ({:.3e} weights, {:.3e} graph \
                 nodes), more than the {:.1} GB of memory available; use fewer --blocks or --filters",
                self.arch.name(),
                self.blocks,
                self.filters,
                memory / 1e9,
                weights,
                nodes,
                available / 1e9
            );
        }
        Ok(())
    }

    /// (weights, graph nodes) of the training-form network, counted in floating point
    /// so that no configuration overflows: each conv's k*k*cin*cout + cout.
    pub fn size_estimate(&self) -> (f64, f64) {
        let conv = |cin: usize, cout: usize, k: usize| (k * k) as f64 * cin as f64 * cout as f64 + cout as f64;
        let (f, s, b) = (self.filters, self.scale, self.blocks as f64);
        let (wide, ch) = (self.wide(), self.channels);
        let (fixed, per_block) = match self.arch {
            Arch::Edsr => {
                let upsampler = if s == 4 {
                    2.0 * conv(f, f * 4, 3)
                } else {
                    conv(f, f.saturating_mul(s * s), 3)
                };
                (
                    conv(ch, f, 3) + conv(f, f, 3) + upsampler + conv(f, ch, 3),
                    2.0 * conv(f, f, 3),
                )
            }
            Arch::WdsrA => (
                conv(ch, ch * s * s, 5) + conv(ch, f, 3) + conv(f, ch * s * s, 3),
                conv(f, wide, 3) + conv(wide, f, 3),
            ),
            Arch::WdsrB => (
                conv(ch, ch * s * s, 5) + conv(ch, f, 3) + conv(f, ch * s * s, 3),
                conv(f, wide, 1) + self.conv.block_weights(f, wide, self.low_rank()),
            ),
        };
        // Weight norm or batch norm add a handful of ops per conv; 16 per block bounds both.
        (fixed + b * per_block, 32.0 + 16.0 * b)
    }

    /// Floats of activation one LR pixel of one image holds through the network: each
    /// block's conv and ReLU outputs, which the backward pass keeps.
    pub fn activations_per_pixel(&self) -> f64 {
        let (f, b) = (self.filters as f64, self.blocks as f64);
        let wide = self.wide() as f64;
        let per_block = match self.arch {
            Arch::Edsr => 4.0 * f,
            Arch::WdsrA => 2.0 * wide + 2.0 * f,
            Arch::WdsrB => 2.0 * wide + f + self.conv.block_activations(self.filters, self.wide(), self.low_rank()),
        };
        // The head, tail and upsampler: a few maps of the filters at up to s^2 the pixels.
        b * per_block + 4.0 * f * (self.scale * self.scale) as f64
    }

    /// The record of this configuration kept in every file srgraph writes.
    pub fn metadata(&self) -> Metadata {
        let mut m = vec![
            ("architecture", self.arch.name().to_string()),
            ("scale", self.scale.to_string()),
            ("blocks", self.blocks.to_string()),
            ("filters", self.filters.to_string()),
        ];
        if self.arch.is_wdsr() {
            m.push(("expansion", self.expansion.to_string()));
        }
        if self.arch == Arch::WdsrB {
            m.push(("linear", self.linear.to_string()));
        }
        if self.conv != ConvKind::LowRank {
            m.push(("conv", self.conv.name()));
        }
        // Written only where they differ from srgraph's own, so that older run folders
        // keep their identity.
        if let Some(w) = self.wide_feats {
            m.push(("wide_feats", w.to_string()));
        }
        if let Some(l) = self.low_rank_feats {
            m.push(("low_rank_feats", l.to_string()));
        }
        if self.pixel_mean != div2k_pixel_mean() {
            m.push(("pixel_mean", self.pixel_mean.map(|v| v.to_string()).join(",")));
        }
        if self.pixel_range != PIXEL_SCALE {
            m.push(("pixel_range", self.pixel_range.to_string()));
        }
        if self.channels != 3 {
            m.push(("channels", self.channels.to_string()));
        }
        m.extend([
            ("res_scale", self.res_scale.to_string()),
            ("normalisation", self.norm.name().to_string()),
            ("pixel_shuffle", self.shuffle.onnx_name().to_string()),
            ("seed", self.seed.to_string()),
        ]);
        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

impl ModelConfig {
    /// The configuration recorded in a file's metadata (`metadata` read back): what
    /// `srgraph export` and `--init` need to rebuild the network a model was made from.
    pub fn from_metadata(meta: &Metadata) -> Result<ModelConfig> {
        let get = |k: &str| meta.get(k);
        let arch = get("architecture").context(
            "it records no architecture in its metadata (not a model srgraph wrote); import the checkpoint it came \
             from with `srgraph import`",
        )?;
        let arch = Arch::parse(arch).with_context(|| format!("its metadata names an unknown architecture '{arch}'"))?;
        let mut c = ModelConfig::new(arch);
        macro_rules! field {
            ($key:literal, $field:expr) => {
                if let Some(v) = meta.parse($key)? {
                    $field = v;
                }
            };
        }
        field!("scale", c.scale);
        field!("blocks", c.blocks);
        field!("filters", c.filters);
        field!("expansion", c.expansion);
        field!("linear", c.linear);
        field!("res_scale", c.res_scale);
        field!("seed", c.seed);
        field!("pixel_range", c.pixel_range);
        field!("channels", c.channels);
        c.wide_feats = meta.parse("wide_feats")?;
        c.low_rank_feats = meta.parse("low_rank_feats")?;
        if let Some(v) = get("pixel_mean") {
            let m: Vec<f32> = v
                .split(',')
                .map(|x| {
                    x.trim()
                        .parse()
                        .map_err(|_| anyhow::anyhow!("its metadata has pixel_mean = '{x}', which is not a valid value"))
                })
                .collect::<Result<_>>()?;
            c.pixel_mean = m
                .try_into()
                .map_err(|_| anyhow::anyhow!("its metadata has pixel_mean = '{v}', not three numbers"))?;
        }
        if let Some(k) = get("conv") {
            c.conv = ConvKind::parse(k).context("its metadata's conv")?;
        }
        if let Some(n) = get("normalisation") {
            c.norm = Norm::parse(n).with_context(|| format!("its metadata names an unknown normalisation '{n}'"))?;
        }
        if let Some(s) = get("pixel_shuffle") {
            c.shuffle = match s {
                "CRD" | "crd" => ShuffleMode::Crd,
                "DCR" | "dcr" => ShuffleMode::Dcr,
                other => bail!("its metadata names an unknown pixel shuffle '{other}'"),
            };
        }
        c.validate()?;
        Ok(c)
    }
}

/// A built network: its graph (input `lr`, output `sr`) and, in training
/// mode, the new values of its buffers (batch norm's running statistics).
pub struct Network {
    pub graph: Graph,
    pub updates: Vec<(String, Outlet)>,
}

/// The network in its training form: parameters as they are trained (weight
/// norm's g and v), the mean shift as explicit ops, batch norm on running
/// statistics. Input `lr` [N, C, H, W] in [0, 255], output `sr` [N, C, sH, sW], C the
/// configuration's channels (3, or 1 for grey).
pub fn build(c: &ModelConfig) -> Result<Graph> {
    Ok(build_network(c, [Dim::sym("N"), Dim::sym("H"), Dim::sym("W")], false, false)?.graph)
}

/// As `build`, for a given (fixed or symbolic) batch and size; `training`
/// makes batch norm use batch statistics and report its running-statistic updates.
pub fn build_network(c: &ModelConfig, [n, h, w]: [Dim; 3], training: bool, dry: bool) -> Result<Network> {
    c.validate()?;
    let mut net = Net::new(c.seed, c.norm, c.shuffle);
    net.dry = dry;
    net.training = training;
    let lr = net.input("lr", Fact::f32(vec![n, Dim::Known(c.channels), h, w]));
    let mean = Tensor::f32(&[1, c.channels, 1, 1], c.channel_mean());
    let mean_in = net.g.constant("mean_shift.mean", mean.clone());
    let x = net.g.wire("mean_shift.sub", Op::Sub, &[lr, mean_in])?;
    let scale = net.g.constant("mean_shift.scale", Tensor::scalar(c.pixel_range));
    let x = net.g.wire("mean_shift.div", Op::Div, &[x, scale])?;
    let y = match c.arch {
        Arch::Edsr => edsr::edsr(&mut net, x, c)?,
        Arch::WdsrA | Arch::WdsrB => wdsr::wdsr(&mut net, x, c)?,
    };
    let y = net.g.wire("mean_shift.unscale", Op::Mul, &[y, scale])?;
    let mean_out = net.g.constant("mean_shift.mean_out", mean);
    let y = net.g.wire("mean_shift.add", Op::Add, &[y, mean_out])?;
    net.g.output("sr", y);
    Ok(Network {
        graph: net.g,
        updates: net.updates,
    })
}

/// One line that says what network a configuration is, for people.
pub fn describe(c: &ModelConfig) -> String {
    let mut s = format!(
        "{} x{}, {} blocks, {} filters",
        c.arch.name(),
        c.scale,
        c.blocks,
        c.filters
    );
    if c.arch.is_wdsr() {
        match c.wide_feats {
            Some(w) => s += &format!(", wide {w}"),
            None => s += &format!(", expansion {}", c.expansion),
        }
    }
    if c.arch == Arch::WdsrB && c.conv != ConvKind::LowRank {
        s += &format!(", {} conv", c.conv);
    } else if c.arch == Arch::WdsrB {
        match c.low_rank_feats {
            Some(l) => s += &format!(", low-rank {l}"),
            None => s += &format!(", linear {} ({} low-rank)", c.linear, c.low_rank()),
        }
    }
    if c.res_scale != 1.0 {
        s += &format!(", res-scale {}", c.res_scale);
    }
    if c.channels == 1 {
        s += ", 1 channel (grey)";
    }
    if c.pixel_range != PIXEL_SCALE || c.pixel_mean != div2k_pixel_mean() {
        s += &format!(", pixels (x - {:?}) / {}", c.pixel_mean, c.pixel_range);
    }
    s += &format!(
        ", {} norm, {} shuffle, seed {}",
        c.norm.name(),
        c.shuffle.onnx_name(),
        c.seed
    );
    s
}

/// Multiply-adds per LR pixel of the inference network: each conv's
/// filters x (input channels / group) x kernel taps, at its resolution.
pub fn multiply_adds_per_pixel(c: &ModelConfig) -> Result<f64> {
    const SIDE: usize = 8;
    let side = Dim::Known(SIDE);
    let g = build_network(c, [Dim::Known(1), side.clone(), side], false, true)?.graph;
    let mut total = 0.0;
    for n in &g.nodes {
        if !matches!(n.op, Op::Conv { .. }) {
            continue;
        }
        let known = |s: &[Dim]| s.iter().map(Dim::known).product::<Option<usize>>();
        let (w, y) = (&g.fact(n.inputs[1]).shape, &n.outputs[0].shape);
        let (Some(per_output), Some(outputs)) = (known(&w[1..]), known(y)) else {
            bail!("{}: a conv of unknown size", n.name)
        };
        total += (per_output * outputs) as f64;
    }
    Ok(total / (SIDE * SIDE) as f64)
}

/// Trainable parameters of a configuration, weight norm's g included.
pub fn param_count(c: &ModelConfig) -> Result<usize> {
    param_count_dry(c)
}

fn param_count_dry(c: &ModelConfig) -> Result<usize> {
    Ok(build_dry(c)?.param_count())
}

/// The training-form graph with zero parameters, for the names and shapes of its
/// parameters and buffers without drawing the initialisation (a second per 10^7 weights).
pub fn build_dry(c: &ModelConfig) -> Result<Graph> {
    Ok(build_network(c, [Dim::sym("N"), Dim::sym("H"), Dim::sym("W")], false, true)?.graph)
}
