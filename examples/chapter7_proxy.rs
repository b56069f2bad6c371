//! Chapter 7: a server that calls an upstream (seed 004's question).
//!
//!     cargo run --release --example chapter3_async                          # the upstream, port 8003
//!     cargo run --release --example chapter7_proxy -- --upstream 'http://127.0.0.1:8003/sleep?ms=100'
//!     wrk -t2 -c400 -d10s http://127.0.0.1:8007/proxy
//!
//! `GET /proxy` calls the upstream URL once and answers JSON (the upstream's
//! status, bytes and milliseconds); an upstream that is down, slow or failing
//! gives 502 with the reason. W worker processes (default 2, like the seed's
//! gunicorn) run one of two models:
//! - `--model threads --pool N`: chapter 2's pool of N threads per worker, each
//!   making a blocking call on `std::net` (no runtime hidden anywhere);
//! - `--model async`: axum on a current-thread tokio runtime per worker, each
//!   call an awaited reqwest request.

#[path = "common/axum_serve.rs"]
mod axum_serve;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use clap::{Parser, ValueEnum};
use evt::blocking::READ_TIMEOUT;
use evt::defaults;
use evt::pool;
use evt::prefork::{self, WorkerSlot};
use evt::routes::{Reply, Route};
use evt::server::{ServerArgs, parse_flags, refuse_unless};
use evt::upstream::{BlockingUpstream, Fetched, proxy_reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Model {
    /// A pool of --pool threads per worker, each blocking on its upstream call.
    Threads,
    /// One event loop per worker; upstream calls are awaited.
    Async,
}

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// The URL `/proxy` calls (http:// only). The default is chapter 3's
    /// server on its default port; without it running, /proxy answers 502.
    #[arg(long, default_value = "http://127.0.0.1:8003/sleep?ms=100")]
    upstream: String,
    /// How requests are served.
    #[arg(long, value_enum, default_value_t = Model::Threads)]
    model: Model,
    /// Threads per worker with `--model threads` [default: 10, from
    /// src/defaults.rs].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=8192))]
    pool: Option<u16>,
    /// Worker processes (gunicorn's --workers).
    #[arg(long, default_value_t = defaults::CHAPTER7_WORKERS, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Give up on an upstream call after this many seconds (then 502).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    upstream_timeout: u64,
}

fn main() {
    let flags: Flags = parse_flags(
        "chapter7_proxy",
        "Chapter 7: GET /proxy calls an upstream; threads (a pool per worker) or async (a loop per worker).",
        defaults::CHAPTER7_PROXY_PORT,
    );
    refuse_unless(
        flags.pool.is_some(),
        flags.model == Model::Threads,
        "--pool sets the threads of each worker's pool; it needs --model threads",
    );
    // A bad upstream URL is the reader's typo: one line, before anything starts.
    if let Err(message) = BlockingUpstream::new(&flags.upstream, Duration::from_secs(1)) {
        eprintln!("error: --upstream: {message}");
        std::process::exit(2);
    }
    let workers = usize::from(flags.workers);
    prefork::serve_with_workers(&flags.server, 1, workers, |listener, me| {
        let listener = listener
            .try_clone()
            .expect("a worker can duplicate its inherited socket");
        match flags.model {
            Model::Threads => threads_worker(listener, &flags, me),
            Model::Async => async_worker(listener, &flags),
        }
    });
}

// ANCHOR: threads
thread_local! {
    /// Each thread's own kept-alive connection to the upstream.
    static UPSTREAM: RefCell<Option<BlockingUpstream>> = const { RefCell::new(None) };
}

/// A worker of `--model threads`: chapter 2's ready pool, with a handler that
/// blocks its thread on the upstream call.
fn threads_worker(listener: std::net::TcpListener, flags: &Flags, me: WorkerSlot) {
    let (url, timeout) = (
        flags.upstream.clone(),
        Duration::from_secs(flags.upstream_timeout),
    );
    let handle = move |route: &Route, _me: WorkerSlot| -> Reply {
        if *route != Route::Proxy {
            if let Some(delay) = route.delay() {
                std::thread::sleep(delay);
            }
            return route.reply();
        }
        UPSTREAM.with(|upstream| {
            let mut upstream = upstream.borrow_mut();
            if upstream.is_none() {
                // Resolving the name can fail now though it worked at start
                // (a DNS hiccup): this request gets a 502, the next tries again.
                match BlockingUpstream::new(&url, timeout) {
                    Ok(client) => *upstream = Some(client),
                    Err(reason) => return proxy_reply(Err(reason)),
                }
            }
            let client = upstream.as_mut().expect("set just above");
            // This thread waits here for the whole call.
            proxy_reply(client.get())
        })
    };
    pool::ready_pool(
        listener,
        usize::from(flags.pool.unwrap_or(defaults::CHAPTER7_POOL)),
        false,
        READ_TIMEOUT,
        me,
        handle,
    );
}
// ANCHOR_END: threads

// ANCHOR: async
/// What the async handler needs: one client (its connection pool is shared
/// by every request on this worker's loop) and the URL.
#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: String,
}

async fn handle(
    State(upstream): State<Upstream>,
    method: Method,
    uri: Uri,
) -> (StatusCode, String) {
    let target = uri.path_and_query().map_or("/", |path| path.as_str());
    let route = Route::parse(method.as_str(), target);
    let reply = if route == Route::Proxy {
        let started = Instant::now();
        // The task yields here; the loop serves other requests meanwhile.
        let fetched = match upstream.client.get(&upstream.url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                response
                    .bytes()
                    .await
                    .map(|body| Fetched {
                        status,
                        bytes: body.len(),
                        took: started.elapsed(),
                    })
                    .map_err(|error| format!("reading from the upstream failed: {error}"))
            }
            Err(error) if error.is_timeout() => Err("the upstream did not answer in time".into()),
            Err(error) if error.is_connect() => {
                Err(format!("cannot connect to the upstream: {error}"))
            }
            Err(error) => Err(format!("the upstream call failed: {error}")),
        };
        proxy_reply(fetched)
    } else {
        if let Some(delay) = route.delay() {
            tokio::time::sleep(delay).await;
        }
        route.reply()
    };
    axum_serve::answer(reply)
}

/// A worker of `--model async`: one current-thread loop, as chapter 3.
fn async_worker(listener: std::net::TcpListener, flags: &Flags) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs no resources that can run out");
    let upstream = Upstream {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(flags.upstream_timeout))
            .build()
            .expect("a plain-HTTP client builds"),
        url: flags.upstream.clone(),
    };
    runtime.block_on(async {
        let app = Router::new().fallback(handle).with_state(upstream);
        axum_serve::serve(axum_serve::into_tokio(listener), app).await;
    });
}
// ANCHOR_END: async
