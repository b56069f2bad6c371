//! Chapter 1: one thread handles one request at a time.
//!
//!     cargo run --release --example chapter1_blocking
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8001/sleep?ms=2000'
//!
//! This is gunicorn with one sync worker, or Flask's development server before
//! Flask 1.0: while the handler sleeps, nothing else is answered. Five 2 s
//! requests sent at once take 10 s in all. The whole server is in `main`: one
//! thread, one loop, no pool anywhere.

use evt::blocking::Connection;
use evt::defaults;
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, ServerArgs, announce};

fn main() {
    let args = ServerArgs::parse_for(
        "chapter1_blocking",
        "Chapter 1: a blocking server with one thread that handles one request at a time.",
        defaults::CHAPTER1_BLOCKING_PORT,
    );
    let listener = args.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    announce(addr);

    // ANCHOR: one_thread
    // The whole server: take the next connection, read its request, handle
    // it, answer, close, repeat. Connections that arrive meanwhile wait in the
    // kernel's listen backlog until this loop comes back to `accept`.
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
        let mut connection = Connection::new(stream);
        if let Some(request) = connection.next_request() {
            if let Some(delay) = request.route.delay() {
                // The thread waits here, and so does every connection behind this one.
                std::thread::sleep(delay);
            }
            // `Connection: close`: one request per connection, as gunicorn's
            // sync worker does. A client that kept this connection open would
            // never get the thread back to the others (see the chapter).
            let _ = connection.respond(&request.route.reply(), false);
        }
        connection.close();
    }
    // ANCHOR_END: one_thread
}
