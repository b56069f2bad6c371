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
    /// Work stealing (tokio built with `--cfg tokio_unstable`): the tasks
    /// each worker thread stole from another's queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steals: Vec<u64>,
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
    /// The most connections it held open at once.
    #[serde(default)]
    pub most_open: u64,
    /// Times it found itself over its fair share and waited to look again
    /// (fair accept only).
    #[serde(default)]
    pub share_checks: u64,
    /// The most connections past its fair share of those open (the open
    /// connections over the workers, rounded up) that an accept left it
    /// holding.
    #[serde(default)]
    pub most_over_share: u64,
}

/// Chapter 12's server: how it ran and what its limit turned away.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverloadReport {
    /// Threads running the event loop's tasks.
    pub threads: usize,
    /// Whether CPU work ran on the blocking pool.
    pub offload: bool,
    /// The dependency's slots (None: none).
    pub slots: Option<usize>,
    /// Requests the server holds at once (None: no limit).
    pub limit: Option<usize>,
    /// Requests served: admitted, given a slot, answered (this report not
    /// counted). With `shed` and `timed_out`, every request received, each
    /// counted in exactly one of the three.
    pub answered: u64,
    /// Requests answered 503 at once because the server was full.
    pub shed: u64,
    /// Requests answered 503 after waiting too long for a slot.
    pub timed_out: u64,
    /// The most requests the server held at once (waiting or served).
    pub peak_held: u64,
}

/// Chapter 12's two sleep sources compared (`chapter12_overload
/// --timer-check`): how long a sleep of `asked_ms` takes on tokio's timer (the
/// loop's) and with `std::thread::sleep` (the pool's), over `samples` each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerCheck {
    pub asked_ms: f64,
    pub samples: u32,
    /// Mean time a sleep took, ms.
    pub tokio_ms: f64,
    pub std_ms: f64,
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

/// Chapter 9's server: which runtime runs it, how big one connection's
/// future is, and (with `--trace`) what the runtime did, step by step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeReport {
    /// `ours` or `tokio`.
    pub runtime: String,
    /// `size_of_val` of the future the accept loop spawns for one
    /// connection (the `async fn handle` state machine), in bytes.
    pub connection_future_bytes: usize,
    /// The runtime's steps since it started, when started with `--trace`
    /// (empty otherwise; at most [`RuntimeReport::TRACE_LIMIT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<TraceStep>,
}

impl RuntimeReport {
    /// The most steps a trace keeps (the first ones).
    pub const TRACE_LIMIT: usize = 1_000;
}

/// One step of chapter 9's runtime, at `at_us` microseconds after it started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    pub at_us: f64,
    pub step: Step,
}

/// What the runtime did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Step {
    /// A task was spawned and put on the ready queue.
    Spawned { task: usize },
    /// The executor took a task off the ready queue and began to poll it.
    Poll { task: usize },
    /// The executor polled a task; it returned `Ready` or `Pending`.
    Polled { task: usize, ready: bool },
    /// A future found its socket not ready (`WouldBlock`) and left the
    /// task's waker with the reactor.
    WouldBlock { task: usize, write: bool },
    /// A future asked for a timer.
    Timer { task: usize, ms: u64 },
    /// Nothing to run: the loop slept in `epoll_wait` (timeout in ms, or
    /// none), and woke with `events` events.
    Slept {
        timeout_ms: Option<u64>,
        events: usize,
        slept_us: u64,
    },
    /// The reactor woke a task: its socket became ready, or its timer was due.
    Woke { task: usize, by: WakeCause },
}

/// Why the reactor woke a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeCause {
    Readable,
    Writable,
    Timer,
}

