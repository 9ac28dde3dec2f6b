//! How WDSR-B's block narrows its wide activation back to the block's width: the
//! efficient convolutions the WDSR paper compares at equal parameters (its section
//! on linear low-rank convolution). Each keeps the 1x1 expansion and the ReLU on
//! the wide features; they differ in what follows it.

use anyhow::{bail, ensure, Context, Result};
use std::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvKind {
    /// WDSR-B's own: 1x1 wide -> low-rank (linear), then 3x3 low-rank -> filters.
    #[default]
    LowRank,
    /// The low-rank block with its 3x3 flattened (Jin et al. 2014): 1x1 wide -> low-rank,
    /// 3x1 low-rank -> low-rank, 1x3 low-rank -> filters.
    Flattened,
    /// Group convolution: 3x3 wide -> filters in G groups, then 1x1 filters -> filters
    /// to mix the groups.
    Group(usize),
    /// Depthwise separable convolution (Chollet 2017): 3x3 depthwise on the wide
    /// features, then 1x1 wide -> filters.
    Depthwise,
    /// MobileNetV2's inverted residual (Sandler et al. 2018): the depthwise block with
    /// a ReLU after the depthwise conv too (expand, ReLU, depthwise, ReLU, project).
    InvertedResidual,
}

impl ConvKind {
    /// The kinds the `study conv` compares, with G = 4 for group convolution.
    pub const STUDY: [ConvKind; 5] = [
        ConvKind::LowRank,
        ConvKind::Flattened,
        ConvKind::Group(4),
        ConvKind::Depthwise,
        ConvKind::InvertedResidual,
    ];

    /// The name `--conv` takes and metadata records: low-rank, flattened, group:G,
    /// depthwise, inverted-residual.
    pub fn name(self) -> String {
        match self {
            ConvKind::LowRank => "low-rank".into(),
            ConvKind::Flattened => "flattened".into(),
            ConvKind::Group(g) => format!("group:{g}"),
            ConvKind::Depthwise => "depthwise".into(),
            ConvKind::InvertedResidual => "inverted-residual".into(),
        }
    }

    pub fn parse(s: &str) -> Result<ConvKind> {
        Ok(match s {
            "low-rank" => ConvKind::LowRank,
            "flattened" => ConvKind::Flattened,
            "depthwise" => ConvKind::Depthwise,
            "inverted-residual" => ConvKind::InvertedResidual,
            _ => {
                let Some(g) = s.strip_prefix("group:") else {
                    bail!(
                        "'{s}' is not a convolution kind: use low-rank, flattened, group:G (e.g. group:4), depthwise or \
                         inverted-residual"
                    )
                };
                let g: usize = g.parse().ok().filter(|&g| g >= 2).with_context(|| {
                    format!("'{s}': the group count must be a whole number of at least 2, as in group:4")
                })?;
                ConvKind::Group(g)
            }
        })
    }

    /// Whether the block uses WDSR-B's low-rank width (`--linear`).
    pub fn uses_low_rank(self) -> bool {
        matches!(self, ConvKind::LowRank | ConvKind::Flattened)
    }

    /// Widths this kind can split: group convolution needs both sides divisible by G.
    pub fn check(self, filters: usize, wide: usize) -> Result<()> {
        if let ConvKind::Group(g) = self {
            ensure!(
                filters.is_multiple_of(g) && wide.is_multiple_of(g),
                "group:{g} splits the {wide} wide and {filters} filter channels into {g} groups, so both must be \
                 multiples of {g}: choose --filters (and --expansion) to suit, or another group count"
            );
        }
        Ok(())
    }

