//! The loop on completions (Linux only): the ring, the operations it
//! carries, and what the loop does with each completion.

use std::io;
use std::net::TcpListener;
use std::os::fd::{IntoRawFd, RawFd};

use evt::blocking::{BodyLength, Parsed, parse, response_bytes};
use evt::report::SyscallReport;
use evt::routes::{MAX_HEADER_BYTES, Reply, Route};
use evt::server::{ACCEPT_BACKOFF, AcceptFailures, announce};
use io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::{Buffers, Flags, TaskRun};

/// Bytes of one read buffer, in either mode.
const BUFFER_BYTES: usize = 4096;
/// Operations the loop may queue before it must hand them to the kernel.
const SUBMISSION_ENTRIES: u32 = 4096;
/// Completions the kernel may leave for the loop between two waits.
const COMPLETION_ENTRIES: u32 = 32_768;
/// The buffer group the ring's buffers belong to.
const GROUP: u16 = 0;
/// A client that sends more than this while its request sleeps is closed:
/// reads go on while a request sleeps, so this bounds what they keep.
const UNREAD_LIMIT: usize = 8 * MAX_HEADER_BYTES;

// ANCHOR: operations
/// What a completion is the end of. The kind and the connection travel with
/// each operation as its 64-bit `user_data`, and the completion brings them
/// back unchanged: all the loop learns of what finished, beside its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Accept = 1,
    Recv,
    Send,
    Timer,
    Shutdown,
    Close,
    AcceptAgain,
    Cancel,
}

fn tag(op: Op, index: usize) -> u64 {
    ((index as u64) << 8) | op as u64
}

fn untag(user_data: u64) -> (Option<Op>, usize) {
    let op = match user_data & 0xff {
        1 => Op::Accept,
        2 => Op::Recv,
        3 => Op::Send,
        4 => Op::Timer,
        5 => Op::Shutdown,
        6 => Op::Close,
        7 => Op::AcceptAgain,
        8 => Op::Cancel,
        _ => return (None, 0),
    };
    (Some(op), (user_data >> 8) as usize)
}
// ANCHOR_END: operations

// ANCHOR: connection
/// What the loop keeps for one connection. Every buffer an operation points
/// to belongs to the kernel from the moment the operation is submitted until
/// its completion comes back: the loop must not move, grow or free it
/// meanwhile. Rust's borrow checker cannot see that promise (the kernel
/// holds a raw address), so the fields say whose each buffer is.
struct Connection {
    fd: RawFd,
    /// `--buffers per-read`: the buffer this connection's read fills. The
    /// kernel's while `receiving`; held for the connection's whole life.
    buffer: Option<Box<[u8]>>,
    /// Bytes read and not yet used (a request in pieces, or pipelined).
    unread: Vec<u8>,
    /// The bytes a send in flight reads: the kernel's until it completes.
    sending: Vec<u8>,
    /// How much of `sending` the kernel has taken so far.
    sent: usize,
    /// Answers made while a send was in flight; sent after it.
    outgoing: Vec<u8>,
    /// The answer of the request sleeping on a timer, and whether to keep
    /// the connection open after it.
    asleep: Option<(Reply, bool)>,
    /// The sleeping request's timer: the kernel reads it when the timer
    /// operation is submitted, so it stays (boxed: the table of
    /// connections may move) until the timer completes.
    timer: Option<Box<types::Timespec>>,
    receiving: bool,
    send_in_flight: bool,
    shutdown_in_flight: bool,
    /// No more requests are answered; close once nothing is in flight.
    closing: bool,
    /// The client closed, or the socket broke: nothing more to read or send.
    gone: bool,
    /// Our side's shutdown was submitted.
    shut: bool,
    /// The close was submitted.
    closed: bool,
}
// ANCHOR_END: connection

impl Connection {
    fn new(fd: RawFd, buffers: Buffers) -> Connection {
        Connection {
            fd,
            buffer: (buffers == Buffers::PerRead)
                .then(|| vec![0u8; BUFFER_BYTES].into_boxed_slice()),
            unread: Vec::new(),
            sending: Vec::new(),
            sent: 0,
            outgoing: Vec::new(),
            asleep: None,
            timer: None,
            receiving: false,
            send_in_flight: false,
            shutdown_in_flight: false,
            closing: false,
            gone: false,
            shut: false,
            closed: false,
        }
    }

    fn in_flight(&self) -> bool {
        self.receiving || self.send_in_flight || self.shutdown_in_flight || self.asleep.is_some()
    }
}

