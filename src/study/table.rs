//! The study's table, as Markdown for people and CSV for programs.

use super::{paper_psnr, RunResult, StudyOptions};
use crate::models::Arch;

fn percent(x: f64, of: f64) -> String {
    format!("{:+.1}%", (x - of) / of * 100.0)
}

fn header(o: &StudyOptions) -> String {
    let channels = if o.channels == 1 {
        "Single-channel networks (`--channels 1`): trained on the luma (BT.601 Y) of the training pictures and \
         scored on that of the validation pictures.\n\n"
    } else {
        ""
    };
    let trained = format!(
        "Trained {} steps each on {} (batch {}, HR patch {}, seed {}), validated on {} (PSNR on Y, shave {}, \
         as `srgraph eval` measures the saved model).\n\n",
        o.schedule.steps,
        o.data.data.display(),
        o.schedule.train.batch,
        o.schedule.train.patch,
        o.schedule.data_seed,
        o.val.display(),
        o.scale
    );
    format!("{trained}{channels}")
}

/// Per depth and network: parameters, PSNR with bicubic beside it, both relative to
/// EDSR at the same depth, and the paper's DIV2K x2 number (its own data and training).
pub fn blocks(o: &StudyOptions, results: &[RunResult]) -> (String, String) {
    // The paper's numbers are RGB networks' at x2 and their own widths.
    let paper_applies = o.scale == 2 && !o.equal_params && o.channels == 3;
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
         ssim_y,steps,paper_div2k_x2_psnr,channels,run\n",
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
                "{b},{},{},{},{},{},{:.4},{:.4},{},{:.5},{},{},{},{}\n",
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
                r.channels,
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
    let mut csv = String::from(
        "network,blocks,normalisation,parameters,psnr_y,bicubic_psnr_y,ssim_y,last_loss,steps,channels,run\n",
    );
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
            "{},{},{},{},{:.4},{:.4},{:.5},{},{},{},{}\n",
            r.arch,
            r.blocks,
            r.norm,
            r.params,
            r.psnr_y,
            r.bicubic_psnr_y,
            r.ssim_y,
            r.last_loss,
            r.steps,
            r.channels,
            r.name
        ));
    }
    (md, csv)
}

/// One row per block kind: cost (parameters, multiply-adds, time), quality (PSNR-Y
/// with bicubic beside it, the difference from the low-rank block) and what passes
/// the ReLUs (the paper's argument: the share of zeros, and of channels dead on a picture).
pub fn conv(o: &StudyOptions, results: &[RunResult]) -> (String, String) {
    let mut md = header(o);
    md.push_str(
        "Each block kind's width fitted to the low-rank block's parameter count (WDSR-B's expansion 6 kept where a \
         width comes within 1% of it). ReLU columns, on the centre 128 x 128 of the first validation picture, \
         averaged over the residual blocks: the share of ReLU outputs that are zero, their mean (the activation's \
         magnitude), and the share of ReLU channels that are zero everywhere on it.\n\n\
         | block | filters | expansion | parameters | multiply-adds / LR pixel | PSNR-Y (dB) | bicubic (dB) | vs low-rank (dB) \
         | SSIM-Y | ReLU zeros | ReLU mean | dead channels | ms / step |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut csv = String::from(
        "conv,blocks,filters,expansion,parameters,multiply_adds_per_pixel,psnr_y,bicubic_psnr_y,vs_low_rank_db,ssim_y,\
         relu_zero_share,relu_mean,dead_channel_share,ms_per_step,steps,channels,run\n",
    );
    let reference = results.iter().find(|r| r.conv == "low-rank").map(|r| r.psnr_y);
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    for r in results {
        let delta = reference.map(|p| r.psnr_y - p);
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {} | {:.4} | {} | {} | {} | {} |\n",
            r.conv,
            r.filters,
            r.expansion,
            crate::util::grouped(r.params),
            crate::util::grouped(r.multiply_adds.round() as usize),
            r.psnr_y,
            r.bicubic_psnr_y,
            opt(delta, &|d| format!("{d:+.3}")),
            r.ssim_y,
            opt(r.relu.map(|a| a.zero_share), &|z| format!("{:.1}%", 100.0 * z)),
            opt(r.relu.map(|a| a.mean), &|m| format!("{m:.4}")),
            opt(r.relu.map(|a| a.dead_channel_share), &|z| format!("{:.1}%", 100.0 * z)),
            opt(r.ms_per_step, &|t| format!("{t:.0}")),
        ));
        let raw = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
        csv.push_str(&format!(
            "{},{},{},{},{},{:.0},{:.4},{:.4},{},{:.5},{},{},{},{},{},{},{}\n",
            r.conv,
            r.blocks,
            r.filters,
            r.expansion,
            r.params,
            r.multiply_adds,
            r.psnr_y,
            r.bicubic_psnr_y,
            raw(delta),
            r.ssim_y,
            raw(r.relu.map(|a| a.zero_share)),
            raw(r.relu.map(|a| a.mean)),
            raw(r.relu.map(|a| a.dead_channel_share)),
            raw(r.ms_per_step),
            r.steps,
            r.channels,
            r.name
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
