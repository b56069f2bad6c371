//! Chapter 1, with a library: the same one-thread loop on tiny_http.
//!
//!     cargo run --release --example chapter1_tiny_http
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8011/sleep?ms=2000'
//!
//! tiny_http reads requests off the sockets on threads of its own (a pool, one
//! thread per open connection) and queues them; this program's one loop takes
//! them from that queue and answers them one at a time. Run it with
//! `--keep-alive` to answer the way tiny_http does by itself, and watch a
//! client that keeps its connections open (hey, oha, ab -k, a browser) wait
//! for answers that never come: the chapter measures why.

use std::io::Write;

use clap::Parser;
use evt::blocking::response_bytes;
use evt::defaults;
use evt::routes::{Reply, Route};
use evt::server::{ServerArgs, announce, parse_flags};
use tiny_http::{Request, Response, Server};

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Answer with tiny_http's own `respond`, which keeps HTTP/1.1
    /// connections open: the library's default, and its stall.
    #[arg(long)]
    keep_alive: bool,
}

fn main() {
    let flags: Flags = parse_flags(
        "chapter1_tiny_http",
        "Chapter 1 on tiny_http: one thread handling one request at a time, tiny_http's pool reading the sockets.",
        defaults::CHAPTER1_TINY_HTTP_PORT,
    );
    let listener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let server = Server::from_listener(listener, None).unwrap_or_else(|error| {
        eprintln!("error: cannot start tiny_http on {addr}: {error}");
        std::process::exit(1);
    });
    announce(addr);

    // ANCHOR: one_thread
    for request in server.incoming_requests() {
        let route = route_of(&request);
        if let Some(delay) = route.delay() {
            // The thread waits here, and so does every request behind this one.
            std::thread::sleep(delay);
        }
        if flags.keep_alive {
            let reply = route.reply();
            let response = Response::from_string(reply.body).with_status_code(reply.status);
            let _ = request.respond(response);
        } else {
            respond_and_close(request, &route.reply());
        }
    }
    // ANCHOR_END: one_thread
}

// ANCHOR: respond_and_close
/// Answers with `Connection: close` and then closes the connection, so that
/// tiny_http's pool thread reading it is free for the next one. tiny_http
/// offers neither: it drops a `Connection` header set on a `Response` (it
/// decides keep-alive from the request alone) and has no call that closes a
/// connection. So the answer is written raw, through the writer tiny_http
/// hands out for CGI-like uses, and the socket is shut down by hand.
fn respond_and_close(request: Request, reply: &Reply) {
    let peer = request.remote_addr().copied();
    let mut writer = request.into_writer();
    let _ = writer.write_all(&response_bytes(reply, false));
    let _ = writer.flush();
    drop(writer);
    if let Some(peer) = peer {
        shut_down_connection_from(peer);
    }
}

/// Finds this process's socket connected to `peer` and shuts it down: the
/// client reads the end of the answer, and tiny_http's thread blocked reading
/// the next request gets end-of-file and lets the connection go. (Shutting
/// down is not closing: the descriptor stays tiny_http's to close.)
#[cfg(target_os = "linux")]
fn shut_down_connection_from(peer: std::net::SocketAddr) {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for fd in fds.flatten() {
        let Some(fd) = fd.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if peer_of(fd) == Some(peer) {
            // SAFETY: shutdown on a descriptor this process holds open; it
            // does not close it, so tiny_http's handle to it stays valid.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            return;
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn shut_down_connection_from(_peer: std::net::SocketAddr) {
    // Elsewhere the client's own close (it was told `Connection: close`) frees the thread.
}
// ANCHOR_END: respond_and_close

/// What a tiny_http request asks for. tiny_http reads headers of any size, so
/// this also counts their bytes against the routes' limit.
fn route_of(request: &Request) -> Route {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|header| header.field.as_str().as_str().len() + header.value.as_str().len() + 4)
        .sum::<usize>()
        + request.url().len();
    Route::parse_checked(request.method().as_str(), request.url(), header_bytes)
}

/// The address at the other end of socket `fd`, if it is a connected TCP socket.
#[cfg(target_os = "linux")]
fn peer_of(fd: i32) -> Option<std::net::SocketAddr> {
    use socket2::SockAddr;
    // SAFETY: getpeername writes at most `len` bytes into the storage we pass.
    let (_, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            if libc::getpeername(fd, storage.cast(), len) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    }
    .ok()?;
    addr.as_socket()
}
