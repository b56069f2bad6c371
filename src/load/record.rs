//! What a load run records: latencies in an HDR histogram, status codes, and
//! failures by kind. Each worker thread keeps its own [`Recorder`]; they are
//! merged into one [`Results`] at the end, so recording takes no lock.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The longest latency the histogram holds exactly: one hour, in microseconds.
/// Longer ones are recorded as one hour.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Why a request did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// Nothing listens on the port.
    Refused,
    /// The peer reset the connection.
    Reset,
    /// The connection closed before a whole response arrived.
    Closed,
    /// No whole response within `--timeout`.
    Timeout,
    /// The bytes that came back were not an HTTP response.
    BadResponse,
    /// This process ran out of file descriptors.
    TooManyOpenFiles,
    /// The machine ran out of local ports for new connections.
    NoLocalPort,
    /// The run was stopped (Ctrl-C) while this request was in flight.
    Interrupted,
    /// The load client itself failed on this request (a bug: please report it).
    Panic,
    /// Anything else; the report shows the first such message.
    Other,
}

impl ErrorKind {
    /// The name used in the text report and as the JSON key.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::TooManyOpenFiles => "too_many_open_files",
            ErrorKind::NoLocalPort => "no_local_port",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Panic => "panic",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failure: its kind and the error text, for the report.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

/// How often one kind of failure happened, and the first message seen.
#[derive(Debug, Clone)]
pub struct FailureCount {
    pub count: u64,
    pub first_message: String,
}

/// When one request ran, for drawing a run as a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    /// Which connection sent it (0 .. connections).
    pub connection: u32,
    /// Microseconds from the start of the run to the request's start and end.
    pub start_us: u64,
    pub end_us: u64,
    /// The response's status, or `None` if the request failed.
    pub status: Option<u16>,
}

/// The most requests a run keeps [`Span`]s for (the first ones): enough for
/// every small experiment, bounded for a long run.
pub const TIMELINE_CAP: usize = 10_000;

/// One worker thread's (or the whole run's) record.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Requests begun: `sent == completed + failed` once the run is over.
    pub sent: u64,
    /// Requests sent again because a kept-alive connection turned out closed.
    pub retries: u64,
    /// Latencies of completed requests, in microseconds, to 3 significant figures.
    pub latency_us: Histogram<u64>,
    /// The exact fastest and slowest latencies, in microseconds. The histogram
    /// rounds within 0.1 %, which would show a 10 s sleep answered in 9.994 s.
    pub exact_min_us: u64,
    pub exact_max_us: u64,
    /// The exact sum of latencies, in microseconds, for the mean.
    pub sum_us: u128,
    pub status_codes: BTreeMap<u16, u64>,
    /// Answers with a 2xx status within the deadline (`--deadline`).
    pub good: u64,
    pub failures: BTreeMap<ErrorKind, FailureCount>,
    /// The first [`TIMELINE_CAP`] requests' spans, in the order they ended.
    pub timeline: Vec<Span>,
    /// What went wrong outside any one request (a thread that did not start).
    pub problems: Vec<String>,
    /// Connections opened before the requests (`--connect-rate`), and the slowest.
    pub preconnected: u64,
    pub slowest_connect_us: u64,
    /// With `--hold`: connections held idle after the run, and how many of
    /// them the server still had open at the end.
    pub held: u64,
    pub still_open: u64,
    /// Each connection's own pace while it ran, summed: (answers − 1) /
    /// (last answer − first answer), over the connections with two answers or more.
    pub paced_rps: f64,
    pub paced_connections: u64,
    /// How many connections got how many answers: answers → connections.
    /// Who waited, where the latencies only say how long.
    pub answers_per_connection: BTreeMap<u64, u64>,
    /// Open model (`--rate`): the latencies from the actual send instead
    /// of from the scheduled time (what a closed client would have seen).
    pub uncorrected_us: Histogram<u64>,
    pub uncorrected_max_us: u64,
    /// Open model: requests sent more than [`LATE`] after their scheduled
    /// time (every connection was busy, or the client fell behind), and the
    /// latest of all.
    pub late: u64,
    pub latest_us: u64,
    /// Of those, the ones a connection was free for in time: the client
    /// itself (its thread, its timer) sent them late, and the latest of them.
    pub late_client: u64,
    pub client_latest_us: u64,
    /// Requests that timed out, counted in the latencies at the moment the
    /// client gave up (a floor: their answers would have come later still).
    pub timed_out: u64,
    /// Open model: how late each request went out after it was due, µs
    /// (0 when on time or a little early): under the 1 ms that counts as
    /// late, this is still the client's share of every corrected latency.
    pub lateness_us: Histogram<u64>,
    /// Open model: the first and last send, µs after the schedule began.
    pub first_send_us: u64,
    pub last_send_us: u64,
    /// Latency over the run: per [`BUCKET_US`] of the time each request was
    /// due (scheduled, or sent in a closed run), how many and the slowest.
    pub over_time: BTreeMap<u64, Bucket>,
}

