//! What sets each headline figure, and so where another machine's should
//! land: the book's figure within a small tolerance (timers), the range of
//! the book's trials (chance), or the book's figure scaled by the two
//! machines' calibrations (the CPU). A reader's figure is judged against
//! that range: as expected, or outside it and by how much.

use serde::{Deserialize, Serialize};

use super::calibrate::Calibration;
use super::spec::Experiment;

/// A figure set by timers lands within this fraction of the book's...
pub const TIMER_TOLERANCE: f64 = 0.03;
/// ...or within this many milliseconds, whichever is wider: tokio's timer
/// rounds a sleep up to the next millisecond.
pub const TIMER_SLACK_MS: f64 = 1.0;
/// A figure set by the CPU lands within this fraction of its calibrated
/// prediction.
pub const CPU_TOLERANCE: f64 = 0.25;

/// What sets a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetBy {
    /// Sleeps and timeouts the model adds up: the same on every machine.
    Timers,
    /// Chance (how the kernel spreads connections, which request a thread
    /// takes next): a distribution, shown by the book's repeated trials.
    Chance,
    /// The machine's CPU: scaled by what the probe measured on each machine.
    Cpu(Probe),
}

/// Which calibration a CPU-set figure scales with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// CPU per hello request, both ends (the server's and the client's).
    Hello,
    /// Wall time per µs of `/work`'s CPU.
    Work,
    /// One thread waking another and waiting for its answer.
    Switch,
}

impl SetBy {
    /// The kind in a few words, for tables.
    pub fn words(self) -> &'static str {
        match self {
            SetBy::Timers => "timers",
            SetBy::Chance => "chance",
            SetBy::Cpu(Probe::Hello) => "CPU (hello)",
            SetBy::Cpu(Probe::Work) => "CPU (/work)",
            SetBy::Cpu(Probe::Switch) => "CPU (switch)",
        }
    }

    /// Why a figure of this kind may land outside its range, in one line.
    pub fn reason(self) -> &'static str {
        match self {
            SetBy::Timers => {
                "a timer-set figure moves only when the machine is busy or throttled: run it again on a quiet machine"
            }
            SetBy::Chance => {
                "set by chance: one run can land outside the book's trials; run it again and see it move"
            }
            SetBy::Cpu(_) => {
                "set by the CPU: this work's cost here differs from what the calibration predicts"
            }
        }
    }
}

/// What sets each of an experiment's three headline figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiguresSetBy {
    pub rate: SetBy,
    pub p50: SetBy,
    pub p99: SetBy,
}

impl FiguresSetBy {
    pub fn all(by: SetBy) -> FiguresSetBy {
        FiguresSetBy {
            rate: by,
            p50: by,
            p99: by,
        }
    }

    /// The kind of the figure named `req/s`, `p50` or `p99`.
    pub fn of(&self, figure: &str) -> SetBy {
        match figure {
            "p50" => self.p50,
            "p99" => self.p99,
            _ => self.rate,
        }
    }
}

/// Where a figure should land on a machine, and why there.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub low: f64,
    pub high: f64,
    /// How the range was found, in a few words.
    pub basis: String,
}

/// A figure measured, against where it should have landed.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    AsExpected,
    /// Outside its range by `off_pct` percent of the nearer end (above: +).
    Outside {
        off_pct: f64,
        reason: String,
    },
    /// No range could be found (a calibration or the book's figure missing).
    NoRange(String),
}

impl Verdict {
    /// The verdict in a few words.
    pub fn words(&self) -> String {
        match self {
            Verdict::AsExpected => "as expected".to_string(),
            Verdict::Outside { off_pct, .. } => format!("outside, {off_pct:+.0} %"),
            Verdict::NoRange(why) => format!("not judged: {why}"),
        }
    }
}

/// The book's side of one figure: what it measured (every trial) and what
/// the model predicted, and what sets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference<'a> {
    pub set_by: SetBy,
    /// `ms` for latencies, `req/s` for rates.
    pub unit: &'a str,
    /// The book's value, from its first trial.
    pub value: f64,
    /// Every trial's value (the first included).
    pub trials: &'a [f64],
    /// The model's prediction for this figure, where it makes one.
    pub predicted: Option<f64>,
}

