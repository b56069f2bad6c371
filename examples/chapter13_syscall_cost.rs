//! Chapter 13: what a system call costs here, and an io_uring operation.
//!
//!     cargo run --release --example chapter13_syscall_cost
//!
//! io_uring's promise is fewer system calls. What that can save depends on
//! what one costs on this machine (security mitigations make entering the
//! kernel dearer on some CPUs) against the work the kernel does for a
//! request either way (TCP). Five numbers, each the median of several
//! rounds of many calls: an empty call, a read that finds nothing, a small
//! send and the read that takes it, and a no-op through io_uring alone and
//! in batches.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use clap::Parser;
use evt::report::SyscallCosts;

#[derive(Debug, Parser)]
#[command(
    name = "chapter13_syscall_cost",
    about = "Chapter 13: what a system call costs here, and an io_uring no-op."
)]
struct Flags {
    /// Calls per round (each number is the median of the rounds).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1000..))]
    calls: u32,
    /// Rounds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

fn main() {
    let flags = Flags::parse();
    if let Some(why) = evt::uring::refusal() {
        eprintln!("error: {why}; the io_uring rows need it");
        std::process::exit(2);
    }
    let (calls, rounds) = (flags.calls, flags.rounds);
    // ANCHOR: measure
    let costs = SyscallCosts {
        empty_call_ns: median(rounds, || {
            per_call(calls, || {
                // SAFETY: getppid takes nothing and cannot fail.
                unsafe { libc::syscall(libc::SYS_getppid) };
            })
        }),
        empty_read_ns: {
            let (mut reader, _writer) = tcp_pair();
            reader
                .set_nonblocking(true)
                .expect("a socket can be made non-blocking");
            let mut buffer = [0u8; 1024];
            median(rounds, || {
                per_call(calls, || {
                    let _ = reader.read(&mut buffer);
                })
            })
        },
        send_recv_ns: {
            let (mut reader, mut writer) = tcp_pair();
            let (message, mut buffer) = ([7u8; 100], [0u8; 100]);
            median(rounds, || {
                per_call(calls / 4, || {
                    writer
                        .write_all(&message)
                        .expect("loopback takes 100 bytes");
                    reader.read_exact(&mut buffer).expect("and gives them back");
                })
            })
        },
        uring_nop_ns: uring::nops(calls, rounds, 1),
        uring_batched_nop_ns: uring::nops(calls, rounds, SyscallCosts::BATCH),
        rounds,
    };
    // ANCHOR_END: measure
    if flags.json {
        println!("{}", serde_json::to_string(&costs).unwrap_or_default());
        return;
    }
    println!(
        "an empty system call (getppid)           {:>8.0} ns",
        costs.empty_call_ns
    );
    println!(
        "a read that finds nothing (EAGAIN)       {:>8.0} ns",
        costs.empty_read_ns
    );
    println!(
        "100 bytes sent and read on loopback TCP  {:>8.0} ns",
        costs.send_recv_ns
    );
    println!(
        "an io_uring no-op, one per enter         {:>8.0} ns",
        costs.uring_nop_ns
    );
    println!(
        "an io_uring no-op, {} per enter          {:>8.0} ns each",
        SyscallCosts::BATCH,
        costs.uring_batched_nop_ns
    );
}

/// Nanoseconds per call of `call`, made `calls` times.
fn per_call(calls: u32, mut call: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        call();
    }
    start.elapsed().as_nanos() as f64 / f64::from(calls)
}

/// The median of `rounds` measurements.
fn median(rounds: u32, mut measure: impl FnMut() -> f64) -> f64 {
    let mut values: Vec<f64> = (0..rounds).map(|_| measure()).collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Two ends of a loopback TCP connection.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|error| {
        eprintln!("error: cannot listen on loopback: {error}");
        std::process::exit(1);
    });
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let writer = TcpStream::connect(addr).expect("loopback accepts");
    let (reader, _) = listener.accept().expect("the connection just made");
    let _ = writer.set_nodelay(true);
    (reader, writer)
}

#[cfg(target_os = "linux")]
mod uring {
    use io_uring::{IoUring, opcode};

    /// Nanoseconds per no-op, `batch` submitted per enter.
    pub fn nops(calls: u32, rounds: u32, batch: u32) -> f64 {
        let mut ring = IoUring::new(64).unwrap_or_else(|error| {
            eprintln!("error: cannot set up io_uring: {error}");
            std::process::exit(2);
        });
        let enters = (calls / batch).max(1);
        super::median(rounds, || {
            super::per_call(enters, || {
                for _ in 0..batch {
                    let nop = opcode::Nop::new().build();
                    // SAFETY: a no-op points to no memory.
                    let _ = unsafe { ring.submission().push(&nop) };
                }
                ring.submit_and_wait(batch as usize)
                    .expect("io_uring_enter");
                ring.completion().for_each(drop);
            }) / f64::from(batch)
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod uring {
    pub fn nops(_calls: u32, _rounds: u32, _batch: u32) -> f64 {
        unreachable!("the check in main exits first where there is no io_uring")
    }
}
