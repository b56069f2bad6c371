//! Chapter 11: all the cores. One event loop uses one core; here the book's
//! server (chapter 3's handler, on axum) uses N of them, three ways:
//!
//!     cargo run --release --example chapter11_cores -- --model steal --workers 2
//!     cargo run --release --example load -- -z 5s -c 50 'http://127.0.0.1:8010/work?us=200'
//!
//! - `steal`: tokio's multi-thread runtime, N worker threads sharing the
//!   tasks; an idle worker steals from a busy one's queue;
//! - `per-core`: N threads, each its own current-thread runtime with its own
//!   listening socket on the same port (SO_REUSEPORT): the kernel spreads
//!   the connections, and a connection stays on its thread: nothing is
//!   shared, nothing stolen;
//! - `processes`: N forked processes, each one current-thread loop,
//!   accepting from one shared socket (chapter 2's pre-fork, with a loop
//!   in each worker instead of a pool).
//!
//! `GET /report` says how many workers there are, how many threads each
//! runs, and how the connections and requests spread over them.

// The accept loop's pieces the axum servers share; its own loop is not used
// here (this one counts what each worker takes).
#[path = "common/axum_serve.rs"]
#[allow(dead_code)]
mod axum_serve;

use std::net::TcpListener;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use clap::{Parser, ValueEnum};
use evt::defaults;
use evt::prefork::{self, Board, WorkerSlot};
use evt::routes::{Reply, Route};
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce, parse_flags};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Model {
    /// tokio's multi-thread runtime: N workers that steal tasks.
    Steal,
    /// N threads, a current-thread runtime and a SO_REUSEPORT socket each.
    PerCore,
    /// N processes, one current-thread loop each, one shared socket.
    Processes,
}

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// How the cores are put to work.
    #[arg(long, value_enum, default_value_t = Model::Steal)]
    model: Model,
    /// Loops (threads or processes) [default: the cores this process may use].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
    /// With `--model processes`: a worker accepts only while it holds less
    /// than its fair share of the open connections (chapter 2's rule), so a
    /// burst of connections cannot all go to the first worker that wakes.
    #[arg(long)]
    fair_accept: bool,
    /// With `--model steal`: no LIFO slot, so a task a worker wakes goes to
    /// the back of its queue, where another worker can steal it, instead of
    /// running next on the same worker (needs tokio built with
    /// `--cfg tokio_unstable`, as this book's `.cargo/config.toml` does).
    #[arg(long)]
    no_lifo_slot: bool,
    /// With `--model steal`: the worker that holds the I/O driver hands it
    /// on before it runs the tasks the driver woke, so another worker can
    /// poll for I/O meanwhile (needs `--cfg tokio_unstable`).
    #[arg(long)]
    eager_driver_handoff: bool,
}

fn main() {
    let mut flags: Flags = parse_flags(
        "chapter11_cores",
        "Chapter 11: the book's server on every core: work stealing, a loop per core, or a process per core.",
        defaults::CHAPTER11_CORES_PORT,
    );
    if flags.fair_accept && flags.model != Model::Processes {
        eprintln!(
            "error: --fair-accept shares one socket fairly between processes; it needs --model processes"
        );
        std::process::exit(2);
    }
    let steal_only = flags.model == Model::Steal;
    let why = "--no-lifo-slot and --eager-driver-handoff tune tokio's work stealing; they need --model steal";
    evt::server::refuse_unless(flags.no_lifo_slot, steal_only, why);
    evt::server::refuse_unless(flags.eager_driver_handoff, steal_only, why);
    let unstable = cfg!(tokio_unstable);
    let why = "--no-lifo-slot and --eager-driver-handoff need tokio built with --cfg tokio_unstable (this book's .cargo/config.toml sets it; a RUSTFLAGS in the environment replaces it)";
    evt::server::refuse_unless(
        flags.no_lifo_slot || flags.eager_driver_handoff,
        unstable,
        why,
    );
    let workers = flags.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    match flags.model {
        Model::Steal => steal(&flags, workers),
        Model::PerCore => {
            if let Some(warning) = evt::server::reuse_port_spread_warning() {
                eprintln!("{warning}");
            }
            flags.server.listen.reuse_port = true;
            per_core(&flags.server, workers)
        }
        Model::Processes => {
            let fair = flags.fair_accept;
            prefork::serve_with_workers(&flags.server, 1, workers, |listener, me| {
                me.serving_on(1);
                one_loop(listener, me, fair)
            })
        }
    }
}

// ANCHOR: steal
/// One runtime, `workers` threads: every connection's task may run on any
/// of them, and an idle thread steals queued tasks from a busy one.
fn steal(flags: &Flags, workers: usize) {
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let board = board(1);
    let me = board.slot(0);
    me.started();
    me.serving_on(workers);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(workers).enable_all();
    tune(&mut builder, flags);
    let runtime = builder.build().unwrap_or_else(|error| {
        eprintln!("error: cannot start {workers} worker threads: {error}");
        std::process::exit(1);
    });
    // The accept loop is a task on the workers too: run by `block_on`
    // itself it would stay on this main thread, and hand every connection
    // it accepts to a worker across threads.
    runtime.block_on(async move {
        announce(addr);
        let accepting = tokio::spawn(serve(axum_serve::into_tokio(listener), me, false));
        if let Err(error) = accepting.await {
            eprintln!("error: the accept loop ended: {error}");
            std::process::exit(1);
        }
    });
}
// ANCHOR_END: steal

