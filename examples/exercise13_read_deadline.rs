//! Exercise 13: a read that gives up, on io_uring.
//!
//!     cargo run --release --example exercise13_read_deadline -- --deadline 500ms
//!     curl http://127.0.0.1:8029/            # answered
//!     nc 127.0.0.1 8029                      # send nothing: closed after 500 ms
//!
//! An epoll loop gives a read a deadline with a timer of its own (a heap, a
//! wheel) that it checks beside the sockets. io_uring can tie the two in the
//! kernel: a read followed by a LINK_TIMEOUT, submitted together, completes
//! with the data or, once the time is up, is cancelled (`-ECANCELED`). One
//! thread, one buffer per connection, the book's routes; a connection that
//! sends no whole request within the deadline is closed.

use std::time::Duration;

use clap::Parser;
use evt::server::ServerArgs;

/// The exercise's port.
const PORT: u16 = 8029;

#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
    /// How long a connection may take to send each request (e.g. 500ms, 5s).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    deadline: Duration,
}

fn main() {
    let flags: Flags = evt::server::parse_flags(
        "exercise13_read_deadline",
        "Exercise 13: an io_uring server whose every read is linked to a timeout.",
        PORT,
    );
    if flags.deadline.is_zero() {
        eprintln!("error: --deadline must be more than zero");
        std::process::exit(2);
    }
    if let Some(why) = evt::uring::refusal() {
        eprintln!("error: {why}; this exercise needs io_uring");
        std::process::exit(2);
    }
    #[cfg(target_os = "linux")]
    linked::serve(&flags);
}

#[cfg(target_os = "linux")]
mod linked {
    use std::os::fd::{IntoRawFd, RawFd};

    use evt::blocking::{BodyLength, Parsed, parse, response_bytes};
    use evt::routes::{MAX_HEADER_BYTES, Route};
    use evt::server::announce;
    use io_uring::{IoUring, opcode, squeue, types};

    /// What a completion is the end of: the low two bits of its tag, the
    /// connection's slot above them.
    const READ: u64 = 0;
    const SEND: u64 = 1;
    const ACCEPT: u64 = 2;
    /// The linked timeouts and the closes: nothing to do when they complete.
    const IGNORED: u64 = 3;

    struct Connection {
        fd: RawFd,
        /// The kernel's while a read is in flight.
        buffer: Box<[u8]>,
        unread: Vec<u8>,
        /// The kernel's while a send is in flight; `sent` of it taken so far.
        answer: Vec<u8>,
        sent: usize,
        reading: bool,
        sending: bool,
        /// Close once the send in flight is done.
        closing: bool,
    }

    pub fn serve(flags: &super::Flags) {
        let listener = flags.server.bind_or_exit();
        let addr = listener
            .local_addr()
            .expect("a bound socket has an address");
        let mut ring = IoUring::new(1024).unwrap_or_else(|error| {
            eprintln!("error: cannot set up io_uring: {error}");
            std::process::exit(2);
        });
        let listener = listener.into_raw_fd();
        let deadline = types::Timespec::from(flags.deadline);
        let mut connections: Vec<Option<Connection>> = Vec::new();
        push(&mut ring, accept(listener));
        announce(addr);
        loop {
            if let Err(error) = ring.submit_and_wait(1) {
                if error.raw_os_error() != Some(libc::EINTR) {
                    eprintln!("error: io_uring_enter failed: {error}");
                    std::process::exit(1);
                }
            }
            let done: Vec<_> = ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (tag, result) in done {
                let (kind, index) = (tag & 3, (tag >> 2) as usize);
                if kind == ACCEPT && index == 1 {
                    // The back-off after a failed accept is over.
                    push(&mut ring, accept(listener));
                    continue;
                }
                if kind == ACCEPT {
                    if result < 0 {
                        // Out of file descriptors, most often: back off, then accept again.
                        static BACKOFF: types::Timespec = types::Timespec::new().nsec(10_000_000);
                        let backoff = opcode::Timeout::new(&BACKOFF).build();
                        push(&mut ring, backoff.user_data((1 << 2) | ACCEPT));
                        continue;
                    }
                    push(&mut ring, accept(listener));
                    {
                        let free = connections.iter().position(Option::is_none);
                        let index = free.unwrap_or_else(|| {
                            connections.push(None);
                            connections.len() - 1
                        });
                        let connection = connections[index].insert(Connection {
                            fd: result,
                            buffer: vec![0; 4096].into_boxed_slice(),
                            unread: Vec::new(),
                            answer: Vec::new(),
                            sent: 0,
                            reading: false,
                            sending: false,
                            closing: false,
                        });
                        read_with_deadline(&mut ring, connection, index, &deadline);
                    }
                    continue;
                }
                let Some(connection) = connections.get_mut(index).and_then(Option::as_mut) else {
                    continue;
                };
                match kind {
                    // The client closed, the read broke, or its deadline passed
                    // (-ECANCELED): close, once no send still reads our buffer.
                    READ if result <= 0 => {
                        connection.reading = false;
                        connection.closing = true;
                    }
                    READ => {
                        connection.reading = false;
                        let read = result as usize;
                        connection
                            .unread
                            .extend_from_slice(&connection.buffer[..read]);
                    }
                    SEND if result < 0 => {
                        connection.sending = false;
                        connection.closing = true;
                    }
                    SEND => {
                        connection.sent += result as usize;
                        if connection.sent < connection.answer.len() {
                            // The socket took part of it: send the rest.
                            let rest = &connection.answer[connection.sent..];
                            let send = opcode::Send::new(
                                types::Fd(connection.fd),
                                rest.as_ptr(),
                                rest.len() as u32,
                            );
                            push(&mut ring, send.build().user_data(tag));
                            continue;
                        }
                        connection.sending = false;
                    }
                    _ => continue,
                }
                if !connection.sending {
                    answer_all(&mut ring, connection, index);
                }
                if !connection.closing && !connection.reading {
                    // The next request (or the rest of this one) gets a deadline of its own.
                    read_with_deadline(&mut ring, connection, index, &deadline);
                }
                // Freed only when no operation still points into it.
                if connection.closing && !connection.sending && !connection.reading {
                    let close = opcode::Close::new(types::Fd(connection.fd));
                    push(&mut ring, close.build().user_data(IGNORED));
                    connections[index] = None;
                }
            }
        }
    }

