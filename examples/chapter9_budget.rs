//! Chapter 9: a task that never has to wait, on our runtime and on tokio's.
//!
//!     cargo run --release --example chapter9_budget
//!
//! On one thread two tasks share the loop. The greedy one reads a socket in
//! small pieces; another thread keeps that socket full, so every read
//! succeeds at once. The ticker asks to wake every few milliseconds and
//! notes how late it runs.
//!
//! A future gives the thread back only when it returns `Pending`. On our
//! runtime a read returns `Pending` only when the socket is empty, so the
//! greedy task keeps the thread until it has read everything, and the ticker
//! waits that long. tokio gives every task a budget of operations per poll
//! (128 in tokio 1.x): once it is spent, tokio's sockets, timers and channels
//! return `Pending` even when ready, so the task yields and the ticker runs.
//! The second run gives our runtime the same budget: a task that has spent
//! it is woken again only after the executor has looked at epoll and the
//! timers, so the ticker's timer is seen in between.

// Chapter 9's own runtime: only its socket futures, spawn and sleep.
#[path = "chapter9_runtime/runtime.rs"]
#[allow(dead_code)]
mod runtime;

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use evt::report::{BudgetReport, BudgetRun};

#[derive(Debug, Parser)]
#[command(
    name = "chapter9_budget",
    about = "Chapter 9: a task whose socket is always ready, beside a ticker, on our runtime and on tokio's."
)]
struct Flags {
    /// MiB the greedy task reads (64 bytes at a time).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    mib: u64,
    /// How often the ticker asks to wake, in ms.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    tick_ms: u64,
    /// Print the results as JSON (for the reproduce run).
    #[arg(long)]
    json: bool,
}

/// Bytes per read: small, so reading takes many calls, each one ready.
const PIECE: usize = 64;

/// The budget our runtime gets in its second run: tokio's.
const BUDGET: u32 = 128;

fn main() {
    let flags = Flags::parse();
    let bytes = flags.mib * 1024 * 1024;
    let tick = Duration::from_millis(flags.tick_ms);
    let runs = [
        on_ours(bytes, tick, None),
        on_ours(bytes, tick, Some(BUDGET)),
        on_tokio(bytes, tick),
    ];
    let runtimes = runs
        .into_iter()
        .collect::<Result<Vec<BudgetRun>, String>>()
        .unwrap_or_else(|error| {
            eprintln!("error: {error}");
            std::process::exit(1);
        });
    let report = BudgetReport {
        bytes,
        tick_ms: flags.tick_ms,
        runtimes,
    };
    if flags.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        return;
    }
    println!(
        "a greedy task reads {} MiB, {PIECE} bytes at a time; a ticker asks to wake every {} ms",
        flags.mib, flags.tick_ms
    );
    for run in &report.runtimes {
        println!(
            "  {:<16} greedy task: {:>7.1} ms, gave the thread up {:>6} times; ticker ran {:>4} times, at worst {:>7.1} ms late",
            run.runtime, run.greedy_ms, run.greedy_yields, run.ticks, run.max_late_ms
        );
    }
}

// ANCHOR: tasks
/// What the two tasks saw.
#[derive(Default)]
struct Seen {
    greedy_done: Cell<bool>,
    greedy_ms: Cell<f64>,
    yields: Cell<u64>,
    ticks: Cell<u64>,
    max_late: Cell<Duration>,
}

/// The ticker: sleeps `tick` again and again until the greedy task is
/// done, and notes how late each wake-up came.
async fn ticker<S: Future<Output = ()>>(seen: Rc<Seen>, tick: Duration, sleep: impl Fn() -> S) {
    while !seen.greedy_done.get() {
        let asked = Instant::now();
        sleep().await;
        let late = asked.elapsed().saturating_sub(tick);
        seen.max_late.set(seen.max_late.get().max(late));
        seen.ticks.set(seen.ticks.get() + 1);
    }
}

