//! What a load run's threads share, and what every part of the engine
//! reads: the run's configuration and stop rule, the counters, and the
//! tickets (leave to send one more request, and when it is due). The engine
//! ([`super::engine`]) starts the threads; each connection
//! ([`super::connection`]) takes its tickets here.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::schedule::{Arrivals, Schedule};
use super::target::Target;

/// When a run stops sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many requests in all.
    AfterRequests(u64),
    /// After this long; requests in flight then still finish (up to the timeout)
    /// and are counted, so slow responses are not dropped from the numbers.
    AfterDuration(Duration),
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub target: Target,
    pub connections: usize,
    pub stop: Stop,
    /// The most one request may take, connecting included.
    pub timeout: Duration,
    /// Reuse connections (HTTP/1.1 keep-alive); otherwise one connection per request.
    pub keepalive: bool,
    /// OS threads driving the connections.
    pub threads: usize,
    /// With `-n`: each connection sends its own share, n / c requests (as hey
    /// does), instead of every connection taking the next request from one
    /// count (as oha and wrk do). On a server whose connections stick to one
    /// of several workers, the two read differently (chapter 2).
    pub fixed_share: bool,
    /// Open every connection first, this many per second, and send the first
    /// request only when all are open (chapter 8: ten thousand connections
    /// at once would overflow the listen backlog, and the kernel's 1 s
    /// retransmits would land inside the latencies).
    pub connect_rate: Option<u32>,
    /// After the last answer, keep every open connection idle this long,
    /// then see which the server still holds (chapter 8: what an idle
    /// kept-alive connection costs a server). Not part of the run's time.
    pub hold: Option<Duration>,
    /// The open model: this many requests per second in all, request i due
    /// at i / rate, whatever the server does (chapter 10).
    pub rate: Option<f64>,
    /// With `rate`: evenly spaced, or Poisson arrivals from a seed.
    pub arrivals: Arrivals,
    /// Count the answers with a 2xx status within this time (the goodput).
    pub deadline: Option<Duration>,
    /// A fault the engine's own tests inject.
    #[cfg(test)]
    pub(crate) fault: Option<Fault>,
}

impl LoadConfig {
    /// A run of `requests` requests over `connections` connections, with the defaults
    /// of the `load` command for everything else.
    pub fn new(target: Target, requests: u64, connections: usize) -> LoadConfig {
        LoadConfig {
            target,
            connections,
            stop: Stop::AfterRequests(requests),
            timeout: Duration::from_secs(30),
            keepalive: true,
            threads: default_threads(connections),
            fixed_share: false,
            connect_rate: None,
            hold: None,
            rate: None,
            arrivals: Arrivals::Even,
            deadline: None,
            #[cfg(test)]
            fault: None,
        }
    }
}

/// One thread for every two cores (the other half is the server's: in this
/// book the client shares the machine with what it measures), never more
/// threads than connections, and at least one.
pub fn default_threads(connections: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).min(connections).max(1)
}

/// What the threads share: the stop rule, the counters the progress bar reads,
/// and the cancel signal.
pub(super) struct Shared {
    pub(super) config: LoadConfig,
    pub(super) started: Instant,
    pub(super) issued: AtomicU64,
    pub(super) completed: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) cancelled: AtomicBool,
    pub(super) cancel: watch::Sender<bool>,
    /// Connections still sending; the last to finish says when on `all_done`.
    pub(super) active: AtomicUsize,
    pub(super) all_done: watch::Sender<Option<Instant>>,
    /// With `connect_rate`: connections through their connect attempt, and
    /// when the last one was (the requests start then).
    pub(super) connected: AtomicUsize,
    pub(super) all_connected: watch::Sender<Option<Instant>>,
    /// Open model: when each request falls due, handed out in order.
    pub(super) schedule: Option<Mutex<Schedule>>,
}

/// Leave to send one more request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    /// Open model: when the request is due (its latency counts from then).
    pub(super) due: Option<Instant>,
}

impl Shared {
    /// When the requests began: after the connecting, with `--connect-rate`.
    pub(super) fn began(&self) -> Instant {
        self.all_connected.borrow().unwrap_or(self.started)
    }

    // ANCHOR: ticket
    /// May a connection send one more request, and when is it due? In the
    /// open model the tickets are the schedule: the i-th is due at
    /// i / rate (or at the i-th arrival of a Poisson process), taken in
    /// order by whichever connection is free. If none is free when a request
    /// is due, it waits for one (it goes out late, and its latency still
    /// counts from when it was due).
    pub(super) fn take_ticket(&self) -> Option<Ticket> {
        if self.cancelled.load(Ordering::Relaxed) {
            return None;
        }
        let Some(schedule) = &self.schedule else {
            let more = match self.config.stop {
                Stop::AfterRequests(total) => self.issued.fetch_add(1, Ordering::Relaxed) < total,
                Stop::AfterDuration(duration) => self.began().elapsed() < duration,
            };
            return more.then_some(Ticket { due: None });
        };
        let (number, offset) = schedule.lock().ok()?.next_due();
        self.issued.fetch_add(1, Ordering::Relaxed);
        let more = match self.config.stop {
            Stop::AfterRequests(total) => number < total,
            Stop::AfterDuration(duration) => offset < duration,
        };
        more.then(|| Ticket {
            due: Some(self.began() + offset),
        })
    }
    // ANCHOR_END: ticket
}

/// A fault the engine's tests inject, to see every request still counted.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Every second request on a connection panics inside its exchange.
    PanicOnEverySecondRequest,
    /// Every connect fails as if the process were out of descriptors.
    TooManyOpenFiles,
}
