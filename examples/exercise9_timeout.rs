//! Chapter 9's exercise, solved: `timeout` for chapter 9's runtime.
//!
//!     cargo run --release --example exercise9_timeout
//!     cargo test --release --example exercise9_timeout
//!
//! The runtime in `chapter9_runtime/runtime.rs` has `sleep` but no way to
//! give up on a future that takes too long. `timeout(limit, future)` below
//! is built from what the runtime already has: a future is polled when its
//! task is woken, and a `sleep` wakes its task when it is due. The program
//! gives a socket that never answers a short limit, and a ready future a
//! long one, and prints what each gave back and when.

#[path = "chapter9_runtime/runtime.rs"]
#[allow(dead_code)]
mod runtime;

use std::future::{Future, poll_fn};
use std::task::Poll;
use std::time::{Duration, Instant};

use runtime::{Async, Runtime, sleep};

// ANCHOR: timeout
/// A future that did not finish in time.
#[derive(Debug, PartialEq, Eq)]
pub struct TimedOut;

/// `future`'s output, or `TimedOut` if `limit` passes first. Each time the
/// task is woken, both the future and a timer are polled; the first ready
/// wins, and the other is dropped with this future.
pub async fn timeout<F: Future>(limit: Duration, future: F) -> Result<F::Output, TimedOut> {
    let mut future = std::pin::pin!(future);
    let mut timer = std::pin::pin!(sleep(limit));
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        timer.as_mut().poll(cx).map(|()| Err(TimedOut))
    })
    .await
}
// ANCHOR_END: timeout

fn main() {
    let runtime = Runtime::new().unwrap_or_else(|error| {
        eprintln!("error: cannot create an epoll instance: {error}");
        std::process::exit(1);
    });
    runtime.block_on(async {
        // A socket whose peer stays open and silent: a read that never ends.
        let (_silent, socket) = match mio::net::UnixStream::pair() {
            Ok(pair) => pair,
            Err(error) => return eprintln!("error: cannot make a socket pair: {error}"),
        };
        let socket = match Async::new(socket) {
            Ok(socket) => socket,
            Err(error) => return eprintln!("error: cannot register a socket: {error}"),
        };
        let started = Instant::now();
        let mut byte = [0u8; 1];
        let silent = timeout(Duration::from_millis(200), socket.read(&mut byte)).await;
        println!(
            "a read of a silent socket, limit 200 ms: {:?} after {:.1} ms",
            silent.map(|read| read.map_err(|e| e.kind())),
            started.elapsed().as_secs_f64() * 1e3
        );
        let started = Instant::now();
        let ready = timeout(Duration::from_secs(5), async { 42 }).await;
        println!(
            "a ready future, limit 5 s: {ready:?} after {:.1} µs",
            started.elapsed().as_secs_f64() * 1e6
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;

    /// Runs `main` on a fresh runtime; fails instead of hanging.
    fn run(main: impl FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send + 'static) {
        let (done, finished) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            Runtime::new().unwrap().block_on(main());
            let _ = done.send(());
        });
        if finished.recv_timeout(Duration::from_secs(5)).is_err() {
            match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => panic!("the runtime did not return in 5 s"),
            }
        }
    }

    #[test]
    fn a_timeout_gives_up_on_a_slow_future_and_not_on_a_fast_one() {
        run(|| {
            Box::pin(async {
                let started = Instant::now();
                let slow = timeout(Duration::from_millis(50), sleep(Duration::from_secs(1))).await;
                assert_eq!(slow, Err(TimedOut));
                // It waited for its limit, and not for the slow sleep.
                assert!(started.elapsed() >= Duration::from_millis(50));
                assert!(started.elapsed() < Duration::from_secs(1));
                let fast = timeout(Duration::from_secs(3), async { 42 }).await;
                assert_eq!(fast, Ok(42));
            })
        });
    }

    #[test]
    fn a_timeout_gives_up_on_a_read_that_never_comes_and_not_on_one_that_does() {
        run(|| {
            Box::pin(async {
                let (peer, socket) = mio::net::UnixStream::pair().unwrap();
                let socket = Async::new(socket).unwrap();
                let mut byte = [0u8; 1];
                let silent = timeout(Duration::from_millis(50), socket.read(&mut byte)).await;
                assert_eq!(silent.map(|read| read.ok()), Err(TimedOut));
                // The byte comes later: the same socket reads it in time.
                runtime::spawn(async move {
                    sleep(Duration::from_millis(20)).await;
                    std::io::Write::write_all(&mut &peer, b"x").unwrap();
                    sleep(Duration::from_millis(500)).await; // The peer stays open.
                });
                let read = timeout(Duration::from_secs(3), socket.read(&mut byte)).await;
                assert_eq!(read.map(|read| read.ok()), Ok(Some(1)));
                assert_eq!(&byte, b"x");
            })
        });
    }
}
