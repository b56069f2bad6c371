//! Chapter 8: a minimal event loop, by hand, to see where the memory goes.
//!
//!     cargo run --release --example chapter8_minimal_loop
//!     cargo run --release --example load -- -n 1000 -c 1000 'http://127.0.0.1:8008/sleep?ms=1000'
//!
//! One thread, epoll (through mio), a timer heap, and per connection only
//! what it must remember: its socket, where it is in its request, and bytes
//! not yet read or written. Every read goes into one buffer the whole loop
//! shares, so a connection that waits (idle, or sleeping on a timer) holds no
//! buffer at all: what it costs is its entry in the table below and the
//! kernel's socket.
//!
//! `GET /report` answers the loop's count of its own system calls (chapter
//! 13 sets them beside a loop on io_uring).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{ErrorKind, Read, Write};
use std::time::Instant;

use evt::blocking::{BodyLength, Parsed, parse, response_bytes};
use evt::defaults;
use evt::report::SyscallReport;
use evt::routes::{MAX_HEADER_BYTES, Reply, Route};
use evt::server::{AcceptFailures, ServerArgs, announce};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

// ANCHOR: connection
/// What the loop keeps for one connection. Idle, both vectors are empty and
/// own no memory.
struct Connection {
    stream: TcpStream,
    /// Bytes of a request head that arrived in pieces (rare).
    unread: Vec<u8>,
    /// Bytes of an answer the socket would not take yet (rare).
    unwritten: Vec<u8>,
    /// A request is sleeping on a timer; no new one is read meanwhile.
    waiting: bool,
    /// Close once the answer is out.
    closing: bool,
}
// ANCHOR_END: connection

fn main() {
    let args = ServerArgs::parse_for(
        "chapter8_minimal_loop",
        "Chapter 8: a minimal hand-written event loop (epoll via mio, one thread, no buffer per idle connection).",
        defaults::CHAPTER8_MINIMAL_LOOP_PORT,
    );
    let listener = args.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    listener
        .set_nonblocking(true)
        .expect("a socket can be made non-blocking");
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new().unwrap_or_else(|error| {
        eprintln!("error: cannot create an epoll instance: {error}");
        std::process::exit(1);
    });
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("a listening socket registers");
    announce(addr);
    EventLoop {
        poll,
        listener,
        connections: Vec::new(),
        free: Vec::new(),
        timers: BinaryHeap::new(),
        scratch: vec![0u8; 16 * 1024],
        failures: AcceptFailures::default(),
        report: SyscallReport {
            loop_kind: "epoll".into(),
            ..SyscallReport::default()
        },
    }
    .run();
}

// ANCHOR: event_loop
/// (when, which connection, what to answer, keep the connection open)
type Timers = BinaryHeap<Reverse<(Instant, usize, u16, String, bool)>>;

/// Everything the loop has: epoll, the listening socket, a table of
/// connections (a slot's index is its epoll token), the timers, and the one
/// read buffer every connection shares.
struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    timers: Timers,
    scratch: Vec<u8>,
    failures: AcceptFailures,
    /// Every system call the loop makes, counted (`GET /report`).
    report: SyscallReport,
}

