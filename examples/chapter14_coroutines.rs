//! Chapter 14: blocking code on stackful coroutines (may).
//!
//!     cargo run --release --example chapter14_coroutines
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8014/sleep?ms=2000'
//!
//! Chapter 8's thread-per-connection server, the same code: a connection
//! is read, slept on and answered with blocking calls, top to bottom. What
//! runs it is not a thread per connection but a *coroutine* per connection,
//! with a small stack of its own, many of them on a few threads (`--workers`).
//! When a coroutine's read finds no data, or it sleeps, may saves its
//! registers, switches to another coroutine on the same thread, and an
//! event loop underneath (epoll) switches back when the socket is ready or
//! the timer is due. The code looks blocking; the thread never blocks.
//!
//! Unless the code calls something that truly blocks the thread:
//! `--sleep-blocks-thread` sleeps with `std::thread::sleep`, as a blocking
//! library would, and the carrier thread stops with every coroutine on it.

use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[path = "common/may_stream.rs"]
mod may_stream;

use clap::Parser;
use evt::blocking::{Connection, READ_TIMEOUT};
use evt::defaults;
use evt::report::CoroutineReport;
use evt::routes::Route;
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce, parse_flags};
use may_stream::Coroutined;

/// The stack this server's handler was measured to need, in KiB, rounded
/// up (`--show-stack-use` prints it; a test keeps this figure true). A
/// smaller `--stack-kib` is warned about: a coroutine that outgrows its
/// stack hits the guard page below it, and the whole process dies of a
/// segmentation fault.
/// (An unoptimised build's frames are larger.)
const HANDLER_STACK_KIB: usize = if cfg!(debug_assertions) { 16 } else { 8 };

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Threads that run the coroutines (may's workers); default: one per core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    /// Stack of each connection's coroutine, in KiB (may's default is 32).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65536))]
    stack_kib: u32,
    /// Print how much of its stack each coroutine used, when it ends.
    #[arg(long)]
    show_stack_use: bool,
    /// Sleep with `std::thread::sleep`, which blocks the carrier thread, instead
    /// of may's sleep, which switches to another coroutine.
    #[arg(long)]
    sleep_blocks_thread: bool,
    /// Seconds a connection may wait idle for its next request before it is closed.
    #[arg(long, default_value_t = READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    keep_alive: u64,
}

/// Requests answered, and those whose coroutine went to sleep on one
/// thread and woke on another (what a thread-local would not survive).
static ANSWERED: AtomicU64 = AtomicU64::new(0);
static MOVED: AtomicU64 = AtomicU64::new(0);

fn main() {
    let flags: Flags = parse_flags(
        "chapter14_coroutines",
        "Chapter 14: chapter 8's blocking thread-per-connection code, run as a coroutine per connection on a few threads (may).",
        defaults::CHAPTER14_COROUTINES_PORT,
    );
    if (flags.stack_kib as usize) < HANDLER_STACK_KIB {
        eprintln!(
            "warning: --stack-kib {} is below the {HANDLER_STACK_KIB} KiB this handler needs: a coroutine \
             that outgrows its stack stops the whole process (\"has overflowed its stack\")",
            flags.stack_kib
        );
    }
    let workers = flags.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    // ANCHOR: config
    // may counts a stack in machine words; an odd count asks it to print
    // each coroutine's stack use when the coroutine ends.
    let words = flags.stack_kib as usize * 1024 / size_of::<usize>();
    may::config()
        .set_workers(workers)
        .set_stack_size(words | usize::from(flags.show_stack_use));
    // ANCHOR_END: config
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    // SAFETY: the descriptor was just taken from a listening socket we own.
    let listener = unsafe { may::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let report = CoroutineReport {
        workers,
        stack_kib: flags.stack_kib,
        answered: 0,
        moved: 0,
    };
    let keep_alive = Duration::from_secs(flags.keep_alive);
    let blocks = flags.sleep_blocks_thread;
    announce(addr);
    // The accept loop is a coroutine too: its accept yields like any read.
    let accepting = may::go!(move || accept_loop(listener, keep_alive, blocks, report));
    // The accept loop never ends; if its coroutine does (a panic, a stack
    // it outgrew), the server can take no more connections: say so, stop.
    let _ = accepting.join();
    eprintln!("error: the accept loop stopped (a panic, or its coroutine overflowed its stack)");
    std::process::exit(1);
}

// ANCHOR: spawn_per_connection
/// Accept, start a coroutine for the connection, accept again: chapter 8's
/// loop, with `go!` where it had `thread::spawn`.
fn accept_loop(
    listener: may::net::TcpListener,
    keep_alive: Duration,
    blocks: bool,
    report: CoroutineReport,
) {
    let mut failures = AcceptFailures::default();
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                let stream = Coroutined(stream);
                may::go!(move || serve_connection(stream, keep_alive, blocks, report));
            }
            Err(error) => {
                failures.note(&error);
                may::coroutine::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}
// ANCHOR_END: spawn_per_connection

// ANCHOR: serve_connection
/// One connection on its own coroutine: request, sleep, answer, until the
/// client closes it or stays silent for `keep_alive`. Chapter 8's function,
/// but for the sleep.
fn serve_connection(
    stream: Coroutined,
    keep_alive: Duration,
    blocks: bool,
    report: CoroutineReport,
) {
    let mut connection = Connection::new(stream);
    while let Some(request) = connection.next_request() {
        if let Some(delay) = request.route.delay() {
            let before = std::thread::current().id();
            if blocks {
                // Blocks the carrier thread, and every coroutine waiting on it.
                std::thread::sleep(delay);
            } else {
                // Switches to another coroutine until the timer is due.
                may::coroutine::sleep(delay);
            }
            if std::thread::current().id() != before {
                MOVED.fetch_add(1, Ordering::Relaxed);
            }
        }
        let reply = match request.route {
            Route::Report => CoroutineReport {
                answered: ANSWERED.load(Ordering::Relaxed),
                moved: MOVED.load(Ordering::Relaxed),
                ..report
            }
            .to_reply(),
            route => {
                ANSWERED.fetch_add(1, Ordering::Relaxed);
                route.reply()
            }
        };
        let answered = connection.respond(&reply, request.keep_alive);
        if answered.is_err() || !request.keep_alive {
            break;
        }
        connection.set_read_timeout(keep_alive);
    }
    connection.close();
}
// ANCHOR_END: serve_connection
