//! Chapter 2's exercise, solved: a pool of threads whose queue has a bound.
//! When every thread is busy and the queue is full, a new connection is
//! answered 503 at once instead of waiting in line.
//!
//!     cargo run --release --example exercise2_bounded_queue -- --threads 4 --queue 4
//!     cargo run --release --example load -- -n 16 -c 16 'http://127.0.0.1:8025/sleep?ms=1000'
//!
//! With 4 threads and room for 4 in the queue, 16 one-second requests sent
//! together get at most 8 answers of 200 (4 after one second, the rest after
//! two) and the others 503 at once: the pool says "no" while the client can
//! still go elsewhere, rather than after it has waited. (A few fewer than 8
//! when the connections arrive faster than the threads take their first
//! ones from the queue.)

use std::net::TcpStream;
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use evt::blocking::Connection;
use evt::routes::Reply;
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce, parse_flags};

/// The port, beside the chapters' own.
const PORT: u16 = 8025;

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Threads, each answering one connection at a time.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
    /// Connections that may wait for a thread; past that, 503.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(0..=10_000))]
    queue: u16,
}

/// One connection, one request: the pool's threads run this.
fn serve(stream: TcpStream) {
    let mut connection = Connection::new(stream);
    if let Some(request) = connection.next_request() {
        if let Some(delay) = request.route.delay() {
            std::thread::sleep(delay);
        }
        let _ = connection.respond(&request.route.reply(), false);
    }
    connection.close();
}

fn main() {
    let flags: Flags = parse_flags(
        "exercise2_bounded_queue",
        "Chapter 2's exercise: a thread pool with a bounded queue that answers 503 when full.",
        PORT,
    );
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");

    // ANCHOR: solution
    // The queue: a channel with room for `--queue` connections. One idle
    // thread at a time waits in `recv` (the others wait for the lock), so a
    // burst can fill the queue before the idle threads have each taken
    // their first connection.
    let (queue, waiting) = mpsc::sync_channel::<TcpStream>(usize::from(flags.queue));
    let waiting = Arc::new(Mutex::new(waiting));
    for n in 0..flags.threads {
        let waiting = Arc::clone(&waiting);
        let started = std::thread::Builder::new()
            .name(format!("pool-{n}"))
            .spawn(move || {
                loop {
                    // The lock is held only while waiting for the next one.
                    let next = waiting.lock().map(|w| w.recv());
                    match next {
                        Ok(Ok(stream)) => serve(stream),
                        _ => return,
                    }
                }
            });
        if let Err(error) = started {
            eprintln!("error: cannot start the pool's thread {n}: {error}");
            std::process::exit(1);
        }
    }
    announce(addr);
    let mut failures = AcceptFailures::default();
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                failures.note(&error);
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        match queue.try_send(stream) {
            Ok(()) => {}
            // Full: answered here, on the accepting thread. The request is
            // read first (closing on unread bytes sends a reset, which can
            // destroy the answer), but waited for only briefly, so a slow
            // client cannot hold the accepting thread.
            Err(TrySendError::Full(stream)) => {
                let mut connection = Connection::new(stream);
                connection.set_read_timeout(Duration::from_millis(100));
                let _ = connection.next_request();
                let busy = Reply {
                    status: 503,
                    body: "busy: every thread is working and the queue is full\n".into(),
                };
                let _ = connection.respond(&busy, false);
                connection.close();
            }
            Err(TrySendError::Disconnected(_)) => {
                eprintln!("error: every thread of the pool has stopped");
                std::process::exit(1);
            }
        }
    }
    // ANCHOR_END: solution
}
