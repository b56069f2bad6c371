//! Chapter 5: the same server on async-std, with tide.
//!
//!     cargo run --release --example chapter5_async_std
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8005/sleep?ms=2000'
//!
//! async-std was discontinued in 2025 (its README points to smol) and tide has
//! had no release since 0.16 (2021); both carry RustSec advisories. The
//! design card asks for them, so the book runs them, side by side with the
//! maintained successor in `chapter5_smol.rs`. Do not start new work on them.
//!
//! Unlike chapter 3's current-thread runtime, async-std's global executor
//! starts its own threads: one per core unless `ASYNC_STD_THREAD_COUNT` says
//! otherwise (`--threads` here sets it). Its reactor (async-io) has a thread
//! of its own too.

use clap::Parser;
use evt::defaults;
use evt::routes::Route;
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce, parse_flags};

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Executor threads (sets ASYNC_STD_THREAD_COUNT) [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Accept with tide's own listener, which leaves Nagle's algorithm on:
    /// every answer on a kept-alive connection then waits ~40 ms (see the chapter).
    #[arg(long)]
    tide_listener: bool,
}

// ANCHOR: handler
/// Every request comes here; the shared route table says what it asks for.
async fn handle(request: tide::Request<()>) -> tide::Result {
    let url = request.url();
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let route = Route::parse(request.method().as_ref(), &target);
    if let Some(delay) = route.delay() {
        // async-std's timer: the task yields, the executor runs others.
        async_std::task::sleep(delay).await;
    }
    let reply = route.reply();
    Ok(tide::Response::builder(reply.status)
        .body(reply.body)
        .content_type(tide::http::mime::PLAIN)
        .build())
}
// ANCHOR_END: handler

fn main() {
    let flags: Flags = parse_flags(
        "chapter5_async_std",
        "Chapter 5: tide on async-std (both unmaintained; see chapter5_smol for the successor).",
        defaults::CHAPTER5_ASYNC_STD_PORT,
    );
    // ANCHOR: threads
    if let Some(threads) = flags.threads {
        // SAFETY: no other thread exists yet to read the environment; the
        // executor reads this variable when it first starts.
        unsafe { std::env::set_var("ASYNC_STD_THREAD_COUNT", threads.to_string()) };
    }
    // ANCHOR_END: threads
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");

    // ANCHOR: serve
    let mut app = tide::new();
    app.at("/").all(handle);
    app.at("*").all(handle);
    async_std::task::block_on(async {
        announce(addr);
        if flags.tide_listener {
            // tide's accept loop, as tide's examples use it.
            if let Err(error) = app.listen(listener).await {
                eprintln!("error: tide stopped serving: {error}");
                std::process::exit(1);
            }
        } else {
            serve(async_std::net::TcpListener::from(listener), app).await;
        }
    });
    // ANCHOR_END: serve
}

// ANCHOR: accept_loop
/// The accept loop, ours: as chapter 3's, one task per connection, and
/// TCP_NODELAY on every connection, which tide's own listener does not set.
async fn serve(listener: async_std::net::TcpListener, app: tide::Server<()>) {
    let mut failures = AcceptFailures::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                failures.note(&error);
                async_std::task::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Send each answer at once, not after the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        async_std::task::spawn(async move {
            if asks_for_http_1_0(&stream).await {
                refuse_http_1_0(stream).await;
                return;
            }
            let _ = async_h1::accept(stream, |request| {
                let app = app.clone();
                async move { app.respond(request).await }
            })
            .await;
        });
    }
}
// ANCHOR_END: accept_loop

// ANCHOR: http_1_0
/// Whether the connection's first request line says HTTP/1.0. tide's HTTP
/// layer (async-h1) speaks only HTTP/1.1 and closes an HTTP/1.0 connection
/// without a word; ab speaks HTTP/1.0 and counts an empty reply as a
/// complete request, so it would read this server as infinitely fast.
async fn asks_for_http_1_0(stream: &async_std::net::TcpStream) -> bool {
    let mut head = [0u8; 1024];
    let deadline = std::time::Instant::now() + evt::blocking::READ_TIMEOUT;
    while std::time::Instant::now() < deadline {
        let seen = match stream.peek(&mut head).await {
            Ok(0) | Err(_) => return false,
            Ok(seen) => seen,
        };
        if let Some(end) = head[..seen].windows(2).position(|pair| pair == b"\r\n") {
            return head[..end].ends_with(b"HTTP/1.0");
        }
        if seen == head.len() {
            return false;
        }
        async_std::task::sleep(std::time::Duration::from_millis(1)).await;
    }
    false
}

/// Answers an HTTP/1.0 request with a status that says why, and closes.
async fn refuse_http_1_0(mut stream: async_std::net::TcpStream) {
    use async_std::io::WriteExt;
    let body = "tide (async-h1) speaks HTTP/1.1 only; send HTTP/1.1 (ab cannot)\n";
    let answer = format!(
        "HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Read what the client sent until it closes: closing with its request
    // unread would reset the connection and could destroy the answer.
    let mut sink = [0u8; 4096];
    let drain =
        async { while let Ok(1..) = async_std::io::ReadExt::read(&mut stream, &mut sink).await {} };
    let _ = async_std::future::timeout(evt::blocking::READ_TIMEOUT, drain).await;
}
// ANCHOR_END: http_1_0
