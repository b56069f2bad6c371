//! Chapter 11's exercise, solved: chapter 3's one loop made into a loop per
//! core, each with a listening socket of its own on the same port.
//!
//!     cargo run --release --example exercise11_loop_per_core -- --loops 2
//!     cargo run --release --example load -- -z 4s -c 50 'http://127.0.0.1:8026/work?us=200'
//!     for i in $(seq 10); do curl -s http://127.0.0.1:8026/loop; done
//!
//! Each loop is chapter 3's: a current-thread tokio runtime on a thread of
//! its own. Each binds the port with SO_REUSEPORT, so the kernel gives each
//! new connection to one of the sockets, by a hash of the client's address
//! and port. `GET /loop` says which loop answered.

#[path = "common/axum_serve.rs"]
mod axum_serve;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use clap::Parser;
use evt::routes::{Reply, Route};
use evt::server::{ServerArgs, announce, parse_flags};

/// The port, beside the chapters' own.
const PORT: u16 = 8026;

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Event loops, each on a thread of its own [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    loops: Option<u16>,
}

/// Chapter 3's handler, plus `/loop`.
async fn handle(me: usize, method: Method, uri: Uri) -> (StatusCode, String) {
    if uri.path() == "/loop" {
        return axum_serve::answer(Reply {
            status: 200,
            body: format!("loop {me}\n"),
        });
    }
    let target = uri.path_and_query().map_or("/", |path| path.as_str());
    let route = Route::parse(method.as_str(), target);
    if let Some(delay) = route.delay() {
        tokio::time::sleep(delay).await;
    }
    // `/work` spends its CPU here, computing the reply, on this loop.
    axum_serve::answer(route.reply())
}

// ANCHOR: solution
/// One loop: a current-thread runtime serving its own socket, as chapter 3.
fn run_loop(me: usize, listener: std::net::TcpListener) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs no resources that can run out");
    runtime.block_on(async {
        let app = Router::new().fallback(move |method: Method, uri: Uri| handle(me, method, uri));
        axum_serve::serve(axum_serve::into_tokio(listener), app).await;
    });
}

fn main() {
    let mut flags: Flags = parse_flags(
        "exercise11_loop_per_core",
        "Chapter 11's exercise: a current-thread loop per core, each with its own SO_REUSEPORT socket.",
        PORT,
    );
    let loops = flags.loops.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    // Every socket sets SO_REUSEPORT; the first one picks the port when
    // --port 0 asks for any, and the others take the same.
    if let Some(warning) = evt::server::reuse_port_spread_warning() {
        eprintln!("{warning}");
    }
    flags.server.listen.reuse_port = true;
    let first = flags.server.bind_or_exit();
    let addr = first.local_addr().expect("a bound socket has an address");
    flags.server.port = addr.port();
    let mut listeners = vec![first];
    for _ in 1..loops {
        listeners.push(flags.server.bind_or_exit());
    }
    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(me, listener)| {
            std::thread::Builder::new()
                .name(format!("loop-{me}"))
                .spawn(move || run_loop(me, listener))
                .unwrap_or_else(|error| {
                    eprintln!("error: cannot start the thread of loop {me}: {error}");
                    std::process::exit(1);
                })
        })
        .collect();
    announce(addr);
    for thread in threads {
        let _ = thread.join();
    }
}
// ANCHOR_END: solution
