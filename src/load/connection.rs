//! One connection of a run: connect (at its turn, with `--connect-rate`),
//! send a request, wait for the whole response, record it, repeat; then
//! stay open until the run is over (and idle for `--hold`). Every request
//! is counted exactly once, whatever happens to it: answered, failed,
//! timed out, interrupted by a cancel, or lost to a bug (a panic).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::http1::{Connection, ExchangeError, RequestBytes};
use super::record::{ErrorKind, Failure, LATE, Recorder, Span};
#[cfg(test)]
use super::shared::Fault;
use super::shared::{LoadConfig, Shared, Stop};

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

// ANCHOR: connection_loop

/// One connection: send, wait for the whole response, record, repeat.
pub(super) async fn connection_loop(
    shared: Arc<Shared>,
    record: Rc<RefCell<Recorder>>,
    number: u32,
) {
    let done = ConnectionDone::new(&shared);
    let config = &shared.config;
    let request = RequestBytes::get(
        &config.target.path_and_query,
        &config.target.authority,
        config.keepalive,
    );
    let mut connection: Option<Connection> = None;
    let mut backoff = Duration::ZERO;
    let mut own_share = own_share(config, number);
    if let Some(rate) = config.connect_rate {
        preconnect(&shared, &record, number, rate, &mut connection).await;
    }
    let mut pace = Pace::default();
    while own_share > 0
        && let Some(ticket) = shared.take_ticket()
    {
        own_share -= 1;
        // Taken after it was due: every connection was busy until now.
        let taken = Instant::now();
        if let Some(due) = ticket.due {
            wait_until_due(due).await;
        }
        let started = Instant::now();
        // Open model: a user who came when the request was due gives up
        // `timeout` after that, however long it waited for a connection.
        let give_up = ticket.due.unwrap_or(started) + config.timeout;
        let in_flight = InFlight::new(&shared, &record);
        let mut retries = 0;
        #[cfg(test)]
        let sent_here = pace.sent;
        // Waited in the client past its timeout: that user has gone, and
        // the server is not sent a request no one waits for.
        let expired = started >= give_up;
        let exchange = async {
            #[cfg(test)]
            maybe_panic(config, sent_here);
            if expired {
                return Err(Failure {
                    kind: ErrorKind::Timeout,
                    message: format!(
                        "waited {:?} for a free connection, past the timeout; not sent",
                        config.timeout
                    ),
                });
            }
            timed_request(config, give_up, &request, &mut connection, &mut retries).await
        };
        // A bug in the exchange fails this request, not the whole connection.
        let outcome = CatchPanic(std::pin::pin!(exchange)).await;
        let ended = Instant::now();
        in_flight.landed();
        if outcome.is_err() {
            // The connection is in an unknown state: start afresh.
            connection = None;
        }
        let span = Span {
            connection: number,
            start_us: (started - shared.started).as_micros() as u64,
            end_us: (ended - shared.started).as_micros() as u64,
            status: outcome.as_ref().ok().copied(),
        };
        let out_of_resources = note(
            &shared,
            &record,
            span,
            Times {
                due: ticket.due,
                taken,
                started,
                ended,
                sent: !expired,
            },
            retries,
            outcome,
            &mut pace,
        );
        if out_of_resources {
            // Out of descriptors or ports: trying again at once would only
            // burn requests. Wait, longer each time, for some to free up.
            backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
            tokio::time::sleep(backoff).await;
        } else {
            backoff = Duration::ZERO;
        }
    }
    if let (Some(first), Some(last)) = (pace.first, pace.last) {
        record.borrow_mut().paced(pace.answers, first, last);
    }
    record.borrow_mut().connection_done(pace.answers);
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

// ANCHOR: due
/// Open model: waits for a request's time. tokio's timer counts whole
/// milliseconds and fires up to one late, so it is set one millisecond
/// early: a request goes out at most that early, never late for the
/// client's own timer; late only when no connection was free.
async fn wait_until_due(due: Instant) {
    if let Some(early) = due.checked_sub(LATE) {
        if early > Instant::now() {
            tokio::time::sleep_until(early.into()).await;
        }
    }
}
// ANCHOR_END: due

/// When a request was due (open model), taken by a free connection, sent,
/// and done; and whether it went out at all (not if its timeout passed
/// while it waited for a connection).
#[derive(Debug, Clone, Copy)]
struct Times {
    due: Option<Instant>,
    taken: Instant,
    started: Instant,
    ended: Instant,
    sent: bool,
}

/// How many requests connection `number` may send by itself: its n / c
/// share with `--fixed-share` (the first connections take one extra),
/// otherwise no limit of its own (the run's count or time stops it).
fn own_share(config: &LoadConfig, number: u32) -> u64 {
    match config.stop {
        Stop::AfterRequests(total) if config.fixed_share => {
            let connections = config.connections.max(1) as u64;
            total / connections + u64::from(u64::from(number) < total % connections)
        }
        _ => u64::MAX,
    }
}

/// One connection's pace: requests sent, answers, the first and the last.
#[derive(Default)]
struct Pace {
    sent: u64,
    answers: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// One request, given up at `give_up` (the run's timeout after it was due,
/// or after its send in a closed run), connecting included.
async fn timed_request(
    config: &LoadConfig,
    give_up: Instant,
    request: &RequestBytes,
    connection: &mut Option<Connection>,
    retries: &mut u64,
) -> Result<u16, Failure> {
    tokio::time::timeout_at(
        give_up.into(),
        one_request(config, request, connection, retries),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Failure {
            kind: ErrorKind::Timeout,
            message: match config.rate {
                Some(_) => format!(
                    "no whole response within {:?} of when it was due",
                    config.timeout
                ),
                None => format!("no whole response within {:?}", config.timeout),
            },
        })
    })
}

