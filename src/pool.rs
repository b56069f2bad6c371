//! The blocking servers' thread pools (chapters 2 and 7), written once and
//! given the handler: what a thread does with a request. Two designs:
//! a thread per connection, and a pool that only ever hands a thread a
//! connection with a request ready (gunicorn's gthread worker).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::blocking::{Connection, READ_TIMEOUT};
use crate::prefork::WorkerSlot;
use crate::routes::{Reply, Route};
use crate::server::{ACCEPT_BACKOFF, AcceptFailures};

/// What a thread does with one request's route, on its own thread.
pub trait Handler: Fn(&Route, WorkerSlot) -> Reply + Send + Sync + 'static {}
impl<F: Fn(&Route, WorkerSlot) -> Reply + Send + Sync + 'static> Handler for F {}

// ANCHOR: serve_one
/// One request on a connection: read it, let the handler answer it on this
/// thread, write the answer. True if the connection stays open for another.
pub fn serve_one(
    connection: &mut Connection,
    keep_alive: Duration,
    me: WorkerSlot,
    handle: &impl Handler,
) -> bool {
    let Some(request) = connection.next_request() else {
        return false;
    };
    let reply = handle(&request.route, me);
    me.answered();
    let keep_open = request.keep_alive && !keep_alive.is_zero();
    connection.respond(&reply, keep_open).is_ok() && keep_open
}
// ANCHOR_END: serve_one

// ANCHOR: per_connection
/// A thread per connection (`--pool per-connection`): every thread accepts a connection and serves it
/// until the client closes it or it idles for `keep_alive`. A thread blocked in
/// accept() is a free thread, so the kernel hands each new connection to a
/// free thread of some worker. But an idle client holds its thread: with
/// more open connections than threads, the rest wait in the backlog.
pub fn thread_per_connection(
    listener: TcpListener,
    threads: usize,
    keep_alive: Duration,
    me: WorkerSlot,
    handle: impl Handler,
) {
    me.serving_on(threads);
    let handle = Arc::new(handle);
    let listener = Arc::new(listener);
    let pool: Vec<_> = (0..threads)
        .map(|_| {
            let (listener, handle) = (Arc::clone(&listener), Arc::clone(&handle));
            start_thread(threads, move || {
                let mut failures = AcceptFailures::default();
                loop {
                    let stream = match listener.accept() {
                        Ok((stream, _peer)) => stream,
                        Err(error) => {
                            failures.note(&error);
                            std::thread::sleep(ACCEPT_BACKOFF);
                            continue;
                        }
                    };
                    me.accepted();
                    let mut connection = Connection::new(stream);
                    // A handler that panics loses its connection, not the thread.
                    let serve = |connection: &mut Connection| {
                        catch_unwind(AssertUnwindSafe(|| {
                            serve_one(connection, keep_alive, me, &*handle)
                        }))
                        .unwrap_or(false)
                    };
                    while serve(&mut connection) {
                        // The thread now waits for this client's next request.
                        connection.set_read_timeout(keep_alive);
                    }
                    connection.close();
                    me.closed();
                }
            })
        })
        .collect();
    for thread in pool {
        let _ = thread.join();
    }
}
// ANCHOR_END: per_connection

