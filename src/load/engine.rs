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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::http1::{Connection, ExchangeError, RequestBytes};
use super::record::{ConnectPhase, ErrorKind, Failure, HoldPhase, Recorder, Results, Span};
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
    /// Connections still sending; the last to finish says when on `all_done`.
    active: AtomicUsize,
    all_done: watch::Sender<Option<Instant>>,
    /// With `connect_rate`: connections through their connect attempt, and
    /// when the last one was (the requests start then).
    connected: AtomicUsize,
    all_connected: watch::Sender<Option<Instant>>,
}

impl Shared {
    /// May a connection send one more request?
    fn take_ticket(&self) -> bool {
        if self.cancelled.load(Ordering::Relaxed) {
            return false;
        }
        match self.config.stop {
            Stop::AfterRequests(total) => self.issued.fetch_add(1, Ordering::Relaxed) < total,
            Stop::AfterDuration(duration) => {
                let began = self.all_connected.borrow().unwrap_or(self.started);
                began.elapsed() < duration
            }
        }
    }
}

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
    let needed = connections as u64 + SPARE_FILES;
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
        let duration =
            finished.saturating_duration_since(requests_began.unwrap_or(self.shared.started));
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

// ANCHOR: connection_loop
// ANCHOR: preconnect
/// `--connect-rate`: connection `number` connects at its turn (rate per
/// second), then waits until every connection has tried, so the requests
/// start together on open connections. A connection that fails to open
/// connects again with its first request, which then counts the failure.
async fn preconnect(
    shared: &Shared,
    record: &RefCell<Recorder>,
    number: u32,
    rate: u32,
    connection: &mut Option<Connection>,
) {
    let turn = shared.started + Duration::from_secs_f64(f64::from(number) / f64::from(rate.max(1)));
    tokio::time::sleep_until(turn.into()).await;
    let began = Instant::now();
    let timeout = shared.config.timeout;
    if let Ok(Ok(open)) =
        tokio::time::timeout(timeout, Connection::connect(shared.config.target.addr)).await
    {
        *connection = Some(open);
        let mut record = record.borrow_mut();
        record.preconnected += 1;
        record.slowest_connect_us = record
            .slowest_connect_us
            .max(began.elapsed().as_micros() as u64);
    }
    if shared.connected.fetch_add(1, Ordering::AcqRel) + 1 == shared.config.connections {
        shared.all_connected.send_replace(Some(Instant::now()));
    }
    let mut all = shared.all_connected.subscribe();
    let mut cancel = shared.cancel.subscribe();
    tokio::select! {
        _ = all.wait_for(Option::is_some) => {}
        _ = cancel.wait_for(|&cancelled| cancelled) => {}
    }
}
// ANCHOR_END: preconnect