/// Chapter 9's brigade and friends: what a switch, a start and a waiting
/// worker cost, threads against tasks (`chapter9_switch --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchCosts {
    pub workers: u32,
    pub rounds: u32,
    pub pinned: bool,
    /// One thread, one socket pair: a write and a read, nobody to wake (ns).
    pub baseline_hop_ns: f64,
    /// A hop between OS threads (ns), between tokio tasks on one thread,
    /// and between tasks of chapter 9's own runtime.
    pub thread_hop_ns: f64,
    pub task_hop_ns: f64,
    pub ours_hop_ns: f64,
    /// Context switches the process made per hop (voluntary and not, all
    /// threads: `getrusage`), in the thread brigade and in tokio's.
    pub thread_switches_per_hop: f64,
    pub task_switches_per_hop: f64,
    /// Starting one thread (spawn and join of one that returns at once),
    /// and one task (spawned on a current-thread runtime and awaited), ns.
    pub thread_spawn_ns: f64,
    pub task_spawn_ns: f64,
    /// The published anchor's way, per one: threads started 20 at a time
    /// and then joined (ns); tasks spawned 10,000 at a time, the spawn calls
    /// alone, before any of them runs (ns).
    pub thread_batch_spawn_ns: f64,
    pub task_spawn_only_ns: f64,
    /// Resident memory each waiting thread and task adds: the slope of
    /// resident memory against their count (bytes).
    pub thread_bytes: f64,
    pub task_bytes: f64,
    /// The same slope for the kernel's stacks (`KernelStack` in
    /// /proc/meminfo: machine-wide, so other processes' noise is in it).
    pub thread_kernel_stack_bytes: f64,
    pub task_kernel_stack_bytes: f64,
    /// The same slope for this process's page tables (`VmPTE`).
    pub thread_page_table_bytes: f64,
    pub task_page_table_bytes: f64,
    /// The counts of waiting threads, and of tasks, the slopes are drawn through.
    pub waiting_threads: Vec<usize>,
    pub waiting_tasks: Vec<usize>,
}

/// Chapter 9's cooperative-budget demo (`chapter9_budget --json`): a task
/// that reads a socket that is always ready, beside a task that wants to
/// wake every few milliseconds, on each runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReport {
    /// Bytes the greedy task read on each runtime.
    pub bytes: u64,
    /// How often the ticker asked to wake, in ms.
    pub tick_ms: u64,
    pub runtimes: Vec<BudgetRun>,
}

/// One runtime's run of the budget demo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetRun {
    /// `ours` or `tokio`.
    pub runtime: String,
    /// How long the greedy task took to read everything, ms.
    pub greedy_ms: f64,
    /// Times the greedy task's read returned `Pending` (it gave the thread up).
    pub greedy_yields: u64,
    /// How many times the ticker ran while the greedy task read.
    pub ticks: u64,
    /// The latest the ticker ran, ms after it asked to.
    pub max_late_ms: f64,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Step::Spawned { task } => write!(f, "spawn task {task}: on the ready queue"),
            Step::Poll { task } => write!(f, "poll task {task}"),
            Step::Polled { task, ready } => write!(
                f,
                "task {task} → {}",
                if ready { "Ready (done)" } else { "Pending" }
            ),
            Step::WouldBlock { task, write } => write!(
                f,
                "  task {task}: not ready to {} (WouldBlock); its waker goes to the reactor",
                if write { "write" } else { "read" }
            ),
            Step::Timer { task, ms } => {
                write!(
                    f,
                    "  task {task}: a timer in {ms} ms; its waker goes to the heap"
                )
            }
            Step::Slept {
                timeout_ms,
                events,
                slept_us,
            } => {
                let timeout = timeout_ms.map_or("none".to_string(), |ms| format!("{ms} ms"));
                write!(
                    f,
                    "epoll_wait (timeout {timeout}): {events} event{} after {} µs",
                    if events == 1 { "" } else { "s" },
                    slept_us
                )
            }
            Step::Woke { task, by } => write!(
                f,
                "  wake task {task}: {}",
                match by {
                    WakeCause::Readable => "its socket is readable",
                    WakeCause::Writable => "its socket is writable",
                    WakeCause::Timer => "its timer is due",
                }
            ),
        }
    }
}

