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
    /// Part of a timer-set figure is the CPU's: the book's is further from
    /// the model than the timers' tolerance.
    pub cpu_part: bool,
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
            Verdict::Outside { off_pct, .. } if off_pct.abs() < 10.0 => {
                format!("outside, {off_pct:+.1} %")
            }
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
    /// Where chance sets it: the lowest and highest the model allows.
    pub model_range: Option<(f64, f64)>,
}

/// The lowest and highest each headline figure can come out, by the model,
/// for an experiment whose outcome is a draw (how connections spread).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChanceRange {
    pub rps: Option<(f64, f64)>,
    pub p50_ms: Option<(f64, f64)>,
    pub p99_ms: Option<(f64, f64)>,
}

impl ChanceRange {
    /// The range of the figure named `req/s`, `p50` or `p99`, where the
    /// model has one.
    pub fn of(&self, figure: &str) -> Option<(f64, f64)> {
        match figure {
            "p50" => self.p50_ms,
            "p99" => self.p99_ms,
            _ => self.rps,
        }
    }
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
            let timers = Expected {
                low,
                high,
                basis: format!(
                    "the book's, ±{:.0} %{}",
                    TIMER_TOLERANCE * 100.0,
                    if ms { " or 1 ms" } else { "" }
                ),
                cpu_part: false,
            };
            Ok(with_cpu_part(reference, timers, book, mine))
        }
        SetBy::Chance => {
            if reference.trials.len() < 2 && reference.model_range.is_none() {
                return Err("set by chance, and the book ran it once".to_string());
            }
            let mut low = reference.trials.iter().copied().fold(f64::MAX, f64::min);
            let mut high = reference.trials.iter().copied().fold(f64::MIN, f64::max);
            let mut basis = format!("the range of the book's {} trials", reference.trials.len());
            if let Some((model_low, model_high)) = reference.model_range {
                low = low.min(model_low);
                high = high.max(model_high);
                basis.push_str(" and of the model's outcomes");
            }
            let (low, high) = widen(low, high);
            Ok(Expected {
                low,
                high,
                basis,
                cpu_part: false,
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
            let basis = format!(
                "the book's scaled by the calibration ({ratio:.2} × its {}), ±{:.0} %",
                probe.words(),
                CPU_TOLERANCE * 100.0
            );
            // `/work`'s CPU is the whole figure: its wait is CPU time, which
            // a machine with fewer or slower cores stretches; the other
            // probes' figures keep the model's part.
            let model_applies = probe != Probe::Work;
            if let Some((low, high)) = parts(reference, ratio).filter(|_| model_applies) {
                return Ok(Expected {
                    low,
                    high,
                    basis: format!(
                        "the model's part ±{:.0} %, the rest {basis}",
                        TIMER_TOLERANCE * 100.0
                    ),
                    cpu_part: false,
                });
            }
            let predicted = reference.predicted.filter(|_| model_applies);
            let central = scaled(reference.value, predicted, ratio, ms);
            Ok(Expected {
                cpu_part: false,
                low: central * (1.0 - CPU_TOLERANCE),
                high: central * (1.0 + CPU_TOLERANCE),
                basis,
            })
        }
    }
}

/// The model's part of the book's figure, where the book's lies beyond it
/// by more than the timers' tolerance (for a latency, the 1 ms slack too):
/// `None` when the model makes no prediction or accounts for the figure.
fn model_part(reference: &Reference) -> Option<f64> {
    let model = reference.predicted.filter(|m| *m > 0.0)?;
    let (beyond, tolerance) = if reference.unit == "ms" {
        (
            reference.value - model,
            (model * TIMER_TOLERANCE).max(TIMER_SLACK_MS),
        )
    } else {
        (model - reference.value, model * TIMER_TOLERANCE)
    };
    (beyond > tolerance).then_some(model)
}

/// The range of a figure made of two parts, the model's timers and the
/// CPU's beyond them, on a machine whose CPU costs `ratio` times the book's:
/// the model's part keeps the timers' tolerance, only the scaled rest gets
/// the CPU's. A latency never lands below the model's sleep by more than the
/// timers' tolerance. For a rate, the parts add up in time per request.
fn parts(reference: &Reference, ratio: f64) -> Option<(f64, f64)> {
    let model = model_part(reference)?;
    if reference.unit == "ms" {
        let rest = (reference.value - model) * ratio;
        let half = rest * CPU_TOLERANCE + (model * TIMER_TOLERANCE).max(TIMER_SLACK_MS);
        Some((model + rest - half, model + rest + half))
    } else {
        let per_model = 1.0 / model;
        let rest = (1.0 / reference.value - per_model) * ratio;
        let half = rest * CPU_TOLERANCE + per_model * TIMER_TOLERANCE;
        let per_central = per_model + rest;
        Some((
            1.0 / (per_central + half),
            1.0 / (per_central - half).max(f64::MIN_POSITIVE),
        ))
    }
}

