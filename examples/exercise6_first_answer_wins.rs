//! Chapter 6's exercise, solved: ask two servers the same thing and keep the
//! first answer; the slower request is cancelled, not waited for.
//!
//!     cargo run --release --example chapter3_async
//!     cargo run --release --example exercise6_first_answer_wins -- \
//!         'http://127.0.0.1:8003/sleep?ms=2000' 'http://127.0.0.1:8003/sleep?ms=100'
//!
//! With futures, "whichever comes first" is one `select`: the loser is
//! dropped, and dropping a reqwest future closes its connection, so the
//! server sees the client go. With `reqwest::blocking` on threads, the
//! loser's thread waits for reqwest's runtime thread to hand back its answer,
//! and nothing in that API lets another thread call the request off: it
//! stays blocked until the answer comes or its timeout fires.

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::future::{self, Either};

#[derive(Debug, Parser)]
#[command(
    name = "exercise6_first_answer_wins",
    about = "Chapter 6's exercise: the same request to two URLs; the first answer wins."
)]
struct Flags {
    /// Give up on both after this long.
    #[arg(long, default_value = "30s", value_parser = evt::load::cli::parse_duration)]
    timeout: Duration,
    /// The first URL (http:// only).
    first: String,
    /// The second URL.
    second: String,
}

// ANCHOR: solution
/// One GET: the status, or what went wrong, in one line.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    response.bytes().await.map_err(|e| e.to_string())?;
    Ok(status)
}

/// Both requests start together; the first to finish is the answer, and the
/// other future is dropped where it stands (which cancels it).
async fn first_answer(
    client: &reqwest::Client,
    first: &str,
    second: &str,
) -> (usize, Result<u16, String>) {
    let one = std::pin::pin!(fetch(client, first));
    let two = std::pin::pin!(fetch(client, second));
    match future::select(one, two).await {
        Either::Left((answer, _cancelled)) => (1, answer),
        Either::Right((answer, _cancelled)) => (2, answer),
    }
}
// ANCHOR_END: solution

fn main() {
    let flags = Flags::parse();
    for url in [&flags.first, &flags.second] {
        if let Err(error) = evt::load::Target::parse(url) {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime needs no resources that can run out");
    let client = reqwest::Client::builder()
        .timeout(flags.timeout)
        .build()
        .unwrap_or_else(|error| {
            eprintln!("error: cannot make an HTTP client: {error}");
            std::process::exit(1);
        });
    let started = Instant::now();
    let (winner, answer) = runtime.block_on(first_answer(&client, &flags.first, &flags.second));
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    match answer {
        Ok(status) => {
            println!("url {winner} answered first: status {status} after {took_ms:.1} ms")
        }
        Err(error) => {
            eprintln!("error: url {winner} finished first, with an error: {error}");
            std::process::exit(1);
        }
    }
}
