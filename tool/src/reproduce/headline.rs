//! The headline figures of a run (every experiment's rate, median and p99),
//! with what sets each and the range of its trials: what a machine exports
//! and what is judged against the book's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::calibrate::{self, Calibration};
use super::judge::{self, SetBy};
use super::record::ChapterRecord;
use super::spec::Plan;

/// One headline figure of one machine's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    pub chapter: u32,
    pub experiment: String,
    /// `req/s`, `p50` or `p99`.
    pub figure: String,
    pub value: f64,
    /// `req/s` or `ms`.
    pub unit: String,
    /// The machine, as [`Machine::describe`] says it, and when it measured.
    pub machine: String,
    /// Set by sleeps and timeouts (should match on any machine), not by CPU.
    pub timer_bound: bool,
    /// From a `--quick` run, whose delays are a tenth of a full run's.
    #[serde(default)]
    pub quick: bool,
    /// What sets it (files from before this was kept: from `timer_bound`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_by: Option<SetBy>,
    /// This figure in every trial of the experiment, the first included, and
    /// in every experiment that is a trial of the same thing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<f64>,
    /// The model's prediction of this figure, where it makes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<f64>,
    /// Why it varies between machines, where the book knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub varies_because: Option<String>,
    /// Where chance sets it: the lowest and highest the model allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_range: Option<(f64, f64)>,
    /// The name its experiment's trials share, where it is one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
}

impl Headline {
    /// What sets it.
    pub fn set_by(&self) -> SetBy {
        self.set_by.unwrap_or(if self.timer_bound {
            SetBy::Timers
        } else {
            SetBy::Cpu(judge::Probe::Hello)
        })
    }

    /// Whether it and `other` are the same figure (of any machine).
    pub fn same_figure(&self, other: &Headline) -> bool {
        self.chapter == other.chapter
            && self.experiment == other.experiment
            && self.figure == other.figure
    }
}

/// Every experiment's first load: its rate, median and p99, with what sets
/// each (from the chapter's plan for the record's machine) and the range of
/// its trials.
pub fn headlines(records: &[ChapterRecord]) -> Vec<Headline> {
    let mut out = Vec::new();
    // (chapter, family, figure) → every trial's value.
    let mut families: BTreeMap<(u32, String, String), Vec<f64>> = BTreeMap::new();
    let mut family_of = Vec::new();
    for record in records {
        let machine = format!("{}, {}", record.machine.describe(), record.measured_at);
        let plan = Plan {
            scale: if record.quick { 0.1 } else { 1.0 },
            cores: record.machine.cores,
        };
        let planned = super::experiments(record.chapter, plan);
        for experiment in &record.experiments {
            let Some(load) = experiment.load() else {
                continue;
            };
            let spec = planned.iter().find(|e| e.slug == experiment.slug);
            let set_by = spec.map_or_else(
                || {
                    super::judge::FiguresSetBy::all(
                        if load.predicted.p50_ms >= judge::TIMER_BOUND_MS {
                            SetBy::Timers
                        } else {
                            SetBy::Cpu(judge::Probe::Hello)
                        },
                    )
                },
                |e| e.figures_set_by(),
            );
            let family = spec
                .and_then(|e| e.family.clone())
                .unwrap_or_else(|| experiment.slug.clone());
            let predicted = &load.predicted;
            let latency = &load.measured.latency_ms;
            for (figure, value, unit, model) in [
                (
                    "req/s",
                    Some(load.measured.rps),
                    "req/s",
                    (!predicted.is_empty()).then_some(predicted.rps),
                ),
                (
                    "p50",
                    latency.p50,
                    "ms",
                    (!predicted.is_empty()).then_some(predicted.p50_ms),
                ),
                (
                    "p99",
                    latency.p99,
                    "ms",
                    (predicted.p99_ms > 0.0).then_some(predicted.p99_ms),
                ),
            ] {
                let Some(value) = value else {
                    continue;
                };
                let key = (record.chapter, family.clone(), figure.to_string());
                let values = families.entry(key.clone()).or_default();
                values.push(value);
                values.extend(experiment.trials.iter().filter_map(|t| t.figure(figure)));
                family_of.push(key);
                let by = set_by.of(figure);
                out.push(Headline {
                    chapter: record.chapter,
                    experiment: experiment.slug.clone(),
                    figure: figure.to_string(),
                    value,
                    unit: unit.to_string(),
                    machine: machine.clone(),
                    timer_bound: by == SetBy::Timers,
                    quick: record.quick,
                    set_by: Some(by),
                    trials: Vec::new(),
                    predicted: model,
                    varies_because: spec.and_then(|e| e.varies_because).map(str::to_string),
                    family: (family != experiment.slug).then(|| family.clone()),
                    model_range: spec.and_then(|e| e.chance_range).and_then(|r| r.of(figure)),
                });
            }
        }
    }
    for (headline, key) in out.iter_mut().zip(family_of) {
        if let Some(values) = families.get(&key).filter(|v| v.len() > 1) {
            headline.trials = values.clone();
        }
    }
    out
}

/// One side of a comparison: a machine's (or a directory's) headlines and
/// the calibrations of the machines that measured them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    #[serde(skip)]
    pub name: String,
    #[serde(default)]
    pub calibrations: Vec<Calibration>,
    pub headlines: Vec<Headline>,
}

impl Side {
    /// The machine and date of its first figure (empty without figures).
    pub fn machine(&self) -> String {
        self.headlines
            .first()
            .map_or_else(String::new, |h| h.machine.clone())
    }

    /// The calibration of the machine that measured `headline`.
    pub fn calibration_of(&self, headline: &Headline) -> Option<&Calibration> {
        self.calibrations
            .iter()
            .find(|c| calibrate::hardware(&headline.machine) == calibrate::hardware(&c.machine))
    }
}
