//! What a run measured, as `book/generated/chapterN.json` keeps it: the
//! measurements and what identifies them, nothing about how a page shows
//! them (that is code, in the views).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::Prediction;
use super::sample::{CpuSplit, ServerSamples};
use evt::load::Summary;
use evt::load::record::{Bucket, Span};
use evt::sys::{Limit, Machine};

/// One chapter's measurements, stamped with where and when they were made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChapterRecord {
    pub chapter: u32,
    pub machine: Machine,
    /// RFC 3339, UTC.
    pub measured_at: String,
    /// The command that made this record.
    pub command: String,
    /// Delays scaled down (`--quick`): not for the book.
    pub quick: bool,
    pub experiments: Vec<ExperimentRecord>,
    /// Facts of the machine the chapter keeps beside its measurements (its
    /// limits on connections and threads), as read for this run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<Limit>,
    /// What the chapter's own measuring programs printed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramRecord>,
    /// How long the chapter's run took, start to record, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_s: Option<f64>,
}

impl ChapterRecord {
    /// Seconds spent under load: every experiment's longest load (with its
    /// start) and every program's run. A lower bound of the run's time,
    /// which also starts and stops each server.
    pub fn load_s(&self) -> f64 {
        let experiments: f64 = self
            .experiments
            .iter()
            .map(|e| {
                e.loads
                    .iter()
                    .map(|l| l.start_after_s + l.measured.duration_s)
                    .fold(0.0, f64::max)
            })
            .sum();
        experiments + self.programs.iter().map(|p| p.duration_s).sum::<f64>()
    }
}

/// One run of a measuring program ([`super::spec::Program`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProgramRecord {
    pub slug: String,
    pub title: String,
    pub example: String,
    /// The command that ran it, as a reader types it.
    pub command: String,
    /// What it printed with `--json`; its type is the program's
    /// (`evt::report`), read by the chapter's views.
    pub output: serde_json::Value,
    /// Its threads, memory and CPU while it ran (peaks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<ServerSamples>,
    pub duration_s: f64,
}

impl ProgramRecord {
    /// What the program printed, read as the type it wrote.
    pub fn output<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.output.clone()).ok()
    }
}

/// Which table an experiment is one row of, and which row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// File-name part of the table: `chapterN_NAME.md`.
    pub name: String,
    /// What this row is, in a few words (`4 workers × 2 threads`).
    pub label: String,
    /// The swept value, for a chart (threads, connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<f64>,
    /// Which line of a chart of several this row belongs to (a client's mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
}

impl Group {
    pub fn new(name: &str, label: impl Into<String>) -> Group {
        Group {
            name: name.to_string(),
            label: label.into(),
            x: None,
            series: None,
        }
    }

    /// The same row at `x` on a chart.
    pub fn at(mut self, x: f64) -> Group {
        self.x = Some(x);
        self
    }

    /// The same row, on the chart line `series`.
    pub fn on_line(mut self, series: &str) -> Group {
        self.series = Some(series.to_string());
        self
    }
}

/// What one load predicted and measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadOutcome {
    pub path: String,
    pub start_after_s: f64,
    pub requests: u64,
    pub connections: usize,
    /// The command that ran this load, as a reader types it.
    #[serde(default)]
    pub command: String,
    /// Each connection sent its own n / c requests (`--fixed-share`, as hey).
    #[serde(default, skip_serializing_if = "is_false")]
    pub fixed_share: bool,
    pub predicted: Prediction,
    pub measured: Summary,
    /// The load client's text report of this load, as a reader would see it.
    pub report: String,
    /// When each request ran, where the experiment asked for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Span>,
    /// How many connections got how many answers (answers → connections),
    /// where the experiment asked for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answers_per_connection: BTreeMap<u64, u64>,
    /// The client's own threads and memory, for a command driver (a client
    /// that is what its chapter is about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_samples: Option<ServerSamples>,
    /// The latency over the run, per 100 ms of when requests were due
    /// (slice number → bucket), where the experiment asked for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub over_time: BTreeMap<u64, Bucket>,
}

