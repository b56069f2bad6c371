//! Chapter 6: the client side. Seed 003 set out to compare a sequential, a
//! threaded and an asyncio client against a server of capacity 8 (uWSGI, 4
//! processes × 2 threads, 0.5 s a request) and never published its results.
//! This is that comparison, with reqwest:
//!
//!     cargo run --release --example chapter2_threads -- --workers 4 --threads 2
//!     cargo run --release --example chapter6_client -- --mode async -n 16 'http://127.0.0.1:8002/sleep?ms=500'
//!
//! - `sequential`: one `reqwest::blocking::Client`, one request after another;
//! - `threads`: one OS thread per request (or a pool of `--concurrency` threads),
//!   each making a blocking request;
//! - `async`: one `reqwest::Client` and a future per request, all awaited
//!   together (`join_all`), or at most `--concurrency` at once
//!   (`buffer_unordered`).
//!
//! It prints the load client's report (`--json`: the same JSON as `load`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use evt::load::cli::{nothing_completed, parse_duration};
use evt::load::record::{ErrorKind, Failure, Recorder, Results, Span};
use evt::load::{Summary, Target, report};
use futures_util::StreamExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One request after another.
    Sequential,
    /// An OS thread per request (or a pool of --concurrency threads).
    Threads,
    /// A future per request on one runtime thread.
    Async,
}

#[derive(Debug, Parser)]
#[command(
    name = "chapter6_client",
    about = "Chapter 6: N requests sent sequentially, from threads, or as futures (reqwest)."
)]
struct Flags {
    /// How the requests are sent.
    #[arg(long, value_enum, default_value_t = Mode::Async)]
    mode: Mode,
    /// Requests to send.
    #[arg(short = 'n', long = "requests", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    requests: u64,
    /// At most this many at once (threads: the pool's size; async: buffer_unordered)
    /// [default: all of them at once].
    #[arg(short = 'c', long = "concurrency", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: Option<u64>,
    /// Give up on a request after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print the load client's JSON report instead of the text one.
    #[arg(long)]
    json: bool,
    /// The URL to request, http:// only.
    url: String,
}

/// What one request came to: its status, or why it failed, and when it ran.
struct Outcome {
    result: Result<u16, Failure>,
    started: Instant,
    ended: Instant,
}

fn main() {
    let flags = Flags::parse();
    // The load client's URL check: one line for a bad URL, before any thread starts.
    if let Err(message) = Target::parse(&flags.url) {
        eprintln!("error: {message}");
        std::process::exit(2);
    }
    let concurrency = flags
        .concurrency
        .unwrap_or(flags.requests)
        .min(flags.requests);
    let started = Instant::now();
    let outcomes = match flags.mode {
        Mode::Sequential => sequential(&flags),
        Mode::Threads => threads(&flags, concurrency),
        Mode::Async => with_futures(&flags, concurrency),
    };
    let results = results_of(&flags, concurrency as usize, started, outcomes);
    if flags.json {
        println!("{}", Summary::of(&results).to_json());
    } else {
        print!("{}", report::text(&results));
    }
    if let Some(message) = nothing_completed(&results) {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

// ANCHOR: sequential
/// One blocking client, one request after another: N × the server's time.
fn sequential(flags: &Flags) -> Vec<Outcome> {
    let client = blocking_client(flags);
    (0..flags.requests)
        .map(|_| blocking_get(&client, &flags.url))
        .collect()
}
// ANCHOR_END: sequential

// ANCHOR: threads
/// `concurrency` OS threads share the requests; each thread blocks on one
/// request at a time. The blocking client is shared: behind it, reqwest runs
/// a tokio runtime on a thread of its own that does the actual I/O.
fn threads(flags: &Flags, concurrency: u64) -> Vec<Outcome> {
    let client = blocking_client(flags);
    let next = Arc::new(Mutex::new(0u64));
    let pool: Vec<_> = (0..concurrency)
        .map(|index| {
            let (client, next, url) = (client.clone(), Arc::clone(&next), flags.url.clone());
            let total = flags.requests;
            let thread = std::thread::Builder::new().spawn(move || {
                let mut mine = Vec::new();
                loop {
                    {
                        let mut taken = next.lock().expect("no thread panics holding it");
                        if *taken == total {
                            return mine;
                        }
                        *taken += 1;
                    }
                    mine.push(blocking_get(&client, &url));
                }
            });
            // The machine's limit on threads is a limit of this design: say so.
            thread.unwrap_or_else(|error| {
                eprintln!(
                    "error: cannot start thread {} of {concurrency}: {error} (fewer with -c, \
                     or raise `ulimit -u`)",
                    index + 1
                );
                std::process::exit(1);
            })
        })
        .collect();
    pool.into_iter()
        .flat_map(|thread| thread.join().unwrap_or_default())
        .collect()
}
// ANCHOR_END: threads

// ANCHOR: futures
/// One async client on one runtime thread, a future per request: all at
/// once (`join_all`), or at most `concurrency` in flight (`buffer_unordered`).
fn with_futures(flags: &Flags, concurrency: u64) -> Vec<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs no resources that can run out");
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(flags.timeout)
            .build()
            .expect("a plain-HTTP client builds");
        let requests = (0..flags.requests).map(|_| async_get(&client, &flags.url));
        if concurrency >= flags.requests {
            futures_util::future::join_all(requests).await
        } else {
            futures_util::stream::iter(requests)
                .buffer_unordered(concurrency as usize)
                .collect()
                .await
        }
    })
}
// ANCHOR_END: futures

