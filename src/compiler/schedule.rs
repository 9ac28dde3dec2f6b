//! Learning-rate schedules: the paper's step decay (halve every N steps), BasicSR's
//! multi-step decay (halve at given steps) and cosine annealing to zero, each after an
//! optional linear warm-up. A schedule is part of what a resumed run must share.

use crate::onnx::Metadata;
use anyhow::{bail, ensure, Context, Result};

#[derive(Clone, Debug, PartialEq)]
pub enum Decay {
    /// Halve every this many steps (EDSR's and WDSR's piecewise-constant decay).
    Halve { every: u64 },
    /// Halve at each of these steps (BasicSR's MultiStepLR with gamma 0.5).
    Milestones(Vec<u64>),
    /// From the base rate to zero along half a cosine over the steps after the warm-up.
    Cosine { steps: u64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub decay: Decay,
    /// Steps over which the rate rises linearly from base / warmup to base.
    pub warmup: u64,
}

impl Schedule {
    /// The paper's: halve every `every` steps, no warm-up.
    pub fn halving(every: u64) -> Schedule {
        Schedule {
            decay: Decay::Halve { every },
            warmup: 0,
        }
    }

    /// `--schedule step|multistep:S1,S2,...|cosine`, with `--halve-every`, `--warmup` and
    /// the run's `--steps` (which cosine annealing spans).
    pub fn parse(spec: &str, halve_every: u64, warmup: u64, steps: u64) -> Result<Schedule> {
        let decay = match spec.split_once(':') {
            None if spec == "step" => Decay::Halve { every: halve_every },
            None if spec == "cosine" => Decay::Cosine { steps },
            Some(("multistep", at)) => {
                let at: Vec<u64> = at
                    .split(',')
                    .map(|s| s.trim().parse::<u64>().with_context(|| format!("'{s}' is not a step")))
                    .collect::<Result<_>>()?;
                ensure!(
                    !at.is_empty() && at.windows(2).all(|w| w[0] < w[1]) && at[0] > 0,
                    "multistep needs increasing steps above 0, e.g. multistep:200000,400000"
                );
                Decay::Milestones(at)
            }
            _ => bail!("--schedule '{spec}' is not one of step, multistep:S1,S2,... or cosine"),
        };
        ensure!(halve_every >= 1, "--halve-every must be at least 1");
        if let Decay::Cosine { steps } = decay {
            ensure!(
                warmup < steps,
                "--warmup {warmup} leaves no steps of the {steps} to anneal over"
            );
        }
        Ok(Schedule { decay, warmup })
    }

    /// The rate of step `step` (counted from 1).
    pub fn rate(&self, base: f32, step: u64) -> f32 {
        let step = step.max(1);
        if step <= self.warmup {
            return base * step as f32 / self.warmup as f32;
        }
        let done = step - 1 - self.warmup;
        match &self.decay {
            Decay::Halve { every } => base * 0.5f32.powi(((step - 1) / (*every).max(1)) as i32),
            Decay::Milestones(at) => base * 0.5f32.powi(at.iter().filter(|&&m| step > m).count() as i32),
            Decay::Cosine { steps } => {
                let span = steps.saturating_sub(self.warmup).max(1) as f64;
                (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * done as f64 / span).cos())) as f32
            }
        }
    }

    /// What a resumed run must share. The paper's schedule is recorded as it always was
    /// (`halve_every`), so that older runs still resume.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut m = vec![];
        match &self.decay {
            Decay::Halve { every } => m.push(("halve_every".to_string(), every.to_string())),
            Decay::Milestones(at) => m.push((
                "schedule".to_string(),
                format!(
                    "multistep:{}",
                    at.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
                ),
            )),
            Decay::Cosine { steps } => m.push(("schedule".to_string(), format!("cosine over {steps} steps"))),
        }
        if self.warmup > 0 {
            m.push(("warmup".to_string(), self.warmup.to_string()));
        }
        m
    }

    /// The schedule a run recorded in its metadata (None if it recorded none srgraph knows).
    pub fn from_metadata(meta: &Metadata) -> Option<Schedule> {
        let get = |k: &str| meta.get(k);
        let warmup = get("warmup").and_then(|w| w.parse().ok()).unwrap_or(0);
        let decay = match (get("schedule"), get("halve_every")) {
            (Some(s), _) if s.starts_with("multistep:") => Decay::Milestones(
                s["multistep:".len()..]
                    .split(',')
                    .filter_map(|x| x.parse().ok())
                    .collect(),
            ),
            (Some(s), _) if s.starts_with("cosine over ") => Decay::Cosine {
                steps: s["cosine over ".len()..].trim_end_matches(" steps").parse().ok()?,
            },
            (None, Some(h)) => Decay::Halve { every: h.parse().ok()? },
            _ => return None,
        };
        Some(Schedule { decay, warmup })
    }

    /// For people: "halved every 200000", "cosine to 0 over 300000 steps after 1000 of warm-up".
    pub fn describe(&self) -> String {
        let d = match &self.decay {
            Decay::Halve { every } => format!("halved every {every}"),
            Decay::Milestones(at) => format!(
                "halved at steps {}",
                at.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ),
            Decay::Cosine { steps } => format!("cosine to 0 by step {steps}"),
        };
        if self.warmup > 0 {
            format!("{d}, after {} steps of linear warm-up", self.warmup)
        } else {
            d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_schedule_gives_the_reference_rates() -> Result<()> {
        let s = Schedule::parse("step", 100, 0, 1000)?;
        assert_eq!(
            [s.rate(1.0, 1), s.rate(1.0, 100), s.rate(1.0, 101), s.rate(1.0, 201)],
            [1.0, 1.0, 0.5, 0.25]
        );
        let m = Schedule::parse("multistep:10,20", 1, 0, 100)?;
        assert_eq!(
            [m.rate(2.0, 10), m.rate(2.0, 11), m.rate(2.0, 20), m.rate(2.0, 21)],
            [2.0, 1.0, 1.0, 0.5]
        );
        let c = Schedule::parse("cosine", 1, 10, 110)?;
        assert_eq!(
            [c.rate(1.0, 1), c.rate(1.0, 5), c.rate(1.0, 10)],
            [0.1, 0.5, 1.0],
            "the warm-up"
        );
        assert_eq!(c.rate(1.0, 11), 1.0, "annealing starts at the base rate");
        assert!((c.rate(1.0, 61) - 0.5).abs() < 1e-6, "half way: {}", c.rate(1.0, 61));
        assert!(c.rate(1.0, 110) < 0.001 && c.rate(1.0, 110) > 0.0);
        for s in [s, m, c] {
            assert_eq!(Schedule::from_metadata(&s.metadata().into()), Some(s.clone()));
        }
        assert!(Schedule::parse("multistep:20,10", 1, 0, 100).is_err());
        assert!(Schedule::parse("cosine", 1, 100, 100).is_err());
        assert!(Schedule::parse("linear", 1, 0, 100).is_err());
        Ok(())
    }
}
