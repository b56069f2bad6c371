//! Chapter 2: a pool of threads, and workers (gunicorn's pre-fork model).
//!
//!     cargo run --release --example chapter2_threads -- --workers 4 --threads 2
//!     cargo run --release --example load -- -n 50 -c 10 'http://127.0.0.1:8002/sleep?ms=250'
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

use std::net::TcpListener;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use evt::blocking::READ_TIMEOUT;
use evt::defaults;
use evt::pool;
use evt::prefork::{self, WorkerSlot};
use evt::routes::{Reply, Route};
use evt::server::{ServerArgs, parse_flags, refuse_unless};

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
    #[arg(long, default_value_t = defaults::CHAPTER2_WORKERS, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Threads per worker, each handling one request at a time (gunicorn's --threads).
    #[arg(long, default_value_t = defaults::CHAPTER2_THREADS, value_parser = clap::value_parser!(u16).range(1..=8192))]
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
        defaults::CHAPTER2_THREADS_PORT,
    );
    refuse_unless(
        flags.greedy_accept,
        flags.pool == Pool::Ready && flags.share == Share::Accept,
        "--greedy-accept changes how a ready pool takes from one shared socket; it needs --pool ready and --share accept",
    );
    flags.server.listen.reuse_port = flags.share == Share::Reuseport;
    // The parent opens the port (one socket the workers share, or with
    // SO_REUSEPORT one per worker), forks the workers, and watches them.
    let sockets = if flags.share == Share::Reuseport {
        flags.workers
    } else {
        1
    };
    prefork::serve_with_workers(
        &flags.server,
        usize::from(sockets),
        usize::from(flags.workers),
        |listener, me| run_worker(listener, &flags, me),
    );
}
// ANCHOR_END: prefork

/// One worker process: its pool of threads on its listening socket.
fn run_worker(listener: &TcpListener, flags: &Flags, me: WorkerSlot) {
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
            pool::ready_pool(listener, threads, greedy, keep_alive, me, handle)
        }
        Pool::PerConnection => {
            pool::thread_per_connection(listener, threads, keep_alive, me, handle)
        }
    }
}

// ANCHOR: handler
/// What a thread does with a request: wait the delay on this thread (a
/// blocking sleep: the thread is busy, as a Flask view is), then answer.
fn handle(route: &Route, me: WorkerSlot) -> Reply {
    if let Some(delay) = route.delay() {
        std::thread::sleep(delay);
    }
    match route {
        Route::Report => Reply {
            status: 200,
            body: me.report() + "\n",
        },
        _ => route.reply(),
    }
}
// ANCHOR_END: handler