impl EventLoop {
    fn run(mut self) -> ! {
        let mut events = Events::with_capacity(1024);
        loop {
            // Sleep in epoll until a socket is ready or the next timer is due.
            let timeout = self
                .timers
                .peek()
                .map(|Reverse((due, ..))| due.saturating_duration_since(Instant::now()));
            self.report.call("epoll_wait");
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != ErrorKind::Interrupted {
                    eprintln!("error: epoll failed: {error}");
                    std::process::exit(1);
                }
            }
            self.report.waits += 1;
            self.report.events += events.iter().count() as u64;
            for event in events.iter() {
                if event.token() == LISTENER {
                    self.accept_all();
                    continue;
                }
                let index = event.token().0;
                if event.is_writable() {
                    self.flush(index);
                }
                if event.is_readable() || event.is_read_closed() {
                    self.read_requests(index);
                }
            }
            // Answer every request whose sleep is over.
            let now = Instant::now();
            while self
                .timers
                .peek()
                .is_some_and(|Reverse((due, ..))| *due <= now)
            {
                let Some(Reverse((_, index, status, body, keep_alive))) = self.timers.pop() else {
                    break;
                };
                if let Some(Some(connection)) = self.connections.get_mut(index) {
                    connection.waiting = false;
                    answer(connection, &Reply { status, body }, keep_alive);
                }
                self.flush(index);
                // A pipelined request may be waiting behind the one just answered.
                self.read_requests(index);
            }
        }
    }
    // ANCHOR_END: event_loop

    fn accept_all(&mut self) {
        loop {
            self.report.call("accept");
            match self.listener.accept() {
                Ok((mut stream, _peer)) => {
                    self.report.call("setsockopt");
                    let _ = stream.set_nodelay(true);
                    let index = self.free.pop().unwrap_or_else(|| {
                        self.connections.push(None);
                        self.connections.len() - 1
                    });
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    self.report.call("epoll_ctl");
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, Token(index), interest)
                        .is_err()
                    {
                        self.free.push(index);
                        continue;
                    }
                    self.connections[index] = Some(Connection {
                        stream,
                        unread: Vec::new(),
                        unwritten: Vec::new(),
                        waiting: false,
                        closing: false,
                    });
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) => {
                    // Out of file descriptors, most often: the rest stay in the backlog.
                    self.failures.note(&error);
                    return;
                }
            }
        }
    }

    // ANCHOR: read_requests
    /// Reads what the socket has (into the shared buffer) and handles the
    /// requests in it, unless one is already sleeping on this connection.
    fn read_requests(&mut self, index: usize) {
        let Some(Some(connection)) = self.connections.get_mut(index) else {
            return;
        };
        let (scratch, timers, report) = (&mut self.scratch, &mut self.timers, &mut self.report);
        while !connection.waiting && !connection.closing {
            // A request kept from before (pipelined, or in pieces) comes first.
            if !connection.unread.is_empty() {
                let kept = std::mem::take(&mut connection.unread);
                match handle(connection, index, &kept, timers, report) {
                    Some(used) => {
                        if used < kept.len() {
                            connection.unread = kept[used..].to_vec();
                        }
                        continue;
                    }
                    None => connection.unread = kept,
                }
            }
            report.call("read");
            let read = match connection.stream.read(scratch) {
                Ok(read @ 1..) => read,
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                // Closed by the client, or broken: nothing more to answer.
                Ok(0) | Err(_) => {
                    connection.closing = true;
                    connection.unwritten.clear();
                    break;
                }
            };
            if !connection.unread.is_empty() {
                connection.unread.extend_from_slice(&scratch[..read]);
                continue;
            }
            // The usual case: a whole request in the shared buffer, nothing kept.
            match handle(connection, index, &scratch[..read], timers, report) {
                Some(used) if used < read => connection.unread = scratch[used..read].to_vec(),
                Some(_) => {}
                // Only a request that arrives in pieces gets memory of its own.
                None => connection.unread = scratch[..read].to_vec(),
            }
        }
        self.flush(index);
    }
    // ANCHOR_END: read_requests

    /// Writes what is pending; closes a finished connection.
    fn flush(&mut self, index: usize) {
        let Some(slot) = self.connections.get_mut(index) else {
            return;
        };
        let Some(connection) = slot.as_mut() else {
            return;
        };
        while !connection.unwritten.is_empty() {
            self.report.call("write");
            match connection.stream.write(&connection.unwritten) {
                Ok(written) => {
                    connection.unwritten.drain(..written);
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    connection.unwritten.clear();
                    connection.closing = true;
                }
            }
        }
        connection.unwritten = Vec::new();
        if connection.closing && !connection.waiting {
            if let Some(mut connection) = slot.take() {
                let _ = self.poll.registry().deregister(&mut connection.stream);
                let _ = connection.stream.shutdown(std::net::Shutdown::Write);
                // Unread request bytes would turn the close into a reset.
                let mut sink = [0u8; 1024];
                self.report.call("read");
                while let Ok(1..) = connection.stream.read(&mut sink) {
                    self.report.call("read");
                }
                for call in ["epoll_ctl", "shutdown", "close"] {
                    self.report.call(call);
                }
            }
            self.free.push(index);
        }
    }
}

/// Handles the request at the start of `bytes`: answers it, or puts it on
/// the timer heap. The bytes it used, or `None` if it is not all there yet.
fn handle(
    connection: &mut Connection,
    index: usize,
    bytes: &[u8],
    timers: &mut Timers,
    report: &mut SyscallReport,
) -> Option<usize> {
    let (route, keep_alive, used) = match parse(bytes) {
        Parsed::Complete {
            request,
            head_length,
            body,
        } => {
            // This loop reads no bodies: a request with one is the last.
            let keep = request.keep_alive && body == BodyLength::Known(0);
            (request.route, keep, head_length)
        }
        Parsed::Partial if bytes.len() <= MAX_HEADER_BYTES => return None,
        Parsed::Partial => (Route::HeadersTooLarge, false, bytes.len()),
        Parsed::Bad(route) => (route, false, bytes.len()),
    };
    if route != Route::Report {
        report.requests += 1;
    }
    match route.delay() {
        Some(delay) => {
            // Not a thread per sleep: an entry in the timer heap.
            connection.waiting = true;
            let reply = route.reply();
            timers.push(Reverse((
                Instant::now() + delay,
                index,
                reply.status,
                reply.body,
                keep_alive,
            )));
        }
        None => {
            let reply = match route {
                Route::Report => report.to_reply(),
                route => route.reply(),
            };
            answer(connection, &reply, keep_alive);
        }
    }
    Some(used)
}

fn answer(connection: &mut Connection, reply: &Reply, keep_alive: bool) {
    connection
        .unwritten
        .extend_from_slice(&response_bytes(reply, keep_alive));
    if !keep_alive {
        connection.closing = true;
    }
}