/// A timer-set figure the book measured further from the model than the
/// timers' tolerance: the part beyond the model is not the timers' but the
/// CPU's (a thousand connections accepted, a proxy's hops, ten thousand
/// threads woken). The model's part keeps the timers' tolerance; the rest is
/// scaled by the hello probe (unscaled without calibrations) and keeps the
/// CPU's.
fn with_cpu_part(
    reference: &Reference,
    timers: Expected,
    book: Option<&Calibration>,
    mine: Option<&Calibration>,
) -> Expected {
    let ratio = match (book, mine) {
        (Some(b), Some(m)) => Some(m.probe(Probe::Hello) / b.probe(Probe::Hello))
            .filter(|r| r.is_finite() && *r > 0.0),
        _ => None,
    };
    let Some((low, high)) = parts(reference, ratio.unwrap_or(1.0)) else {
        return timers;
    };
    Expected {
        low,
        high,
        basis: format!(
            "the model's part ±{:.0} %, the rest the CPU's{} ±{:.0} %",
            TIMER_TOLERANCE * 100.0,
            ratio.map_or_else(
                || ", unscaled (no calibrations)".to_string(),
                |r| format!(", scaled {r:.2} ×")
            ),
            CPU_TOLERANCE * 100.0
        ),
        cpu_part: true,
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

// ANCHOR: scaled
/// The book's figure on a machine whose CPU costs `ratio` times the book's:
/// the part the model's timers account for stays, the rest scales. For a
/// rate, the same holds of the time per request. With no model (or one that
/// predicts no wait) the whole figure scales.
pub fn scaled(book: f64, predicted: Option<f64>, ratio: f64, ms: bool) -> f64 {
    let model = predicted.filter(|p| *p > 0.0);
    if ms {
        let stays = model.map_or(0.0, |m| m.min(book));
        stays + (book - stays) * ratio
    } else if book <= 0.0 {
        book
    } else {
        // The model's time per request stays, the rest scales.
        let per_request = 1.0 / book;
        let stays = model.map_or(0.0, |m| (1.0 / m).min(per_request));
        1.0 / (stays + (per_request - stays) * ratio)
    }
}
// ANCHOR_END: scaled

/// `value` against where it should have landed.
pub fn judge(value: f64, expected: &Expected, set_by: SetBy, reason: Option<&str>) -> Verdict {
    let fallback = if expected.cpu_part && set_by == SetBy::Timers {
        "the part above the model's timers is the CPU's, and it moved more than the probe predicts"
    } else {
        set_by.reason()
    };
    let off_pct = if value > expected.high {
        (value / expected.high - 1.0) * 100.0
    } else if value < expected.low {
        (value / expected.low - 1.0) * 100.0
    } else {
        return Verdict::AsExpected;
    };
    Verdict::Outside {
        off_pct,
        reason: reason.unwrap_or(fallback).to_string(),
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

    /// The same experiment, with only its median set by `by`.
    pub fn median_set_by(mut self, by: SetBy) -> Experiment {
        let mut figures = self.figures_set_by();
        figures.p50 = by;
        self.set_by = Some(figures);
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

    /// The same experiment, with the lowest and highest the model allows
    /// for its figures (chance sets them).
    pub fn chance_between(mut self, range: ChanceRange) -> Experiment {
        self.chance_range = Some(range);
        self
    }

    /// The same experiment, its latencies anywhere between the shortest and
    /// the longest the model predicts: which request waits is chance, how
    /// long the waits can be is not.
    pub fn latencies_within_the_model(self) -> Experiment {
        let Some(p) = self.predict().into_iter().next() else {
            return self;
        };
        let range = Some((p.min_ms, p.max_ms));
        self.chance_between(ChanceRange {
            rps: None,
            p50_ms: range,
            p99_ms: range,
        })
    }

    /// [`Self::chance_between`], where the model has a range.
    pub fn chance_between_if(self, range: Option<ChanceRange>) -> Experiment {
        match range {
            Some(range) => self.chance_between(range),
            None => self,
        }
    }

    /// The same experiment, saying why its figures vary between machines.
    pub fn varies_because(mut self, why: &'static str) -> Experiment {
        self.varies_because = Some(why);
        self
    }

    /// The CPU's `/work` when the requests ask for it; else timers for an
    /// open load (its schedule sets the rate, and its requests wait as the
    /// model's timers say, a CPU part above them allowed for) or when the
    /// model predicts a median of 10 ms or more; else the CPU (hello's).
    pub fn rule_of_thumb(&self) -> SetBy {
        let first = self.loads.first();
        if first.is_some_and(|load| load.path.starts_with("/work")) {
            return SetBy::Cpu(Probe::Work);
        }
        if first.is_some_and(|load| load.rate.is_some()) {
            return SetBy::Timers;
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
#[path = "judge_tests.rs"]
mod tests;