/// How far past its scheduled time a request may go out before it counts as
/// late: the timer's resolution.
pub const LATE: Duration = Duration::from_millis(1);

/// The width of one [`Recorder::over_time`] bucket: 100 ms.
pub const BUCKET_US: u64 = 100_000;

/// The requests due in one slice of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    pub count: u64,
    /// The slowest latency (from the scheduled time, in an open run), µs.
    pub max_us: u64,
    /// The slowest from the actual send (equal to `max_us` in a closed run), µs.
    pub uncorrected_max_us: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            sent: 0,
            retries: 0,
            timeline: Vec::new(),
            problems: Vec::new(),
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("1 µs .. 1 h at 3 significant figures is a valid histogram"),
            exact_min_us: u64::MAX,
            exact_max_us: 0,
            sum_us: 0,
            status_codes: BTreeMap::new(),
            good: 0,
            failures: BTreeMap::new(),
            preconnected: 0,
            slowest_connect_us: 0,
            held: 0,
            still_open: 0,
            paced_rps: 0.0,
            paced_connections: 0,
            answers_per_connection: BTreeMap::new(),
            uncorrected_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("1 µs .. 1 h at 3 significant figures is a valid histogram"),
            uncorrected_max_us: 0,
            late: 0,
            latest_us: 0,
            late_client: 0,
            client_latest_us: 0,
            timed_out: 0,
            lateness_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("1 µs .. 1 h at 3 significant figures is a valid histogram"),
            first_send_us: u64::MAX,
            last_send_us: 0,
            over_time: BTreeMap::new(),
        }
    }
}

impl Recorder {
    /// A whole response arrived, with this status, after `latency`.
    pub fn completed(&mut self, status: u16, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        self.latency_us.saturating_record(micros);
        self.exact_min_us = self.exact_min_us.min(micros);
        self.exact_max_us = self.exact_max_us.max(micros);
        self.sum_us += u128::from(micros);
        *self.status_codes.entry(status).or_default() += 1;
    }