/// Reads `socket` until it is closed, counting how often a read returned
/// `Pending`: the only moments the task gives the thread to another.
async fn greedy(seen: Rc<Seen>, mut socket: impl Socket) {
    let started = Instant::now();
    let mut piece = [0u8; PIECE];
    loop {
        let mut once = std::pin::pin!(socket.read(&mut piece));
        let got = poll_fn(|cx| {
            let polled = once.as_mut().poll(cx);
            if polled.is_pending() {
                seen.yields.set(seen.yields.get() + 1);
            }
            polled
        })
        .await;
        if !matches!(got, Ok(1..)) {
            break;
        }
    }
    seen.greedy_ms.set(started.elapsed().as_secs_f64() * 1000.0);
    seen.greedy_done.set(true);
}
// ANCHOR_END: tasks

/// A socket of either runtime: all the greedy task needs.
trait Socket {
    async fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize>;
}

impl Socket for runtime::Async<mio::net::UnixStream> {
    async fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        runtime::Async::read(self, buffer).await
    }
}

impl Socket for tokio::net::UnixStream {
    async fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        tokio::io::AsyncReadExt::read(self, buffer).await
    }
}

/// Another thread that writes `bytes` into `stream` as fast as it can,
/// then closes it: the greedy task's socket is never empty for long.
fn fill(mut stream: UnixStream, bytes: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        let mut left = bytes as usize;
        while left > 0 {
            let part = left.min(chunk.len());
            if stream.write_all(&chunk[..part]).is_err() {
                return;
            }
            left -= part;
        }
    })
}

fn pair() -> Result<(UnixStream, UnixStream), String> {
    let (writer, reader) =
        UnixStream::pair().map_err(|e| format!("cannot make a socket pair: {e}"))?;
    reader
        .set_nonblocking(true)
        .map_err(|e| format!("cannot make a socket non-blocking: {e}"))?;
    Ok((writer, reader))
}

fn outcome(runtime: &str, seen: &Seen) -> BudgetRun {
    BudgetRun {
        runtime: runtime.to_string(),
        greedy_ms: seen.greedy_ms.get(),
        greedy_yields: seen.yields.get(),
        ticks: seen.ticks.get(),
        max_late_ms: seen.max_late.get().as_secs_f64() * 1000.0,
    }
}

// ANCHOR: runs
/// Our runtime, without a budget or with one of `budget` socket operations
/// per poll.
fn on_ours(bytes: u64, tick: Duration, budget: Option<u32>) -> Result<BudgetRun, String> {
    let (writer, reader) = pair()?;
    let runtime = runtime::Runtime::new().map_err(|e| format!("cannot create epoll: {e}"))?;
    runtime.set_budget(budget);
    let seen = Rc::new(Seen::default());
    let filling = fill(writer, bytes);
    let both = Rc::clone(&seen);
    let failed: Rc<Cell<Option<String>>> = Rc::default();
    let failure = Rc::clone(&failed);
    runtime.block_on(async move {
        let stream = match runtime::Async::new(mio::net::UnixStream::from_std(reader)) {
            Ok(stream) => stream,
            Err(error) => return failure.set(Some(format!("cannot register: {error}"))),
        };
        runtime::spawn(greedy(Rc::clone(&both), stream));
        ticker(both, tick, move || runtime::sleep(tick)).await;
    });
    let _ = filling.join();
    match failed.take() {
        Some(error) => Err(error),
        None => Ok(outcome(
            &match budget {
                None => "ours".to_string(),
                Some(budget) => format!("ours, budget {budget}"),
            },
            &seen,
        )),
    }
}

fn on_tokio(bytes: u64, tick: Duration) -> Result<BudgetRun, String> {
    let (writer, reader) = pair()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let seen = Rc::new(Seen::default());
    let filling = fill(writer, bytes);
    let tasks = tokio::task::LocalSet::new();
    let both = Rc::clone(&seen);
    let registered = tasks.block_on(&runtime, async move {
        let stream = tokio::net::UnixStream::from_std(reader)
            .map_err(|e| format!("cannot register: {e}"))?;
        tokio::task::spawn_local(greedy(Rc::clone(&both), stream));
        ticker(both, tick, move || tokio::time::sleep(tick)).await;
        Ok::<(), String>(())
    });
    let _ = filling.join();
    registered.map(|()| outcome("tokio", &seen))
}
// ANCHOR_END: runs