// ANCHOR: ready_pool
/// A pool of ready connections (`--pool ready`, gunicorn's gthread worker): this thread polls the
/// listening socket and every idle connection; a connection with a request
/// ready goes to the pool's queue, a thread serves it, and if it stays open
/// it comes back here to wait. Idle connections cost no thread.
pub fn ready_pool(
    listener: TcpListener,
    threads: usize,
    greedy: bool,
    keep_alive: Duration,
    me: WorkerSlot,
    handle: impl Handler,
) {
    me.serving_on(threads);
    let handle = Arc::new(handle);
    listener
        .set_nonblocking(true)
        .expect("a socket can be made non-blocking");
    let (ready_tx, ready_rx) = mpsc::channel::<Connection>();
    let ready_rx = Arc::new(Mutex::new(ready_rx));
    let (back_tx, back_rx) = mpsc::channel::<Connection>();
    let (waker, wake_signal) = UnixStream::pair().expect("a socket pair to wake the poller");
    waker.set_nonblocking(true).expect("non-blocking waker");
    wake_signal
        .set_nonblocking(true)
        .expect("non-blocking waker");
    let waker = Arc::new(waker);
    // Requests given to the pool and not yet answered.
    let busy = Arc::new(AtomicUsize::new(0));

    for _ in 0..threads {
        let thread = PoolThread {
            queue: Arc::clone(&ready_rx),
            back: back_tx.clone(),
            waker: Arc::clone(&waker),
            busy: Arc::clone(&busy),
        };
        let handle = Arc::clone(&handle);
        start_thread(threads, move || thread.serve(keep_alive, me, &*handle));
    }

    // The poller. `idle` are open connections with nothing to read yet;
    // `fresh` counts those just accepted that never sent a request.
    let mut idle: Vec<Idle> = Vec::new();
    // Whether a connection waits to be accepted while this worker is held
    // back by the fair share (the listening socket was readable).
    let mut someone_waits = false;
    loop {
        let fresh = idle.iter().filter(|(_, _, is_fresh)| *is_fresh).count();
        let claimed = busy.load(Ordering::SeqCst) + fresh;
        // Accept only with a thread free for it and under a fair share of the
        // connections (they stay here while kept alive), unless greedy.
        let accepting = greedy || (claimed < threads && me.should_accept());
        let held_back = !accepting && claimed < threads;
        // Watch the listening socket to accept, or, held back, to learn that
        // a connection waits (then not again at once: it would stay readable).
        let watch = accepting || (held_back && !someone_waits);
        let mut fds = vec![poll_fd(wake_signal.as_raw_fd())];
        if watch {
            fds.push(poll_fd(listener.as_raw_fd()));
        }
        let first_connection = fds.len();
        fds.extend(idle.iter().map(|(c, _, _)| poll_fd(c.as_raw_fd())));
        // Held back while a connection waits: look again within a
        // millisecond, as the other workers' counts change. Otherwise a
        // thread finishing, a connection or a request wakes this poller.
        let timeout_ms = if held_back && someone_waits { 1 } else { 1000 };
        // SAFETY: `fds` is a valid array of pollfd of the length given.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        let listener_ready = watch && fds[1].revents != 0;
        someone_waits = held_back && listener_ready;

        // Connections ready to read go to the pool.
        hand_over_ready(&mut idle, &fds[first_connection..], &busy, &ready_tx);
        // One new connection per wake-up: if other workers also wait on this
        // socket, each gets its chance.
        if accepting && listener_ready {
            if let Ok((stream, _peer)) = listener.accept() {
                me.accepted();
                idle.push((Connection::new(stream), Instant::now(), true));
            }
        }
        // Connections the pool hands back wait here for their next request.
        let mut drained = [0u8; 64];
        while let Ok(1..) = (&wake_signal).read(&mut drained) {}
        take_back(&back_rx, &mut idle, &busy, &ready_tx);
        close_expired(&mut idle, keep_alive, me);
    }
}

/// One thread of the ready pool: it takes a connection with a request ready
/// from the queue, serves that request, and hands the connection back to
/// the poller if it stays open.
struct PoolThread {
    queue: Arc<Mutex<mpsc::Receiver<Connection>>>,
    back: mpsc::Sender<Connection>,
    /// Written to after each request, to wake the poller.
    waker: Arc<UnixStream>,
    /// Requests given to the pool and not yet answered.
    busy: Arc<AtomicUsize>,
}

impl PoolThread {
    fn serve(self, keep_alive: Duration, me: WorkerSlot, handle: &impl Handler) {
        loop {
            let next = self.queue.lock().map(|queue| queue.recv());
            let Ok(Ok(mut connection)) = next else { return };
            // A handler that panics loses its connection, not the
            // thread, and the thread's place in `busy` is given back.
            let kept = catch_unwind(AssertUnwindSafe(|| {
                serve_one(&mut connection, keep_alive, me, handle)
            }));
            if let Ok(true) = kept {
                let _ = self.back.send(connection);
            } else {
                connection.close();
                me.closed();
            }
            self.busy.fetch_sub(1, Ordering::SeqCst);
            let _ = (&*self.waker).write(&[1]);
        }
    }
}

