//! Chapter 1's exercise, solved: the blocking server with a thread per
//! connection, so five 2 s requests sent at once take 2 s, not 10 s.
//!
//!     cargo run --release --example exercise1_thread_per_connection
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8021/sleep?ms=2000'
//!
//! The loop is chapter 1's, with the body of each connection moved into a
//! thread of its own. What it costs: a thread (and its stack) for every
//! connection in flight, and nothing stops ten thousand of them (chapter 8).

use evt::blocking::Connection;
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce};

/// The port, beside the chapters' own.
const PORT: u16 = 8021;

fn main() {
    let args = ServerArgs::parse_for(
        "exercise1_thread_per_connection",
        "Chapter 1's exercise: the blocking server with a thread per connection.",
        PORT,
    );
    let listener = args.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    announce(addr);

    // ANCHOR: solution
    let mut failures = AcceptFailures::default();
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                failures.note(&error);
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        // The change: the connection gets a thread of its own, and this loop
        // goes straight back to `accept`. A thread that cannot start (out of
        // memory or past the thread limit) costs this one connection, said
        // in one line, not the server.
        let spawned = std::thread::Builder::new().spawn(move || {
            let mut connection = Connection::new(stream);
            if let Some(request) = connection.next_request() {
                if let Some(delay) = request.route.delay() {
                    // Only this connection's thread waits now.
                    std::thread::sleep(delay);
                }
                let _ = connection.respond(&request.route.reply(), false);
            }
            connection.close();
        });
        if let Err(error) = spawned {
            eprintln!("cannot start a thread for a connection: {error}");
        }
    }
    // ANCHOR_END: solution
}
