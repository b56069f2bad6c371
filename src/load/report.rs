//! Printing results: the text report a hey or oha user recognises, and the JSON
//! object the reproduce run and outside scripts read.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::record::{ErrorKind, Results};
use super::schedule::Arrivals;

fn even() -> Arrivals {
    Arrivals::Even
}

/// The `--json` report. Its fields are a contract: scripts read them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub url: String,
    pub connections: usize,
    pub duration_s: f64,
    pub requests: RequestCounts,
    /// Requests sent a second time because the kept-alive connection they
    /// went out on had been closed by the server (not counted in `sent`).
    #[serde(default)]
    pub retries: u64,
    /// Completed requests per second.
    pub rps: f64,
    /// A timed run's steady rate: each connection's answers per second
    /// between its first and last answer, summed (no start, no drain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_rps: Option<f64>,
    /// Latencies of completed requests, and of timed-out ones at the moment
    /// the client gave up (`timed_out_in_latency` of them); all null when
    /// there are none.
    pub latency_ms: LatencyMs,
    /// Timed-out requests counted in `latency_ms` (a floor for each).
    #[serde(default)]
    pub timed_out_in_latency: u64,
    /// Failed requests with no latency at all (refused, reset, ...): in no
    /// percentile.
    #[serde(default)]
    pub left_out_of_latency: u64,
    /// How far a `-z` run went past its length, in seconds, when it did by
    /// more than 1 % (requests in flight, or still due, when time ran out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overran_s: Option<f64>,
    /// The length asked for with `-z`, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_s: Option<f64>,
    pub status_codes: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    /// With `--connect-rate`: the connecting before the first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectSummary>,
    /// With `--hold`: the connections held idle after the last answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldSummary>,
    /// With `--rate` (the open model): the schedule kept, and the latencies
    /// from the actual send. `latency_ms` then counts from each request's
    /// scheduled time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenSummary>,
    /// With `--deadline`: the answers that were good and in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good: Option<GoodSummary>,
}

/// The goodput: answers with a 2xx status within the deadline, per second
/// of the schedule (open model: requests sent ÷ rate, so a run that drains
/// a long queue after its schedule is not credited for the drain), else of
/// the run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct GoodSummary {
    pub deadline_ms: f64,
    pub answers: u64,
    /// Good answers per second of the run.
    pub rps: f64,
}

/// The open model's schedule, as kept.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct OpenSummary {
    /// The rate asked for (`--rate`).
    pub asked_rps: f64,
    /// The rate requests went out at, first send to last.
    pub sent_rps: Option<f64>,
    /// How the arrivals were spaced (and the seed of Poisson ones).
    #[serde(default = "even")]
    pub arrivals: Arrivals,
    /// Requests sent more than 1 ms after they were due: no connection was
    /// free (they queued in the client), or the client fell behind.
    pub late: u64,
    /// The latest any request went out, after it was due.
    pub latest_ms: f64,
    /// Of the late ones, those a connection was free for in time: the
    /// client itself fell behind its schedule (its thread or its timer),
    /// and their latencies measure the client as much as the server.
    #[serde(default)]
    pub late_client: u64,
    #[serde(default)]
    pub client_latest_ms: f64,
    /// How late requests went out after they were due, at the median and
    /// the 99th percentile, ms: the client's share of the latencies, even
    /// below the 1 ms that counts as late.
    #[serde(default)]
    pub lateness_p50_ms: Option<f64>,
    #[serde(default)]
    pub lateness_p99_ms: Option<f64>,
    /// Latencies from the actual send, as a closed client measures them.
    pub uncorrected_latency_ms: LatencyMs,
}

/// The idle phase of a `--hold` run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct HoldSummary {
    pub idle_s: f64,
    pub held: u64,
    /// Connections the server had not closed when the hold ended.
    pub still_open: u64,
}

/// The connect phase of a `--connect-rate` run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ConnectSummary {
    pub duration_s: f64,
    pub opened: u64,
    pub slowest_ms: f64,
}

