//! Chapter 8's exercise, solved: measure what a connection costs a server,
//! in resident memory, on your own machine.
//!
//!     cargo run --release --example chapter3_async      # in one terminal
//!     cargo run --release --example exercise8_rss_per_connection -- \
//!         --pid $(pgrep -nf 'target/release/examples/chapter3_async') -c 1000 http://127.0.0.1:8003/
//!
//! It reads the server's resident memory (`VmRSS` in `/proc/PID/status`),
//! opens `-c` connections and sends one request on each, keeping them all
//! open, reads the resident memory again, and divides. Resident memory is
//! what the pages touched cost, not what was reserved: a thread's 2 MiB
//! stack is reserved, and only the few KiB it touched are resident.
//! Linux only (`/proc`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "exercise8_rss_per_connection",
    about = "Chapter 8's exercise: a server's resident memory per open connection."
)]
struct Flags {
    /// The server's process id.
    #[arg(long)]
    pid: u32,
    /// Connections to open and hold.
    #[arg(short = 'c', long = "connections", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=15_000))]
    connections: u32,
    /// The URL each connection asks once (http:// only).
    url: String,
}

// ANCHOR: solution
/// The process's resident memory in KiB (`VmRSS:  1234 kB`).
fn resident_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|error| format!("cannot read /proc/{pid}/status (is {pid} running?): {error}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// Opens a connection, asks once on it, reads the whole answer, and keeps
/// it open (HTTP/1.1 keeps a connection by default).
fn open_and_ask(addr: &str, host: &str, path: &str) -> Result<TcpStream, String> {
    let mut stream =
        TcpStream::connect(addr).map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|error| error.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n")
        .map_err(|error| error.to_string())?;
    // Read up to the end of the head, then the body's Content-Length bytes.
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            _ => return Err("the server closed a connection before answering".into()),
        }
    }
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .map_err(|error| format!("reading an answer's body: {error}"))?;
    Ok(stream)
}
// ANCHOR_END: solution

fn main() {
    let flags = Flags::parse();
    let target = evt::load::Target::parse(&flags.url).unwrap_or_else(|error| {
        eprintln!("error: {error}");
        std::process::exit(2);
    });
    let (addr, host, path) = (
        target.addr.to_string(),
        target.authority.clone(),
        target.path_and_query.clone(),
    );
    evt::sys::raise_open_file_limit();
    // ANCHOR: measure
    let run = || -> Result<(), String> {
        let before = resident_kib(flags.pid)?;
        let mut held = Vec::with_capacity(flags.connections as usize);
        for _ in 0..flags.connections {
            held.push(open_and_ask(&addr, &host, &path)?);
        }
        // A moment for the server to finish with the last ones.
        std::thread::sleep(Duration::from_millis(200));
        let after = resident_kib(flags.pid)?;
        let per = after.saturating_sub(before) as f64 / f64::from(flags.connections);
        println!(
            "{} connections: resident {before} KiB before, {after} KiB with them open: {per:.1} KiB per connection",
            flags.connections
        );
        drop(held);
        Ok(())
    };
    // ANCHOR_END: measure
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
