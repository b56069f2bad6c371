//! Chapter 12: when threads win, and what overload does. The book's server
//! (chapter 3's handler, on axum), with what this chapter measures, each a
//! flag:
//!
//!     cargo run --release --example chapter12_overload -- --slots 16 --limit 64
//!     cargo run --release --example load -- --rate 1200 -z 10s -c 500 'http://127.0.0.1:8012/sleep?ms=20'
//!
//! - `--slots N`: a request holds one of N slots while it is served, like a
//!   connection from a pool of N to a database; the others wait their turn
//!   (first come, first served);
//! - `--limit N`: at most N requests in the server (served or waiting for a
//!   slot); one more is answered 503 at once (load shedding) instead of
//!   joining a queue that grows for as long as the overload lasts;
//! - `--queue-timeout D`: a request that waited D for a slot is answered 503
//!   (a bound on the wait for a slot, not on the whole request);
//! - `--offload`: a request for CPU (`/work`) runs on tokio's blocking pool
//!   (`spawn_blocking`), so the loop goes on answering the others;
//! - `--cpu-pool N`: with `--offload`, at most N requests' CPU work runs at
//!   once, the others wait their turn: a bounded pool, as tokio's docs
//!   advise for CPU work (the blocking pool itself grows to 512 threads);
//! - `--threads N`: tokio's multi-thread runtime with N workers instead of
//!   one loop (`--no-lifo-slot`, `--eager-driver-handoff`: chapter 11's two
//!   settings of where a woken task runs).
//!
//! A 503 carries `Retry-After: 1`, so a well-behaved client waits a second
//! before it asks again. `GET /report` says how it ran, how many requests
//! it served, shed and timed out (each request in one of the three), and
//! the most it held at once.

#[path = "common/axum_serve.rs"]
mod axum_serve;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use evt::defaults;
use evt::report::OverloadReport;
use evt::routes::{Reply, Route};
use evt::server::{ServerArgs, announce, parse_flags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Run requests for CPU (`/work`) on tokio's blocking pool.
    #[arg(long)]
    offload: bool,
    /// With --offload: at most N requests' CPU work at once; the others
    /// wait in line (without it, each gets a blocking-pool thread).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=512))]
    cpu_pool: Option<u32>,
    /// With --threads above 1: no LIFO slot (needs tokio_unstable).
    #[arg(long)]
    no_lifo_slot: bool,
    /// With --threads above 1: hand the I/O driver on eagerly (needs tokio_unstable).
    #[arg(long)]
    eager_driver_handoff: bool,
    /// Slots a request holds while it is served (a pool of N connections
    /// to a dependency); the others wait for one.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    slots: Option<u32>,
    /// Requests the server holds at once, served or waiting; beyond it,
    /// answer 503 at once.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    limit: Option<u32>,
    /// Answer 503 to a request that waited this long for a slot (needs
    /// --slots), e.g. 100ms: a bound on the wait for a slot, not on the
    /// whole request.
    #[arg(long, value_parser = humantime::parse_duration)]
    queue_timeout: Option<std::time::Duration>,
    /// Threads running the loop's tasks: 1 is one current-thread loop, more
    /// is tokio's work-stealing runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Serve nothing: time the two sleeps this chapter's servers wait with
    /// (tokio's timer on the loop, `std::thread::sleep` in chapter 2's pool)
    /// for the dependency's 20 ms, and print the means.
    #[arg(long)]
    timer_check: bool,
    /// With --timer-check: print the means as JSON (for the reproduce run).
    #[arg(long)]
    json: bool,
}

/// What every request shares.
struct Shared {
    offload: bool,
    /// The bounded CPU pool's places, with --cpu-pool.
    cpu_pool: Option<Arc<Semaphore>>,
    threads: usize,
    /// The admission limit: one permit per request held.
    limit: Option<(usize, Arc<Semaphore>)>,
    /// The dependency's slots.
    slots: Option<(usize, Arc<Semaphore>)>,
    queue_timeout: Option<std::time::Duration>,
    answered: AtomicU64,
    shed: AtomicU64,
    timed_out: AtomicU64,
    held: AtomicU64,
    peak_held: AtomicU64,
}

// ANCHOR: shed
/// Load shedding: a request that finds the server full is answered 503 at
/// once, costing microseconds, rather than waiting behind all the others
/// and timing out at its client after the server has spent its work on it.
fn admit(shared: &Shared) -> Result<Option<OwnedSemaphorePermit>, Reply> {
    let Some((_, admitted)) = &shared.limit else {
        return Ok(None);
    };
    match Arc::clone(admitted).try_acquire_owned() {
        Ok(permit) => Ok(Some(permit)),
        Err(_) => {
            shared.shed.fetch_add(1, Ordering::Relaxed);
            Err(Reply {
                status: 503,
                body: "overloaded: the server is full, try again later\n".into(),
            })
        }
    }
}

