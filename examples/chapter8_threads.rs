//! Chapter 8: a thread for every connection, started when it arrives.
//!
//!     cargo run --release --example chapter8_threads
//!     cargo run --release --example load -- -z 10s -c 1000 --connect-rate 5000 'http://127.0.0.1:8018/sleep?ms=1000'
//!
//! The textbook blocking server: the main thread accepts, and every
//! connection gets a new thread of its own that reads, sleeps, answers and
//! waits for the next request until the client leaves. No pool, no limit:
//! 10,000 connections make 10,000 threads. Each thread reserves a stack
//! (`--stack-kib`, 2 MiB by default as Rust's `std::thread` does) but the
//! kernel backs only the pages it touches, so the chapter measures both: the
//! address space reserved and the memory resident.

use std::net::TcpStream;
use std::time::Duration;

use clap::Parser;
use evt::blocking::{Connection, READ_TIMEOUT};
use evt::defaults;
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce, parse_flags};

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Stack reserved for each connection's thread, in KiB (Rust's default is 2048).
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(64..=65536))]
    stack_kib: u64,
    /// Seconds a connection may wait idle for its next request before its thread closes it.
    #[arg(long, default_value_t = READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    keep_alive: u64,
}

fn main() {
    let flags: Flags = parse_flags(
        "chapter8_threads",
        "Chapter 8: a blocking server that starts a thread for every connection.",
        defaults::CHAPTER8_THREADS_PORT,
    );
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    announce(addr);
    let stack_bytes = flags.stack_kib as usize * 1024;
    let keep_alive = Duration::from_secs(flags.keep_alive);

    // ANCHOR: spawn_per_connection
    // Accept, start a thread for the connection, accept again. The thread
    // costs a stack and a place in the scheduler for as long as the client
    // stays connected, whether it sends anything or not.
    let mut failures = AcceptFailures::default();
    let mut threads_refused = 0u64;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                failures.note(&error);
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let started = std::thread::Builder::new()
            .name("connection".into())
            .stack_size(stack_bytes)
            .spawn(move || serve_connection(stream, keep_alive));
        if let Err(error) = started {
            // Out of threads or memory: the connection is dropped (closed) and
            // the server goes on with the ones it has. Said once.
            threads_refused += 1;
            if threads_refused == 1 {
                eprintln!(
                    "warning: cannot start a thread for a connection, so it was closed: {error} \
                     (see `ulimit -u` and /proc/sys/kernel/threads-max)"
                );
            }
        }
    }
    // ANCHOR_END: spawn_per_connection
}

// ANCHOR: serve_connection
/// One connection on its own thread: request, sleep, answer, until the client
/// closes it or stays silent for `keep_alive`.
fn serve_connection(stream: TcpStream, keep_alive: Duration) {
    let mut connection = Connection::new(stream);
    while let Some(request) = connection.next_request() {
        if let Some(delay) = request.route.delay() {
            // Only this connection waits: the others have threads of their own.
            std::thread::sleep(delay);
        }
        let answered = connection.respond(&request.route.reply(), request.keep_alive);
        if answered.is_err() || !request.keep_alive {
            break;
        }
        connection.set_read_timeout(keep_alive);
    }
    connection.close();
}
// ANCHOR_END: serve_connection