    /// A request timed out after `waited` (from when it was due, in an open
    /// run): it counts in the latencies at that moment, so a run full of
    /// timeouts cannot report a tidy p99.
    pub fn timed_out(&mut self, waited: Duration) {
        let micros = (waited.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        self.latency_us.saturating_record(micros);
        self.exact_min_us = self.exact_min_us.min(micros);
        self.exact_max_us = self.exact_max_us.max(micros);
        self.sum_us += u128::from(micros);
        self.timed_out += 1;
    }

    /// Open model: a request due at `due_us` (µs after the schedule began)
    /// went out `late` after that; `client_slow` if a connection had been
    /// free for it in time (the client itself was late). If it got an
    /// answer, or timed out, it took `uncorrected` from its send.
    pub fn scheduled(
        &mut self,
        due_us: u64,
        late: Duration,
        client_slow: bool,
        uncorrected: Option<Duration>,
    ) {
        let sent_us = due_us + late.as_micros() as u64;
        self.first_send_us = self.first_send_us.min(sent_us);
        self.last_send_us = self.last_send_us.max(sent_us);
        self.lateness_us
            .saturating_record((late.as_micros() as u64).clamp(1, MAX_LATENCY_US));
        if late > LATE {
            self.late += 1;
            if client_slow {
                self.late_client += 1;
                self.client_latest_us = self.client_latest_us.max(late.as_micros() as u64);
            }
        }
        self.latest_us = self.latest_us.max(late.as_micros() as u64);
        if let Some(latency) = uncorrected {
            let micros = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
            self.uncorrected_us.saturating_record(micros);
            self.uncorrected_max_us = self.uncorrected_max_us.max(micros);
        }
    }

    /// A request due at `due_us` completed after `latency` (and
    /// `uncorrected` from its actual send).
    pub fn over_time(&mut self, due_us: u64, latency: Duration, uncorrected: Duration) {
        let bucket = self.over_time.entry(due_us / BUCKET_US).or_default();
        bucket.count += 1;
        bucket.max_us = bucket.max_us.max(latency.as_micros() as u64);
        bucket.uncorrected_max_us = bucket
            .uncorrected_max_us
            .max(uncorrected.as_micros() as u64);
    }

    /// A request failed.
    pub fn failed(&mut self, failure: Failure) {
        self.failures
            .entry(failure.kind)
            .and_modify(|seen| seen.count += 1)
            .or_insert(FailureCount {
                count: 1,
                first_message: failure.message,
            });
    }

    /// Notes when a request ran (while the timeline has room).
    pub fn span(&mut self, span: Span) {
        if self.timeline.len() < TIMELINE_CAP {
            self.timeline.push(span);
        }
    }

    /// Notes one connection's pace: `answers` whole responses, the first at
    /// `first` and the last at `last`.
    pub fn paced(&mut self, answers: u64, first: Instant, last: Instant) {
        let between = last.saturating_duration_since(first).as_secs_f64();
        if answers >= 2 && between > 0.0 {
            self.paced_rps += (answers - 1) as f64 / between;
            self.paced_connections += 1;
        }
    }

    /// A connection is done sending, with this many answers.
    pub fn connection_done(&mut self, answers: u64) {
        *self.answers_per_connection.entry(answers).or_default() += 1;
    }

    /// Adds another recorder's counts to this one.
    pub fn merge(&mut self, other: &Recorder) {
        for (answers, connections) in &other.answers_per_connection {
            *self.answers_per_connection.entry(*answers).or_default() += connections;
        }
        self.sent += other.sent;
        self.retries += other.retries;
        self.timeline.extend_from_slice(&other.timeline);
        self.timeline
            .sort_by_key(|span| (span.start_us, span.connection));
        self.timeline.truncate(TIMELINE_CAP);
        self.problems.extend(other.problems.iter().cloned());
        self.preconnected += other.preconnected;
        self.held += other.held;
        self.paced_rps += other.paced_rps;
        self.paced_connections += other.paced_connections;
        self.still_open += other.still_open;
        self.slowest_connect_us = self.slowest_connect_us.max(other.slowest_connect_us);
        // The histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.uncorrected_us.add(&other.uncorrected_us);
        let _ = self.lateness_us.add(&other.lateness_us);
        self.uncorrected_max_us = self.uncorrected_max_us.max(other.uncorrected_max_us);
        self.late += other.late;
        self.latest_us = self.latest_us.max(other.latest_us);
        self.late_client += other.late_client;
        self.client_latest_us = self.client_latest_us.max(other.client_latest_us);
        self.timed_out += other.timed_out;
        self.first_send_us = self.first_send_us.min(other.first_send_us);
        self.last_send_us = self.last_send_us.max(other.last_send_us);
        for (slice, theirs) in &other.over_time {
            let mine = self.over_time.entry(*slice).or_default();
            mine.count += theirs.count;
            mine.max_us = mine.max_us.max(theirs.max_us);
            mine.uncorrected_max_us = mine.uncorrected_max_us.max(theirs.uncorrected_max_us);
        }
        self.exact_min_us = self.exact_min_us.min(other.exact_min_us);
        self.exact_max_us = self.exact_max_us.max(other.exact_max_us);
        self.sum_us += other.sum_us;
        self.good += other.good;
        for (status, count) in &other.status_codes {
            *self.status_codes.entry(*status).or_default() += count;
        }
        for (kind, seen) in &other.failures {
            self.failures
                .entry(*kind)
                .and_modify(|mine| mine.count += seen.count)
                .or_insert_with(|| seen.clone());
        }
    }

    /// Whole answers, of any status (the latencies hold the timeouts too).
    pub fn completed_count(&self) -> u64 {
        self.status_codes.values().sum()
    }

    pub fn failed_count(&self) -> u64 {
        self.failures.values().map(|seen| seen.count).sum()
    }
}

/// Everything a finished run measured.
#[derive(Debug, Clone)]
pub struct Results {
    pub url: String,
    pub connections: usize,
    /// From the first request sent to the last one finished.
    pub duration: Duration,
    pub record: Recorder,
    /// True when the run was stopped early (Ctrl-C).
    pub interrupted: bool,
    /// With `--connect-rate`: how the connections were opened before the
    /// first request (not part of `duration` nor of any latency).
    pub connect: Option<ConnectPhase>,
    /// With `--hold`: the connections kept open and idle after the last answer.
    pub hold: Option<HoldPhase>,
    /// The run stopped after a duration (`-z`) rather than a count.
    pub timed: bool,
    /// Open model: the rate asked for (`--rate`), requests per second, and
    /// how the arrivals were spaced.
    pub rate: Option<f64>,
    pub arrivals: super::schedule::Arrivals,
    /// The length asked for with `-z`: the run stops sending then, and
    /// waits for what is in flight (and, open, for what is still due).
    pub planned: Option<Duration>,
    /// The goodput's deadline (`--deadline`).
    pub deadline: Option<Duration>,
}

/// The connections held open and idle after the last answer (`--hold`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldPhase {
    pub idle: Duration,
    /// Connections that were open when the run ended, and so were held.
    pub held: u64,
    /// Of those, the ones the server had not closed by the end.
    pub still_open: u64,
}