/// Waits for one of the dependency's slots, first come first served: the
/// queue is every task waiting here. With a queue timeout, a request that
/// waited too long gives up with a 503.
async fn slot(shared: &Shared) -> Result<Option<OwnedSemaphorePermit>, Reply> {
    let Some((_, slots)) = &shared.slots else {
        return Ok(None);
    };
    let waiting = Arc::clone(slots).acquire_owned();
    let permit = match shared.queue_timeout {
        None => waiting.await,
        Some(limit) => match tokio::time::timeout(limit, waiting).await {
            Ok(permit) => permit,
            Err(_) => {
                shared.timed_out.fetch_add(1, Ordering::Relaxed);
                return Err(Reply {
                    status: 503,
                    body: format!("overloaded: no slot within {limit:?}\n"),
                });
            }
        },
    };
    Ok(Some(permit.expect("the slots are never closed")))
}
// ANCHOR_END: shed

// ANCHOR: handler
async fn handle(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    let target = uri.path_and_query().map_or("/", |path| path.as_str());
    let route = Route::parse(method.as_str(), target);
    if route == Route::Report {
        return report(&shared).into_response();
    }
    let _admitted = match admit(&shared) {
        Ok(permit) => permit,
        Err(full) => return come_back_later(full),
    };
    let _held = Held::enter(&shared);
    let _slot = match slot(&shared).await {
        Ok(permit) => permit,
        Err(late) => return come_back_later(late),
    };
    if let Some(delay) = route.delay() {
        tokio::time::sleep(delay).await;
    }
    let reply = if shared.offload && matches!(route, Route::Work(_)) {
        // The CPU runs on a thread of the blocking pool; this task waits
        // for it like for any other I/O, and the loop serves the others.
        // With a bounded pool, it first waits for one of its places, and
        // the work holds it until done, even if this task is dropped.
        let place = match &shared.cpu_pool {
            Some(places) => Some(Arc::clone(places).acquire_owned().await),
            None => None,
        };
        tokio::task::spawn_blocking(move || {
            let _place = place;
            route.reply()
        })
        .await
        .unwrap_or_else(|_| Reply {
            status: 500,
            body: "the work panicked\n".into(),
        })
    } else {
        // On the loop's own thread: nothing else runs until it is done.
        route.reply()
    };
    shared.answered.fetch_add(1, Ordering::Relaxed);
    axum_serve::answer(reply).into_response()
}
// ANCHOR_END: handler

/// A 503, with `Retry-After` so a client that honours it waits a second
/// before it asks again, instead of adding to the overload at once.
fn come_back_later(reply: Reply) -> Response {
    let (status, body) = axum_serve::answer(reply);
    (status, [(header::RETRY_AFTER, "1")], body).into_response()
}

/// Counts a request held (waiting or served) until it is answered or its
/// client leaves (hyper then drops the handler's future, and this with it).
struct Held<'a>(&'a Shared);

impl<'a> Held<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.held.fetch_add(1, Ordering::Relaxed) + 1;
        shared.peak_held.fetch_max(now, Ordering::Relaxed);
        Held(shared)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

fn report(shared: &Shared) -> (StatusCode, String) {
    let report = OverloadReport {
        threads: shared.threads,
        offload: shared.offload,
        slots: shared.slots.as_ref().map(|(n, _)| *n),
        limit: shared.limit.as_ref().map(|(n, _)| *n),
        answered: shared.answered.load(Ordering::Relaxed),
        shed: shared.shed.load(Ordering::Relaxed),
        timed_out: shared.timed_out.load(Ordering::Relaxed),
        peak_held: shared.peak_held.load(Ordering::Relaxed),
    };
    let body = serde_json::to_string(&report).expect("a report is plain data") + "\n";
    (StatusCode::OK, body)
}