    fn accept(listener: RawFd) -> squeue::Entry {
        let accept = opcode::Accept::new(
            types::Fd(listener),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        accept.build().user_data(ACCEPT)
    }

    // ANCHOR: solution
    /// A read, and a timeout linked to it: whichever finishes first cancels
    /// the other. The read's completion is `-ECANCELED` if the time ran out.
    fn read_with_deadline(
        ring: &mut IoUring,
        connection: &mut Connection,
        index: usize,
        deadline: &types::Timespec,
    ) {
        connection.reading = true;
        let (fd, buffer) = (types::Fd(connection.fd), &mut connection.buffer);
        let read = opcode::Recv::new(fd, buffer.as_mut_ptr(), buffer.len() as u32)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(((index as u64) << 2) | READ);
        let timeout = opcode::LinkTimeout::new(deadline)
            .build()
            .user_data(IGNORED);
        // The two must reach the kernel in one submission to stay linked.
        let free = {
            let queue = ring.submission();
            queue.capacity() - queue.len()
        };
        if free < 2 {
            let _ = ring.submit();
        }
        push(ring, read);
        push(ring, timeout);
    }
    // ANCHOR_END: solution

    /// Answers every whole request read so far, in one send.
    fn answer_all(ring: &mut IoUring, connection: &mut Connection, index: usize) {
        connection.answer.clear();
        loop {
            let (route, keep_alive) = match parse(&connection.unread) {
                Parsed::Complete {
                    request,
                    head_length,
                    body,
                } => {
                    connection.unread.drain(..head_length);
                    // This server reads no bodies: a request with one is the last.
                    let keep_alive = request.keep_alive && body == BodyLength::Known(0);
                    // No sleeping here: this exercise is about reads.
                    match request.route.delay() {
                        Some(_) => (Route::NotFound, keep_alive),
                        None => (request.route, keep_alive),
                    }
                }
                Parsed::Partial if connection.unread.len() <= MAX_HEADER_BYTES => break,
                Parsed::Partial => (Route::HeadersTooLarge, false),
                Parsed::Bad(route) => (route, false),
            };
            connection
                .answer
                .extend(response_bytes(&route.reply(), keep_alive));
            if !keep_alive {
                connection.unread.clear();
                connection.closing = true;
                break;
            }
        }
        if connection.answer.is_empty() {
            return;
        }
        connection.sending = true;
        connection.sent = 0;
        let bytes = &connection.answer;
        let send = opcode::Send::new(types::Fd(connection.fd), bytes.as_ptr(), bytes.len() as u32);
        push(ring, send.build().user_data(((index as u64) << 2) | SEND));
    }

    fn push(ring: &mut IoUring, entry: squeue::Entry) {
        // SAFETY: a read's buffer and a send's bytes live in their connection,
        // untouched until the operation completes; the deadline's timespec
        // lives for the whole loop.
        while unsafe { ring.submission().push(&entry) }.is_err() {
            let _ = ring.submit();
        }
    }
}
