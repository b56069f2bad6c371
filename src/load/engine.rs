//! Driving connections: the load loop, closed or open.
//!
//! Each of `threads` OS threads runs a current-thread tokio runtime with its
//! share of the connections (as oha does). A connection sends its next request
//! only when the previous response has fully arrived, so at most
//! `connections` requests are ever in flight. In the closed model (the
//! default) it sends at once; in the open model (`--rate`) request i is due
//! at i / rate after the start, and a connection waits for its request's
//! time: latencies then count from that time. Connections speak HTTP/1.1
//! through [`super::http1`]: a request serialised once, a response parsed with
//! httparse and discarded as it streams, so the client costs little CPU next
//! to the server it loads.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::connection::{ConnectionDone, connection_loop};
use super::record::{ConnectPhase, HoldPhase, Recorder, Results};
use super::schedule::Schedule;
use super::shared::Shared;
pub use super::shared::{LoadConfig, Stop, default_threads};

/// What one worker thread hands back: its record and when it finished.
type ThreadOutcome = (Recorder, Instant);
/// The work of one worker thread.
type ThreadBody = Box<dyn FnOnce() -> ThreadOutcome + Send>;

/// A run in progress. [`LoadRun::wait`] returns its results.
pub struct LoadRun {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<ThreadOutcome>>,
}

/// Spare file descriptors beyond one per connection (stdio, the runtime, the
/// epoll instances, a connection being replaced).
pub const SPARE_FILES: u64 = 64;

/// Raises this process's open-file limit as far as it goes and checks that
/// `connections` fit under it; the error is one line naming the fix.
pub fn check_open_files(connections: usize) -> Result<(), String> {
    let limit = crate::sys::raise_open_file_limit();
    let needed = (connections as u64).saturating_add(SPARE_FILES);
    if needed > limit {
        return Err(format!(
            "{connections} connections need about {needed} open files but this process may \
             open only {limit}; raise the limit with `ulimit -n {needed}` (the hard limit caps \
             it) or use fewer connections"
        ));
    }
    Ok(())
}

impl LoadRun {
    /// Checks the open-file limit, starts the worker threads and returns at once.
    pub fn start(config: LoadConfig) -> Result<LoadRun, String> {
        LoadRun::start_with(config, |name, body| {
            std::thread::Builder::new().name(name).spawn(body)
        })
    }

    /// [`LoadRun::start`], with the way threads are started given: if one
    /// cannot start, the ones already running are stopped before the error returns.
    fn start_with(
        config: LoadConfig,
        mut spawn: impl FnMut(String, ThreadBody) -> std::io::Result<JoinHandle<ThreadOutcome>>,
    ) -> Result<LoadRun, String> {
        check_open_files(config.connections)?;
        let thread_count = config.threads.clamp(1, config.connections.max(1));
        let (cancel, _) = watch::channel(false);
        let (all_done, _) = watch::channel(None);
        let (all_connected, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            connected: AtomicUsize::new(0),
            all_connected,
            started: Instant::now(),
            issued: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            cancel,
            active: AtomicUsize::new(config.connections),
            all_done,
            schedule: config
                .rate
                .map(|rate| Mutex::new(Schedule::new(rate, config.arrivals))),
            config,
        });
        let connections = shared.config.connections;
        let mut run = LoadRun {
            shared: Arc::clone(&shared),
            threads: Vec::with_capacity(thread_count),
        };
        let mut first_connection = 0;
        for index in 0..thread_count {
            // Spread the connections evenly: the first threads take one extra.
            let share =
                connections / thread_count + usize::from(index < connections % thread_count);
            let shared = Arc::clone(&shared);
            let first = first_connection;
            first_connection += share;
            match spawn(
                format!("load-{index}"),
                Box::new(move || drive_connections(shared, first, share)),
            ) {
                Ok(thread) => run.threads.push(thread),
                Err(error) => {
                    run.cancel();
                    let _ = run.wait();
                    return Err(format!("cannot start a load thread: {error}"));
                }
            }
        }
        Ok(run)
    }

    /// Stops sending; requests in flight end as `interrupted`.
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, Ordering::Relaxed);
        self.shared.cancel.send_replace(true);
    }

    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }

    /// How long the run has been going.
    pub fn elapsed(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// Requests finished so far: (completed, failed).
    pub fn progress(&self) -> (u64, u64) {
        (
            self.shared.completed.load(Ordering::Relaxed),
            self.shared.failed.load(Ordering::Relaxed),
        )
    }

    pub fn config(&self) -> &LoadConfig {
        &self.shared.config
    }

    /// Waits for every connection to finish and merges what they recorded.
    pub fn wait(self) -> Results {
        let mut record = Recorder::default();
        // The run ends when its last connection does, not when we notice.
        let mut finished = self.shared.started;
        for thread in self.threads {
            match thread.join() {
                Ok((part, ended)) => {
                    record.merge(&part);
                    finished = finished.max(ended);
                }
                Err(_) => record
                    .problems
                    .push("a load thread panicked; its requests are not counted".into()),
            }
        }
        // With pre-connected connections the run's clock starts at the first request.
        let requests_began = *self.shared.all_connected.borrow();
        let connect = requests_began.map(|began| ConnectPhase {
            took: began - self.shared.started,
            opened: record.preconnected,
            slowest: Duration::from_micros(record.slowest_connect_us),
        });
        // A held run's last answer came before its connections closed.
        let last_answer = *self.shared.all_done.borrow();
        if let (Some(_), Some(done)) = (self.shared.config.hold, last_answer) {
            finished = done;
        }
        let mut duration =
            finished.saturating_duration_since(requests_began.unwrap_or(self.shared.started));
        // An open run lasts at least its schedule: with random arrivals the
        // last one can fall well before the end of `-z`, and the time after
        // it, with nothing due, is still part of the run its rates are over.
        if let (Some(_), Stop::AfterDuration(length), false) = (
            self.shared.config.rate,
            self.shared.config.stop,
            self.shared.cancelled.load(Ordering::Relaxed),
        ) {
            duration = duration.max(length);
        }
        let hold = self.shared.config.hold.map(|idle| HoldPhase {
            idle,
            held: record.held,
            still_open: record.still_open,
        });
        Results {
            url: self.shared.config.target.url.clone(),
            connections: self.shared.config.connections,
            duration,
            record,
            interrupted: self.shared.cancelled.load(Ordering::Relaxed),
            connect,
            hold,
            timed: matches!(self.shared.config.stop, Stop::AfterDuration(_)),
            rate: self.shared.config.rate,
            arrivals: self.shared.config.arrivals,
            planned: match self.shared.config.stop {
                Stop::AfterDuration(length) => Some(length),
                Stop::AfterRequests(_) => None,
            },
            deadline: self.shared.config.deadline,
        }
    }
}