/// `sent == completed + failed`, always.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestCounts {
    pub sent: u64,
    /// A whole HTTP response (of any status) arrived.
    pub completed: u64,
    /// It did not: see `errors`.
    pub failed: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LatencyMs {
    pub min: Option<f64>,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

fn ms(duration: Option<Duration>) -> Option<f64> {
    duration.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
}

impl Summary {
    pub fn of(results: &Results) -> Summary {
        Summary {
            url: results.url.clone(),
            connections: results.connections,
            duration_s: (results.duration.as_secs_f64() * 1e6).round() / 1e6,
            requests: RequestCounts {
                sent: results.sent(),
                completed: results.completed(),
                failed: results.failed(),
            },
            retries: results.record.retries,
            rps: (results.rps() * 1e3).round() / 1e3,
            steady_rps: results.steady_rps().map(|rate| (rate * 1e3).round() / 1e3),
            latency_ms: LatencyMs {
                min: ms(results.fastest()),
                mean: ms(results.mean()),
                p50: ms(results.latency_at(0.50)),
                p75: ms(results.latency_at(0.75)),
                p90: ms(results.latency_at(0.90)),
                p95: ms(results.latency_at(0.95)),
                p99: ms(results.latency_at(0.99)),
                p999: ms(results.latency_at(0.999)),
                max: ms(results.slowest()),
            },
            timed_out_in_latency: results.record.timed_out,
            left_out_of_latency: results.failed() - results.record.timed_out,
            overran_s: results
                .overran()
                .map(|over| (over.as_secs_f64() * 1e3).round() / 1e3),
            planned_s: results.planned.map(|length| length.as_secs_f64()),
            status_codes: results
                .record
                .status_codes
                .iter()
                .map(|(status, count)| (status.to_string(), *count))
                .collect(),
            errors: results
                .record
                .failures
                .iter()
                .map(|(kind, seen)| (kind.name().to_string(), seen.count))
                .collect(),
            connect: results.connect.map(|phase| ConnectSummary {
                duration_s: (phase.took.as_secs_f64() * 1e6).round() / 1e6,
                opened: phase.opened,
                slowest_ms: (phase.slowest.as_secs_f64() * 1e6).round() / 1e3,
            }),
            hold: results.hold.map(|phase| HoldSummary {
                idle_s: phase.idle.as_secs_f64(),
                held: phase.held,
                still_open: phase.still_open,
            }),
            good: results.deadline.map(|deadline| GoodSummary {
                deadline_ms: deadline.as_secs_f64() * 1e3,
                answers: results.record.good,
                rps: (results.goodput() * 1e3).round() / 1e3,
            }),
            open: results.rate.map(|asked| OpenSummary {
                asked_rps: asked,
                sent_rps: results.sent_rps().map(|rate| (rate * 1e3).round() / 1e3),
                arrivals: results.arrivals,
                late: results.record.late,
                latest_ms: (results.record.latest_us as f64).round() / 1e3,
                late_client: results.record.late_client,
                client_latest_ms: (results.record.client_latest_us as f64).round() / 1e3,
                lateness_p50_ms: ms(results.lateness_at(0.5)),
                lateness_p99_ms: ms(results.lateness_at(0.99)),
                uncorrected_latency_ms: LatencyMs {
                    min: ms(results.uncorrected_at(0.0)),
                    mean: None,
                    p50: ms(results.uncorrected_at(0.50)),
                    p75: ms(results.uncorrected_at(0.75)),
                    p90: ms(results.uncorrected_at(0.90)),
                    p95: ms(results.uncorrected_at(0.95)),
                    p99: ms(results.uncorrected_at(0.99)),
                    p999: ms(results.uncorrected_at(0.999)),
                    max: ms(results.uncorrected_at(1.0)),
                },
            }),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    }
}

/// A duration the way a person reads it: `812 µs`, `48.21 ms`, `2.0031 s`.
pub fn human(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 1_000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1_000_000.0 {
        format!("{:.2} ms", micros / 1e3)
    } else {
        format!("{:.4} s", micros / 1e6)
    }
}

const BAR_WIDTH: u64 = 40;
const HISTOGRAM_BINS: u64 = 10;

/// The text report.
pub fn text(results: &Results) -> String {
    let mut out = summary_section(results);
    latency_section(&mut out, results);
    if !results.record.status_codes.is_empty() {
        let _ = writeln!(out, "\nStatus codes:");
        for (status, count) in &results.record.status_codes {
            let _ = writeln!(out, "  [{status}] {count} responses");
        }
    }
    errors_section(&mut out, results);
    if !results.record.problems.is_empty() {
        let _ = writeln!(out, "\nProblems:");
        for problem in &results.record.problems {
            let _ = writeln!(out, "  {problem}");
        }
    }
    out
}

/// `Summary:`: the run as a whole.
fn summary_section(results: &Results) -> String {
    let mut out = String::new();
    let summary = Summary::of(results);
    let _ = writeln!(out, "Summary:");
    if results.interrupted {
        let _ = writeln!(
            out,
            "  (stopped early: this covers what finished before the stop)"
        );
    }
    let _ = writeln!(out, "  URL:          {}", results.url);
    let _ = writeln!(out, "  Connections:  {}", results.connections);
    if let Some(phase) = results.connect {
        let _ = writeln!(
            out,
            "  Connecting:   {} opened in {} before the first request (slowest {}); not in the times below",
            phase.opened,
            human(phase.took),
            human(phase.slowest)
        );
    }
    if let Some(phase) = results.hold {
        let _ = writeln!(
            out,
            "  Holding:      {} connections idle for {} after the last answer; {} still open at the end",
            phase.held,
            humantime::format_duration(phase.idle),
            phase.still_open
        );
    }
    if let Some(open) = summary.open {
        let _ = writeln!(
            out,
            "  Open model:   asked {:.2} requests/s, {}; sent at {}",
            open.asked_rps,
            open.arrivals.describe(),
            open.sent_rps
                .map_or("—".to_string(), |rate| format!("{rate:.2} requests/s")),
        );
        let record = &results.record;
        if let (Some(p50), Some(p99)) = (results.lateness_at(0.5), results.lateness_at(0.99)) {
            let _ = writeln!(
                out,
                "  Sent after due: p50 {}, p99 {} (the client's share of each latency below)",
                human(p50),
                human(p99),
            );
        }
        let waited = record.late - record.late_client;
        if waited > 0 {
            let _ = writeln!(
                out,
                "  Late:         {waited} requests went out over 1 ms after they were due because every \
                 connection was busy (they waited in the client; their latency counts from when they were due)",
            );
        }
        if record.late_client > 0 {
            let _ = writeln!(
                out,
                "  Behind:       {} requests went out over 1 ms late with a connection free: the client \
                 itself fell behind its schedule (at worst {}), so their latencies measure the client too; \
                 give it more --threads or a lower --rate",
                record.late_client,
                human(Duration::from_micros(record.client_latest_us)),
            );
        }
    }
    let _ = writeln!(out, "  Total:        {}", human(results.duration));
    if let Some(over) = results.overran() {
        let _ = writeln!(
            out,
            "  Overran:      {} past the -z of {} (requests in flight{} when the time ran out); \
             the rates here are over the whole {}",
            human(over),
            human(results.planned.unwrap_or_default()),
            if results.rate.is_some() {
                ", or still due and waiting for a connection,"
            } else {
                ""
            },
            human(results.duration),
        );
    }
    let _ = writeln!(out, "  Requests/s:   {:.2}", results.rps());
    if let Some(deadline) = results.deadline {
        let _ = writeln!(
            out,
            "  Goodput:      {:.2} requests/s ({} answers 2xx within {deadline:?})",
            results.goodput(),
            results.record.good
        );
    }
    if let Some(rate) = results.steady_rps() {
        let _ = writeln!(
            out,
            "  Steady:       {rate:.2} requests/s (each connection's pace between its first and last answer, summed)"
        );
    }
    let requests = summary.requests;
    let _ = writeln!(
        out,
        "  Requests:     {} sent, {} completed, {} failed",
        requests.sent, requests.completed, requests.failed
    );
    if summary.retries > 0 {
        let _ = writeln!(
            out,
            "  Retries:      {} (kept-alive connections the server had closed; sent again on a new one)",
            summary.retries
        );
    }
    out
}

/// Fastest, slowest, average; percentiles; the histogram.
fn latency_section(out: &mut String, results: &Results) {
    let (Some(fastest), Some(slowest), Some(mean)) =
        (results.fastest(), results.slowest(), results.mean())
    else {
        return;
    };
    let _ = writeln!(out, "  Fastest:      {}", human(fastest));
    let _ = writeln!(out, "  Slowest:      {}", human(slowest));
    let _ = writeln!(out, "  Average:      {}", human(mean));
    let record = &results.record;
    let counted = match record.timed_out {
        0 => format!("{} answered", results.completed()),
        timed_out => format!(
            "{} answered and {timed_out} timed out, counted when the client gave up",
            results.completed()
        ),
    };
    let left_out = match results.failed() - record.timed_out {
        0 => String::new(),
        failed => format!("; {failed} failed with no answer, left out"),
    };
    if results.rate.is_some() {
        let _ = writeln!(
            out,
            "\nLatency percentiles ({counted}{left_out}), from when each was due; beside them, from its actual send:"
        );
    } else {
        let _ = writeln!(out, "\nLatency percentiles ({counted}{left_out}):");
    }
    for (label, quantile) in [
        ("p50", 0.5),
        ("p75", 0.75),
        ("p90", 0.9),
        ("p95", 0.95),
        ("p99", 0.99),
        ("p99.9", 0.999),
        ("max", 1.0),
    ] {
        if let Some(latency) = results.latency_at(quantile) {
            match results.uncorrected_at(quantile) {
                Some(sent) => {
                    let _ = writeln!(
                        out,
                        "  {label:<6} {:>12}   from the send: {}",
                        human(latency),
                        human(sent)
                    );
                }
                None => {
                    let _ = writeln!(out, "  {label:<6} {}", human(latency));
                }
            }
        }
    }
    let _ = writeln!(out, "\nLatency histogram:");
    out.push_str(&histogram(results));
}

/// Each kind of failure, how often, the first message; a hint where one helps.
fn errors_section(out: &mut String, results: &Results) {
    if results.record.failures.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nErrors:");
    for (kind, seen) in &results.record.failures {
        let _ = writeln!(
            out,
            "  {:<20} {:>8}   first: {}",
            kind.name(),
            seen.count,
            seen.first_message
        );
    }
    for (kind, hint) in [
        (
            ErrorKind::TooManyOpenFiles,
            "this process ran out of file descriptors (one per connection): raise `ulimit -n`",
        ),
        (
            ErrorKind::NoLocalPort,
            "the machine ran out of local ports: keep connections alive or use fewer",
        ),
    ] {
        if results.record.failures.contains_key(&kind) {
            let _ = writeln!(out, "  hint: {hint}");
        }
    }
}

/// Up to ten equal-width bins from fastest to slowest, with bars scaled to the
/// fullest. A bin is never narrower than the histogram can tell apart.
fn histogram(results: &Results) -> String {
    let latencies = &results.record.latency_us;
    let (low, high) = (results.record.exact_min_us, results.record.exact_max_us);
    let resolution = latencies.highest_equivalent(high) - latencies.lowest_equivalent(high) + 1;
    let width = ((high - low) / HISTOGRAM_BINS).max(resolution).max(1);
    let bin_count = ((high - low) / width + 1).min(HISTOGRAM_BINS);
    let mut bins = vec![0u64; bin_count as usize];
    for value in latencies.iter_recorded() {
        // Place each value by the middle of the latencies it stands for.
        let middle = latencies.median_equivalent(value.value_iterated_to());
        let bin = (middle.saturating_sub(low) / width).min(bin_count - 1);
        bins[bin as usize] += value.count_at_value();
    }
    let fullest = bins.iter().copied().max().unwrap_or(1).max(1);
    let mut out = String::new();
    for (index, count) in bins.iter().enumerate() {
        let upper = if index as u64 == bin_count - 1 {
            high
        } else {
            low + width * (index as u64 + 1)
        };
        let bar = "■".repeat((count * BAR_WIDTH).div_ceil(fullest) as usize);
        let _ = writeln!(
            out,
            "  {:>12} [{count}]\t|{bar}",
            human(Duration::from_micros(upper))
        );
    }
    out
}