fn blocking_client(flags: &Flags) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(flags.timeout)
        .build()
        .unwrap_or_else(|error| {
            eprintln!("error: cannot start the HTTP client: {error}");
            std::process::exit(1);
        })
}

fn blocking_get(client: &reqwest::blocking::Client, url: &str) -> Outcome {
    let started = Instant::now();
    let result = client
        .get(url)
        .send()
        .and_then(|response| {
            let status = response.status().as_u16();
            response.bytes().map(|_| status)
        })
        .map_err(failure);
    Outcome {
        result,
        started,
        ended: Instant::now(),
    }
}

async fn async_get(client: &reqwest::Client, url: &str) -> Outcome {
    let started = Instant::now();
    let result = match client.get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            response.bytes().await.map(|_| status).map_err(failure)
        }
        Err(error) => Err(failure(error)),
    };
    Outcome {
        result,
        started,
        ended: Instant::now(),
    }
}

/// A reqwest error as one of the load client's kinds of failure.
fn failure(error: reqwest::Error) -> Failure {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_connect() {
        ErrorKind::Refused
    } else {
        ErrorKind::Other
    };
    // The innermost cause says the most ("Connection refused").
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    Failure { kind, message }
}

/// The outcomes recorded the way the load client records its own.
fn results_of(
    flags: &Flags,
    connections: usize,
    started: Instant,
    outcomes: Vec<Outcome>,
) -> Results {
    let mut record = Recorder::default();
    let ended = outcomes.iter().map(|o| o.ended).max().unwrap_or(started);
    for (index, outcome) in outcomes.into_iter().enumerate() {
        record.sent += 1;
        let span = |status| Span {
            connection: index as u32,
            start_us: (outcome.started - started).as_micros() as u64,
            end_us: (outcome.ended - started).as_micros() as u64,
            status,
        };
        match outcome.result {
            Ok(status) => {
                record.completed(status, outcome.ended - outcome.started);
                record.span(span(Some(status)));
            }
            Err(failure) => {
                record.failed(failure);
                record.span(span(None));
            }
        }
    }
    Results {
        url: flags.url.clone(),
        connections,
        duration: ended - started,
        record,
        interrupted: false,
        connect: None,
        hold: None,
        timed: false,
        rate: None,
        arrivals: evt::load::schedule::Arrivals::Even,
        planned: None,
        deadline: None,
    }
}
