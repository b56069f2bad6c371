//! Chapter 4: blocking inside the event loop.
//!
//!     cargo run --release --example chapter4_blocking -- --handler std-sleep
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8004/sleep?ms=2000'
//!
//! Chapter 3's server with the wait done four ways (`--handler`):
//! - `tokio-sleep`: `tokio::time::sleep(..).await`, chapter 3 as it was;
//! - `std-sleep`: `std::thread::sleep` inside the async handler: the thread
//!   that runs the loop sleeps, and every other task on it waits (seed 002's
//!   Flask `async def` view on a sync worker);
//! - `spawn-blocking`: the same blocking sleep moved to tokio's blocking pool;
//! - `cpu`: real work instead of a wait: N ms of CPU spent hashing.
//!
//! `--runtime current` runs one thread (chapter 3); `--runtime multi` runs
//! `--worker-threads N` loop threads. A probe task wakes every 10 ms and
//! records how late it woke: the loop's lag. `GET /report` returns it.

#[path = "common/axum_serve.rs"]
mod axum_serve;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use clap::{Parser, ValueEnum};
use evt::defaults;
use evt::report::LagReport;
use evt::routes::Route;
use evt::routes::spend_cpu;
use evt::server::{ServerArgs, announce, parse_flags, refuse_unless};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Handler {
    /// Await a tokio timer: the loop runs other tasks meanwhile.
    TokioSleep,
    /// Block the loop's thread with std::thread::sleep.
    StdSleep,
    /// Block a thread of tokio's blocking pool instead (spawn_blocking).
    SpawnBlocking,
    /// Spend the delay as CPU time (hashing), on the loop's thread.
    Cpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Runtime {
    /// One thread runs the loop (chapter 3).
    Current,
    /// --worker-threads threads run loops that share the tasks.
    Multi,
}

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// How a request's delay is spent.
    #[arg(long, value_enum, default_value_t = Handler::TokioSleep)]
    handler: Handler,
    /// Which tokio runtime runs the server.
    #[arg(long, value_enum, default_value_t = Runtime::Current)]
    runtime: Runtime,
    /// Loop threads of `--runtime multi` [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

// ANCHOR: handler
/// Every request comes here; `handler` decides how its delay is spent.
async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
) -> (StatusCode, String) {
    let target = uri.path_and_query().map_or("/", |path| path.as_str());
    let route = Route::parse(method.as_str(), target);
    if route == Route::Report {
        return (StatusCode::OK, server.lag.report());
    }
    if let Some(delay) = route.delay() {
        match server.handler {
            Handler::TokioSleep => tokio::time::sleep(delay).await,
            // Compiles, runs, and holds the loop's thread for the whole delay.
            Handler::StdSleep => std::thread::sleep(delay),
            Handler::SpawnBlocking => {
                let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
            }
            Handler::Cpu => {
                spend_cpu(delay);
            }
        }
    }
    axum_serve::answer(route.reply())
}
// ANCHOR_END: handler

// ANCHOR: lag_probe
/// How late the probe woke each time: (ms since the probe started, ms late).
struct LagLog {
    started: Instant,
    samples: Mutex<Vec<(f64, f64)>>,
}

/// The most samples kept: 10 minutes at one every 10 ms.
const MOST_SAMPLES: usize = 60_000;

/// A task that asks to wake every 10 ms and writes down how late it woke. On
/// a free loop it is about a millisecond late (tokio's timer ticks in whole
/// milliseconds); on a loop whose thread is blocked it is late by as long as
/// the block lasts, because nothing can run it until the thread comes back.
async fn lag_probe(log: Arc<LagLog>) {
    let period = Duration::from_millis(10);
    loop {
        let due = Instant::now() + period;
        tokio::time::sleep_until(due.into()).await;
        let woke = Instant::now();
        let late_ms = (woke - due).as_secs_f64() * 1e3;
        let at_ms = (woke - log.started).as_secs_f64() * 1e3;
        if let Ok(mut samples) = log.samples.lock() {
            if samples.len() < MOST_SAMPLES {
                samples.push((at_ms, late_ms));
            }
        }
    }
}
// ANCHOR_END: lag_probe

impl LagLog {
    /// `/report`: the samples, and `now_ms` so a reader can line them up
    /// with the requests of a run.
    fn report(&self) -> String {
        let samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let round = |ms: f64| (ms * 100.0).round() / 100.0;
        let report = LagReport {
            now_ms: round((Instant::now() - self.started).as_secs_f64() * 1e3),
            max_lag_ms: round(samples.iter().map(|&(_, late)| late).fold(0.0, f64::max)),
            lag_ms: samples
                .iter()
                .map(|&(at, late)| (round(at), round(late)))
                .collect(),
        };
        serde_json::to_string(&report).unwrap_or_default() + "\n"
    }
}

/// What every request's handler shares.
struct Server {
    handler: Handler,
    lag: Arc<LagLog>,
}

fn main() {
    let flags: Flags = parse_flags(
        "chapter4_blocking",
        "Chapter 4: chapter 3's server with the wait done four ways, and a probe of the loop's lag.",
        defaults::CHAPTER4_BLOCKING_PORT,
    );
    refuse_unless(
        flags.worker_threads.is_some(),
        flags.runtime == Runtime::Multi,
        "--worker-threads sets the threads of the multi-thread runtime; it needs --runtime multi",
    );
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");

    // ANCHOR: runtime
    let runtime = match flags.runtime {
        Runtime::Current => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Runtime::Multi => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = flags.worker_threads {
                builder.worker_threads(usize::from(threads));
            }
            builder.enable_all().build()
        }
    }
    .unwrap_or_else(|error| {
        eprintln!("error: cannot start the tokio runtime: {error}");
        std::process::exit(1);
    });
    // ANCHOR_END: runtime
    runtime.block_on(async {
        let lag = Arc::new(LagLog {
            started: Instant::now(),
            samples: Mutex::new(Vec::new()),
        });
        tokio::spawn(lag_probe(Arc::clone(&lag)));
        let server = Arc::new(Server {
            handler: flags.handler,
            lag,
        });
        let app = Router::new().fallback(handle).with_state(server);
        announce(addr);
        axum_serve::serve(axum_serve::into_tokio(listener), app).await;
    });
}
