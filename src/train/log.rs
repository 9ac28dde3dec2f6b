//! A run's `log.jsonl`: one line per step (loss, learning rate, seconds) and one per
//! validation (PSNR on Y and RGB, bicubic beside it, the raw weights' under EMA,
//! throughput, time left), read back for the curves and for resuming.

use anyhow::{Context, Result};
use std::path::Path;

/// The curves so far: read back from the log when a run resumes.
#[derive(Default)]
pub(super) struct History {
    pub losses: Vec<(u64, f32)>,
    pub psnr: Vec<(u64, f64, f64)>,
    /// The raw weights' PSNR beside an EMA model's: (step, dB).
    pub raw: Vec<(u64, f64)>,
}

impl History {
    /// The log's curves up to step `upto`; later lines (steps a resumed run redoes) are removed from the file.
    pub(super) fn load(path: &Path, upto: u64) -> Result<History> {
        if !path.exists() {
            return Ok(History::default());
        }
        let (h, kept) = parse_log(&std::fs::read_to_string(path)?, upto);
        crate::util::write_atomic(path, kept.as_bytes())?;
        Ok(h)
    }
}

/// (step, loss) of each step.
pub type Losses = Vec<(u64, f32)>;
/// (step, model PSNR, bicubic PSNR) of each validation.
pub type Validations = Vec<(u64, f64, f64)>;

/// A run's `log.jsonl`: (step, loss) every step and (step, model PSNR, bicubic PSNR) at each validation.
pub fn read_log(path: &Path) -> Result<(Losses, Validations)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (h, _) = parse_log(&text, u64::MAX);
    Ok((h.losses, h.psnr))
}

/// The curves of the lines up to step `upto`, and those lines.
fn parse_log(text: &str, upto: u64) -> (History, String) {
    let mut h = History::default();
    let mut kept = String::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(step) = v["step"].as_u64().filter(|&s| s <= upto) else {
            continue;
        };
        kept.push_str(line);
        kept.push('\n');
        if let Some(loss) = v["loss"].as_f64() {
            // A step logged twice (a crash between write and checkpoint) counts once.
            if h.losses.last().is_some_and(|l| l.0 == step) {
                h.losses.pop();
            }
            h.losses.push((step, loss as f32));
        }
        if let (Some(p), Some(b)) = (v["val_psnr"].as_f64(), v["bicubic_psnr"].as_f64()) {
            if h.psnr.last().is_some_and(|x| x.0 == step) {
                h.psnr.pop();
            }
            h.psnr.push((step, p, b));
        }
        if let Some(r) = v["val_psnr_raw"].as_f64() {
            if h.raw.last().is_some_and(|x| x.0 == step) {
                h.raw.pop();
            }
            h.raw.push((step, r));
        }
    }
    (h, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_gives_losses_validations_and_the_raw_weights_psnr_up_to_a_step() {
        let log = "{\"step\":1,\"loss\":5.0}\n{\"step\":2,\"loss\":4.0}\n\
                   {\"step\":2,\"val_psnr\":30.0,\"bicubic_psnr\":29.0,\"val_psnr_raw\":31.0}\n\
                   {\"step\":3,\"loss\":3.0}\nnot json\n";
        let (h, kept) = parse_log(log, 2);
        assert_eq!(h.losses, vec![(1, 5.0), (2, 4.0)]);
        assert_eq!(h.psnr, vec![(2, 30.0, 29.0)]);
        assert_eq!(h.raw, vec![(2, 31.0)]);
        assert_eq!(kept.lines().count(), 3, "lines past step 2 and bad lines are dropped");
    }
}
