//! Chapter 12's exercise, solved: chapter 3's loop closes a connection whose
//! request head has not all arrived within a deadline, so slow clients
//! (slowloris) cannot hold its memory and descriptors for as long as they
//! like.
//!
//!     cargo run --release --example exercise12_header_timeout -- --header-timeout 2s
//!
//! hyper does the timing: given a timer, it closes a connection whose head
//! is still incomplete when the deadline passes.

#[path = "common/axum_serve.rs"]
#[allow(dead_code)]
mod axum_serve;

use std::time::Duration;

use axum::Router;
use axum::http::{Method, Uri};
use clap::Parser;
use evt::routes::{MAX_HEADER_BYTES, Route};
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce, parse_flags};

/// The port, beside the chapters' own.
const PORT: u16 = 8022;

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Close a connection whose request head is not complete this long
    /// after it began arriving.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
}

/// Chapter 3's handler.
async fn handle(method: Method, uri: Uri) -> (axum::http::StatusCode, String) {
    let target = uri.path_and_query().map_or("/", |path| path.as_str());
    let route = Route::parse(method.as_str(), target);
    if let Some(delay) = route.delay() {
        tokio::time::sleep(delay).await;
    }
    axum_serve::answer(route.reply())
}

fn main() {
    let flags: Flags = parse_flags(
        "exercise12_header_timeout",
        "Chapter 12's exercise: one loop that closes connections whose request head is too slow.",
        PORT,
    );
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs no resources that can run out");
    runtime.block_on(async {
        let listener = axum_serve::into_tokio(listener);
        let app = Router::new().fallback(handle);
        announce(addr);
        let mut failures = AcceptFailures::default();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    failures.note(&error);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // ANCHOR: solution
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            let connection = hyper::server::conn::http1::Builder::new()
                .max_buf_size(MAX_HEADER_BYTES)
                // The change: a timer for hyper, and the deadline for a head.
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(flags.header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // ANCHOR_END: solution
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
}
