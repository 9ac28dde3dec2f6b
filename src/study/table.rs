//! The study's table, as Markdown for people and CSV for programs.

use super::{paper_psnr, RunResult, StudyOptions};
use crate::models::Arch;

fn percent(x: f64, of: f64) -> String {
    format!("{:+.1}%", (x - of) / of * 100.0)
}

fn header(o: &StudyOptions) -> String {
    format!(
        "Trained {} steps each on {} (batch {}, HR patch {}, seed {}), validated on {} (PSNR on Y, shave {}, \
         as `srgraph eval` measures the saved model).\n\n",
        o.schedule.steps,
        o.data.data.display(),
        o.schedule.train.batch,
        o.schedule.train.patch,
        o.schedule.data_seed,
        o.val.display(),
        o.scale
    )
}

/// Per depth and network: parameters, PSNR with bicubic beside it, both relative to
/// EDSR at the same depth, and the paper's DIV2K x2 number (its own data and training).
pub fn blocks(o: &StudyOptions, results: &[RunResult]) -> (String, String) {
    let paper_applies = o.scale == 2 && !o.equal_params;
    let mut md = header(o);
    if o.equal_params {
        md.push_str("WDSR widths fitted to EDSR's parameter count at each depth (`--equal-params`).\n\n");
    }
    md.push_str(
        "| blocks | network | parameters | % parameter increase | PSNR-Y (dB) | bicubic (dB) | % PSNR improvement \
         | paper: DIV2K val x2 (dB) |\n|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut csv = String::from(
        "blocks,network,filters,expansion,parameters,param_increase_pct,psnr_y,bicubic_psnr_y,psnr_improvement_pct,\
         ssim_y,steps,paper_div2k_x2_psnr,run\n",
    );
    let mut depths: Vec<usize> = results.iter().map(|r| r.blocks).collect();
    depths.sort();
    depths.dedup();
    for b in depths {
        let row: Vec<&RunResult> = results.iter().filter(|r| r.blocks == b).collect();
        let edsr = row.iter().find(|r| r.arch == Arch::Edsr.name());
        for r in &row {
            let arch = Arch::parse(&r.arch);
            let paper = arch.and_then(|a| paper_psnr(a, b)).filter(|_| paper_applies);
            let (dp, dq) = match edsr {
                Some(e) if e.name != r.name => (percent(r.params as f64, e.params as f64), percent(r.psnr_y, e.psnr_y)),
                Some(_) => ("(reference)".into(), "(reference)".into()),
                None => ("-".into(), "-".into()),
            };
            md.push_str(&format!(
                "| {b} | {} | {} | {dp} | {:.3} | {:.3} | {dq} | {} |\n",
                display_name(&r.arch),
                crate::util::grouped(r.params),
                r.psnr_y,
                r.bicubic_psnr_y,
                paper.map_or("-".into(), |p| format!("{p:.3}"))
            ));
            csv.push_str(&format!(
                "{b},{},{},{},{},{},{:.4},{:.4},{},{:.5},{},{},{}\n",
                r.arch,
                r.filters,
                r.expansion,
                r.params,
                dp.trim_end_matches('%'),
                r.psnr_y,
                r.bicubic_psnr_y,
                dq.trim_end_matches('%'),
                r.ssim_y,
                r.steps,
                paper.map_or(String::new(), |p| format!("{p:.3}")),
                r.name
            ));
        }
    }
    if paper_applies {
        md.push_str(
            "\nThe last column is the paper's (Yu et al. 2018, DIV2K validation x2, RGB, trained to convergence on \
             DIV2K): a reference for the ordering, not comparable in value with this study's short runs.\n",
        );
    }
    (md, csv.replace("(reference)", "0.0"))
}

/// One row per normalisation.
pub fn norm(o: &StudyOptions, results: &[RunResult]) -> (String, String) {
    let mut md = header(o);
    md.push_str(
        "| network | blocks | normalisation | parameters | PSNR-Y (dB) | bicubic (dB) | gain over bicubic (dB) | final loss |\n\
         |---|---:|---|---:|---:|---:|---:|---:|\n",
    );
    let mut csv =
        String::from("network,blocks,normalisation,parameters,psnr_y,bicubic_psnr_y,ssim_y,last_loss,steps,run\n");
    for r in results {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.3} | {:.3} | {:+.3} | {:.4} |\n",
            display_name(&r.arch),
            r.blocks,
            r.norm,
            crate::util::grouped(r.params),
            r.psnr_y,
            r.bicubic_psnr_y,
            r.psnr_y - r.bicubic_psnr_y,
            r.last_loss
        ));
        csv.push_str(&format!(
            "{},{},{},{},{:.4},{:.4},{:.5},{},{},{}\n",
            r.arch, r.blocks, r.norm, r.params, r.psnr_y, r.bicubic_psnr_y, r.ssim_y, r.last_loss, r.steps, r.name
        ));
    }
    (md, csv)
}

pub fn display_name(arch: &str) -> String {
    match arch {
        "edsr" => "EDSR".into(),
        "wdsr-a" => "WDSR-A".into(),
        "wdsr-b" => "WDSR-B".into(),
        other => other.into(),
    }
}
