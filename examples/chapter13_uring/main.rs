//! Chapter 13: an event loop on completions (io_uring), by hand.
//!
//!     cargo run --release --example chapter13_uring
//!     cargo run --release --example chapter13_uring -- --buffers per-read
//!     cargo run --release --example load -- -n 1000 -c 1000 'http://127.0.0.1:8013/sleep?ms=1000'
//!
//! Chapter 8's loop asks the kernel which sockets are *ready* (epoll), then
//! makes a system call for every read and every write. This loop hands the
//! kernel the operations themselves (accept, read, write, a timer for
//! `/sleep`) and asks which of them are *done*: one system call,
//! `io_uring_enter`, submits everything queued since the last one and waits
//! for completions. Each completion carries the operation's result (bytes
//! read, a new socket, an error) and the 64-bit tag the loop gave it.
//!
//! Two ways to give a read its memory (`--buffers`):
//! - `per-read`: every connection owns a buffer, and its pending read holds
//!   it until data comes: ten thousand waiting connections, ten thousand
//!   buffers;
//! - `ring` (the default): one ring of buffers for the whole loop, and the
//!   kernel takes one only when data arrives.
//!
//! `--taskrun` says when the kernel finishes an operation whose socket
//! became ready: at once, interrupting the loop (io_uring's default), or
//! when the loop next waits (the default here: it costs less).
//!
//! `GET /report` answers what the loop counted: its system calls, the
//! requests it answered, how many completions each wait brought back.
//! io_uring is Linux's: elsewhere, or where the kernel or a container
//! refuses it, the example says so in one line and exits with status 2.

#[cfg(target_os = "linux")]
mod completion;

use clap::{Parser, ValueEnum};
use evt::defaults;
use evt::server::ServerArgs;

/// Where a pending read's bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Buffers {
    /// A buffer of its own per connection, held by its pending read.
    PerRead,
    /// A ring of buffers shared by every connection; the kernel picks one
    /// when data arrives (a provided-buffer ring read by multishot reads,
    /// Linux 6.0).
    Ring,
}

/// When the kernel finishes an operation whose socket became ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskRun {
    /// At once: the kernel interrupts the loop's thread to do it (io_uring's
    /// default).
    Interrupt,
    /// When the thread next returns from the kernel anyway (a system call,
    /// a timer tick), with no interrupt of its own (IORING_SETUP_COOP_TASKRUN,
    /// Linux 5.19).
    Cooperative,
    /// Only when the loop waits for completions, one thread submitting
    /// (IORING_SETUP_DEFER_TASKRUN with SINGLE_ISSUER, Linux 6.1).
    Defer,
}

#[derive(Debug, Parser)]
pub struct Flags {
    #[command(flatten)]
    pub server: ServerArgs,
    /// How reads get their memory.
    #[arg(long, value_enum, default_value_t = Buffers::Ring)]
    pub buffers: Buffers,
    /// With `--buffers ring`: how many buffers the ring holds (a power of
    /// two, at most 32,768), 4 KiB each.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u16).range(1..=32768))]
    pub ring_buffers: u16,
    /// When the kernel does the work of an operation whose socket became
    /// ready.
    #[arg(long, value_enum, default_value_t = TaskRun::Defer)]
    pub taskrun: TaskRun,
}

fn main() {
    let flags: Flags = evt::server::parse_flags(
        "chapter13_uring",
        "Chapter 13: a hand-written event loop on completions (io_uring, one thread), with a buffer per read or a ring of buffers.",
        defaults::CHAPTER13_URING_PORT,
    );
    evt::server::refuse_unless(
        flags.ring_buffers != 1024,
        flags.buffers == Buffers::Ring,
        "--ring-buffers sizes the ring of --buffers ring; it changes nothing with --buffers per-read",
    );
    if !flags.ring_buffers.is_power_of_two() {
        eprintln!(
            "error: --ring-buffers must be a power of two (the kernel's rule), not {}",
            flags.ring_buffers
        );
        std::process::exit(2);
    }
    if let Some(why) = evt::uring::refusal() {
        eprintln!("error: {why}; this example needs io_uring");
        std::process::exit(2);
    }
    #[cfg(target_os = "linux")]
    completion::serve(&flags);
}
