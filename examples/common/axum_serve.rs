//! The accept loop of the book's axum servers (chapters 3 and 4), in one
//! place: accept a connection, give it a task on the runtime, go back to
//! accepting. hyper serves each connection; axum's router answers.

use axum::Router;
use axum::http::StatusCode;
use evt::routes::MAX_HEADER_BYTES;
use evt::routes::Reply;
use evt::server::{ACCEPT_BACKOFF, AcceptFailures};

/// The socket the server bound, handed to tokio (inside the runtime): the
/// loop waits for it in epoll instead of blocking in `accept`.
pub fn into_tokio(listener: std::net::TcpListener) -> tokio::net::TcpListener {
    listener
        .set_nonblocking(true)
        .expect("a bound socket can be made non-blocking");
    tokio::net::TcpListener::from_std(listener).expect("inside a runtime a std listener converts")
}

// ANCHOR: accept_loop
/// The event loop's front door: accept a connection, give it a task, go
/// straight back to accepting. Every task runs on this one thread; a task
/// that awaits (a timer, a socket) steps aside for the others.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) {
    let mut failures = AcceptFailures::default();
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                // Out of file descriptors, most often: say so once, back off, go on.
                failures.note(&error);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = http1(stream, &app);
        // The task ends when the client closes the connection or sends garbage.
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
// ANCHOR_END: accept_loop

/// One connection served by hyper (HTTP/1.1) with axum's router `app`.
pub fn http1(
    stream: tokio::net::TcpStream,
    app: &Router,
) -> impl std::future::Future<Output = Result<(), hyper::Error>> + Send + 'static {
    let service = hyper_util::service::TowerToHyperService::new(app.clone());
    hyper::server::conn::http1::Builder::new()
        // hyper's default would read about 400 KiB of headers; answer 431 past 8 KiB.
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
}

/// A route's reply as axum answers it: a status and a text body.
pub fn answer(reply: Reply) -> (StatusCode, String) {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, reply.body)
}