    /// Weights of one block's convs (biases included) after the expansion, for
    /// `filters` f, `wide` w and low-rank width `low`.
    pub fn block_weights(self, f: usize, wide: usize, low: usize) -> f64 {
        let conv = |cin: usize, cout: usize, taps: usize, group: usize| {
            (taps * (cin / group)) as f64 * cout as f64 + cout as f64
        };
        match self {
            ConvKind::LowRank => conv(wide, low, 1, 1) + conv(low, f, 9, 1),
            ConvKind::Flattened => conv(wide, low, 1, 1) + conv(low, low, 3, 1) + conv(low, f, 3, 1),
            ConvKind::Group(g) => conv(wide, f, 9, g) + conv(f, f, 1, 1),
            ConvKind::Depthwise | ConvKind::InvertedResidual => conv(wide, wide, 9, wide) + conv(wide, f, 1, 1),
        }
    }

    /// Floats of activation per LR pixel the block's convs after the expansion keep.
    pub fn block_activations(self, f: usize, wide: usize, low: usize) -> f64 {
        let (f, wide, low) = (f as f64, wide as f64, low as f64);
        match self {
            ConvKind::LowRank => low + f,
            ConvKind::Flattened => 2.0 * low + f,
            ConvKind::Group(_) => 2.0 * f,
            ConvKind::Depthwise => wide + f,
            ConvKind::InvertedResidual => 2.0 * wide + f,
        }
    }
}

impl fmt::Display for ConvKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() -> Result<()> {
        for k in ConvKind::STUDY
            .into_iter()
            .chain([ConvKind::Group(2), ConvKind::Group(16)])
        {
            assert_eq!(ConvKind::parse(&k.name())?, k);
        }
        for bad in ["group", "group:1", "group:x", "lowrank", ""] {
            assert!(ConvKind::parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod counts {
    use crate::models::{multiply_adds_per_pixel, param_count, Arch, ConvKind, ModelConfig, Norm};
    use anyhow::Result;

    /// The block's closed-form count (what `--params` fitting and the size checks
    /// use) is the built graph's, for every kind; and without weight norm each weight
    /// is used once per LR pixel, so multiply-adds equal the weights less the biases.
    #[test]
    fn closed_form_counts_match_the_built_graph() -> Result<()> {
        for channels in [3, 1] {
            for conv in ConvKind::STUDY.into_iter().chain([ConvKind::Group(8)]) {
                let c = ModelConfig {
                    blocks: 3,
                    filters: 16,
                    expansion: 4,
                    norm: Norm::None,
                    conv,
                    channels,
                    ..ModelConfig::new(Arch::WdsrB)
                };
                let params = param_count(&c)?;
                assert_eq!(c.size_estimate().0 as usize, params, "{conv}, {channels} channels");
                // Head (16), skip and tail (channels x 2 x 2 each) and the blocks.
                let biases = 16 + 8 * channels + c.blocks_biases();
                assert_eq!(multiply_adds_per_pixel(&c)? as usize, params - biases, "{conv}");
            }
        }
        Ok(())
    }

    /// EDSR and WDSR-A's closed forms too, RGB and grey, at every scale.
    #[test]
    fn closed_form_counts_match_for_every_architecture_and_channel_count() -> Result<()> {
        for arch in Arch::ALL {
            for (channels, scale) in [(3, 2), (1, 2), (1, 3), (1, 4)] {
                let c = ModelConfig {
                    blocks: 2,
                    filters: 8,
                    expansion: 2,
                    norm: Norm::None,
                    scale,
                    channels,
                    ..ModelConfig::new(arch)
                };
                let params = param_count(&c)?;
                let name = arch.name();
                assert_eq!(
                    c.size_estimate().0 as usize,
                    params,
                    "{name} x{scale}, {channels} channels"
                );
            }
        }
        Ok(())
    }

    impl ModelConfig {
        /// Biases of the residual blocks' convs.
        fn blocks_biases(&self) -> usize {
            let (f, wide, low) = (self.filters, self.wide(), self.low_rank());
            let per_block = wide
                + match self.conv {
                    ConvKind::LowRank => low + f,
                    ConvKind::Flattened => 2 * low + f,
                    ConvKind::Group(_) => 2 * f,
                    ConvKind::Depthwise | ConvKind::InvertedResidual => wide + f,
                };
            self.blocks * per_block
        }
    }
}