// ANCHOR: timer_check
/// How long a 20 ms sleep takes on each of the two clocks this chapter's
/// servers wait on: tokio's timer, which counts whole milliseconds and
/// rounds a deadline up to the next one, and the thread's own sleep.
fn timer_check() -> evt::report::TimerCheck {
    const SAMPLES: u32 = 100;
    let asked = std::time::Duration::from_millis(20);
    let mean = |total: std::time::Duration| total.as_secs_f64() * 1e3 / f64::from(SAMPLES);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|error| {
            eprintln!("error: cannot start a tokio runtime for the timer check: {error}");
            std::process::exit(1);
        });
    let on_tokio = runtime.block_on(async {
        let started = std::time::Instant::now();
        for _ in 0..SAMPLES {
            tokio::time::sleep(asked).await;
        }
        started.elapsed()
    });
    let started = std::time::Instant::now();
    for _ in 0..SAMPLES {
        std::thread::sleep(asked);
    }
    let on_thread = started.elapsed();
    evt::report::TimerCheck {
        asked_ms: asked.as_secs_f64() * 1e3,
        samples: SAMPLES,
        tokio_ms: mean(on_tokio),
        std_ms: mean(on_thread),
    }
}
// ANCHOR_END: timer_check

fn main() {
    let flags: Flags = parse_flags(
        "chapter12_overload",
        "Chapter 12: the book's server behind a dependency's slots (--slots), with load shedding (--limit, --queue-timeout), CPU work offloaded (--offload), or more threads (--threads).",
        defaults::CHAPTER12_OVERLOAD_PORT,
    );
    if flags.timer_check {
        let serving = flags.slots.is_some()
            || flags.limit.is_some()
            || flags.queue_timeout.is_some()
            || flags.offload
            || flags.cpu_pool.is_some()
            || flags.no_lifo_slot
            || flags.eager_driver_handoff
            || flags.threads != 1;
        if serving {
            eprintln!("error: --timer-check serves nothing; it takes no server flags");
            std::process::exit(2);
        }
        let check = timer_check();
        if flags.json {
            println!(
                "{}",
                serde_json::to_string(&check).expect("a check is plain data")
            );
        } else {
            println!(
                "a sleep of {} ms took {:.2} ms on tokio's timer and {:.2} ms with std::thread::sleep (means of {})",
                check.asked_ms, check.tokio_ms, check.std_ms, check.samples
            );
        }
        return;
    }
    if flags.json {
        eprintln!("error: --json prints --timer-check's means; the server reports at GET /report");
        std::process::exit(2);
    }
    evt::server::refuse_unless(
        flags.cpu_pool.is_some(),
        flags.offload,
        "--cpu-pool bounds the CPU work --offload sends to the blocking pool; it needs --offload",
    );
    let tuned = flags.no_lifo_slot || flags.eager_driver_handoff;
    evt::server::refuse_unless(
        tuned,
        flags.threads > 1,
        "--no-lifo-slot and --eager-driver-handoff tune work stealing; they need --threads 2 or more",
    );
    evt::server::refuse_unless(
        tuned,
        cfg!(tokio_unstable),
        "--no-lifo-slot and --eager-driver-handoff need tokio built with --cfg tokio_unstable (this book's .cargo/config.toml sets it; a RUSTFLAGS in the environment replaces it)",
    );
    if flags.queue_timeout.is_some() && flags.slots.is_none() {
        eprintln!(
            "error: --queue-timeout is how long a request may wait for a slot; it needs --slots"
        );
        std::process::exit(2);
    }
    let threads = usize::from(flags.threads);
    let semaphore = |n: u32| (n as usize, Arc::new(Semaphore::new(n as usize)));
    let shared = Arc::new(Shared {
        offload: flags.offload,
        cpu_pool: flags.cpu_pool.map(|n| Arc::new(Semaphore::new(n as usize))),
        threads,
        limit: flags.limit.map(semaphore),
        slots: flags.slots.map(semaphore),
        queue_timeout: flags.queue_timeout,
        answered: AtomicU64::new(0),
        shed: AtomicU64::new(0),
        timed_out: AtomicU64::new(0),
        held: AtomicU64::new(0),
        peak_held: AtomicU64::new(0),
    });
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        #[cfg(tokio_unstable)]
        {
            if flags.no_lifo_slot {
                builder.disable_lifo_slot();
            }
            if flags.eager_driver_handoff {
                builder.enable_eager_driver_handoff();
            }
        }
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start {threads} runtime thread(s): {error}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async {
        let app = Router::new().fallback(handle).with_state(shared);
        announce(addr);
        // The accept loop is a task: on several threads it runs on a worker
        // (as chapter 11's does), not on this main thread.
        let accepting = tokio::spawn(axum_serve::serve(axum_serve::into_tokio(listener), app));
        if let Err(error) = accepting.await {
            eprintln!("error: the accept loop ended: {error}");
            std::process::exit(1);
        }
    });
}