/// One experiment's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExperimentRecord {
    pub chapter: u32,
    pub slug: String,
    pub seed: String,
    pub title: String,
    pub example: String,
    /// The server's flags beyond `--port`.
    #[serde(default)]
    pub server_args: Vec<String>,
    pub default_port: u16,
    pub model: String,
    /// Failed requests are the finding, not a broken run.
    #[serde(default)]
    pub failures_expected: bool,
    /// The server's memory, threads and CPU while it ran (None: not sampled).
    #[serde(default)]
    pub samples: Option<ServerSamples>,
    /// Connections the kernel dropped for a full listen backlog during the
    /// run (machine-wide counter, read before and after).
    #[serde(default)]
    pub listen_overflows: Option<u64>,
    /// The server's `GET /report` after the loads, when asked for; its type
    /// is the server's (`evt::report`), read by the chapter's views.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_report: Option<serde_json::Value>,
    /// When the report was fetched, in seconds since the experiment started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_at_s: Option<f64>,
    #[serde(default)]
    pub group: Option<Group>,
    pub loads: Vec<LoadOutcome>,
    /// When the harness stopped the server, as it happened: seconds after
    /// the experiment started, and for how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseRecord>,
    /// Where the machine's CPU went while the loads ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuSplit>,
    /// The CPUs the server and the load client were kept on, where the
    /// experiment asked for it and the machine had enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<Pinning>,
    /// What the slow clients saw, where there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_clients: Option<super::slow::SlowRecord>,
    /// Lowest-priority spinners that kept the idle cores busy, how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fillers: Option<usize>,
    /// The headline figures of the further trials, where the experiment ran
    /// more than once (its first run is the rest of this record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
    /// The server's system calls as strace counted them during the loads,
    /// where the experiment asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls: Option<super::strace::SyscallCount>,
}

/// One further trial's first load: its rate, median and p99.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Trial {
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Trial {
    pub fn of(load: &LoadOutcome) -> Trial {
        Trial {
            rps: load.measured.rps,
            p50_ms: load.measured.latency_ms.p50,
            p99_ms: load.measured.latency_ms.p99,
        }
    }

    /// The figure named `req/s`, `p50` or `p99`.
    pub fn figure(&self, figure: &str) -> Option<f64> {
        match figure {
            "p50" => self.p50_ms,
            "p99" => self.p99_ms,
            _ => Some(self.rps),
        }
    }
}

/// Which CPUs each side was kept on (`sched_setaffinity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinning {
    pub client: Vec<usize>,
    pub server: Vec<usize>,
}

/// A stall as it was inflicted.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct PauseRecord {
    pub at_s: f64,
    pub length_s: f64,
}

impl ExperimentRecord {
    /// The server's `/report`, read as the type the server wrote.
    pub fn report<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.server_report.clone()?).ok()
    }

    /// The first load (most experiments have one).
    pub fn load(&self) -> Option<&LoadOutcome> {
        self.loads.first()
    }
}

fn is_false(value: &bool) -> bool {
    !value
}

/// The file a chapter's record is kept in, inside `dir`.
pub fn path(dir: &Path, chapter: u32) -> PathBuf {
    dir.join(format!("chapter{chapter}.json"))
}

/// Writes `chapterN.json` into `dir`.
pub fn write(dir: &Path, record: &ChapterRecord) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let json = serde_json::to_string_pretty(record)
        .map_err(|error| format!("cannot encode chapter {}: {error}", record.chapter))?;
    let path = path(dir, record.chapter);
    std::fs::write(&path, json + "\n")
        .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    Ok(path)
}

/// Reads every `chapterN.json` in `dir`, in chapter order. A record that
/// cannot be read is an error that names it, never skipped: a skipped record
/// would make its chapter's views look stale, and they would be removed.
pub fn read_all(dir: &Path) -> Result<Vec<ChapterRecord>, String> {
    let mut records = Vec::new();
    for path in std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| is_record(path))
    {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let record: ChapterRecord = serde_json::from_str(&text)
            .map_err(|error| format!("cannot read the record {}: {error}", path.display()))?;
        records.push(record);
    }
    records.sort_by_key(|record| record.chapter);
    Ok(records)
}

/// Whether `path` is a chapter's record (`chapterN.json`).
pub fn is_record(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("chapter"))
        .and_then(|rest| rest.strip_suffix(".json"))
        .is_some_and(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
}
