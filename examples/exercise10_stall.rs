//! Chapter 10's exercise, solved: a stall that a closed client misses and an
//! open one sees, with two small clients written from scratch.
//!
//!     cargo run --release --example chapter4_blocking -- --handler std-sleep
//!     cargo run --release --example exercise10_stall -- http://127.0.0.1:8004/
//!
//! Chapter 4's server with `--handler std-sleep` is one loop that a
//! `/sleep?ms=1000` request stops for a whole second: a stall. Each client
//! below asks for `/` (hello) for `--duration`; a third of the way in, one
//! stall request is sent beside it. Then each prints its p50, p99 and
//! slowest request.
//! - closed: `--connections` threads, each sends its next request when its
//!   last answer came;
//! - open: requests fall due `--rate` times a second whatever happens, sent
//!   by the first free thread of `--senders`, and each is timed from when it
//!   was due, not from when it could be sent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use evt::load::Target;
use evt::load::cli::parse_duration;

#[derive(Debug, Parser)]
#[command(
    name = "exercise10_stall",
    about = "Chapter 10's exercise: a closed and an open client, each beside a one-second stall."
)]
struct Flags {
    /// How long each client runs.
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    duration: Duration,
    /// The closed client's connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    connections: u32,
    /// The open client's requests per second.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rate: u32,
    /// The open client's sending threads.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    senders: u32,
    /// The path that stalls the server.
    #[arg(long, default_value = "/sleep?ms=1000")]
    stall: String,
    /// The server's hello URL (http:// only).
    url: String,
}

/// One request on a kept-alive connection, answered in full.
fn ask(stream: &mut TcpStream, host: &str, path: &str) -> std::io::Result<()> {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n")?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        answer.push(byte[0]);
    }
    let length = String::from_utf8_lossy(&answer)
        .to_ascii_lowercase()
        .lines()
        .find_map(|line| {
            line.strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    stream.read_exact(&mut vec![0u8; length])
}

fn connect(target: &Target) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(target.addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

// ANCHOR: clients
/// The closed client: each connection sends again only once answered, so
/// while the server is stopped it sends nothing, and the requests it does not
/// send are never timed.
fn closed(target: &Target, connections: u32, until: Instant) -> Vec<Duration> {
    let latencies = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..connections {
            scope.spawn(|| {
                let Ok(mut stream) = connect(target) else {
                    return;
                };
                while Instant::now() < until {
                    let sent = Instant::now();
                    if ask(&mut stream, &target.authority, &target.path_and_query).is_err() {
                        return;
                    }
                    latencies.lock().unwrap().push(sent.elapsed());
                }
            });
        }
    });
    latencies.into_inner().unwrap()
}

/// The open client: request i is due at start + i / rate. A sender takes
/// the next number, waits until it is due, and sends; if every sender is
/// stuck, due requests wait, and that wait is counted.
fn open(target: &Target, rate: u32, senders: u32, start: Instant, until: Instant) -> Vec<Duration> {
    let next = AtomicU64::new(0);
    let latencies = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..senders {
            scope.spawn(|| {
                let Ok(mut stream) = connect(target) else {
                    return;
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
                    if due >= until {
                        return;
                    }
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    if ask(&mut stream, &target.authority, &target.path_and_query).is_err() {
                        return;
                    }
                    // From when it was due: the time in the client counts.
                    latencies.lock().unwrap().push(due.elapsed());
                }
            });
        }
    });
    latencies.into_inner().unwrap()
}
// ANCHOR_END: clients

/// Runs `client` for `duration`, with one stall request sent a third of the
/// way in; prints and returns the latencies.
fn with_stall(
    name: &str,
    flags: &Flags,
    target: &Target,
    client: impl FnOnce(Instant, Instant) -> Vec<Duration>,
) -> Result<(), String> {
    let start = Instant::now();
    let until = start + flags.duration;
    let mut latencies = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(flags.duration / 3);
            let mut stream = connect(target)?;
            ask(&mut stream, &target.authority, &flags.stall)
        });
        client(start, until)
    });
    if latencies.is_empty() {
        return Err(format!(
            "the {name} client got no answer from {}",
            target.url
        ));
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: {} requests, p50 {:.2} ms, p99 {:.2} ms, slowest {:.2} ms",
        latencies.len(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0))
    );
    Ok(())
}

fn main() {
    let flags = Flags::parse();
    let target = Target::parse(&flags.url).unwrap_or_else(|error| {
        eprintln!("error: {error}");
        std::process::exit(2);
    });
    if let Err(error) = connect(&target) {
        eprintln!("error: cannot connect to {}: {error}", target.addr);
        std::process::exit(1);
    }
    let closed_run = with_stall("closed", &flags, &target, |_, until| {
        closed(&target, flags.connections, until)
    });
    let open_run = closed_run.and_then(|()| {
        with_stall("open", &flags, &target, |start, until| {
            open(&target, flags.rate, flags.senders, start, until)
        })
    });
    if let Err(error) = open_run {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