/// An idle connection: when it came to wait, and whether it is fresh (it
/// never sent a request).
type Idle = (Connection, Instant, bool);

/// Gives the pool every idle connection whose poll says it has bytes to read
/// (latest first, so that removing by index keeps the earlier indices valid).
fn hand_over_ready(
    idle: &mut Vec<Idle>,
    polled: &[libc::pollfd],
    busy: &AtomicUsize,
    ready: &mpsc::Sender<Connection>,
) {
    for index in (0..idle.len()).rev() {
        if polled[index].revents != 0 {
            let (connection, _, _) = idle.swap_remove(index);
            busy.fetch_add(1, Ordering::SeqCst);
            let _ = ready.send(connection);
        }
    }
}

/// Takes back the connections the pool's threads are done with: one that
/// already holds its next request goes straight back to the pool; the rest
/// wait with the idle ones.
fn take_back(
    back: &mpsc::Receiver<Connection>,
    idle: &mut Vec<Idle>,
    busy: &AtomicUsize,
    ready: &mpsc::Sender<Connection>,
) {
    while let Ok(connection) = back.try_recv() {
        if connection.has_buffered_bytes() {
            busy.fetch_add(1, Ordering::SeqCst);
            let _ = ready.send(connection);
        } else {
            idle.push((connection, Instant::now(), false));
        }
    }
}

/// Closes the kept-alive connections idle too long; a new connection gets
/// [`READ_TIMEOUT`] to send its first request.
fn close_expired(
    idle: &mut Vec<(Connection, Instant, bool)>,
    keep_alive: Duration,
    me: WorkerSlot,
) {
    let now = Instant::now();
    for index in (0..idle.len()).rev() {
        let (_, since, fresh) = &idle[index];
        let limit = if *fresh { READ_TIMEOUT } else { keep_alive };
        if now - *since > limit {
            idle.swap_remove(index).0.close();
            me.closed();
        }
    }
}
// ANCHOR_END: ready_pool

/// Starts one of a pool's `threads` threads, or ends this worker with one
/// line saying why (the machine's limit on threads, or on memory for stacks).
fn start_thread<T: Send + 'static>(
    threads: usize,
    body: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .spawn(body)
        .unwrap_or_else(|error| {
            eprintln!(
                "error: cannot start a pool of {threads} threads: {error} (use fewer threads, or \
             raise `ulimit -u`)"
            );
            std::process::exit(1);
        })
}

fn poll_fd(fd: std::os::fd::RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefork::Board;

    /// `GET path` on a fresh connection; the status line, or the error.
    fn get(addr: std::net::SocketAddr, path: &str) -> Result<String, String> {
        let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        Ok(answer.lines().next().unwrap_or("").to_string())
    }

    /// A handler with a bug: `/activer` panics; the rest answer as usual.
    fn buggy(route: &Route, _me: WorkerSlot) -> Reply {
        if *route == Route::Activer {
            panic!("a handler's bug, injected by a test");
        }
        if let Some(delay) = route.delay() {
            std::thread::sleep(delay);
        }
        route.reply()
    }

    fn pool_with_a_buggy_handler(ready: bool) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let me = Board::shared(1).unwrap().slot(0);
        std::thread::spawn(move || {
            if ready {
                ready_pool(listener, 2, false, Duration::from_secs(1), me, buggy);
            } else {
                thread_per_connection(listener, 2, Duration::from_secs(1), me, buggy);
            }
        });
        addr
    }

    #[test]
    fn a_panicking_handler_loses_its_connection_not_the_pools_threads() {
        for ready in [true, false] {
            let addr = pool_with_a_buggy_handler(ready);
            // More panics than the pool has threads.
            for _ in 0..3 {
                assert!(
                    get(addr, "/activer").unwrap().is_empty(),
                    "closed, no answer"
                );
            }
            // Both threads still serve, two requests at once.
            let both: Vec<_> = (0..2)
                .map(|_| std::thread::spawn(move || get(addr, "/sleep?ms=50")))
                .collect();
            for answer in both {
                let status = answer.join().unwrap().unwrap();
                assert!(
                    status.starts_with("HTTP/1.1 200"),
                    "ready={ready}: {status:?}"
                );
            }
        }
    }
}
