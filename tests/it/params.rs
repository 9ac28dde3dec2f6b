//! Parameter counts against DESIGN.md's table (the paper's 0.26/0.41/0.56/0.78M
//! for EDSR and 0.08/0.23/0.37/0.60M for WDSR-A), counted from the built graph.

use srgraph::models::{param_count, Arch, ModelConfig, Norm};

fn count(arch: Arch, scale: usize, blocks: usize, filters: usize, expansion: usize) -> usize {
    let c = ModelConfig {
        scale,
        blocks,
        filters,
        expansion,
        ..ModelConfig::new(arch)
    };
    param_count(&c).unwrap()
}

#[test]
fn edsr_f64_seed_study_x2() {
    let got: Vec<usize> = [1, 3, 5, 8].iter().map(|&b| count(Arch::Edsr, 2, b, 64, 1)).collect();
    assert_eq!(got, [262_019, 409_731, 557_443, 779_011]);
}

#[test]
fn edsr_f64_one_block_x4() {
    assert_eq!(count(Arch::Edsr, 4, 1, 64, 1), 409_731);
}

#[test]
fn wdsr_a_f32_e4_seed_study_x2() {
    let got: Vec<usize> = [1, 3, 5, 8].iter().map(|&b| count(Arch::WdsrA, 2, b, 32, 4)).collect();
    assert_eq!(got, [79_380, 227_476, 375_572, 597_716]);
}

#[test]
fn wdsr_b_f64_e6_reaches_the_papers_counts_x2() {
    let got: Vec<usize> = [1, 3, 5, 8].iter().map(|&b| count(Arch::WdsrB, 2, b, 64, 6)).collect();
    assert_eq!(got, [84_250, 233_318, 382_386, 605_988]);
}

#[test]
fn seed_reproduction_table_x4() {
    // With weight norm's g, and without it (the paper's reproduction table counts g out).
    assert_eq!(count(Arch::WdsrA, 4, 1, 32, 4), 92_592);
    assert_eq!(count(Arch::WdsrB, 4, 1, 32, 6), 37_186);
    let no_g = |arch, e| {
        param_count(&ModelConfig {
            scale: 4,
            blocks: 1,
            filters: 32,
            expansion: e,
            norm: Norm::None,
            ..ModelConfig::new(arch)
        })
        .unwrap()
    };
    assert_eq!(no_g(Arch::WdsrA, 4), 92_304);
    assert_eq!(no_g(Arch::WdsrB, 6), 36_809);
}

#[test]
fn edsr_baseline_is_1_37m() {
    assert_eq!(count(Arch::Edsr, 2, 16, 64, 1), 1_369_859);
}

#[test]
fn budget_solver_finds_the_paper_widths() {
    use srgraph::models::fit_budget;
    // EDSR with 8 blocks at a 780k budget: the study's 64 filters.
    let base = ModelConfig {
        blocks: 8,
        ..ModelConfig::new(Arch::Edsr)
    };
    let fit = fit_budget(&base, 779_011, false, 4).unwrap();
    assert_eq!((fit.config.filters, fit.params), (64, 779_011));
    // WDSR-A, 8 blocks, expansion held at 4: 32 filters for 598k.
    let base = ModelConfig {
        blocks: 8,
        ..ModelConfig::new(Arch::WdsrA)
    };
    let fit = fit_budget(&base, 597_716, false, 4).unwrap();
    assert_eq!((fit.config.filters, fit.config.expansion), (32, 4));
    // Unreachable budgets are refused, not approximated wildly.
    assert!(fit_budget(&base, 100, true, 4).is_err());
}
