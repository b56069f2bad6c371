//! Chapter 1: one thread handles one request at a time.
//!
//!     cargo run --release --example chapter1_blocking
//!     cargo run --release --example load -- -n 5 -c 5 http://127.0.0.1:8001/sleep?ms=2000
//!
//! This is Flask's development server, or gunicorn with one sync worker: while
//! the handler sleeps, nothing else is answered. Five 2 s requests sent at once
//! take 10 s in all. Look at the loop in `main`: there is only one.

use evt::server::{ServerArgs, announce, route_of};
use tiny_http::{Response, Server};

fn main() {
    let args = ServerArgs::parse_for(
        "chapter1_blocking",
        "Chapter 1: a tiny_http server with one thread that handles one request at a time.",
        8001,
    );
    let listener = args.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let server = Server::from_listener(listener, None).unwrap_or_else(|error| {
        eprintln!("error: cannot start tiny_http on {addr}: {error}");
        std::process::exit(1);
    });
    announce(addr);

    // ANCHOR: one_thread
    // The whole server: take the next request, handle it, answer, repeat.
    // tiny_http reads requests off the sockets on its own threads and queues
    // them; this loop takes them from that queue one at a time.
    for request in server.incoming_requests() {
        let route = route_of(&request);
        if let Some(delay) = route.delay() {
            // The thread waits here, and so does every request behind this one.
            std::thread::sleep(delay);
        }
        let reply = route.reply();
        let response = Response::from_string(reply.body).with_status_code(reply.status);
        // A client that hung up is its own loss: go on to the next request.
        let _ = request.respond(response);
    }
    // ANCHOR_END: one_thread
}