/// Runs `config` to the end on the calling thread's behalf and returns the results.
pub fn run(config: LoadConfig) -> Result<Results, String> {
    Ok(LoadRun::start(config)?.wait())
}

/// One worker thread: a current-thread runtime running `count` connections,
/// numbered from `first`.
fn drive_connections(shared: Arc<Shared>, first: usize, count: usize) -> ThreadOutcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let mut record = Recorder::default();
            record
                .problems
                .push(format!("cannot start a tokio runtime: {error}"));
            // Its connections will never send: let the others stop holding theirs.
            for _ in 0..count {
                ConnectionDone::new(&shared).finish();
            }
            return (record, Instant::now());
        }
    };
    let record = Rc::new(RefCell::new(Recorder::default()));
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut connections = tokio::task::JoinSet::new();
        for number in first..first + count {
            connections.spawn_local(connection_loop(
                Arc::clone(&shared),
                Rc::clone(&record),
                number as u32,
            ));
        }
        // Cancelling aborts every connection task at once; a request in flight
        // records itself as interrupted when its task is dropped. So the
        // per-request path never has to look at the cancel signal.
        let mut cancel = shared.cancel.subscribe();
        loop {
            tokio::select! {
                joined = connections.join_next() => if joined.is_none() { break },
                _ = cancel.changed() => {
                    connections.abort_all();
                    while connections.join_next().await.is_some() {}
                    break;
                }
            }
        }
    });
    let ended = Instant::now();
    drop(local);
    let record = Rc::try_unwrap(record)
        .map(RefCell::into_inner)
        .unwrap_or_else(|shared_record| shared_record.borrow().clone());
    (record, ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Target;
    use crate::load::connection::tests::ok_server;

    fn config(url: &str, requests: u64, connections: usize) -> LoadConfig {
        LoadConfig::new(Target::parse(url).unwrap(), requests, connections)
    }

    #[test]
    fn the_goodput_counts_good_answers_within_the_deadline() {
        let url = ok_server();
        let mut generous = config(&url, 20, 2);
        generous.deadline = Some(Duration::from_secs(60));
        let results = crate::load::run(generous).unwrap();
        assert_eq!(results.record.good, 20);
        let summary = crate::load::Summary::of(&results);
        assert_eq!(summary.good.map(|g| g.answers), Some(20));
        // No answer comes back within a nanosecond.
        let mut strict = config(&url, 20, 2);
        strict.deadline = Some(Duration::from_nanos(1));
        assert_eq!(crate::load::run(strict).unwrap().record.good, 0);
        // Without a deadline, no goodput is claimed.
        let summary = crate::load::Summary::of(&crate::load::run(config(&url, 5, 1)).unwrap());
        assert_eq!(summary.good, None);
    }

    #[test]
    fn a_thread_that_cannot_start_stops_the_ones_already_running() {
        let url = ok_server();
        let mut endless = config(&url, 1, 4);
        endless.stop = Stop::AfterDuration(Duration::from_secs(60));
        endless.threads = 2;
        let first_stopped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&first_stopped);
        let mut started = 0;
        let outcome = LoadRun::start_with(endless, |name, body| {
            started += 1;
            if started == 2 {
                return Err(std::io::Error::other("no more threads today"));
            }
            let flag = Arc::clone(&flag);
            std::thread::Builder::new().name(name).spawn(move || {
                let outcome = body();
                flag.store(true, Ordering::SeqCst);
                outcome
            })
        });
        let error = outcome.err().expect("starting must fail");
        assert!(error.contains("no more threads today"), "{error}");
        // Stopped and joined before the error came back, not left loading for 60 s.
        assert!(first_stopped.load(Ordering::SeqCst));
    }
}