// ANCHOR: tune
/// The two settings that change whom a woken task runs on (tokio's
/// unstable API: `main` refuses them in a build without it).
#[cfg(tokio_unstable)]
fn tune(builder: &mut tokio::runtime::Builder, flags: &Flags) {
    if flags.no_lifo_slot {
        builder.disable_lifo_slot();
    }
    if flags.eager_driver_handoff {
        builder.enable_eager_driver_handoff();
    }
}
// ANCHOR_END: tune

#[cfg(not(tokio_unstable))]
fn tune(_: &mut tokio::runtime::Builder, _: &Flags) {}

/// Tasks each worker thread of this runtime stole; none on a loop of one.
fn steals() -> Vec<u64> {
    #[cfg(tokio_unstable)]
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let metrics = runtime.metrics();
        if metrics.num_workers() > 1 {
            return (0..metrics.num_workers())
                .map(|worker| metrics.worker_steal_count(worker))
                .collect();
        }
    }
    Vec::new()
}

// ANCHOR: per_core
/// `workers` threads, each with its own socket on the same port and its
/// own one-thread runtime: the kernel picks a thread for each new
/// connection (a hash of its addresses), and the connection stays there.
fn per_core(server: &ServerArgs, workers: usize) {
    let first = server.bind_or_exit();
    let addr = first.local_addr().expect("a bound socket has an address");
    let mut same_port = server.clone();
    same_port.port = addr.port();
    let mut listeners = vec![first];
    while listeners.len() < workers {
        listeners.push(same_port.bind_or_exit());
    }
    let board = board(workers);
    let (ended, any_ended) = std::sync::mpsc::channel();
    for (index, listener) in listeners.into_iter().enumerate() {
        let me = board.slot(index);
        me.started();
        me.serving_on(1);
        let ended = Ended(index, ended.clone());
        let thread = std::thread::Builder::new()
            .name(format!("loop-{index}"))
            .spawn(move || {
                let _ended = ended;
                one_loop(&listener, me, false)
            });
        if let Err(error) = thread {
            eprintln!("error: cannot start loop thread {index}: {error}");
            std::process::exit(1);
        }
    }
    announce(addr);
    // The loops never end; if one does, something broke it: say so and stop.
    let index = any_ended.recv().unwrap_or(0);
    eprintln!("error: loop thread {index} ended; stopping");
    std::process::exit(1);
}

/// Says which loop thread ended, however it ended (a panic too).
struct Ended(usize, std::sync::mpsc::Sender<usize>);

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = self.1.send(self.0);
    }
}
// ANCHOR_END: per_core

/// One current-thread loop on `listener` (a thread of `per-core`, or a
/// forked worker of `processes`); `fair`: accept only a fair share.
fn one_loop(listener: &TcpListener, me: WorkerSlot, fair: bool) {
    let listener = listener
        .try_clone()
        .expect("a socket can be duplicated for the loop");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| {
            eprintln!("error: cannot start a loop: {error}");
            std::process::exit(1);
        });
    runtime.block_on(async move { serve(axum_serve::into_tokio(listener), me, fair).await });
}

/// How often a worker over its fair share looks again.
const FAIR_SHARE_CHECK: std::time::Duration = std::time::Duration::from_millis(1);

fn board(workers: usize) -> Board {
    Board::shared(workers).unwrap_or_else(|error| {
        eprintln!("error: cannot map the workers' counters: {error}");
        std::process::exit(1);
    })
}

// ANCHOR: serve
/// Chapter 3's accept loop, counting on the board what this worker takes.
/// With `fair`, it first waits until it holds less than its share of the
/// open connections, so another worker takes the next one. The share is
/// checked before `accept` waits, so a worker that waited long may take
/// one connection past its share; and a worker over its share looks again
/// every millisecond, wake-ups that count in its CPU per request.
async fn serve(listener: tokio::net::TcpListener, me: WorkerSlot, fair: bool) {
    let app = Router::new().fallback(move |method: Method, uri: Uri| handle(method, uri, me));
    let mut failures = AcceptFailures::default();
    loop {
        while fair && !me.should_accept() {
            me.checked_share();
            tokio::time::sleep(FAIR_SHARE_CHECK).await;
        }
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                failures.note(&error);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        me.accepted();
        let connection = axum_serve::http1(stream, &app);
        tokio::spawn(async move {
            let _ = connection.await;
            me.closed();
        });
    }
}

/// Chapter 3's handler: `/work` spends its CPU on whichever thread runs
/// the task.
async fn handle(method: Method, uri: Uri, me: WorkerSlot) -> (StatusCode, String) {
    let target = uri.path_and_query().map_or("/", |path| path.as_str());
    let route = Route::parse(method.as_str(), target);
    if let Some(delay) = route.delay() {
        tokio::time::sleep(delay).await;
    }
    let reply = match route {
        Route::Report => {
            let mut report = me.counts();
            report.steals = steals();
            Reply {
                status: 200,
                body: serde_json::to_string(&report).unwrap_or_default() + "\n",
            }
        }
        _ => route.reply(),
    };
    me.answered();
    axum_serve::answer(reply)
}
// ANCHOR_END: serve