/// A hand-written loop's own count of its system calls (chapters 8 and 13):
/// each call it makes, by name, and what it got back for them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyscallReport {
    /// `epoll` or `io_uring`, and the loop's buffers.
    pub loop_kind: String,
    /// Calls made since the server started, by system call.
    pub calls: std::collections::BTreeMap<String, u64>,
    /// Requests answered (this `/report` not counted).
    pub requests: u64,
    /// How many times the loop waited in the kernel (`epoll_wait`, or an
    /// `io_uring_enter` that waited for completions).
    pub waits: u64,
    /// What those waits brought back: ready sockets, or completions.
    pub events: u64,
    /// io_uring only: operations handed to the kernel.
    #[serde(default)]
    pub submitted: u64,
    /// io_uring with a buffer ring only: reads that found the ring empty.
    #[serde(default)]
    pub ring_empty: u64,
}

impl SyscallReport {
    /// Counts one call of `name`.
    pub fn call(&mut self, name: &'static str) {
        // No allocation once the name is known: this runs on every call.
        match self.calls.get_mut(name) {
            Some(count) => *count += 1,
            None => {
                self.calls.insert(name.to_string(), 1);
            }
        }
    }

    /// Every system call, whatever its name.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// This report as the body of `GET /report`.
    pub fn to_reply(&self) -> crate::routes::Reply {
        crate::routes::Reply {
            status: 200,
            body: serde_json::to_string(self).unwrap_or_default() + "\n",
        }
    }
}

/// Chapter 13's measuring program: what a system call and an io_uring
/// operation cost on this machine, in nanoseconds (medians of rounds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyscallCosts {
    /// `getppid`: the cost of entering the kernel and coming back.
    pub empty_call_ns: f64,
    /// `recv` on a socket with nothing to read (an epoll loop's last read).
    pub empty_read_ns: f64,
    /// A 100-byte `send` and the `recv` that takes it, on a loopback TCP pair.
    pub send_recv_ns: f64,
    /// One no-op through io_uring: submitted, waited for, reaped (one enter).
    pub uring_nop_ns: f64,
    /// Per no-op, with a batch of [`SyscallCosts::BATCH`] per enter.
    pub uring_batched_nop_ns: f64,
    /// Rounds each median is taken over.
    pub rounds: u32,
}

impl SyscallCosts {
    pub const BATCH: u32 = 32;
}

/// Chapter 14's coroutine server: how it was set up, and what it saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CoroutineReport {
    /// Threads running the coroutines.
    pub workers: usize,
    /// Each coroutine's stack, in KiB.
    pub stack_kib: u32,
    /// Requests answered (this `/report` not counted).
    pub answered: u64,
    /// Requests whose coroutine slept on one thread and woke on another.
    pub moved: u64,
}

impl CoroutineReport {
    /// This report as the body of `GET /report`.
    pub fn to_reply(&self) -> crate::routes::Reply {
        crate::routes::Reply {
            status: 200,
            body: serde_json::to_string(self).unwrap_or_default() + "\n",
        }
    }
}

/// Chapter 14's brigade and friends, on may's coroutines
/// (`chapter14_switch --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoroutineCosts {
    pub workers: u32,
    pub rounds: u32,
    /// Each coroutine's stack, in KiB.
    pub stack_kib: u32,
    /// One thread, one socket pair: a write and a read, nobody to wake (ns).
    pub baseline_hop_ns: f64,
    /// A hop between coroutines on one carrier thread (ns).
    pub hop_ns: f64,
    /// Starting a coroutine that returns at once, and joining it (ns).
    pub spawn_ns: f64,
    /// Resident memory and address space each waiting coroutine adds, its
    /// socket pair included: the slopes over `waiting` (bytes).
    pub coroutine_bytes: f64,
    pub coroutine_address_bytes: f64,
    pub waiting: Vec<usize>,
}