// ANCHOR: buffer_ring
/// A provided-buffer ring: buffers the loop lends the kernel, to be filled
/// by whichever read's data arrives first. The ring itself is an array of
/// (address, length, buffer id) entries in memory shared with the kernel;
/// the loop adds entries at the tail, the kernel takes them at the head.
struct BufferRing {
    entries: *mut types::BufRingEntry,
    entries_bytes: usize,
    count: u16,
    tail: u16,
    memory: Box<[u8]>,
}

impl BufferRing {
    fn new(ring: &IoUring, count: u16) -> io::Result<BufferRing> {
        let entries_bytes = usize::from(count) * size_of::<types::BufRingEntry>();
        // SAFETY: a fresh anonymous mapping (page-aligned and zeroed, as the
        // kernel requires), unmapped only in `drop`.
        let entries = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                entries_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if entries == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut buffers = BufferRing {
            entries: entries.cast(),
            entries_bytes,
            count,
            tail: 0,
            memory: vec![0u8; usize::from(count) * BUFFER_BYTES].into_boxed_slice(),
        };
        for id in 0..count {
            buffers.give_back(id);
        }
        // SAFETY: the entries and the memory they point to live as long as
        // the ring (`drop` unregisters nothing: the ring goes with the process).
        unsafe {
            ring.submitter()
                .register_buf_ring(entries as u64, count, GROUP)?;
        }
        Ok(buffers)
    }

    /// The bytes the kernel put in buffer `id`.
    fn filled(&self, id: u16, length: usize) -> &[u8] {
        let start = usize::from(id) * BUFFER_BYTES;
        &self.memory[start..start + length.min(BUFFER_BYTES)]
    }

