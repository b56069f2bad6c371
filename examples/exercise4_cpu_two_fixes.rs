//! Chapter 4's exercise, solved: chapter 4's CPU handler (`--handler cpu`)
//! holds the loop for the whole delay. Two fixes, one flag:
//!
//!     cargo run --release --example exercise4_cpu_two_fixes -- --fix offload
//!     cargo run --release --example exercise4_cpu_two_fixes -- --fix slices
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8024/sleep?ms=500'
//!
//! - `offload`: the work runs on tokio's blocking pool (`spawn_blocking`);
//!   the loop only waits for it;
//! - `slices`: the work stays on the loop, cut into 1 ms slices, and the
//!   handler yields to the loop between slices (`yield_now`), so no task
//!   waits more than a slice for its turn.

#[path = "common/axum_serve.rs"]
mod axum_serve;

use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use clap::{Parser, ValueEnum};
use evt::routes::{Reply, Route, spend_cpu};
use evt::server::{ServerArgs, announce, parse_flags};

/// The port, beside the chapters' own.
const PORT: u16 = 8024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fix {
    /// Run the CPU work on the blocking pool.
    Offload,
    /// Run it on the loop in 1 ms slices, yielding between them.
    Slices,
}

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// How the CPU work is kept from holding the loop.
    #[arg(long, value_enum)]
    fix: Fix,
}

// ANCHOR: solution
/// Spends `work` of CPU time without holding the loop for more than a
/// slice at a time.
async fn spend(work: Duration, fix: Fix) {
    match fix {
        Fix::Offload => {
            // On a thread of the blocking pool; this task waits like for I/O.
            let _ = tokio::task::spawn_blocking(move || spend_cpu(work)).await;
        }
        Fix::Slices => {
            const SLICE: Duration = Duration::from_millis(1);
            let mut left = work;
            while !left.is_zero() {
                let slice = left.min(SLICE);
                spend_cpu(slice);
                left -= slice;
                // Back to the loop: every other ready task runs before the
                // next slice.
                tokio::task::yield_now().await;
            }
        }
    }
}
// ANCHOR_END: solution

/// Chapter 4's handler with `--handler cpu`: the delay is spent as CPU.
async fn handle(fix: Fix, method: Method, uri: Uri) -> (StatusCode, String) {
    let target = uri.path_and_query().map_or("/", |path| path.as_str());
    let route = Route::parse(method.as_str(), target);
    let Some(delay) = route.delay() else {
        return axum_serve::answer(route.reply());
    };
    spend(delay, fix).await;
    axum_serve::answer(Reply {
        status: 200,
        body: format!("worked {} ms\n", delay.as_millis()),
    })
}

fn main() {
    let flags: Flags = parse_flags(
        "exercise4_cpu_two_fixes",
        "Chapter 4's exercise: CPU work kept off the loop, offloaded or in slices.",
        PORT,
    );
    let fix = flags.fix;
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs no resources that can run out");
    runtime.block_on(async {
        let app = Router::new().fallback(move |method: Method, uri: Uri| handle(fix, method, uri));
        announce(addr);
        axum_serve::serve(axum_serve::into_tokio(listener), app).await;
    });
}
