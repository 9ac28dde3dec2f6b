//! A run's `log.jsonl`: one line per step (loss, learning rate, seconds) and one per
//! validation (PSNR on Y and RGB, bicubic beside it, the raw weights' under EMA,
//! throughput, time left), written and read back (for the curves and for resuming)
//! as the one type `LogLine`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// One line of the log. The fields a line was first written without read back as
/// their defaults, so the logs of earlier versions still read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LogLine {
    Step(StepLine),
    Validation(ValidationLine),
}

/// A training step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLine {
    pub step: u64,
    pub loss: f32,
    #[serde(default)]
    pub lr: f32,
    /// Since the (resumed) run started.
    #[serde(default)]
    pub seconds: f64,
}

/// A validation: mean PSNRs in dB, then how fast the run goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationLine {
    pub step: u64,
    pub val_psnr: f64,
    #[serde(default)]
    pub val_psnr_rgb: f64,
    pub bicubic_psnr: f64,
    #[serde(default)]
    pub bicubic_psnr_rgb: f64,
    /// The raw weights' PSNR-Y beside an EMA model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_psnr_raw: Option<f64>,
    #[serde(default)]
    pub steps_per_s: f64,
    #[serde(default)]
    pub pictures_per_s: f64,
    #[serde(default)]
    pub eta_s: u64,
}

/// `x` to `decimals` decimals: the precision the log keeps.
pub fn rounded(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

impl LogLine {
    pub fn step(&self) -> u64 {
        match self {
            LogLine::Step(s) => s.step,
            LogLine::Validation(v) => v.step,
        }
    }

    /// Appends the line to the log.
    pub fn write(&self, to: &mut dyn Write) -> Result<()> {
        writeln!(to, "{}", serde_json::to_string(self)?)?;
        Ok(())
    }
}

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

    /// Adds a line's points; a step logged twice (a crash between write and checkpoint) counts once.
    pub(super) fn push(&mut self, line: &LogLine) {
        fn replace<T>(points: &mut Vec<T>, step: u64, point: T, at: impl Fn(&T) -> u64) {
            if points.last().is_some_and(|p| at(p) == step) {
                points.pop();
            }
            points.push(point);
        }
        match line {
            LogLine::Step(s) => replace(&mut self.losses, s.step, (s.step, s.loss), |p| p.0),
            LogLine::Validation(v) => {
                replace(&mut self.psnr, v.step, (v.step, v.val_psnr, v.bicubic_psnr), |p| p.0);
                if let Some(r) = v.val_psnr_raw {
                    replace(&mut self.raw, v.step, (v.step, r), |p| p.0);
                }
            }
        }
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
        let Ok(record) = serde_json::from_str::<LogLine>(line) else {
            continue;
        };
        if record.step() > upto {
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
        h.push(&record);
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

    #[test]
    fn lines_are_written_with_the_fields_in_the_log_s_order_and_read_back() {
        let step = LogLine::Step(StepLine {
            step: 3,
            loss: 0.25,
            lr: 0.001,
            seconds: 1.5,
        });
        let validation = LogLine::Validation(ValidationLine {
            step: 3,
            val_psnr: 30.5,
            val_psnr_rgb: 28.25,
            bicubic_psnr: 29.0,
            bicubic_psnr_rgb: 27.0,
            val_psnr_raw: None,
            steps_per_s: 2.5,
            pictures_per_s: 40.0,
            eta_s: 12,
        });
        let (mut a, mut b) = (vec![], vec![]);
        step.write(&mut a).unwrap();
        validation.write(&mut b).unwrap();
        let (a, b) = (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        assert_eq!(a, "{\"step\":3,\"loss\":0.25,\"lr\":0.001,\"seconds\":1.5}\n");
        assert_eq!(
            b,
            "{\"step\":3,\"val_psnr\":30.5,\"val_psnr_rgb\":28.25,\"bicubic_psnr\":29.0,\"bicubic_psnr_rgb\":27.0,\
             \"steps_per_s\":2.5,\"pictures_per_s\":40.0,\"eta_s\":12}\n"
        );
        assert_eq!(serde_json::from_str::<LogLine>(&a).unwrap(), step);
        assert_eq!(serde_json::from_str::<LogLine>(&b).unwrap(), validation);
    }
}
