//! What a server says of itself at `GET /report`, as types: the server that
//! writes a report and the book's view that reads it share one struct, so
//! neither guesses the other's field names.

use serde::{Deserialize, Serialize};

/// Chapter 2's and 7's pre-forked servers: how the connections spread over
/// the workers (not counting the connection that asks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkersReport {
    /// Threads each worker serves requests on.
    pub threads_per_worker: usize,
    pub workers: Vec<WorkerCounts>,
}

/// One worker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WorkerCounts {
    pub worker: usize,
    pub pid: u64,
    /// Connections it accepted since it started.
    pub accepted: u64,
    /// Connections it holds open now.
    pub open: u64,
    /// Requests it answered.
    pub requests: u64,
}

/// Chapter 4's lag probe: how late the loop ran a task that asked to wake
/// every 10 ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagReport {
    /// Milliseconds since the probe started, when the report was made: lines
    /// the samples up with a run's clock.
    pub now_ms: f64,
    /// The latest the probe ever woke, in milliseconds.
    pub max_lag_ms: f64,
    /// Each wake-up: (ms since the probe started, ms late).
    pub lag_ms: Vec<(f64, f64)>,
}

impl WorkersReport {
    /// How many connections each worker accepted.
    pub fn accepted(&self) -> Vec<usize> {
        self.workers.iter().map(|w| w.accepted as usize).collect()
    }
}
