//! Chapter 5: the same server on smol, async-std's maintained successor.
//!
//!     cargo run --release --example chapter5_smol
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8006/sleep?ms=2000'
//!
//! smol is small on purpose: an executor (async-executor), a reactor
//! (async-io) and adapters, no HTTP. The HTTP layer is hyper 1, the same
//! parser and connection code chapter 3 runs under axum, connected to smol by
//! smol-hyper (maintained by the smol developers): so the two chapters differ
//! only in the runtime. The executor runs on this thread and `--threads - 1`
//! more; async-io's reactor is driven by whichever thread waits in
//! `block_on`, with a fallback thread of its own.

use std::sync::Arc;

use clap::Parser;
use evt::defaults;
use evt::routes::{MAX_HEADER_BYTES, Route};
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce, parse_flags};
use hyper::body::Incoming;
use hyper::{Request, Response};
use smol::{Async, Executor};
use smol_hyper::rt::FuturesIo;

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Threads running the executor (this one included).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
}

// ANCHOR: handler
/// Every request comes here; the shared route table says what it asks for.
async fn handle(request: Request<Incoming>) -> Result<Response<String>, std::convert::Infallible> {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let route = Route::parse(request.method().as_str(), target);
    if let Some(delay) = route.delay() {
        // smol's timer (async-io): the task yields, the executor runs others.
        smol::Timer::after(delay).await;
    }
    let reply = route.reply();
    let mut response = Response::new(reply.body);
    *response.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    Ok(response)
}
// ANCHOR_END: handler

fn main() {
    let flags: Flags = parse_flags(
        "chapter5_smol",
        "Chapter 5: hyper on smol, async-std's maintained successor.",
        defaults::CHAPTER5_SMOL_PORT,
    );
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let listener = Async::new(listener).unwrap_or_else(|error| {
        eprintln!("error: cannot register the socket with the reactor: {error}");
        std::process::exit(1);
    });

    // ANCHOR: executor
    let executor = Arc::new(Executor::new());
    // The extra executor threads, each running tasks until the process ends.
    for _ in 1..flags.threads {
        let executor = Arc::clone(&executor);
        let started = std::thread::Builder::new()
            .spawn(move || smol::block_on(executor.run(std::future::pending::<()>())));
        if let Err(error) = started {
            eprintln!(
                "error: cannot start {} executor threads: {error}",
                flags.threads
            );
            std::process::exit(1);
        }
    }
    // This thread runs the executor too, with the accept loop as its first task.
    announce(addr);
    smol::block_on(executor.run(accept_loop(&executor, listener)));
    // ANCHOR_END: executor
}

// ANCHOR: accept_loop
/// Accept a connection, give it a task, go back to accepting.
async fn accept_loop(executor: &Arc<Executor<'static>>, listener: Async<std::net::TcpListener>) {
    let mut failures = AcceptFailures::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                failures.note(&error);
                smol::Timer::after(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.get_ref().set_nodelay(true);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(smol_hyper::rt::SmolTimer::new())
            // As chapter 3: answer 431 past 8 KiB of headers.
            .max_buf_size(MAX_HEADER_BYTES)
            .serve_connection(FuturesIo::new(stream), hyper::service::service_fn(handle));
        executor
            .spawn(async move {
                let _ = connection.await;
            })
            .detach();
    }
}
// ANCHOR_END: accept_loop
