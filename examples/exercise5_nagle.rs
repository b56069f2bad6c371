//! Chapter 5's exercise: tide's hidden 40 ms, made again on purpose and
//! fixed two ways.
//!
//!     cargo run --release --example exercise5_nagle
//!     cargo run --release --example load -- -n 50 -c 1 http://127.0.0.1:8028/
//!
//! A small HTTP/1.1 server on smol that writes each answer in two pieces,
//! head then body, on connections that keep Nagle's algorithm on (no
//! `TCP_NODELAY`), as tide's own listener did. One client on one kept-alive
//! connection waits about 40 ms for every answer after the first few.
//! `--fix nodelay` and `--fix one-write` are the two solutions.

use std::net::TcpStream;

use clap::{Parser, ValueEnum};
use evt::blocking::{Parsed, response_bytes};
use evt::routes::MAX_HEADER_BYTES;
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce, parse_flags};
use smol::Async;
use smol::io::{AsyncReadExt, AsyncWriteExt};

/// The port, beside the chapters' own.
const PORT: u16 = 8028;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fix {
    /// None: Nagle on, two writes per answer (the starting point).
    None,
    /// Set TCP_NODELAY on every connection: each write goes out at once.
    Nodelay,
    /// Keep Nagle, but write head and body together, in one piece.
    OneWrite,
}

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Which fix is applied.
    #[arg(long, value_enum, default_value_t = Fix::None)]
    fix: Fix,
}

// ANCHOR: connection
/// Answers the requests of one kept-alive connection.
async fn serve(mut stream: Async<TcpStream>, fix: Fix) -> std::io::Result<()> {
    if fix == Fix::Nodelay {
        stream.get_ref().set_nodelay(true)?;
    }
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let (request, head_length) = match evt::blocking::parse(&buffer) {
            Parsed::Complete {
                request,
                head_length,
                ..
            } => (request, head_length),
            Parsed::Partial if buffer.len() < MAX_HEADER_BYTES => {
                let read = stream.read(&mut chunk).await?;
                if read == 0 {
                    return Ok(());
                }
                buffer.extend_from_slice(&chunk[..read]);
                continue;
            }
            _ => return Ok(()),
        };
        buffer.drain(..head_length);
        if let Some(delay) = request.route.delay() {
            smol::Timer::after(delay).await;
        }
        let answer = response_bytes(&request.route.reply(), request.keep_alive);
        let body_starts = answer.len() - request.route.reply().body.len();
        if fix == Fix::OneWrite {
            stream.write_all(&answer).await?;
        } else {
            // Two writes, as many HTTP layers do. With Nagle on, the kernel
            // sends the head and holds the body until the head is
            // acknowledged; the client's kernel delays that ACK (40 ms at
            // least on Linux) once the connection settles into
            // request-and-answer.
            stream.write_all(&answer[..body_starts]).await?;
            stream.write_all(&answer[body_starts..]).await?;
        }
        if !request.keep_alive {
            return Ok(());
        }
    }
}
// ANCHOR_END: connection

fn main() {
    let flags: Flags = parse_flags(
        "exercise5_nagle",
        "Chapter 5's exercise: an answer in two writes with Nagle on; --fix nodelay|one-write.",
        PORT,
    );
    let fix = flags.fix;
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let listener = Async::new(listener).unwrap_or_else(|error| {
        eprintln!("error: cannot register the listening socket with smol: {error}");
        std::process::exit(1);
    });
    announce(addr);
    // One thread: smol's executor for this thread alone.
    let executor = smol::LocalExecutor::new();
    smol::block_on(executor.run(async {
        let mut failures = AcceptFailures::default();
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => executor
                    .spawn(async move {
                        let _ = serve(stream, fix).await;
                    })
                    .detach(),
                Err(error) => {
                    failures.note(&error);
                    smol::Timer::after(ACCEPT_BACKOFF).await;
                }
            }
        }
    }));
}
