//! Driving connections: the closed-model load loop.
//!
//! Each of `threads` OS threads runs a current-thread tokio runtime with its
//! share of the connections (as oha does). A connection sends its next request
//! only when the previous response has fully arrived: a closed model, so at most
//! `connections` requests are ever in flight. Connections speak HTTP/1.1
//! through [`super::http1`]: a request serialised once, a response parsed with
//! httparse and discarded as it streams, so the client costs little CPU next
//! to the server it loads.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::http1::{Connection, ExchangeError, RequestBytes};
use super::record::{ErrorKind, Failure, Recorder, Results};
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
struct Shared {
    config: LoadConfig,
    started: Instant,
    issued: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicBool,
    cancel: watch::Sender<bool>,
}

impl Shared {
    /// May a connection send one more request?
    fn take_ticket(&self) -> bool {
        if self.cancelled.load(Ordering::Relaxed) {
            return false;
        }
        match self.config.stop {
            Stop::AfterRequests(total) => self.issued.fetch_add(1, Ordering::Relaxed) < total,
            Stop::AfterDuration(duration) => self.started.elapsed() < duration,
        }
    }
}

/// A run in progress. [`LoadRun::wait`] returns its results.
pub struct LoadRun {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<(Recorder, Instant)>>,
}

impl LoadRun {
    /// Starts the worker threads and returns at once.
    pub fn start(config: LoadConfig) -> Result<LoadRun, String> {
        let thread_count = config.threads.clamp(1, config.connections.max(1));
        let (cancel, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            config,
            started: Instant::now(),
            issued: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            cancel,
        });
        let connections = shared.config.connections;
        let mut threads = Vec::with_capacity(thread_count);
        for index in 0..thread_count {
            // Spread the connections evenly: the first threads take one extra.
            let share =
                connections / thread_count + usize::from(index < connections % thread_count);
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("load-{index}"))
                .spawn(move || drive_connections(shared, share))
                .map_err(|error| format!("cannot start a load thread: {error}"))?;
            threads.push(thread);
        }
        Ok(LoadRun { shared, threads })
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
                Err(_) => record.failed(Failure {
                    kind: ErrorKind::Other,
                    message: "a load thread panicked".into(),
                }),
            }
        }
        let duration = finished - self.shared.started;
        Results {
            url: self.shared.config.target.url.clone(),
            connections: self.shared.config.connections,
            duration,
            record,
            interrupted: self.shared.cancelled.load(Ordering::Relaxed),
        }
    }
}

/// Runs `config` to the end on the calling thread's behalf and returns the results.
pub fn run(config: LoadConfig) -> Result<Results, String> {
    Ok(LoadRun::start(config)?.wait())
}

/// One worker thread: a current-thread runtime running `count` connections.
fn drive_connections(shared: Arc<Shared>, count: usize) -> (Recorder, Instant) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let mut record = Recorder::default();
            record.failed(Failure {
                kind: ErrorKind::Other,
                message: format!("cannot start a tokio runtime: {error}"),
            });
            return (record, Instant::now());
        }
    };
    let record = Rc::new(RefCell::new(Recorder::default()));
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut connections = tokio::task::JoinSet::new();
        for _ in 0..count {
            connections.spawn_local(connection_loop(Arc::clone(&shared), Rc::clone(&record)));
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

// ANCHOR: connection_loop
/// One connection: send, wait for the whole response, record, repeat.
async fn connection_loop(shared: Arc<Shared>, record: Rc<RefCell<Recorder>>) {
    let config = &shared.config;
    let request = RequestBytes::get(
        &config.target.path_and_query,
        &config.target.authority,
        config.keepalive,
    );
    let mut connection: Option<Connection> = None;
    while shared.take_ticket() {
        let started = Instant::now();
        let in_flight = InFlight::new(&shared, &record);
        let outcome = tokio::time::timeout(
            config.timeout,
            one_request(config, &request, &mut connection),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Failure {
                kind: ErrorKind::Timeout,
                message: format!("no whole response within {:?}", config.timeout),
            })
        });
        let latency = started.elapsed();
        in_flight.landed();
        match outcome {
            Ok(status) => {
                record.borrow_mut().completed(status, latency);
                shared.completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(failure) => {
                // The connection is in an unknown state: start afresh.
                connection = None;
                record.borrow_mut().failed(failure);
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
// ANCHOR_END: connection_loop

/// Records a request that was in flight when its task was aborted (Ctrl-C).
struct InFlight<'a> {
    shared: &'a Shared,
    record: &'a RefCell<Recorder>,
    landed: bool,
}

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared, record: &'a RefCell<Recorder>) -> InFlight<'a> {
        InFlight {
            shared,
            record,
            landed: false,
        }
    }

    /// The request finished, one way or the other: nothing to record on drop.
    fn landed(mut self) {
        self.landed = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.landed {
            self.record.borrow_mut().failed(Failure {
                kind: ErrorKind::Interrupted,
                message: "stopped while in flight".into(),
            });
            self.shared.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends one request (opening a connection if needed) and reads the whole
/// response. Returns the status code.
async fn one_request(
    config: &LoadConfig,
    request: &RequestBytes,
    connection: &mut Option<Connection>,
) -> Result<u16, Failure> {
    for _attempt in 0..2 {
        let open = match connection {
            Some(open) => open,
            None => connection.insert(
                Connection::connect(config.target.addr)
                    .await
                    .map_err(|error| io_failure(&error))?,
            ),
        };
        match open.exchange(request).await {
            Ok(response) => {
                if !response.reusable || !config.keepalive {
                    *connection = None;
                }
                return Ok(response.status);
            }
            // The server had let this idle connection go: send on a new one.
            Err(ExchangeError::Stale(_)) => *connection = None,
            Err(error) => {
                *connection = None;
                return Err(exchange_failure(error));
            }
        }
    }
    Err(Failure {
        kind: ErrorKind::Closed,
        message: "the server closed two connections in a row before answering".into(),
    })
}

fn exchange_failure(error: ExchangeError) -> Failure {
    match error {
        ExchangeError::Stale(error) | ExchangeError::Io(error) => io_failure(&error),
        ExchangeError::Closed(message) => Failure {
            kind: ErrorKind::Closed,
            message: message.to_string(),
        },
        ExchangeError::BadResponse(message) => Failure {
            kind: ErrorKind::BadResponse,
            message,
        },
    }
}

fn io_failure(error: &std::io::Error) -> Failure {
    use std::io::ErrorKind as Io;
    let kind = match error.kind() {
        Io::ConnectionRefused => ErrorKind::Refused,
        Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe => ErrorKind::Reset,
        Io::TimedOut => ErrorKind::Timeout,
        Io::UnexpectedEof => ErrorKind::Closed,
        Io::AddrNotAvailable | Io::AddrInUse => ErrorKind::NoLocalPort,
        _ if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            ErrorKind::TooManyOpenFiles
        }
        _ => ErrorKind::Other,
    };
    Failure {
        kind,
        message: error.to_string(),
    }
}
