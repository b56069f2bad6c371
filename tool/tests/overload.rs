//! Chapter 12's server sheds load and keeps serving; a blocking server held
//! by slow clients answers again once they leave.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use evt_book::reproduce::harness::ServerProcess;
use evt_book::reproduce::slow::SlowClients;

mod common;
use common::{example, get, start, start_with};

/// `count` requests sent at once, each on its own connection.
fn all_at_once(server: &ServerProcess, path: &str, count: usize) -> Vec<(u16, Duration)> {
    std::thread::scope(|scope| {
        let sent: Vec<_> = (0..count)
            .map(|_| scope.spawn(|| get(server, path)))
            .collect();
        sent.into_iter().map(|s| s.join().unwrap()).collect()
    })
}

fn report(server: &ServerProcess) -> evt::report::OverloadReport {
    let addr = server.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body.trim()).unwrap_or_else(|error| panic!("{error}: {answer}"))
}

#[test]
fn a_full_server_answers_503_at_once_and_keeps_serving() {
    let server = start_with(
        "chapter12_overload",
        &["--port", "0", "--slots", "2", "--limit", "4"],
    )
    .unwrap();
    // Twelve requests that each hold a slot for a second: two served, two
    // waiting for a slot, the other eight turned away.
    let answers = all_at_once(&server, "/sleep?ms=1000", 12);
    let ok: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .collect();
    let shed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 503)
        .collect();
    assert_eq!((ok.len(), shed.len()), (4, 8), "{answers:?}");
    // The two that waited for a slot took two sleeps.
    let slowest = ok.iter().map(|(_, took)| *took).max().unwrap();
    assert!(slowest >= Duration::from_millis(2000), "{answers:?}");
    let report = report(&server);
    assert_eq!(report.shed, 8, "{report:?}");
    // Each request counted once: served, or shed.
    assert_eq!(report.answered, 4, "{report:?}");
    assert_eq!(report.peak_held, 4, "{report:?}");
    // Still serving.
    assert_eq!(get(&server, "/").0, 200);
}

#[test]
fn a_request_that_waits_too_long_for_a_slot_is_answered_503() {
    let server = start_with(
        "chapter12_overload",
        &["--port", "0", "--slots", "1", "--queue-timeout", "100ms"],
    )
    .unwrap();
    let answers = all_at_once(&server, "/sleep?ms=1000", 3);
    let statuses: Vec<u16> = {
        let mut s: Vec<u16> = answers.iter().map(|a| a.0).collect();
        s.sort_unstable();
        s
    };
    assert_eq!(statuses, [200, 503, 503], "{answers:?}");
    let report = report(&server);
    assert_eq!((report.timed_out, report.answered), (2, 1), "{report:?}");
}

#[test]
fn a_503_says_when_to_come_back() {
    let server = start_with(
        "chapter12_overload",
        &["--port", "0", "--slots", "1", "--limit", "1"],
    )
    .unwrap();
    std::thread::scope(|scope| {
        // One request holds the only place for a second.
        let held = scope.spawn(|| get(&server, "/sleep?ms=1000"));
        std::thread::sleep(Duration::from_millis(200));
        let addr = server.base_url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let head = answer.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 503"), "{answer}");
        assert!(head.contains("\r\nretry-after: 1\r\n"), "{answer}");
        assert_eq!(held.join().unwrap().0, 200);
    });
}

#[test]
fn offloaded_cpu_work_leaves_the_loop_free() {
    for offload in [true, false] {
        let mut args = vec!["--port", "0"];
        if offload {
            args.push("--offload");
        }
        let server = start_with("chapter12_overload", &args).unwrap();
        let (work, hello) = std::thread::scope(|scope| {
            let work = scope.spawn(|| {
                let (status, _) = get(&server, "/work?us=800000");
                (status, Instant::now())
            });
            // Sent once the work has begun.
            std::thread::sleep(Duration::from_millis(200));
            let hello = scope.spawn(|| {
                let (status, took) = get(&server, "/");
                (status, took, Instant::now())
            });
            (work.join().unwrap(), hello.join().unwrap())
        });
        assert_eq!((work.0, hello.0), (200, 200));
        if offload {
            // Answered while the work still ran, far from its end.
            assert!(hello.2 < work.1, "offloaded: hello after the work");
        } else {
            // On the loop's one thread, hello waits for the rest of 800 ms
            // of CPU.
            assert!(hello.1 >= Duration::from_millis(400), "{:?}", hello.1);
        }
    }
}

#[test]
fn the_timer_check_times_both_sleeps_and_takes_no_server_flags() {
    let output = std::process::Command::new(example("chapter12_overload"))
        .args(["--timer-check", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let check: evt::report::TimerCheck = serde_json::from_slice(&output.stdout).unwrap();
    // Neither clock wakes a sleep early.
    assert!(check.tokio_ms >= check.asked_ms, "{check:?}");
    assert!(check.std_ms >= check.asked_ms, "{check:?}");
    let refused = std::process::Command::new(example("chapter12_overload"))
        .args(["--timer-check", "--slots", "4"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.starts_with("error:") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

#[test]
fn a_queue_timeout_without_slots_is_one_line() {
    let output = std::process::Command::new(example("chapter12_overload"))
        .args(["--port", "0", "--queue-timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_blocking_server_held_by_slow_clients_answers_once_they_leave() {
    let server = start("chapter1_blocking");
    let addr = server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let began = Instant::now();
    let slow = std::thread::spawn(move || {
        SlowClients {
            connections: 3,
            after: Duration::ZERO,
            hold: Duration::from_millis(1500),
        }
        .run(addr, began)
    });
    // Long enough for the slow clients to connect first.
    std::thread::sleep(Duration::from_millis(500));
    // Its one thread reads a head that never ends (its read timeout is
    // longer than the hold), so hello waits until the slow clients leave.
    let (status, took) = get(&server, "/");
    let record = slow.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(record.opened, 3);
    assert!(
        began.elapsed() >= Duration::from_millis(1500) && took >= Duration::from_millis(700),
        "hello took {took:?}"
    );
    // And after they left, it answers as before.
    assert_eq!(get(&server, "/").0, 200);
}
