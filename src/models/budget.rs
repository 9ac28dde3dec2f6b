//! Choosing a width for a parameter budget: the paper compares networks at equal
//! parameter counts, so `--params 600k` picks the filters (and, for WDSR, the
//! expansion unless it is given) whose count comes closest.

use super::{param_count_dry, ModelConfig};
use anyhow::{bail, ensure, Context, Result};

pub struct BudgetFit {
    pub config: ModelConfig,
    pub params: usize,
}

/// Budgets further than this from every reachable count are refused.
const TOLERANCE: f64 = 0.10;

pub fn fit_budget(base: &ModelConfig, budget: usize, vary_expansion: bool) -> Result<BudgetFit> {
    ensure!(budget > 0, "a parameter budget must be positive");
    let expansions: Vec<usize> = if base.arch.is_wdsr() && vary_expansion {
        (1..=8).collect()
    } else {
        vec![base.expansion]
    };
    let mut best: Option<BudgetFit> = None;
    for &e in &expansions {
        for f in (4..=512).step_by(4) {
            let c = ModelConfig {
                filters: f,
                expansion: e,
                ..base.clone()
            };
            if c.validate().is_err() {
                continue;
            }
            let n = param_count_dry(&c)?;
            if best
                .as_ref()
                .is_none_or(|b| n.abs_diff(budget) < b.params.abs_diff(budget))
            {
                best = Some(BudgetFit {
                    config: c,
                    params: n,
                });
            }
            if n > 2 * budget {
                break;
            }
        }
    }
    let best = best.context("no width gives a valid network")?;
    let miss = best.params.abs_diff(budget) as f64 / budget as f64;
    if miss > TOLERANCE {
        bail!(
            "no width reaches a budget of {budget} parameters for {} with {} blocks at x{}: the closest is {} (filters {}{}), {:.0}% off",
            base.arch.name(),
            base.blocks,
            base.scale,
            best.params,
            best.config.filters,
            if base.arch.is_wdsr() { format!(", expansion {}", best.config.expansion) } else { String::new() },
            miss * 100.0
        );
    }
    Ok(best)
}

/// "600k", "1.2M", "600000" -> a count.
pub fn parse_count(s: &str) -> Result<usize> {
    let t = s.trim();
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .with_context(|| format!("'{s}' is not a parameter count (try 600k, 1.2M or 600000)"))?;
    ensure!(
        v.is_finite() && v > 0.0,
        "'{s}' is not a positive parameter count"
    );
    Ok((v * mul).round() as usize)
}