/// Records how one request ended; true if it failed for want of
/// descriptors or local ports (the caller then backs off).
fn note(
    shared: &Shared,
    record: &RefCell<Recorder>,
    span: Span,
    times: Times,
    retries: u64,
    outcome: Result<u16, Failure>,
    pace: &mut Pace,
) -> bool {
    let mut record = record.borrow_mut();
    pace.sent += 1;
    record.retries += retries;
    record.span(span);
    let Times {
        due,
        taken,
        started,
        ended,
        sent,
    } = times;
    let uncorrected = ended - started;
    // Open model: the latency counts from when the request was due (or from
    // its send, if the timer sent it a little early).
    let latency = due.map_or(uncorrected, |due| ended - due.min(started));
    let due_us = due
        .unwrap_or(started)
        .saturating_duration_since(shared.began())
        .as_micros() as u64;
    let timed_out = matches!(&outcome, Err(failure) if failure.kind == ErrorKind::Timeout);
    if let Some(due) = due {
        let late = started.saturating_duration_since(due);
        // A connection took it in time, yet it went out late: the client.
        let client_slow = taken <= due + LATE;
        // From the send, only what was sent.
        let timed = outcome.is_ok() || (timed_out && sent);
        record.scheduled(due_us, late, client_slow, timed.then_some(uncorrected));
    }
    if timed_out {
        // In the latencies at the moment the client gave up: a floor.
        record.timed_out(latency);
        record.over_time(due_us, latency, uncorrected);
    }
    match outcome {
        Ok(status) => {
            pace.answers += 1;
            pace.first.get_or_insert(ended);
            pace.last = Some(ended);
            record.completed(status, latency);
            if let Some(deadline) = shared.config.deadline
                && (200..300).contains(&status)
                && latency <= deadline
            {
                record.good += 1;
            }
            record.over_time(due_us, latency, uncorrected);
            shared.completed.fetch_add(1, Ordering::Relaxed);
            false
        }
        Err(failure) => {
            let out_of_resources = matches!(
                failure.kind,
                ErrorKind::TooManyOpenFiles | ErrorKind::NoLocalPort
            );
            record.failed(failure);
            shared.failed.fetch_add(1, Ordering::Relaxed);
            out_of_resources
        }
    }
}

/// The first and the longest wait after running out of descriptors or ports.
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Counts a connection out of the run once it sends no more (also when its
/// task is aborted or panics); the last one out tells the others.
pub(super) struct ConnectionDone<'a> {
    shared: &'a Shared,
    finished: bool,
}

impl<'a> ConnectionDone<'a> {
    pub(super) fn new(shared: &'a Shared) -> ConnectionDone<'a> {
        ConnectionDone {
            shared,
            finished: false,
        }
    }

    pub(super) fn finish(mut self) {
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
        maybe_fail_connect(config)?;
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
fn maybe_panic(config: &LoadConfig, sent_on_this_connection: u64) {
    if config.fault == Some(Fault::PanicOnEverySecondRequest) && sent_on_this_connection % 2 == 1 {
        panic!("a fault injected by a test");
    }
}

#[cfg(test)]
fn maybe_fail_connect(config: &LoadConfig) -> Result<(), Failure> {
    if config.fault == Some(Fault::TooManyOpenFiles) {
        return Err(io_failure(&std::io::Error::from_raw_os_error(libc::EMFILE)));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::load::{Target, run};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A server answering `OK` to every request, on its own threads.
    pub(crate) fn ok_server() -> String {
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
        let mut faulty = config(&ok_server(), 9, 1);
        faulty.fault = Some(Fault::PanicOnEverySecondRequest);
        let results = run(faulty).unwrap();
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
        let mut timed = config(&ok_server(), 1, 4);
        timed.fault = Some(Fault::TooManyOpenFiles);
        timed.stop = Stop::AfterDuration(Duration::from_millis(300));
        let results = run(timed).unwrap();
        let failed = results.record.failures[&ErrorKind::TooManyOpenFiles].count;
        // Waiting 5, 10, 20, 40 ... ms between tries: a handful each in 300 ms,
        // where trying again at once made tens of thousands.
        assert!((4..=60).contains(&failed), "{failed} failures in 300 ms");
        assert_eq!(results.sent(), results.completed() + results.failed());
    }
}
