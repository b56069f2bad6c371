//! Chapter 9: an async runtime small enough to read, and the book's server on it.
//!
//!     cargo run --release --example chapter9_runtime
//!     cargo run --release --example load -- -n 1000 -c 1000 'http://127.0.0.1:8009/sleep?ms=1000'
//!
//! Three parts, all on one thread, in `runtime.rs`:
//! - a **reactor**: epoll (through mio) tells which sockets are ready, and the
//!   reactor wakes the task that waits on each; a heap of timers does the same
//!   for sleeps;
//! - an **executor**: a queue of tasks that were woken, polled one by one;
//! - **futures** for accept, read, write and sleep: each tries its system call
//!   and, if the socket is not ready, leaves its task's `Waker` with the
//!   reactor and returns `Pending`.
//!
//! On top, the same HTTP server as every chapter, as an `async fn` per
//! connection, read top to bottom the way chapter 3's handler reads.
//! `--runtime tokio` runs the same handler on tokio's current-thread runtime
//! instead, so the two runtimes can be measured side by side.

mod runtime;

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use evt::blocking::{BodyLength, Parsed, parse, response_bytes};
use evt::defaults;
use evt::report::RuntimeReport;
use evt::routes::{MAX_HEADER_BYTES, Reply, Route};
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce, parse_flags};
use mio::net::{TcpListener, TcpStream};
use runtime::{Async, Runtime, sleep, spawn};

/// Which runtime runs the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    /// The runtime in `runtime.rs` beside this file.
    Ours,
    /// tokio's current-thread runtime, with tokio's sockets and timers: the
    /// same handler, so only the runtime differs.
    Tokio,
}

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// The runtime under the same `async fn` handler.
    #[arg(long, value_enum, default_value_t = Which::Ours)]
    runtime: Which,
    /// Print every step of our runtime to stderr (spawn, poll, epoll_wait,
    /// wake) and keep the first ones for `GET /report`.
    #[arg(long)]
    trace: bool,
}

fn main() {
    let flags: Flags = parse_flags(
        "chapter9_runtime",
        "Chapter 9: the book's server on a hand-written async runtime (mio reactor, timer heap, one-thread executor), or the same handler on tokio.",
        defaults::CHAPTER9_RUNTIME_PORT,
    );
    if flags.trace && flags.runtime != Which::Ours {
        eprintln!("error: --trace follows our runtime's steps; it needs --runtime ours");
        std::process::exit(2);
    }
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    listener
        .set_nonblocking(true)
        .expect("a socket can be made non-blocking");
    match flags.runtime {
        Which::Ours => {
            if flags.trace {
                runtime::trace_on();
            }
            let runtime = Runtime::new().unwrap_or_else(|error| {
                eprintln!("error: cannot create an epoll instance: {error}");
                std::process::exit(1);
            });
            runtime.block_on(async move {
                let listener =
                    Async::new(TcpListener::from_std(listener)).unwrap_or_else(|error| {
                        eprintln!("error: cannot register the listening socket: {error}");
                        std::process::exit(1);
                    });
                announce(addr);
                serve(listener).await;
            });
        }
        Which::Tokio => on_tokio(listener, addr),
    }
}

// ANCHOR: serve
/// The accept loop: a task per connection, as chapter 3's.
async fn serve(listener: Async<TcpListener>) {
    let mut failures = AcceptFailures::default();
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let connection = handle(stream);
                FUTURE_BYTES.store(size_of_val(&connection), Ordering::Relaxed);
                spawn(connection);
            }
            Err(error) => {
                // Out of file descriptors, most often: say so once, back off, go on.
                failures.note(&error);
                sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
// ANCHOR_END: serve

// ANCHOR: handle
/// One connection: read a request, sleep if it asks to, answer, repeat.
async fn handle<C: Connection>(mut stream: C) {
    let mut unread: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match parse(&unread) {
            Parsed::Complete {
                request,
                head_length,
                body,
            } => {
                unread.drain(..head_length);
                // This server reads no bodies: a request with one is the last.
                let keep_alive = request.keep_alive && body == BodyLength::Known(0);
                if let Some(delay) = request.route.delay() {
                    stream.sleep(delay).await;
                }
                let reply = match request.route {
                    Route::Report => report(C::RUNTIME),
                    route => route.reply(),
                };
                let answer = response_bytes(&reply, keep_alive);
                if stream.write_all(&answer).await.is_err() || !keep_alive {
                    break;
                }
                continue;
            }
            Parsed::Partial if unread.len() <= MAX_HEADER_BYTES => {}
            Parsed::Partial => {
                let _ = stream.write_all(&refusal(Route::HeadersTooLarge)).await;
                break;
            }
            Parsed::Bad(route) => {
                let _ = stream.write_all(&refusal(route)).await;
                break;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(read @ 1..) => unread.extend_from_slice(&chunk[..read]),
            // Closed by the client, or broken: nothing more to answer.
            _ => break,
        }
    }
    stream.close();
}
// ANCHOR_END: handle

/// What the handler needs of a connection (and of its runtime's clock), so
/// the same `async fn` runs on our runtime and on tokio's.
trait Connection {
    /// Which runtime this connection belongs to, for `/report`.
    const RUNTIME: &str;
    async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize>;
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    async fn sleep(&self, duration: Duration);
    fn close(self);
}

impl Connection for Async<TcpStream> {
    const RUNTIME: &str = "ours";
    async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        Async::read(self, buffer).await
    }
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        Async::write_all(self, bytes).await
    }
    async fn sleep(&self, duration: Duration) {
        sleep(duration).await
    }
    fn close(self) {
        Async::close(self)
    }
}

impl Connection for tokio::net::TcpStream {
    const RUNTIME: &str = "tokio";
    async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        tokio::io::AsyncReadExt::read(self, buffer).await
    }
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        tokio::io::AsyncWriteExt::write_all(self, bytes).await
    }
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await
    }
    fn close(self) {
        if let Ok(stream) = self.into_std() {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut sink = [0u8; 1024];
            while let Ok(1..) = (&stream).read(&mut sink) {}
        }
    }
}

/// The same accept loop and handler on tokio's current-thread runtime.
fn on_tokio(listener: std::net::TcpListener, addr: std::net::SocketAddr) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| {
            eprintln!("error: cannot start the tokio runtime: {error}");
            std::process::exit(1);
        });
    let tasks = tokio::task::LocalSet::new();
    tasks.block_on(&runtime, async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .expect("inside a runtime a std listener converts");
        announce(addr);
        let mut failures = AcceptFailures::default();
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = handle(stream);
                    FUTURE_BYTES.store(size_of_val(&connection), Ordering::Relaxed);
                    tokio::task::spawn_local(connection);
                }
                Err(error) => {
                    failures.note(&error);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    });
}

/// The size of one connection's future, as the accept loop last saw it.
static FUTURE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// `GET /report`: which runtime, how big a connection's future is, and
/// the trace so far.
fn report(which: &str) -> Reply {
    let report = RuntimeReport {
        runtime: which.to_string(),
        connection_future_bytes: FUTURE_BYTES.load(Ordering::Relaxed),
        trace: runtime::traced(),
    };
    Reply {
        status: 200,
        body: serde_json::to_string(&report).unwrap_or_default() + "\n",
    }
}

/// The answer to a request that cannot be served, after which the
/// connection closes.
fn refusal(route: Route) -> Vec<u8> {
    response_bytes(&route.reply(), false)
}
