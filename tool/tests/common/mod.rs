//! What the integration tests share: servers started from freshly built examples.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use evt_book::reproduce::harness::{self, ServerProcess};

/// Builds the examples once per test binary, so `cargo test --test NAME` never
/// runs a stale server (plain `cargo test` has built them already: this is quick).
pub fn examples_built() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(message) = BUILT.get_or_init(harness::build_examples) {
        panic!("{message}");
    }
}

/// Starts `example` on a free port.
pub fn start(example: &str) -> ServerProcess {
    start_with(example, &["--port", "0"]).unwrap_or_else(|error| panic!("{error}"))
}

/// Starts `example` with these flags.
pub fn start_with(example: &str, args: &[&str]) -> Result<ServerProcess, String> {
    examples_built();
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    ServerProcess::start(example, &args)
}

/// The path of a built example.
pub fn example(name: &str) -> std::path::PathBuf {
    examples_built();
    harness::examples_dir().join(name)
}

/// One request on its own connection: the status and the time it took.
pub fn get(server: &ServerProcess, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let (status, _) = get_text(server, path);
    (status, started.elapsed())
}

/// One request on its own connection: the status and the body.
pub fn get_text(server: &ServerProcess, path: &str) -> (u16, String) {
    let addr = server.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    (status, body)
}

/// One request on a kept-alive connection, read to the end of its body: the
/// status. For tests that send many requests on one connection.
pub fn ask_on(stream: &mut TcpStream, path: &str) -> u16 {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    stream.read_exact(&mut vec![0u8; length]).unwrap();
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Runs a built example to its end: its exit code and standard output.
pub fn run_example(name: &str, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(example(name))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// `ab`'s output, or `None` where it is not installed (CI installs it: there
/// a missing ab fails the test).
pub fn ab(args: &[&str]) -> Option<String> {
    match Command::new("ab").args(args).output() {
        Ok(out) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "ab is not installed (apt-get install -y apache2-utils): the peer check is skipped here"
            );
            None
        }
        Err(error) => panic!("ab is needed in CI: {error}"),
    }
}

/// A number `ab` printed after `label`.
pub fn ab_number(out: &str, label: &str) -> u64 {
    out.lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in ab's output:\n{out}"))
}