/// One connection: send, wait for the whole response, record, repeat.
async fn connection_loop(shared: Arc<Shared>, record: Rc<RefCell<Recorder>>, number: u32) {
    let done = ConnectionDone::new(&shared);
    let config = &shared.config;
    let request = RequestBytes::get(
        &config.target.path_and_query,
        &config.target.authority,
        config.keepalive,
    );
    let mut connection: Option<Connection> = None;
    let mut backoff = Duration::ZERO;
    #[cfg(test)]
    let mut sent_here = 0u64;
    let mut own_share = match config.stop {
        Stop::AfterRequests(total) if config.fixed_share => {
            let connections = config.connections.max(1) as u64;
            total / connections + u64::from(u64::from(number) < total % connections)
        }
        _ => u64::MAX,
    };
    if let Some(rate) = config.connect_rate {
        preconnect(&shared, &record, number, rate, &mut connection).await;
    }
    // This connection's pace: how many answers, the first and the last.
    let mut answers = 0u64;
    let mut first_answer = None;
    let mut last_answer = Instant::now();
    while own_share > 0 && shared.take_ticket() {
        own_share -= 1;
        let started = Instant::now();
        let in_flight = InFlight::new(&shared, &record);
        let mut retries = 0;
        let exchange = async {
            #[cfg(test)]
            tests::maybe_panic(config, sent_here);
            tokio::time::timeout(
                config.timeout,
                one_request(config, &request, &mut connection, &mut retries),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Failure {
                    kind: ErrorKind::Timeout,
                    message: format!("no whole response within {:?}", config.timeout),
                })
            })
        };
        // A bug in the exchange fails this request, not the whole connection.
        let outcome = CatchPanic(std::pin::pin!(exchange)).await;
        let ended = Instant::now();
        in_flight.landed();
        #[cfg(test)]
        {
            sent_here += 1;
        }
        let out_of_resources = {
            let mut record = record.borrow_mut();
            record.retries += retries;
            record.span(Span {
                connection: number,
                start_us: (started - shared.started).as_micros() as u64,
                end_us: (ended - shared.started).as_micros() as u64,
                status: outcome.as_ref().ok().copied(),
            });
            match outcome {
                Ok(status) => {
                    answers += 1;
                    first_answer.get_or_insert(ended);
                    last_answer = ended;
                    record.completed(status, ended - started);
                    shared.completed.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(failure) => {
                    // The connection is in an unknown state: start afresh.
                    connection = None;
                    let out_of_resources = matches!(
                        failure.kind,
                        ErrorKind::TooManyOpenFiles | ErrorKind::NoLocalPort
                    );
                    record.failed(failure);
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    out_of_resources
                }
            }
        };
        if out_of_resources {
            // Out of descriptors or ports: trying again at once would only
            // burn requests. Wait, longer each time, for some to free up.
            backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
            tokio::time::sleep(backoff).await;
        } else {
            backoff = Duration::ZERO;
        }
    }
    if let Some(first) = first_answer {
        record.borrow_mut().paced(answers, first, last_answer);
    }
    done.finish();
    // Like hey, oha and browsers, keep the connection open until the whole
    // run is over: closing it early would hand the server a free thread that
    // a real client would not give it, and hide a server that starves
    // connections it cannot read.
    if let Some(open) = connection.as_mut() {
        let mut all_done = shared.all_done.subscribe();
        let _ = all_done.wait_for(Option::is_some).await;
        if let Some(idle) = config.hold {
            hold_idle(open, idle, &record).await;
        }
    }
}
// ANCHOR_END: connection_loop

// ANCHOR: hold
/// `--hold`: the run is over; this kept-alive connection stays open and
/// silent for `idle`, as a browser's does between clicks, and then says
/// whether the server still has it open.
async fn hold_idle(connection: &mut Connection, idle: Duration, record: &RefCell<Recorder>) {
    tokio::time::sleep(idle).await;
    let open = connection.is_open();
    let mut record = record.borrow_mut();
    record.held += 1;
    record.still_open += u64::from(open);
}
// ANCHOR_END: hold

/// The first and the longest wait after running out of descriptors or ports.
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Counts a connection out of the run once it sends no more (also when its
/// task is aborted or panics); the last one out tells the others.
struct ConnectionDone<'a> {
    shared: &'a Shared,
    finished: bool,
}

impl<'a> ConnectionDone<'a> {
    fn new(shared: &'a Shared) -> ConnectionDone<'a> {
        ConnectionDone {
            shared,
            finished: false,
        }
    }

    fn finish(mut self) {
        self.count_out();
    }

    fn count_out(&mut self) {
        if !self.finished {
            self.finished = true;
            if self.shared.active.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.shared.all_done.send_replace(Some(Instant::now()));
            }
        }
    }
}

impl Drop for ConnectionDone<'_> {
    fn drop(&mut self) {
        self.count_out();
    }
}

/// Runs a future, turning a panic inside it into a failed request.
struct CatchPanic<F>(F);

