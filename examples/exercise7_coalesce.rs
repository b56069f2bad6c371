//! Chapter 7's exercise, solved: a proxy that makes one upstream call for
//! all the identical requests that arrive while that call is in flight.
//!
//!     cargo run --release --example chapter12_overload                    # an upstream that counts, port 8012
//!     cargo run --release --example exercise7_coalesce -- --upstream 'http://127.0.0.1:8012/sleep?ms=200'
//!     cargo run --release --example load -- -n 400 -c 100 http://127.0.0.1:8027/proxy
//!     curl http://127.0.0.1:8012/report                                   # how many calls arrived
//!
//! Chapter 7's async proxy calls its upstream once per request: at 100
//! requests in flight and 200 ms per call, the upstream sees 500 calls a
//! second. Here a request that finds a call in flight waits for that call's
//! answer instead of making its own (a "single flight"): the upstream sees
//! one call per 200 ms, whatever the load. One loop, one thread, as chapter 3.

#[path = "common/axum_serve.rs"]
mod axum_serve;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use clap::Parser;
use evt::routes::Route;
use evt::server::{ServerArgs, announce, parse_flags};
use evt::upstream::{Fetched, proxy_reply};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

/// The port, beside the chapters' own.
const PORT: u16 = 8027;

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// The URL `/proxy` calls (http:// only).
    #[arg(long, default_value = "http://127.0.0.1:8012/sleep?ms=200")]
    upstream: String,
    /// Give up on an upstream call after this long (502).
    #[arg(long, default_value = "10s", value_parser = evt::load::cli::parse_duration)]
    upstream_timeout: Duration,
}

/// One upstream call, as a future many requests can await together.
type Call = Shared<BoxFuture<'static, Result<Fetched, String>>>;

struct Proxy {
    client: reqwest::Client,
    url: String,
    /// The call in flight, if any.
    in_flight: Mutex<Option<Call>>,
}

/// One call to the upstream.
async fn call(client: reqwest::Client, url: String) -> Result<Fetched, String> {
    let started = Instant::now();
    let response = client.get(&url).send().await.map_err(|error| {
        if error.is_timeout() {
            "the upstream did not answer in time".to_string()
        } else {
            format!("the upstream call failed: {error}")
        }
    })?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|error| format!("reading from the upstream failed: {error}"))?;
    Ok(Fetched {
        status,
        bytes: body.len(),
        took: started.elapsed(),
    })
}

// ANCHOR: solution
impl Proxy {
    /// The upstream's answer: from the call in flight if there is one,
    /// else from a new call that later requests may join.
    async fn fetch(&self) -> Result<Fetched, String> {
        let joined = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match in_flight.as_ref() {
                // In flight and not yet answered: wait for the same answer.
                Some(running) if running.peek().is_none() => running.clone(),
                // None in flight, or the last one is over: a new call.
                _ => {
                    let new = call(self.client.clone(), self.url.clone()).boxed().shared();
                    *in_flight = Some(new.clone());
                    new
                }
            }
        }; // The lock is let go here, before any await.
        joined.await
    }
}
// ANCHOR_END: solution

async fn handle(State(proxy): State<Arc<Proxy>>, method: Method, uri: Uri) -> (StatusCode, String) {
    let target = uri.path_and_query().map_or("/", |path| path.as_str());
    let route = Route::parse(method.as_str(), target);
    if route == Route::Proxy {
        return axum_serve::answer(proxy_reply(proxy.fetch().await));
    }
    if let Some(delay) = route.delay() {
        tokio::time::sleep(delay).await;
    }
    axum_serve::answer(route.reply())
}

fn main() {
    let flags: Flags = parse_flags(
        "exercise7_coalesce",
        "Chapter 7's exercise: a proxy that makes one upstream call for all identical requests in flight.",
        PORT,
    );
    if let Err(error) = evt::load::Target::parse(&flags.upstream) {
        eprintln!("error: --upstream: {error}");
        std::process::exit(2);
    }
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let proxy = Arc::new(Proxy {
        client: reqwest::Client::builder()
            .timeout(flags.upstream_timeout)
            .build()
            .expect("a plain-HTTP client builds"),
        url: flags.upstream,
        in_flight: Mutex::new(None),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs no resources that can run out");
    runtime.block_on(async {
        let app = Router::new().fallback(handle).with_state(proxy);
        announce(addr);
        axum_serve::serve(axum_serve::into_tokio(listener), app).await;
    });
}