    /// Lends buffer `id` to the kernel again: an entry at the tail, then the
    /// new tail published (the kernel reads it with acquire ordering).
    fn give_back(&mut self, id: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot` < count, inside the mapping.
        let entry = unsafe { &mut *self.entries.add(slot) };
        entry.set_addr(self.memory[usize::from(id) * BUFFER_BYTES..].as_ptr() as u64);
        entry.set_len(BUFFER_BYTES as u32);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field shares the first entry's place, per the
        // kernel's layout; an atomic store with release ordering publishes it.
        unsafe {
            let tail =
                types::BufRingEntry::tail(self.entries) as *const std::sync::atomic::AtomicU16;
            (*tail).store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }
}
// ANCHOR_END: buffer_ring

impl Drop for BufferRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.entries.cast(), self.entries_bytes) };
    }
}

/// The whole loop: the ring, the listening socket, a table of connections
/// (a slot's index is in every tag), and the counts `/report` answers.
struct Loop {
    ring: IoUring,
    listener: RawFd,
    buffers: Buffers,
    ring_buffers: Option<BufferRing>,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    /// Connections whose multishot read ended for want of a ring buffer:
    /// read again once the batch in hand has given its buffers back.
    starved: Vec<usize>,
    report: SyscallReport,
    failures: AcceptFailures,
}

pub fn serve(flags: &Flags) {
    let listener: TcpListener = flags.server.bind_or_exit();
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    // ANCHOR: setup
    let mut builder = IoUring::builder();
    builder.setup_cqsize(COMPLETION_ENTRIES);
    match flags.taskrun {
        // The kernel interrupts the loop to finish an operation (copy the
        // data, post the completion) as soon as the socket is ready.
        TaskRun::Interrupt => {}
        // No interrupt of its own: the work waits until the thread next
        // returns from the kernel anyway (a system call, a timer tick).
        TaskRun::Cooperative => {
            builder.setup_coop_taskrun();
        }
        // The work waits until the loop asks for completions; only this
        // thread submits (Linux 6.1).
        TaskRun::Defer => {
            builder.setup_single_issuer().setup_defer_taskrun();
        }
    }
    // ANCHOR_END: setup
    let ring = builder.build(SUBMISSION_ENTRIES).unwrap_or_else(|error| {
        if flags.taskrun != TaskRun::Interrupt && error.raw_os_error() == Some(libc::EINVAL) {
            eprintln!(
                "error: this kernel refused --taskrun {:?} ({error}): defer needs Linux 6.1, \
                     cooperative 5.19; try --taskrun interrupt",
                flags.taskrun
            );
        } else {
            let why = evt::uring::explain(error.raw_os_error(), evt::uring::disabled_setting());
            eprintln!("error: {why}; this example needs io_uring");
        }
        std::process::exit(2);
    });
    let ring_buffers = match flags.buffers {
        Buffers::PerRead => None,
        Buffers::Ring => Some(
            BufferRing::new(&ring, flags.ring_buffers).unwrap_or_else(|error| {
                eprintln!(
                    "error: this kernel refused a ring of provided buffers ({error}); with \
                     multishot reads they need Linux 6.0 or later: try --buffers per-read"
                );
                std::process::exit(2);
            }),
        ),
    };
    let buffers = match flags.buffers {
        Buffers::PerRead => "a buffer per read",
        Buffers::Ring => "a ring of buffers",
    };
    let taskrun = match flags.taskrun {
        TaskRun::Interrupt => "interrupted",
        TaskRun::Cooperative => "cooperative",
        TaskRun::Defer => "deferred",
    };
    let loop_kind = format!("io_uring, {buffers}, {taskrun} task work");
    let mut event_loop = Loop {
        ring,
        listener: listener.into_raw_fd(),
        buffers: flags.buffers,
        ring_buffers,
        connections: Vec::new(),
        free: Vec::new(),
        starved: Vec::new(),
        report: SyscallReport {
            loop_kind,
            ..SyscallReport::default()
        },
        failures: AcceptFailures::default(),
    };
    event_loop.accept();
    announce(addr);
    event_loop.run();
}

// ANCHOR: event_loop
impl Loop {
    fn run(&mut self) -> ! {
        let mut completions: Vec<cqueue::Entry> = Vec::with_capacity(1024);
        loop {
            // One system call: submit every operation queued since the last
            // one, and sleep until at least one has completed.
            self.report.call("io_uring_enter");
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                // A signal, or completions the kernel is still holding back:
                // take what is there and come again.
                Err(error) if matches!(error.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
                Err(error) => {
                    eprintln!("error: io_uring_enter failed: {error}");
                    std::process::exit(1);
                }
            }
            self.report.waits += 1;
            // Copy the completions out of the shared queue (which frees
            // their places for the kernel), then handle each.
            completions.extend(self.ring.completion());
            self.report.events += completions.len() as u64;
            for completion in completions.drain(..) {
                self.complete(&completion);
            }
            // The buffers of this batch are back in the ring: read again.
            for index in std::mem::take(&mut self.starved) {
                self.receive(index);
            }
        }
    }

    fn complete(&mut self, completion: &cqueue::Entry) {
        let (result, flags) = (completion.result(), completion.flags());
        match untag(completion.user_data()) {
            (Some(Op::Accept), _) => self.accepted(result, flags),
            (Some(Op::AcceptAgain), _) => self.accept(),
            (Some(Op::Recv), index) => self.received(index, result, flags),
            (Some(Op::Cancel), _) => {}
            (Some(Op::Send), index) => self.sent(index, result),
            (Some(Op::Timer), index) => self.woke(index),
            (Some(Op::Shutdown), index) => {
                if let Some(connection) = self.connection(index) {
                    connection.shutdown_in_flight = false;
                }
                self.finish(index);
            }
            (Some(Op::Close), index) => {
                self.connections[index] = None;
                self.free.push(index);
            }
            (None, _) => {}
        }
    }
    // ANCHOR_END: event_loop

    /// Queues one operation. The caller keeps every buffer it points to
    /// alive and in place until its completion (see [`Connection`]).
    fn push(&mut self, entry: squeue::Entry) {
        // SAFETY: the buffers and timers entries point to are owned by their
        // connections, as the comments on `Connection` say.
        while unsafe { self.ring.submission().push(&entry) }.is_err() {
            // The submission queue is full: hand the kernel what is queued.
            self.report.call("io_uring_enter");
            if let Err(error) = self.ring.submit() {
                eprintln!("error: io_uring_enter failed: {error}");
                std::process::exit(1);
            }
        }
        self.report.submitted += 1;
    }

    fn connection(&mut self, index: usize) -> Option<&mut Connection> {
        self.connections.get_mut(index).and_then(Option::as_mut)
    }

    /// One accept for many connections: a multishot accept completes once
    /// per new connection and stays armed.
    fn accept(&mut self) {
        let accept = opcode::AcceptMulti::new(types::Fd(self.listener));
        self.push(accept.build().user_data(tag(Op::Accept, 0)));
    }

    fn accepted(&mut self, result: i32, flags: u32) {
        if !cqueue::more(flags) {
            if result < 0 {
                // Out of file descriptors, most often: say so once, back off, go on.
                self.failures.note(&io::Error::from_raw_os_error(-result));
                static BACKOFF: types::Timespec =
                    types::Timespec::new().nsec(ACCEPT_BACKOFF.as_nanos() as u32);
                self.push(
                    opcode::Timeout::new(&BACKOFF)
                        .build()
                        .user_data(tag(Op::AcceptAgain, 0)),
                );
            } else {
                self.accept();
            }
        }
        if result < 0 {
            return;
        }
        let fd = result;
        // Nagle's algorithm would hold back a second small answer: one
        // setsockopt per connection, the loop's only call besides io_uring_enter.
        self.report.call("setsockopt");
        let on: libc::c_int = 1;
        // SAFETY: `fd` is the socket just accepted; `on` outlives the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            );
        }
        let index = self.free.pop().unwrap_or_else(|| {
            self.connections.push(None);
            self.connections.len() - 1
        });
        self.connections[index] = Some(Connection::new(fd, self.buffers));
        self.receive(index);
    }

    // ANCHOR: receive
    /// Hands the kernel a read for this connection. With a buffer per read,
    /// the read points into the connection's own buffer; with the ring, it
    /// names the buffer group, and the kernel picks a buffer when data comes
    /// (a multishot read: it stays armed, one completion per arrival).
    fn receive(&mut self, index: usize) {
        let Some(connection) = self.connection(index) else {
            return;
        };
        if connection.receiving || connection.gone {
            return;
        }
        connection.receiving = true;
        let fd = types::Fd(connection.fd);
        let entry = match connection.buffer.as_mut() {
            Some(buffer) => opcode::Recv::new(fd, buffer.as_mut_ptr(), buffer.len() as u32).build(),
            None => opcode::RecvMulti::new(fd, GROUP).build(),
        };
        self.push(entry.user_data(tag(Op::Recv, index)));
    }

    /// A read completed: `result` bytes (0 when the client closed, or an
    /// error), in the connection's buffer or in the ring's buffer the
    /// completion's flags name.
    fn received(&mut self, index: usize, result: i32, flags: u32) {
        let chosen = cqueue::buffer_select(flags);
        let Some(connection) = self.connections.get_mut(index).and_then(Option::as_mut) else {
            if let (Some(id), Some(ring)) = (chosen, &mut self.ring_buffers) {
                ring.give_back(id);
            }
            return;
        };
        // A multishot read stays armed while the kernel says "more".
        connection.receiving = connection.buffer.is_none() && cqueue::more(flags);
        if result > 0 {
            let length = result as usize;
            let bytes = match (&connection.buffer, chosen, &self.ring_buffers) {
                (Some(buffer), _, _) => &buffer[..length],
                (None, Some(id), Some(ring)) => ring.filled(id, length),
                _ => &[][..],
            };
            // A connection being closed reads to its end, keeping nothing.
            if !connection.gone {
                connection.unread.extend_from_slice(bytes);
            }
            if let (Some(id), Some(ring)) = (chosen, &mut self.ring_buffers) {
                // Copied out: the buffer goes straight back to the ring.
                ring.give_back(id);
            }
        } else if result == -libc::ENOBUFS {
            // Every ring buffer was taken at once: read again once this
            // batch has given its buffers back.
            self.report.ring_empty += 1;
            self.starved.push(index);
            return;
        } else if result == -libc::EINVAL && connection.buffer.is_none() {
            eprintln!(
                "error: this kernel refused a multishot read (it needs Linux 6.0 or later): \
                 try --buffers per-read"
            );
            std::process::exit(2);
        } else {
            // Closed by the client, or broken: nothing more to answer.
            connection.gone = true;
            connection.closing = true;
        }
        if connection.unread.len() > UNREAD_LIMIT && !connection.gone {
            // Sent more than a sleeping request leaves room for: stop reading
            // (the read in flight is cancelled) and close.
            connection.gone = true;
            connection.closing = true;
            connection.unread = Vec::new();
            if connection.receiving {
                let cancel = opcode::AsyncCancel::new(tag(Op::Recv, index));
                self.push(cancel.build().user_data(tag(Op::Cancel, index)));
            }
        }
        self.serve_unread(index);
        let keep_reading = self
            .connection(index)
            .is_some_and(|c| !c.gone && (c.buffer.is_none() || c.asleep.is_none()));
        if keep_reading {
            self.receive(index);
        }
        self.finish(index);
    }
    // ANCHOR_END: receive

    // ANCHOR: serve_unread
    /// Answers the requests in what was read, until one sleeps.
    fn serve_unread(&mut self, index: usize) {
        let Some(connection) = self.connections.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let mut timer = None;
        while connection.asleep.is_none() && !connection.closing {
            let (route, keep_alive, used) = match parse(&connection.unread) {
                Parsed::Complete {
                    request,
                    head_length,
                    body,
                } => {
                    // This loop reads no bodies: a request with one is the last.
                    let keep = request.keep_alive && body == BodyLength::Known(0);
                    (request.route, keep, head_length)
                }
                Parsed::Partial if connection.unread.len() <= MAX_HEADER_BYTES => break,
                Parsed::Partial => (Route::HeadersTooLarge, false, connection.unread.len()),
                Parsed::Bad(route) => (route, false, connection.unread.len()),
            };
            connection.unread.drain(..used);
            if route != Route::Report {
                self.report.requests += 1;
            }
            if let Some(delay) = route.delay() {
                connection.asleep = Some((route.reply(), keep_alive));
                timer = Some(delay);
                break;
            }
            let reply = match route {
                Route::Report => self.report.to_reply(),
                route => route.reply(),
            };
            answer(connection, &reply, keep_alive);
        }
        if connection.unread.is_empty() {
            // A waiting connection holds no memory for bytes it has not got.
            connection.unread = Vec::new();
        }
        if let Some(delay) = timer {
            // Not a thread per sleep, nor a heap of our own: a timer
            // operation, whose completion is the wake-up.
            let timer = connection
                .timer
                .insert(Box::new(types::Timespec::from(delay)));
            let entry = opcode::Timeout::new(&**timer).build();
            self.push(entry.user_data(tag(Op::Timer, index)));
        }
        self.flush(index);
    }
    // ANCHOR_END: serve_unread

    /// A sleeping request's timer fired: answer it, and go on with the
    /// connection's next request.
    fn woke(&mut self, index: usize) {
        let Some(connection) = self.connection(index) else {
            return;
        };
        connection.timer = None;
        if let Some((reply, keep_alive)) = connection.asleep.take() {
            if !connection.gone {
                answer(connection, &reply, keep_alive);
            }
        }
        self.serve_unread(index);
        self.receive(index);
        self.finish(index);
    }

    // ANCHOR: flush
    /// Hands the kernel the answers not yet sent, unless a send is in
    /// flight (its bytes are the kernel's until it completes).
    fn flush(&mut self, index: usize) {
        let Some(connection) = self.connection(index) else {
            return;
        };
        if connection.send_in_flight || connection.gone {
            return;
        }
        if connection.outgoing.is_empty() {
            // Nothing to send: hold no buffer while waiting.
            connection.sending = Vec::new();
            return;
        }
        std::mem::swap(&mut connection.sending, &mut connection.outgoing);
        connection.outgoing.clear();
        connection.sent = 0;
        connection.send_in_flight = true;
        let bytes = &connection.sending;
        let entry = opcode::Send::new(types::Fd(connection.fd), bytes.as_ptr(), bytes.len() as u32);
        self.push(entry.build().user_data(tag(Op::Send, index)));
    }
    // ANCHOR_END: flush

    fn sent(&mut self, index: usize, result: i32) {
        let Some(connection) = self.connection(index) else {
            return;
        };
        if result < 0 {
            connection.send_in_flight = false;
            connection.gone = true;
            connection.closing = true;
        } else {
            connection.sent += result as usize;
            if connection.sent < connection.sending.len() {
                // The socket took part: send the rest from the same buffer.
                let rest = &connection.sending[connection.sent..];
                let entry =
                    opcode::Send::new(types::Fd(connection.fd), rest.as_ptr(), rest.len() as u32);
                self.push(entry.build().user_data(tag(Op::Send, index)));
                return;
            }
            connection.send_in_flight = false;
            self.flush(index);
        }
        self.finish(index);
    }

    /// Closes a connection that is done, in order: our answers out, our
    /// side shut, the client's side read to its end (unread bytes would turn
    /// the close into a reset), nothing in flight, then the close itself.
    fn finish(&mut self, index: usize) {
        let Some(connection) = self.connection(index) else {
            return;
        };
        let unsent = connection.send_in_flight || !connection.outgoing.is_empty();
        if !connection.closing || unsent {
            return;
        }
        let fd = connection.fd;
        if !connection.gone && !connection.shut {
            connection.shut = true;
            connection.shutdown_in_flight = true;
            let entry = opcode::Shutdown::new(types::Fd(fd), libc::SHUT_WR).build();
            self.push(entry.user_data(tag(Op::Shutdown, index)));
            self.receive(index);
            return;
        }
        if connection.gone && !connection.closed && !connection.in_flight() {
            // Closing is an operation too; the slot is free when it completes.
            connection.closed = true;
            self.push(
                opcode::Close::new(types::Fd(fd))
                    .build()
                    .user_data(tag(Op::Close, index)),
            );
        }
    }
}

fn answer(connection: &mut Connection, reply: &Reply, keep_alive: bool) {
    connection
        .outgoing
        .extend_from_slice(&response_bytes(reply, keep_alive));
    if !keep_alive {
        connection.closing = true;
    }
}
