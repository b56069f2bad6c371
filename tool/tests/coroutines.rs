//! Chapter 14's coroutine server: seed 000's five sleeps in one sleep's
//! time, the stall when a sleep blocks the carrier thread, a peer client
//! with and without keep-alive, the stack its handler uses against the
//! figure the example warns below, and what a too-small stack does.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use evt::report::CoroutineReport;
use evt_book::reproduce::harness::{ServerProcess, http_get};

mod common;
use common::{ab, ab_number, example, get, start_with};

fn start(flags: &[&str]) -> ServerProcess {
    let mut args = vec!["--port", "0"];
    args.extend_from_slice(flags);
    start_with("chapter14_coroutines", &args).unwrap_or_else(|error| panic!("{error}"))
}

/// `count` requests for `path` at once; the statuses and how long all took.
fn at_once(server: &ServerProcess, path: &str, count: usize) -> (Vec<u16>, Duration) {
    let started = Instant::now();
    let statuses = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..count)
            .map(|_| scope.spawn(|| get(server, path).0))
            .collect();
        sent.into_iter().map(|s| s.join().unwrap()).collect()
    });
    (statuses, started.elapsed())
}

#[test]
fn five_blocking_style_sleeps_take_one_sleep_on_coroutines() {
    let server = start(&["--workers", "2"]);
    let (statuses, took) = at_once(&server, "/sleep?ms=500", 5);
    assert_eq!(statuses, [200; 5]);
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_millis(1800), "{took:?}");
    let report: CoroutineReport =
        serde_json::from_str(&http_get(&server.base_url, "/report").unwrap()).unwrap();
    assert_eq!((report.workers, report.answered), (2, 5), "{report:?}");
    assert!(report.moved <= 5, "{report:?}");
}

#[test]
fn a_sleep_that_blocks_the_carrier_thread_serialises_the_requests_on_it() {
    let server = start(&["--workers", "1", "--sleep-blocks-thread"]);
    let (statuses, took) = at_once(&server, "/sleep?ms=300", 3);
    assert_eq!(statuses, [200; 3]);
    // One carrier thread blocked by each sleep in turn: three sleeps, not one.
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

#[test]
fn the_coroutine_server_answers_ab_with_and_without_keep_alive() {
    let server = start(&[]);
    let url = server.url("/");
    for (args, wanted) in [
        (&["-k", "-q", "-n", "2000", "-c", "20"][..], 2000),
        (&["-q", "-n", "300", "-c", "10"][..], 300),
    ] {
        let mut all = args.to_vec();
        all.push(&url);
        let Some(out) = ab(&all) else {
            return;
        };
        assert_eq!(ab_number(&out, "Complete requests:"), wanted, "{out}");
        assert_eq!(ab_number(&out, "Failed requests:"), 0, "{out}");
    }
}

/// The figure the example warns below, as its warning says it (it
/// differs between optimised and unoptimised builds).
fn handler_stack_kib() -> usize {
    let mut server = Command::new(example("chapter14_coroutines"))
        .args(["--port", "0", "--stack-kib", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    first
        .split("below the ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no figure in the warning: {first}"))
}

#[test]
fn the_handler_uses_less_stack_than_the_figure_the_example_warns_below() {
    let mut server = Command::new(example("chapter14_coroutines"))
        .args(["--port", "0", "--workers", "1", "--show-stack-use"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let listening = lines.next().unwrap().unwrap();
    let addr = listening
        .trim_start_matches("listening on http://")
        .to_string();
    let ask = |path: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    assert!(ask("/").starts_with("HTTP/1.1 200"));
    assert!(ask("/sleep?ms=10").starts_with("HTTP/1.1 200"));
    // may prints each finished coroutine's stack and its use, in words.
    let mut used = Vec::new();
    while used.len() < 2 {
        let line = lines.next().unwrap().unwrap();
        if let Some(words) = line.split("used size = ").nth(1) {
            used.push(words.trim().parse::<usize>().unwrap() * size_of::<usize>());
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let most = used.into_iter().max().unwrap();
    assert!(
        most > 1024,
        "{most} bytes: the handler surely uses more than 1 KiB"
    );
    assert!(
        most <= handler_stack_kib() * 1024,
        "{most} bytes used, above HANDLER_STACK_KIB"
    );
}

#[test]
fn a_stack_too_small_is_warned_of_and_stops_the_process_with_a_line() {
    let mut server = Command::new(example("chapter14_coroutines"))
        .args(["--port", "0", "--stack-kib", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    if let Some(Ok(listening)) = lines.next() {
        let addr = listening
            .trim_start_matches("listening on http://")
            .to_string();
        let _ = std::net::TcpStream::connect(&addr).map(|mut stream| {
            use std::io::Write;
            let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server kept running on a 2 KiB stack"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{status}");
    assert!(
        stderr.starts_with("warning: --stack-kib 2 is below"),
        "{stderr}"
    );
    assert!(stderr.contains("overflowed its stack"), "{stderr}");
}

#[test]
fn chapter14s_solution_keeps_the_carrier_thread_free_during_a_blocking_call() {
    let server = start_with("exercise14_offload", &["--port", "0", "--workers", "1"])
        .unwrap_or_else(|error| panic!("{error}"));
    let (statuses, took) = at_once(&server, "/sleep?ms=500", 5);
    assert_eq!(statuses, [200; 5]);
    // Each sleep on a thread of its own: one sleep's time, where the same
    // calls on the one carrier thread would take five.
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_millis(1800), "{took:?}");
}
