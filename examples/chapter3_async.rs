//! Chapter 3: one thread, an event loop.
//!
//!     cargo run --release --example chapter3_async
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8003/sleep?ms=2000'
//!
//! The same routes as chapter 1, on ONE thread again, but the handler awaits
//! its delay instead of blocking: while a request sleeps, the loop goes on to
//! the next ready piece of work. Five 2 s requests sent at once take 2 s.

#[path = "common/axum_serve.rs"]
mod axum_serve;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use evt::defaults;
use evt::routes::Route;
use evt::server::{ServerArgs, announce};

// ANCHOR: handler
/// Every request comes here; the shared route table says what it asks for.
async fn handle(method: Method, uri: Uri) -> (StatusCode, String) {
    let target = uri.path_and_query().map_or("/", |path| path.as_str());
    let route = Route::parse(method.as_str(), target);
    if let Some(delay) = route.delay() {
        // Not a blocking sleep: the task yields here and the loop runs others.
        tokio::time::sleep(delay).await;
    }
    axum_serve::answer(route.reply())
}
// ANCHOR_END: handler

fn main() {
    let args = ServerArgs::parse_for(
        "chapter3_async",
        "Chapter 3: axum on a tokio current-thread runtime: one thread, one event loop.",
        defaults::CHAPTER3_ASYNC_PORT,
    );
    let listener = args.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");

    // ANCHOR: runtime
    // One thread: this one. No worker pool, no blocking pool in use.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs no resources that can run out");
    runtime.block_on(async {
        let app = Router::new().fallback(handle);
        announce(addr);
        axum_serve::serve(axum_serve::into_tokio(listener), app).await;
    });
    // ANCHOR_END: runtime
}
