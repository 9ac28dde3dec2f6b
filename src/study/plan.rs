//! The study's runs: which networks each study trains, at what widths, and the
//! paper's numbers they are set beside.

use super::RunSpec;
use crate::models::{self, fit_budget, param_count, Arch, ConvKind, ModelConfig, Norm};
use anyhow::{ensure, Context, Result};

/// Whether two configurations are the same network (widths, depth, scale, channels, norm,
/// shuffle), whatever their seeds and mean shifts.
pub fn same_network(a: &ModelConfig, b: &ModelConfig) -> bool {
    (
        a.arch,
        a.scale,
        a.channels,
        a.blocks,
        a.filters,
        a.wide(),
        a.norm,
        a.shuffle,
        a.conv,
    ) == (
        b.arch,
        b.scale,
        b.channels,
        b.blocks,
        b.filters,
        b.wide(),
        b.norm,
        b.shuffle,
        b.conv,
    ) && (a.arch != Arch::WdsrB || a.low_rank() == b.low_rank())
}

/// The paper's DIV2K validation x2 PSNR for its block study (DESIGN.md).
pub fn paper_psnr(arch: Arch, blocks: usize) -> Option<f64> {
    let row = match blocks {
        1 => [33.210, 33.323, 33.434],
        3 => [34.043, 34.163, 34.205],
        5 => [34.284, 34.388, 34.409],
        8 => [34.457, 34.541, 34.536],
        _ => return None,
    };
    Some(row[Arch::ALL.iter().position(|&a| a == arch)?])
}

/// The study's network for `arch` at `blocks`: the `study-ARCH-BLOCKS` preset,
/// or the widths of `study-ARCH-1` at another depth, for pictures of `channels`.
fn study_config(arch: Arch, blocks: usize, scale: usize, channels: usize) -> Result<ModelConfig> {
    let preset = models::preset(&format!("study-{}-{blocks}", arch.name()))?
        .or(models::preset(&format!("study-{}-1", arch.name()))?)
        .context("the study presets are missing from graphs/")?;
    let c = ModelConfig {
        blocks,
        scale,
        channels,
        ..preset.config()?
    };
    c.validate()?;
    Ok(c)
}

/// Runs of the block study, EDSR first at each depth (the reference of its row).
/// With `equal_params`, WDSR's width is fitted to EDSR's parameter count at that depth.
pub fn plan_blocks(
    archs: &[Arch],
    blocks: &[usize],
    scale: usize,
    channels: usize,
    equal_params: bool,
) -> Result<Vec<RunSpec>> {
    ensure!(
        !archs.is_empty() && !blocks.is_empty(),
        "a study needs architectures and block counts"
    );
    let mut runs = vec![];
    for &b in blocks {
        ensure!(b >= 1, "block counts start at 1");
        let budget = param_count(&study_config(Arch::Edsr, b, scale, channels)?)?;
        for &arch in archs {
            let mut c = study_config(arch, b, scale, channels)?;
            if equal_params && arch != Arch::Edsr {
                c = fit_budget(&c, budget, true, 4)
                    .with_context(|| format!("fitting {} with {b} blocks to EDSR's {budget} parameters", arch.name()))?
                    .config;
            }
            runs.push(RunSpec {
                name: format!("{}-b{b}", arch.name()),
                config: c,
            });
        }
    }
    Ok(runs)
}

/// Runs of the normalisation study: one architecture, one depth, each normalisation.
pub fn plan_norm(arch: Arch, blocks: usize, norms: &[Norm], scale: usize, channels: usize) -> Result<Vec<RunSpec>> {
    ensure!(!norms.is_empty(), "a study needs normalisations");
    norms
        .iter()
        .map(|&norm| {
            Ok(RunSpec {
                name: format!("{}-b{blocks}-{}", arch.name(), norm.name()),
                config: ModelConfig {
                    norm,
                    ..study_config(arch, blocks, scale, channels)?
                },
            })
        })
        .collect()
}

/// Runs of the convolution study: WDSR-B at one depth with each block kind, the
/// others' widths fitted to the low-rank block's parameter count, to the channel (as
/// `--equal-params` does otherwise: the expansion stays WDSR-B's 6 where some width
/// hits the count within 1%, and moves the least it must where none does).
pub fn plan_conv(kinds: &[ConvKind], blocks: usize, scale: usize, channels: usize) -> Result<Vec<RunSpec>> {
    ensure!(!kinds.is_empty(), "a study needs convolution kinds");
    ensure!(blocks >= 1, "block counts start at 1");
    let base = study_config(Arch::WdsrB, blocks, scale, channels)?;
    let budget = param_count(&base)?;
    kinds
        .iter()
        .map(|&conv| {
            let mut c = ModelConfig { conv, ..base.clone() };
            if conv != ConvKind::LowRank {
                c = fit_budget(&c, budget, true, 1)
                    .with_context(|| {
                        format!("fitting WDSR-B's {conv} block with {blocks} blocks to the low-rank block's {budget} parameters")
                    })?
                    .config;
            }
            Ok(RunSpec {
                name: format!("wdsr-b-b{blocks}-{}", conv.name().replace(':', "")),
                config: c,
            })
        })
        .collect()
}
