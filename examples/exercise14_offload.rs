//! Exercise 14: a blocking call that does not stop the carrier thread.
//!
//!     cargo run --release --example exercise14_offload -- --workers 1
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8030/sleep?ms=2000'
//!
//! Chapter 14's server with `--sleep-blocks-thread` stands for a handler
//! that must call a blocking library: the call stops the carrier thread and
//! every coroutine on it. The fix is chapter 4's, in coroutine form: hand
//! the call to an OS thread of its own and let the coroutine wait for the
//! answer on one of may's channels, whose receive blocks the coroutine, not
//! the thread. Five 2 s requests on one carrier thread then take one sleep.

use std::os::fd::{FromRawFd, IntoRawFd};

#[path = "common/may_stream.rs"]
mod may_stream;

use clap::Parser;
use evt::blocking::Connection;
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce, parse_flags};
use may_stream::Coroutined;

/// The exercise's port.
const PORT: u16 = 8030;

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Threads that run the coroutines.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: u16,
}

fn main() {
    let flags: Flags = parse_flags(
        "exercise14_offload",
        "Exercise 14: a coroutine server whose blocking call runs on a thread of its own.",
        PORT,
    );
    may::config().set_workers(usize::from(flags.workers));
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    // SAFETY: the descriptor was just taken from a listening socket we own.
    let listener = unsafe { may::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
    announce(addr);
    let accepting = may::go!(move || {
        let mut failures = AcceptFailures::default();
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    may::go!(move || serve_connection(Coroutined(stream)));
                }
                Err(error) => {
                    failures.note(&error);
                    may::coroutine::sleep(ACCEPT_BACKOFF);
                }
            }
        }
    });
    let _ = accepting.join();
}

// ANCHOR: solution
/// Runs `call` on a new OS thread; the coroutine waits on a may channel,
/// which parks the coroutine and leaves its carrier thread to the others.
fn off_the_carrier<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, answer) = may::sync::mpsc::channel();
    let started = std::thread::Builder::new().spawn(move || {
        let _ = done.send(call());
    });
    match started {
        Ok(_) => answer.recv().ok(),
        Err(error) => {
            eprintln!("warning: cannot start a thread for a blocking call: {error}");
            None
        }
    }
}

fn serve_connection(stream: Coroutined) {
    let mut connection = Connection::new(stream);
    while let Some(request) = connection.next_request() {
        if let Some(delay) = request.route.delay() {
            // The blocking library call, off the carrier thread.
            let _ = off_the_carrier(move || std::thread::sleep(delay));
        }
        let answered = connection.respond(&request.route.reply(), request.keep_alive);
        if answered.is_err() || !request.keep_alive {
            break;
        }
    }
    connection.close();
}
// ANCHOR_END: solution