/// The connections opened before any request was sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectPhase {
    /// From the first connection attempt to the last connection open.
    pub took: Duration,
    /// Connections that opened (the rest connect with their first request).
    pub opened: u64,
    /// The slowest single connect.
    pub slowest: Duration,
}

impl Results {
    /// Good answers (2xx within the deadline) per second: of the schedule
    /// in an open run (requests sent ÷ rate), else of the run.
    pub fn goodput(&self) -> f64 {
        let seconds = match self.rate {
            Some(rate) => self.record.sent as f64 / rate,
            None => self.duration.as_secs_f64(),
        };
        self.record.good as f64 / seconds.max(1e-9)
    }
}

impl Results {
    /// How far a timed run went past its `-z`, when that is more than 1 %
    /// of it (or 10 ms): requests in flight, or (open) still due and
    /// queued in the client, when the time ran out.
    pub fn overran(&self) -> Option<Duration> {
        let planned = self.planned?;
        let over = self.duration.checked_sub(planned)?;
        (over > (planned / 100).max(Duration::from_millis(10))).then_some(over)
    }

    pub fn completed(&self) -> u64 {
        self.record.completed_count()
    }

    pub fn failed(&self) -> u64 {
        self.record.failed_count()
    }

    /// Requests begun. Equal to `completed + failed` when every request is
    /// accounted for, as it must be (the tests hold the engine to it).
    pub fn sent(&self) -> u64 {
        self.record.sent
    }

    /// The steady rate of a timed run (`-z`): every connection's own answers
    /// per second between its first and last answer, summed. In a closed
    /// model that is the server's rate while every connection is busy, with
    /// neither the start (connections still sending their first request) nor
    /// the end (the last requests draining) inside. `None` unless the run was
    /// timed and every connection answered at least twice.
    pub fn steady_rps(&self) -> Option<f64> {
        (self.timed && self.record.paced_connections == self.connections as u64)
            .then_some(self.record.paced_rps)
    }

    /// Completed requests per second of the run.
    pub fn rps(&self) -> f64 {
        let seconds = self.duration.as_secs_f64();
        if seconds > 0.0 {
            self.completed() as f64 / seconds
        } else {
            0.0
        }
    }

