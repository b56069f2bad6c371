//! What every server example shares: its command line, binding the port with a
//! clear error, the `listening on` line the harness waits for, and (for the
//! tokio servers) the accept loop.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::routes::{MAX_HEADER_BYTES, Route};

/// The flags every server in the book takes.
#[derive(Debug, Clone, Parser)]
pub struct ServerArgs {
    /// Address to listen on. The default keeps the server on this machine.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the chosen port is printed).
    #[arg(long)]
    pub port: u16,
}

impl ServerArgs {
    /// Parses the command line of the example `name`, whose port defaults to `default_port`.
    pub fn parse_for(name: &'static str, about: &'static str, default_port: u16) -> ServerArgs {
        let command = ServerArgs::command()
            .name(name)
            .about(about)
            .mut_arg("port", |port| {
                port.default_value(default_port.to_string()).required(false)
            });
        let matches = command.get_matches();
        ServerArgs::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
    }

    /// Binds the listening socket, or exits with one line that says what went wrong.
    /// Also raises the open-file limit as far as it goes: every connection is a file.
    pub fn bind_or_exit(&self) -> TcpListener {
        crate::sys::raise_open_file_limit();
        self.bind().unwrap_or_else(|message| {
            eprintln!("error: {message}");
            std::process::exit(1);
        })
    }

    /// Binds the listening socket; the error is one line naming the problem and the fix.
    pub fn bind(&self) -> Result<TcpListener, String> {
        let (host, port) = (self.host.as_str(), self.port);
        let addr: SocketAddr = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("--host {host:?} is not an IP address or a known host name"))?;
        listen(addr).map_err(|error| match error.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "port {port} on {host} is already in use (is another server still running?); \
                 stop it or pick another with --port"
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                format!("{host} is not an address of this machine; try --host 127.0.0.1")
            }
            std::io::ErrorKind::PermissionDenied => {
                format!("port {port} needs privileges; pick one above 1023 with --port")
            }
            _ => format!("cannot listen on {addr}: {error}"),
        })
    }
}

// ANCHOR: listen
/// How many connections the kernel may hold for a server before it accepts
/// them. Rust's std listens with 128: a thousand clients connecting at once
/// would overflow that, and each connection refused that way is retried by the
/// client's kernel only after a second. 1,024 is tokio's default, too.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Binds and listens on `addr` with [`LISTEN_BACKLOG`], allowing a restarted
/// server to reuse its port at once (SO_REUSEADDR, as servers do on Unix).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
// ANCHOR_END: listen

/// Prints the line the harness and the tests wait for: `listening on http://HOST:PORT`.
pub fn announce(addr: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not stop the server: the line is for whoever still listens.
    let _ = writeln!(stdout, "listening on http://{addr}");
    let _ = stdout.flush();
}

/// What a tiny_http request asks for. tiny_http reads headers of any size, so
/// this also counts their bytes against [`MAX_HEADER_BYTES`].
pub fn route_of(request: &tiny_http::Request) -> Route {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|header| header.field.as_str().as_str().len() + header.value.as_str().len() + 4)
        .sum::<usize>()
        + request.url().len();
    Route::parse_checked(request.method().as_str(), request.url(), header_bytes)
}

// ANCHOR: accept_loop
/// Serves `app` on `listener`: one task for each connection, all of them on
/// whatever runtime calls this (in chapter 3, a single thread).
pub async fn serve_axum(listener: tokio::net::TcpListener, app: axum::Router) {
    let mut accept_errors = 0u64;
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                // Out of file descriptors, most often: say so once, back off, go on.
                accept_errors += 1;
                if accept_errors == 1 {
                    eprintln!("warning: accept failed: {error} (further failures not shown)");
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
