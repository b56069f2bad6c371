//! Chapter 13: chapter 9's handler on monoio, a runtime built on io_uring.
//!
//!     cargo run --release --example chapter13_monoio
//!     cargo run --release --example load -- -n 1000 -c 1000 'http://127.0.0.1:8033/sleep?ms=1000'
//!
//! The same accept loop and the same `async fn` per connection as chapter
//! 9's server, on one monoio thread (monoio runs a loop per core and never
//! moves a task between them: chapter 11's loop per core). One thing had to
//! change, and it is the lesson: a read does not borrow its buffer, it takes
//! it. `read(buffer)` hands the buffer to the runtime, which lends it to the
//! kernel, and the future gives it back with the result. A borrowed buffer
//! (tokio's `read(&mut buffer)`) could be dropped or reused while the kernel
//! still writes into it, if the future were dropped before the read
//! completed.
//!
//! io_uring is Linux's: elsewhere, or where the kernel or a container
//! refuses it, the example says so in one line and exits with status 2.

use clap::Parser;
use evt::defaults;
use evt::server::ServerArgs;

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// Set up monoio's ring with IORING_SETUP_COOP_TASKRUN: the kernel
    /// finishes an operation at the thread's next entry into the kernel
    /// instead of interrupting it (monoio's default, and io_uring's).
    #[arg(long)]
    cooperative: bool,
}

fn main() {
    let flags: Flags = evt::server::parse_flags(
        "chapter13_monoio",
        "Chapter 13: chapter 9's handler on monoio (io_uring, one thread), buffers passed by value.",
        defaults::CHAPTER13_MONOIO_PORT,
    );
    if let Some(why) = evt::uring::refusal() {
        eprintln!("error: {why}; this example needs io_uring");
        std::process::exit(2);
    }
    #[cfg(target_os = "linux")]
    on_monoio::serve(&flags);
}

#[cfg(target_os = "linux")]
mod on_monoio {
    use evt::blocking::{BodyLength, Parsed, parse, response_bytes};
    use evt::routes::{MAX_HEADER_BYTES, Route};
    use evt::server::{ACCEPT_BACKOFF, AcceptFailures, announce};
    use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
    use monoio::net::{TcpListener, TcpStream};

    pub fn serve(flags: &super::Flags) {
        let listener = flags.server.bind_or_exit();
        let addr = listener
            .local_addr()
            .expect("a bound socket has an address");
        let mut setup = io_uring::IoUring::builder();
        if flags.cooperative {
            setup.setup_coop_taskrun();
        }
        let mut runtime = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .uring_builder(setup)
            .with_entries(4096)
            .enable_timer()
            .build()
            .unwrap_or_else(|error| {
                let why = evt::uring::explain(error.raw_os_error(), evt::uring::disabled_setting());
                eprintln!("error: {why}; monoio needs io_uring");
                std::process::exit(2);
            });
        runtime.block_on(async move {
            let listener = TcpListener::from_std(listener).unwrap_or_else(|error| {
                eprintln!("error: monoio cannot take the listening socket: {error}");
                std::process::exit(1);
            });
            announce(addr);
            accept_loop(listener).await;
        });
    }

    /// The accept loop: a task per connection, as chapters 3 and 9.
    async fn accept_loop(listener: TcpListener) {
        let mut failures = AcceptFailures::default();
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(handle(stream));
                }
                Err(error) => {
                    // Out of file descriptors, most often: say so once, back off, go on.
                    failures.note(&error);
                    monoio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    // ANCHOR: handle
    /// One connection: read a request, sleep if it asks to, answer, repeat.
    /// Chapter 9's handler, with the buffers passed by value.
    async fn handle(mut stream: TcpStream) {
        let mut unread: Vec<u8> = Vec::new();
        let mut chunk: Vec<u8> = Vec::with_capacity(1024);
        loop {
            match parse(&unread) {
                Parsed::Complete {
                    request,
                    head_length,
                    body,
                } => {
                    unread.drain(..head_length);
                    // This server reads no bodies: a request with one is the last.
                    let keep_alive = request.keep_alive && body == BodyLength::Known(0);
                    if let Some(delay) = request.route.delay() {
                        monoio::time::sleep(delay).await;
                    }
                    let answer = response_bytes(&request.route.reply(), keep_alive);
                    // The answer goes to the kernel, and comes back with the result.
                    let (written, _answer) = stream.write_all(answer).await;
                    if written.is_err() || !keep_alive {
                        break;
                    }
                    continue;
                }
                Parsed::Partial if unread.len() <= MAX_HEADER_BYTES => {}
                Parsed::Partial => {
                    refuse(&mut stream, Route::HeadersTooLarge).await;
                    break;
                }
                Parsed::Bad(route) => {
                    refuse(&mut stream, route).await;
                    break;
                }
            }
            // The chunk is the kernel's until the read completes; then it is ours again.
            let (read, returned) = stream.read(chunk).await;
            chunk = returned;
            match read {
                Ok(1..) => unread.extend_from_slice(&chunk),
                // Closed by the client, or broken: nothing more to answer.
                _ => break,
            }
        }
        close(stream).await;
    }
    // ANCHOR_END: handle

    /// Our side shut, then the client's read to its end (unread request
    /// bytes would turn the close into a reset), for at most a second.
    async fn close(mut stream: TcpStream) {
        let _ = stream.shutdown().await;
        let drain = async {
            let mut sink = Vec::with_capacity(1024);
            loop {
                let (read, returned) = stream.read(sink).await;
                sink = returned;
                if !matches!(read, Ok(1..)) {
                    break;
                }
            }
        };
        let _ = monoio::time::timeout(std::time::Duration::from_secs(1), drain).await;
    }

    /// The answer to a request that cannot be served, after which the
    /// connection closes.
    async fn refuse(stream: &mut TcpStream, route: Route) {
        let _ = stream
            .write_all(response_bytes(&route.reply(), false))
            .await;
    }
}
