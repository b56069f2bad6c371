//! The accept loop of the book's axum servers (chapters 3 and 4), in one
//! place: accept a connection, give it a task on the runtime, go back to
//! accepting. hyper serves each connection; axum's router answers.

use axum::Router;
use evt::routes::MAX_HEADER_BYTES;

// ANCHOR: accept_loop
/// The event loop's front door: accept a connection, give it a task, go
/// straight back to accepting. Every task runs on this one thread; a task
/// that awaits (a timer, a socket) steps aside for the others.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) {
    let mut accept_failures = 0u64;
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                // Out of file descriptors, most often: say so once, back off, go on.
                accept_failures += 1;
                if accept_failures == 1 {
                    eprintln!(
                        "warning: accept failed: {error} (raise `ulimit -n` if it says too many open files)"
                    );
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            // hyper's default would read about 400 KiB of headers; answer 431 past 8 KiB.
            .max_buf_size(MAX_HEADER_BYTES)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        // The task ends when the client closes the connection or sends garbage.
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
// ANCHOR_END: accept_loop