/// Where the figure should land on a machine calibrated as `mine`, the
/// book's machine having been calibrated as `book`.
pub fn expected(
    reference: &Reference,
    book: Option<&Calibration>,
    mine: Option<&Calibration>,
) -> Result<Expected, String> {
    let ms = reference.unit == "ms";
    let widen = |low: f64, high: f64| {
        if ms {
            (
                (low * (1.0 - TIMER_TOLERANCE)).min(low - TIMER_SLACK_MS),
                (high * (1.0 + TIMER_TOLERANCE)).max(high + TIMER_SLACK_MS),
            )
        } else {
            (
                low * (1.0 - TIMER_TOLERANCE),
                high * (1.0 + TIMER_TOLERANCE),
            )
        }
    };
    match reference.set_by {
        SetBy::Timers => {
            let (low, high) = widen(reference.value, reference.value);
            Ok(Expected {
                low,
                high,
                basis: format!(
                    "the book's, ±{:.0} %{}",
                    TIMER_TOLERANCE * 100.0,
                    if ms { " or 1 ms" } else { "" }
                ),
            })
        }
        SetBy::Chance => {
            if reference.trials.len() < 2 {
                return Err("set by chance, and the book ran it once".to_string());
            }
            let low = reference.trials.iter().copied().fold(f64::MAX, f64::min);
            let high = reference.trials.iter().copied().fold(f64::MIN, f64::max);
            let (low, high) = widen(low, high);
            Ok(Expected {
                low,
                high,
                basis: format!("the range of the book's {} trials", reference.trials.len()),
            })
        }
        SetBy::Cpu(probe) => {
            let (Some(book), Some(mine)) = (book, mine) else {
                return Err(format!(
                    "no calibration for {}",
                    if book.is_none() {
                        "the book's machine"
                    } else {
                        "this machine"
                    }
                ));
            };
            let ratio = mine.probe(probe) / book.probe(probe);
            if !ratio.is_finite() || ratio <= 0.0 {
                return Err("a calibration reads zero".to_string());
            }
            let central = scaled(reference.value, reference.predicted, ratio, ms);
            Ok(Expected {
                low: central * (1.0 - CPU_TOLERANCE),
                high: central * (1.0 + CPU_TOLERANCE),
                basis: format!(
                    "the book's scaled by the calibration ({ratio:.2} × its {}), ±{:.0} %",
                    probe.words(),
                    CPU_TOLERANCE * 100.0
                ),
            })
        }
    }
}

impl Probe {
    pub fn words(self) -> &'static str {
        match self {
            Probe::Hello => "CPU per hello request",
            Probe::Work => "wall time per µs of /work",
            Probe::Switch => "thread wake-up",
        }
    }
}

/// The book's figure on a machine whose CPU costs `ratio` times the book's:
/// the part the model's timers account for stays, the rest scales. For a
/// rate, the same holds of the time per request.
pub fn scaled(book: f64, predicted: Option<f64>, ratio: f64, ms: bool) -> f64 {
    let model = predicted.filter(|p| *p > 0.0);
    if ms {
        match model {
            Some(m) if book > m => m + (book - m) * ratio,
            _ => book * ratio,
        }
    } else {
        match model {
            Some(m) if book > 0.0 && book < m => {
                let per_request = 1.0 / m + (1.0 / book - 1.0 / m) * ratio;
                1.0 / per_request
            }
            _ => book / ratio,
        }
    }
}

/// `value` against where it should have landed.
pub fn judge(value: f64, expected: &Expected, set_by: SetBy, reason: Option<&str>) -> Verdict {
    let off_pct = if value > expected.high {
        (value / expected.high - 1.0) * 100.0
    } else if value < expected.low {
        (value / expected.low - 1.0) * 100.0
    } else {
        return Verdict::AsExpected;
    };
    Verdict::Outside {
        off_pct,
        reason: reason.unwrap_or(set_by.reason()).to_string(),
    }
}

/// A figure is set by its timers, not by the machine's CPU, when the model
/// predicts its requests spend at least this long waiting (unless its
/// experiment says otherwise).
pub const TIMER_BOUND_MS: f64 = 10.0;

/// What sets an experiment's figures, as its chapter marks it.
impl Experiment {
    /// The same experiment, its figures all set by `by`.
    pub fn set_by(mut self, by: SetBy) -> Experiment {
        self.set_by = Some(FiguresSetBy::all(by));
        self
    }

    /// The same experiment, with its latencies (median and p99) set by
    /// `by` and its rate by what the rule of thumb says.
    pub fn latencies_set_by(mut self, by: SetBy) -> Experiment {
        let rate = self.rule_of_thumb();
        self.set_by = Some(FiguresSetBy {
            rate,
            p50: by,
            p99: by,
        });
        self
    }

    /// The same experiment, with only its p99 set by `by`.
    pub fn tail_set_by(mut self, by: SetBy) -> Experiment {
        let mut figures = self
            .set_by
            .unwrap_or(FiguresSetBy::all(self.rule_of_thumb()));
        figures.p99 = by;
        self.set_by = Some(figures);
        self
    }

    /// The same experiment, run `trials` times (a range for what chance sets).
    pub fn repeated(mut self, trials: usize) -> Experiment {
        self.trials = trials.max(1);
        self
    }

    /// The same experiment, as one of several trials named `family`.
    pub fn trial_of(mut self, family: impl Into<String>) -> Experiment {
        self.family = Some(family.into());
        self
    }

    /// The same experiment, saying why its figures vary between machines.
    pub fn varies_because(mut self, why: &'static str) -> Experiment {
        self.varies_because = Some(why);
        self
    }

