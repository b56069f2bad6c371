//! Chapter 2: a pool of threads, and workers (gunicorn's pre-fork model).
//!
//!     cargo run --release --example chapter2_threads -- --workers 4 --threads 2
//!     cargo run --release --example load -- -n 50 -c 10 http://127.0.0.1:8002/sleep?ms=250
//!
//! W worker processes share one port; each has T threads, and a thread
//! handles one request at a time. So W × T requests are worked on at once,
//! and requests per second = min(W × T, clients) / delay. `GET /report` says
//! how many connections each worker took.
//!
//! Two things decide whether the W × T is reached:
//! - how the workers share the port (`--share`): one socket they all accept
//!   from (gunicorn's way) or one socket each with SO_REUSEPORT, where the
//!   kernel picks the worker by a hash of the client's address;
//! - what a thread waits on (`--pool`): only connections that have a request
//!   ready (`ready`, gunicorn's gthread worker: idle kept-alive connections
//!   wait in poll(2), costing no thread) or one connection from accept to
//!   close (`per-connection`: an idle client holds a thread).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use evt::blocking::{Connection, READ_TIMEOUT};
use evt::prefork::{self, Board, WorkerSlot};
use evt::routes::Route;
use evt::server::{ServerArgs, announce, parse_flags};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Share {
    /// One listening socket, opened by the parent and inherited by every worker.
    Accept,
    /// A socket per worker on the same port (SO_REUSEPORT): the kernel spreads connections.
    Reuseport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pool {
    /// Threads take only connections with a request ready; idle ones wait in poll(2).
    Ready,
    /// A thread owns a connection from accept to close, idle or not.
    PerConnection,
}

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Worker processes (gunicorn's --workers).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Threads per worker, each handling one request at a time (gunicorn's --threads).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=8192))]
    threads: u16,
    /// How the workers share the port.
    #[arg(long, value_enum, default_value_t = Share::Accept)]
    share: Share,
    /// What a thread waits on.
    #[arg(long, value_enum, default_value_t = Pool::Ready)]
    pool: Pool,
    /// Accept every connection as soon as it arrives, busy or not, as
    /// gunicorn's gthread worker does (by default a worker accepts only
    /// while it has a thread free and holds less than a fair share of the
    /// open connections). Applies to `--pool ready` with `--share accept`.
    #[arg(long)]
    greedy_accept: bool,
    /// Seconds a connection may wait idle for its next request (gunicorn's
    /// --keep-alive); 0 closes it after every answer, as gunicorn's sync worker does.
    #[arg(long, default_value_t = READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(0..=3600))]
    keep_alive: u64,
}

// ANCHOR: prefork
fn main() {
    let mut flags: Flags = parse_flags(
        "chapter2_threads",
        "Chapter 2: W worker processes × T threads on one port (gunicorn's pre-fork model).",
        8002,
    );
    let workers = usize::from(flags.workers);
    flags.server.listen.reuse_port = flags.share == Share::Reuseport;
    // The parent opens the port before forking: one socket the workers share,
    // or (SO_REUSEPORT) one socket per worker on the same port.
    let first = flags.server.bind_or_exit();
    let addr = first.local_addr().expect("a bound socket has an address");
    let mut listeners = vec![first];
    if flags.share == Share::Reuseport {
        flags.server.port = addr.port();
        while listeners.len() < workers {
            listeners.push(flags.server.bind_or_exit());
        }
    }
    let board = Board::shared(workers).unwrap_or_else(|error| {
        eprintln!("error: cannot map memory shared by the workers: {error}");
        std::process::exit(1);
    });

    // Fork the workers. Each child inherits the socket(s) and runs its pool;
    // the parent only watches them.
    let mut pids = Vec::new();
    for index in 0..workers {
        let listener = &listeners[index % listeners.len()];
        let slot = board.slot(index);
        match prefork::fork_worker(|| run_worker(listener, &flags, slot)) {
            Ok(pid) => pids.push(pid),
            Err(error) => {
                eprintln!("error: cannot start worker {index}: {error}");
                prefork::stop_workers(&pids);
                std::process::exit(1);
            }
        }
    }
    announce(addr);
    // A worker only ends if something broke it: stop the rest, say so.
    let (pid, how) = prefork::wait_for_any_worker();
    prefork::stop_workers(&pids);
    eprintln!("error: worker {pid} ended ({how}); stopped the others");
    std::process::exit(1);
}
// ANCHOR_END: prefork

/// One worker process: its pool of threads on its listening socket.
fn run_worker(listener: &TcpListener, flags: &Flags, me: WorkerSlot) {
    me.started();
    let listener = listener
        .try_clone()
        .expect("a worker can duplicate its inherited socket");
    let threads = usize::from(flags.threads);
    let keep_alive = Duration::from_secs(flags.keep_alive);
    match flags.pool {
        // A worker with a socket of its own (SO_REUSEPORT) takes what the kernel
        // gave it: no other worker can.
        Pool::Ready => {
            let greedy = flags.greedy_accept || flags.share == Share::Reuseport;
            ready_pool(listener, threads, greedy, keep_alive, me)
        }
        Pool::PerConnection => thread_per_connection(listener, threads, keep_alive, me),
    }
}

