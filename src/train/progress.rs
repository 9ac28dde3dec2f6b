//! A run's progress on stderr: a bar on a terminal; without one (nohup, CI, a Slurm
//! log) a line every `every` steps or every 30 s, whichever comes first, and at the
//! last step, as cargo and pip do; nothing under `--quiet`.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Without a terminal, a line at most this long after the last one.
const LINE_EVERY: Duration = Duration::from_secs(30);
/// Without a terminal, a line every this fraction of the run's steps.
const LINES_PER_RUN: u64 = 20;

pub(super) enum Progress {
    Hidden,
    Bar(ProgressBar),
    Lines(Lines),
}

pub(super) struct Lines {
    steps: u64,
    every: u64,
    /// The step training began after, and when.
    start: u64,
    began: Instant,
    last_line: Instant,
}

impl Progress {
    pub fn hidden() -> Progress {
        Progress::Hidden
    }

    /// Progress from step `start` to `steps`, shown unless `shown` is false.
    pub fn new(shown: bool, steps: u64, start: u64) -> Progress {
        if !shown {
            return Progress::Hidden;
        }
        if !std::io::stderr().is_terminal() {
            let now = Instant::now();
            return Progress::Lines(Lines {
                steps,
                every: (steps / LINES_PER_RUN).max(1),
                start,
                began: now,
                last_line: now,
            });
        }
        let bar = ProgressBar::new(steps);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  {msg}  ETA {eta}")
                .expect("a valid template"),
        );
        bar.set_position(start);
        Progress::Bar(bar)
    }

    pub fn step(&mut self, step: u64, loss: f32) {
        match self {
            Progress::Hidden => {}
            Progress::Bar(bar) => {
                bar.set_position(step);
                bar.set_message(format!("loss {loss:.3}"));
            }
            Progress::Lines(l) => {
                if step.is_multiple_of(l.every) || step == l.steps || l.last_line.elapsed() >= LINE_EVERY {
                    eprintln!("{}", l.line(step, loss));
                    l.last_line = Instant::now();
                }
            }
        }
    }

    /// A message between progress updates (a validation's scores).
    pub fn println(&self, message: String) {
        match self {
            Progress::Hidden => {}
            Progress::Bar(bar) => bar.println(message),
            Progress::Lines(_) => eprintln!("{message}"),
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

impl Lines {
    /// "step 40/200  loss 0.0312  12.5 steps/s  ETA 13s"
    fn line(&self, step: u64, loss: f32) -> String {
        let (per_second, eta) = pace(self.start, step, self.steps, self.began);
        format!(
            "step {step}/{}  loss {loss:.4}  {per_second:.2} steps/s  ETA {}",
            self.steps,
            duration(eta)
        )
    }
}

/// Steps per second since training began (after step `start`, at `began`), and the
/// seconds left to step `steps` at that pace.
pub(super) fn pace(start: u64, step: u64, steps: u64, began: Instant) -> (f64, f64) {
    let per_second = (step - start) as f64 / began.elapsed().as_secs_f64().max(1e-9);
    (per_second, (steps - step) as f64 / per_second.max(1e-9))
}

/// Seconds as a person reads them: 45s, 12m 05s, 3h 20m.
fn duration(seconds: f64) -> String {
    let s = seconds.round().min(u64::MAX as f64) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_as_seconds_minutes_or_hours() {
        assert_eq!(duration(44.6), "45s");
        assert_eq!(duration(725.0), "12m 05s");
        assert_eq!(duration(12_000.0), "3h 20m");
    }
}
