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
/// Any width this close counts as a hit; among hits, the expansion nearest the
/// configured one wins, so WDSR keeps its wide activation when it can.
const HIT: f64 = 0.01;

/// Filters are tried in steps of `filter_step` (4 keeps widths SIMD-friendly; 1
/// fits kinds whose count grows fast with the width, such as the flattened block).
pub fn fit_budget(base: &ModelConfig, budget: usize, vary_expansion: bool, filter_step: usize) -> Result<BudgetFit> {
    ensure!(budget > 0, "a parameter budget must be positive");
    let expansions: Vec<usize> = if base.arch.is_wdsr() && vary_expansion {
        (1..=8).collect()
    } else {
        vec![base.expansion]
    };
    let mut best: Option<BudgetFit> = None;
    for &e in &expansions {
        for f in (filter_step.max(1)..=512).step_by(filter_step.max(1)) {
            let c = ModelConfig {
                filters: f,
                expansion: e,
                ..base.clone()
            };
            if c.validate().is_err() {
                continue;
            }
            let candidate = BudgetFit {
                params: param_count_dry(&c)?,
                config: c,
            };
            let rank = |fit: &BudgetFit| {
                let miss = fit.params.abs_diff(budget) as f64 / budget as f64;
                (
                    miss > HIT,
                    fit.config.expansion.abs_diff(base.expansion),
                    fit.params.abs_diff(budget),
                )
            };
            let n = candidate.params;
            if best.as_ref().is_none_or(|b| rank(&candidate) < rank(b)) {
                best = Some(candidate);
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
    ensure!(v.is_finite() && v > 0.0, "'{s}' is not a positive parameter count");
    Ok((v * mul).round() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Arch;

    #[test]
    fn counts_parse_with_suffixes() -> Result<()> {
        assert_eq!(parse_count("600k")?, 600_000);
        assert_eq!(parse_count("1.2M")?, 1_200_000);
        assert_eq!(parse_count("779011")?, 779_011);
        assert!(parse_count("-3k").is_err() && parse_count("many").is_err() && parse_count("").is_err());
        Ok(())
    }

    #[test]
    fn wdsr_keeps_its_expansion_when_a_width_hits_the_budget() -> Result<()> {
        let base = ModelConfig {
            blocks: 8,
            ..ModelConfig::new(Arch::WdsrA)
        };
        let fit = fit_budget(&base, 600_000, true, 4)?;
        assert_eq!(
            fit.config.expansion, 4,
            "chose filters {} e {}",
            fit.config.filters, fit.config.expansion
        );
        assert!(fit.params.abs_diff(600_000) <= 6_000, "{}", fit.params);
        Ok(())
    }
}