// ANCHOR: serve_one
/// What a thread does with one request: read it, wait the delay on this
/// thread (a blocking sleep: the thread is busy, as a Flask view is), answer.
/// True if the connection stays open for another request.
fn serve_one(connection: &mut Connection, keep_alive: Duration, me: WorkerSlot) -> bool {
    let Some(request) = connection.next_request() else {
        return false;
    };
    if let Some(delay) = request.route.delay() {
        std::thread::sleep(delay);
    }
    let mut reply = request.route.reply();
    if request.route == Route::Report {
        reply.status = 200;
        reply.body = me.report() + "\n";
    }
    me.answered();
    let keep_open = request.keep_alive && !keep_alive.is_zero();
    connection.respond(&reply, keep_open).is_ok() && keep_open
}
// ANCHOR_END: serve_one

// ANCHOR: per_connection
/// `--pool per-connection`: every thread accepts a connection and serves it
/// until the client closes it or it idles for `keep_alive`. A thread blocked in
/// accept() is a free thread, so the kernel hands each new connection to a
/// free thread of some worker. But an idle client holds its thread: with
/// more open connections than threads, the rest wait in the backlog.
fn thread_per_connection(
    listener: TcpListener,
    threads: usize,
    keep_alive: Duration,
    me: WorkerSlot,
) {
    let listener = Arc::new(listener);
    let pool: Vec<_> = (0..threads)
        .map(|_| {
            let listener = Arc::clone(&listener);
            std::thread::spawn(move || {
                loop {
                    let Ok((stream, _peer)) = listener.accept() else {
                        // Out of file descriptors, most often: back off, go on.
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    me.accepted();
                    let mut connection = Connection::new(stream);
                    while serve_one(&mut connection, keep_alive, me) {
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
/// `--pool ready` (gunicorn's gthread worker): this thread polls the
/// listening socket and every idle connection; a connection with a request
/// ready goes to the pool's queue, a thread serves it, and if it stays open
/// it comes back here to wait. Idle connections cost no thread.
fn ready_pool(
    listener: TcpListener,
    threads: usize,
    greedy: bool,
    keep_alive: Duration,
    me: WorkerSlot,
) {
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
        let (ready_rx, back_tx) = (Arc::clone(&ready_rx), back_tx.clone());
        let (waker, busy) = (Arc::clone(&waker), Arc::clone(&busy));
        std::thread::spawn(move || {
            loop {
                let next = ready_rx.lock().map(|queue| queue.recv());
                let Ok(Ok(mut connection)) = next else { return };
                if serve_one(&mut connection, keep_alive, me) {
                    let _ = back_tx.send(connection);
                } else {
                    connection.close();
                    me.closed();
                }
                busy.fetch_sub(1, Ordering::SeqCst);
                let _ = (&*waker).write(&[1]);
            }
        });
    }

    // The poller. `idle` are open connections with nothing to read yet;
    // `fresh` counts those just accepted that never sent a request.
    let mut idle: Vec<(Connection, Instant, bool)> = Vec::new();
    loop {
        let fresh = idle.iter().filter(|(_, _, is_fresh)| *is_fresh).count();
        let claimed = busy.load(Ordering::SeqCst) + fresh;
        // Accept only with a thread free for it and under a fair share of the
        // connections (they stay here while kept alive), unless greedy.
        let accepting = greedy || (claimed < threads && me.should_accept());
        let mut fds = vec![poll_fd(wake_signal.as_raw_fd())];
        if accepting {
            fds.push(poll_fd(listener.as_raw_fd()));
        }
        let first_connection = fds.len();
        fds.extend(idle.iter().map(|(c, _, _)| poll_fd(c.as_raw_fd())));
        // A free thread held back only by the fair share: look again within a
        // millisecond, as the other workers' counts change. Otherwise a thread
        // finishing (or a connection) wakes this poller.
        let timeout_ms = if !accepting && claimed < threads {
            1
        } else {
            1000
        };
        // SAFETY: `fds` is a valid array of pollfd of the length given.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };

        // Connections ready to read go to the pool (latest first, so that
        // removing by index keeps the earlier indices valid).
        for index in (0..idle.len()).rev() {
            if fds[first_connection + index].revents != 0 {
                let (connection, _, _) = idle.swap_remove(index);
                busy.fetch_add(1, Ordering::SeqCst);
                let _ = ready_tx.send(connection);
            }
        }
        // One new connection per wake-up: if other workers also wait on this
        // socket, each gets its chance.
        if accepting && fds[1].revents != 0 {
            if let Ok((stream, _peer)) = listener.accept() {
                me.accepted();
                idle.push((Connection::new(stream), Instant::now(), true));
            }
        }
        // Connections the pool hands back wait here for their next request.
        let mut drained = [0u8; 64];
        while let Ok(1..) = (&wake_signal).read(&mut drained) {}
        while let Ok(connection) = back_rx.try_recv() {
            if connection.has_buffered_bytes() {
                busy.fetch_add(1, Ordering::SeqCst);
                let _ = ready_tx.send(connection);
            } else {
                idle.push((connection, Instant::now(), false));
            }
        }
        // Kept-alive connections idle too long are closed.
        let now = Instant::now();
        for index in (0..idle.len()).rev() {
            let (_, since, fresh) = &idle[index];
            // A new connection gets READ_TIMEOUT to send its first request.
            let limit = if *fresh { READ_TIMEOUT } else { keep_alive };
            if now - *since > limit {
                idle.swap_remove(index).0.close();
                me.closed();
            }
        }
    }
}
// ANCHOR_END: ready_pool

fn poll_fd(fd: std::os::fd::RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}