impl<F, T> std::future::Future for CatchPanic<std::pin::Pin<&mut F>>
where
    F: std::future::Future<Output = Result<T, Failure>>,
{
    type Output = Result<T, Failure>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_string());
                std::task::Poll::Ready(Err(Failure {
                    kind: ErrorKind::Panic,
                    message: format!(
                        "the load client panicked (a bug: please report it): {message}"
                    ),
                }))
            }
        }
    }
}

/// Records a request that was in flight when its task was aborted (Ctrl-C).
struct InFlight<'a> {
    shared: &'a Shared,
    record: &'a RefCell<Recorder>,
    landed: bool,
}

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared, record: &'a RefCell<Recorder>) -> InFlight<'a> {
        record.borrow_mut().sent += 1;
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
            let failure = if std::thread::panicking() {
                Failure {
                    kind: ErrorKind::Panic,
                    message: "the load client panicked (a bug: please report it)".into(),
                }
            } else {
                Failure {
                    kind: ErrorKind::Interrupted,
                    message: "stopped while in flight".into(),
                }
            };
            self.record.borrow_mut().failed(failure);
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
    retries: &mut u64,
) -> Result<u16, Failure> {
    for attempt in 0..2 {
        #[cfg(test)]
        tests::maybe_fail_connect(config)?;
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
            Err(ExchangeError::Stale(_)) => {
                *connection = None;
                if attempt == 0 {
                    *retries += 1;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Test-only faults, chosen by the request path.
    const PANIC_ON_SECOND: &str = "/test-fault/panic-on-every-second-request";
    const OUT_OF_FILES: &str = "/test-fault/too-many-open-files";

    pub(super) fn maybe_panic(config: &LoadConfig, sent_on_this_connection: u64) {
        if config.target.path_and_query == PANIC_ON_SECOND && sent_on_this_connection % 2 == 1 {
            panic!("a fault injected by a test");
        }
    }

    pub(super) fn maybe_fail_connect(config: &LoadConfig) -> Result<(), Failure> {
        if config.target.path_and_query == OUT_OF_FILES {
            return Err(io_failure(&std::io::Error::from_raw_os_error(libc::EMFILE)));
        }
        Ok(())
    }

    /// A server answering `OK` to every request, on its own threads.
    fn ok_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 4096];
                    while let Ok(1..) = stream.read(&mut buffer) {
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    fn config(url: &str, requests: u64, connections: usize) -> LoadConfig {
        LoadConfig::new(Target::parse(url).unwrap(), requests, connections)
    }

    #[test]
    fn a_panic_fails_its_request_and_the_run_goes_on_with_exact_counts() {
        let url = format!("{}{PANIC_ON_SECOND}", ok_server());
        let results = run(config(&url, 9, 1)).unwrap();
        // On one connection: OK, panic, OK, panic, ... for nine requests.
        assert_eq!(results.sent(), 9);
        assert_eq!(results.completed(), 5);
        assert_eq!(results.record.failures[&ErrorKind::Panic].count, 4);
        assert_eq!(results.sent(), results.completed() + results.failed());
        let message = &results.record.failures[&ErrorKind::Panic].first_message;
        assert!(message.contains("a fault injected by a test"), "{message}");
    }

    #[test]
    fn running_out_of_files_backs_off_instead_of_burning_requests() {
        let url = format!("{}{OUT_OF_FILES}", ok_server());
        let mut timed = config(&url, 1, 4);
        timed.stop = Stop::AfterDuration(Duration::from_millis(300));
        let results = run(timed).unwrap();
        let failed = results.record.failures[&ErrorKind::TooManyOpenFiles].count;
        // Waiting 5, 10, 20, 40 ... ms between tries: a handful each in 300 ms,
        // where trying again at once made tens of thousands.
        assert!((4..=60).contains(&failed), "{failed} failures in 300 ms");
        assert_eq!(results.sent(), results.completed() + results.failed());
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