    /// The latency at `quantile` (0.0 ..= 1.0), if any request completed;
    /// never outside the exact fastest and slowest.
    pub fn latency_at(&self, quantile: f64) -> Option<Duration> {
        let record = &self.record;
        (!record.latency_us.is_empty()).then(|| {
            let micros = record
                .latency_us
                .value_at_quantile(quantile)
                .clamp(record.exact_min_us, record.exact_max_us);
            Duration::from_micros(micros)
        })
    }

    pub fn fastest(&self) -> Option<Duration> {
        let record = &self.record;
        (!record.latency_us.is_empty()).then(|| Duration::from_micros(record.exact_min_us))
    }

    pub fn slowest(&self) -> Option<Duration> {
        let record = &self.record;
        (!record.latency_us.is_empty()).then(|| Duration::from_micros(record.exact_max_us))
    }

    /// Open model: the rate requests actually went out at, from the first
    /// send to the last.
    pub fn sent_rps(&self) -> Option<f64> {
        self.rate?;
        let record = &self.record;
        let span_us = record.last_send_us.checked_sub(record.first_send_us)?;
        (record.sent >= 2 && span_us > 0).then(|| (record.sent - 1) as f64 / (span_us as f64 / 1e6))
    }

    /// Open model: the latency at `quantile` from each request's actual
    /// send (what a closed client would report).
    pub fn uncorrected_at(&self, quantile: f64) -> Option<Duration> {
        let histogram = &self.record.uncorrected_us;
        (self.rate.is_some() && !histogram.is_empty()).then(|| {
            Duration::from_micros(
                histogram
                    .value_at_quantile(quantile)
                    .min(self.record.uncorrected_max_us),
            )
        })
    }

    /// Open model: how late requests went out after they were due, at
    /// `quantile` (the client's own share of the corrected latencies).
    pub fn lateness_at(&self, quantile: f64) -> Option<Duration> {
        let histogram = &self.record.lateness_us;
        (self.rate.is_some() && !histogram.is_empty()).then(|| {
            // Recorded as at least 1 µs: 1 µs stands for on time.
            let micros = histogram.value_at_quantile(quantile);
            Duration::from_micros(if micros <= 1 { 0 } else { micros })
        })
    }

    pub fn mean(&self) -> Option<Duration> {
        let record = &self.record;
        let count = record.latency_us.len();
        (count > 0).then(|| Duration::from_micros((record.sum_us / u128::from(count)) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_and_keeps_first_messages() {
        let mut a = Recorder::default();
        a.completed(200, Duration::from_millis(2));
        a.failed(Failure {
            kind: ErrorKind::Refused,
            message: "first".into(),
        });
        let mut b = Recorder::default();
        b.completed(200, Duration::from_millis(4));
        b.completed(404, Duration::from_millis(6));
        b.failed(Failure {
            kind: ErrorKind::Refused,
            message: "second".into(),
        });
        a.merge(&b);
        assert_eq!(a.completed_count(), 3);
        assert_eq!(a.status_codes[&200], 2);
        assert_eq!(a.status_codes[&404], 1);
        assert_eq!(a.failures[&ErrorKind::Refused].count, 2);
        assert_eq!(a.failures[&ErrorKind::Refused].first_message, "first");
        assert_eq!(a.failed_count(), 2);
    }

    #[test]
    fn latencies_keep_three_significant_figures() {
        let mut record = Recorder::default();
        record.completed(200, Duration::from_micros(50_123));
        record.completed(200, Duration::from_secs(10));
        record.completed(200, Duration::from_secs(7200)); // clamped to one hour
        let max = record.latency_us.max();
        assert!((MAX_LATENCY_US..MAX_LATENCY_US + MAX_LATENCY_US / 500).contains(&max));
        let low = record.latency_us.value_at_quantile(0.0);
        assert!((50_000..50_200).contains(&low), "{low}");
        assert_eq!(record.exact_min_us, 50_123);
        assert_eq!(record.exact_max_us, MAX_LATENCY_US);
    }
}
