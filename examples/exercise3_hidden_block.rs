//! Chapter 3's exercise: one of this server's routes blocks the loop. Which?
//!
//!     cargo run --release --example exercise3_hidden_block
//!     cargo run --release --example load -- -n 200 -c 20 'http://127.0.0.1:8023/user?id=7'
//!     curl -w '%{time_total}\n' http://127.0.0.1:8023/          # meanwhile
//!
//! Chapter 3's loop, with three routes beside the usual ones:
//! - `GET /user?id=N`: a user's name, from a user store;
//! - `GET /greeting?name=X`: a greeting, made at once;
//! - `GET /slow-greeting?name=X`: the same after a 20 ms await.
//!
//! Load one route at a time and time `GET /` meanwhile: on a free loop,
//! hello takes well under a millisecond whatever else is in flight. The
//! solution is `--fixed`.

#[path = "common/axum_serve.rs"]
mod axum_serve;

use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use clap::Parser;
use evt::routes::{Reply, Route};
use evt::server::{ServerArgs, announce, parse_flags};

/// The port, beside the chapters' own.
const PORT: u16 = 8023;

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// The solution: the store's lookup runs on tokio's blocking pool.
    #[arg(long)]
    fixed: bool,
}

// ANCHOR: hidden
/// The user store's client, as a library might ship it: a plain function
/// that asks the store and waits for its answer (here a 25 ms wait stands in
/// for the network round trip of a synchronous database driver).
mod user_store {
    use std::time::Duration;

    pub fn name_of(id: u64) -> String {
        std::thread::sleep(Duration::from_millis(25));
        format!("user-{id}")
    }
}
// ANCHOR_END: hidden

/// A query parameter's value.
fn query<'a>(uri: &'a Uri, key: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

// ANCHOR: routes
/// The extra routes; the rest are the book's usual ones.
async fn handle(fixed: bool, method: Method, uri: Uri) -> (StatusCode, String) {
    let ok = |body: String| axum_serve::answer(Reply { status: 200, body });
    match uri.path() {
        "/user" => {
            let id = query(&uri, "id")
                .and_then(|id| id.parse().ok())
                .unwrap_or(0);
            let name = if fixed {
                // ANCHOR: fixed
                // The same call, on a thread of the blocking pool: the loop
                // waits for it as for any I/O and runs other tasks meanwhile.
                tokio::task::spawn_blocking(move || user_store::name_of(id))
                    .await
                    .unwrap_or_default()
                // ANCHOR_END: fixed
            } else {
                user_store::name_of(id)
            };
            ok(format!("{name}\n"))
        }
        "/greeting" => ok(format!("hello, {}\n", query(&uri, "name").unwrap_or("you"))),
        "/slow-greeting" => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            ok(format!("hello, {}\n", query(&uri, "name").unwrap_or("you")))
        }
        _ => {
            let target = uri.path_and_query().map_or("/", |path| path.as_str());
            let route = Route::parse(method.as_str(), target);
            if let Some(delay) = route.delay() {
                tokio::time::sleep(delay).await;
            }
            axum_serve::answer(route.reply())
        }
    }
}
// ANCHOR_END: routes

fn main() {
    let flags: Flags = parse_flags(
        "exercise3_hidden_block",
        "Chapter 3's exercise: one route blocks the loop; --fixed is the solution.",
        PORT,
    );
    let fixed = flags.fixed;
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs no resources that can run out");
    runtime.block_on(async {
        let app =
            Router::new().fallback(move |method: Method, uri: Uri| handle(fixed, method, uri));
        announce(addr);
        axum_serve::serve(axum_serve::into_tokio(listener), app).await;
    });
}