    /// The CPU's `/work` when the requests ask for it; else timers when the
    /// model predicts a median of 10 ms or more; else the CPU (hello's).
    pub fn rule_of_thumb(&self) -> SetBy {
        if self
            .loads
            .first()
            .is_some_and(|load| load.path.starts_with("/work"))
        {
            return SetBy::Cpu(Probe::Work);
        }
        let timers = self
            .predict()
            .first()
            .is_some_and(|p| p.p50_ms >= TIMER_BOUND_MS);
        if timers {
            SetBy::Timers
        } else {
            SetBy::Cpu(Probe::Hello)
        }
    }

    /// What sets each headline figure.
    pub fn figures_set_by(&self) -> FiguresSetBy {
        self.set_by
            .unwrap_or_else(|| FiguresSetBy::all(self.rule_of_thumb()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration(hello_us: f64) -> Calibration {
        Calibration {
            machine: "m".into(),
            measured_at: String::new(),
            hello_us,
            work_wall_per_us: 1.0,
            switch_us: 10.0,
        }
    }

    fn reference(set_by: SetBy, unit: &str, value: f64, trials: &[f64]) -> Expected {
        let r = Reference {
            set_by,
            unit,
            value,
            trials,
            predicted: None,
        };
        expected(&r, Some(&calibration(20.0)), Some(&calibration(10.0))).unwrap()
    }

    #[test]
    fn a_timer_figure_lands_within_three_percent_or_a_millisecond() {
        let e = reference(SetBy::Timers, "ms", 2000.0, &[2000.0]);
        assert_eq!(judge(2050.0, &e, SetBy::Timers, None), Verdict::AsExpected);
        let Verdict::Outside { off_pct, .. } = judge(2200.0, &e, SetBy::Timers, None) else {
            panic!("10 % over is outside");
        };
        assert!((off_pct - (2200.0 / 2060.0 - 1.0) * 100.0).abs() < 1e-9);
        // Small figures get the millisecond: 5 ms against 5.9 ms is fine.
        let small = reference(SetBy::Timers, "ms", 5.0, &[5.0]);
        assert_eq!(judge(5.9, &small, SetBy::Timers, None), Verdict::AsExpected);
        // Rates get no millisecond.
        let rate = reference(SetBy::Timers, "req/s", 100.0, &[100.0]);
        assert!(matches!(
            judge(95.0, &rate, SetBy::Timers, None),
            Verdict::Outside { off_pct, .. } if off_pct < 0.0
        ));
    }

    #[test]
    fn a_chance_figure_lands_in_the_range_of_the_trials() {
        let e = reference(SetBy::Chance, "ms", 150.0, &[150.0, 260.0, 110.0]);
        assert_eq!(judge(250.0, &e, SetBy::Chance, None), Verdict::AsExpected);
        assert_eq!(judge(108.0, &e, SetBy::Chance, None), Verdict::AsExpected);
        assert!(matches!(
            judge(400.0, &e, SetBy::Chance, Some("the kernel's hash")),
            Verdict::Outside { reason, .. } if reason == "the kernel's hash"
        ));
        let once = Reference {
            set_by: SetBy::Chance,
            unit: "ms",
            value: 1.0,
            trials: &[1.0],
            predicted: None,
        };
        assert!(expected(&once, None, None).is_err());
    }

    #[test]
    fn a_cpu_figure_scales_with_the_calibration() {
        // This machine spends half the book's CPU per request: twice the rate.
        let e = reference(SetBy::Cpu(Probe::Hello), "req/s", 50_000.0, &[50_000.0]);
        assert!((e.low - 75_000.0).abs() < 1e-6 && (e.high - 125_000.0).abs() < 1e-6);
        assert_eq!(
            judge(110_000.0, &e, SetBy::Cpu(Probe::Hello), None),
            Verdict::AsExpected
        );
        // Without a calibration there is no range, and it says so.
        let r = Reference {
            set_by: SetBy::Cpu(Probe::Hello),
            unit: "ms",
            value: 1.0,
            trials: &[1.0],
            predicted: None,
        };
        assert_eq!(
            expected(&r, Some(&calibration(1.0)), None),
            Err("no calibration for this machine".to_string())
        );
    }

    #[test]
    fn only_the_part_the_timers_do_not_account_for_scales() {
        // 500 ms of sleep, 100 ms of CPU on the book's machine; half the CPU here.
        assert!((scaled(600.0, Some(500.0), 0.5, true) - 550.0).abs() < 1e-9);
        // A rate: 1,000 requests a second predicted, 800 measured.
        let rate = scaled(800.0, Some(1000.0), 0.5, false);
        assert!((1.0 / rate - (0.001 + 0.000_25 * 0.5)).abs() < 1e-12);
        // No model: the whole figure scales.
        assert!((scaled(10.0, None, 2.0, true) - 20.0).abs() < 1e-9);
        assert!((scaled(10.0, Some(0.0), 2.0, false) - 5.0).abs() < 1e-9);
    }
}
