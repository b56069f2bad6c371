//! The workshop's exercises: each solution is built and checked here (the
//! starting point of each is its chapter's own example, which the other
//! tests run). Chapter 9's solution is checked by the runtime's own tests.

use std::time::{Duration, Instant};

use evt::reproduce::harness::ServerProcess;
use evt::reproduce::slow::SlowClients;

mod common;
use common::{get, start};

/// Threads of a process, from `/proc`.
fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn chapter1s_solution_answers_five_requests_together_with_a_thread_each() {
    let server = start("exercise1_thread_per_connection");
    let started = Instant::now();
    let (statuses, most_threads) = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..5)
            .map(|_| scope.spawn(|| get(&server, "/sleep?ms=500").0))
            .collect();
        // The most threads seen while the requests are in flight (looked at
        // until they all finish, so a slow start on a busy machine is seen).
        let mut most_threads = 0;
        while !sent.iter().all(|s| s.is_finished()) {
            most_threads = most_threads.max(threads(server.pid()));
            std::thread::sleep(Duration::from_millis(10));
        }
        let statuses: Vec<u16> = sent.into_iter().map(|s| s.join().unwrap()).collect();
        (statuses, most_threads)
    });
    let took = started.elapsed();
    assert_eq!(statuses, [200; 5]);
    // One after another they would take 2.5 s; together, one sleep.
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_millis(2000), "{took:?}");
    // What it costs: a thread per request in flight, beside the main one.
    assert!(most_threads >= 6, "{most_threads} threads");
}

#[test]
fn chapter12s_solution_closes_slow_clients_after_its_header_timeout() {
    common::examples_built();
    let server = ServerProcess::start(
        "exercise12_header_timeout",
        &[
            "--port".into(),
            "0".into(),
            "--header-timeout".into(),
            "500ms".into(),
        ],
    )
    .unwrap();
    let addr = server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let record = SlowClients {
        connections: 5,
        after: Duration::ZERO,
        hold: Duration::from_millis(2500),
    }
    .run(addr, Instant::now());
    assert_eq!(record.opened, 5);
    assert_eq!(record.closed_by_server, 5, "{record:?}");
    // Not before its deadline.
    assert!(record.first_closed_after_s.unwrap() >= 0.45, "{record:?}");
    // A whole request is still answered.
    assert_eq!(get(&server, "/").0, 200);
}

#[test]
fn chapter4s_two_fixes_keep_the_loop_answering_during_cpu_work() {
    for fix in ["offload", "slices"] {
        common::examples_built();
        let server = ServerProcess::start(
            "exercise4_cpu_two_fixes",
            &["--port".into(), "0".into(), "--fix".into(), fix.into()],
        )
        .unwrap();
        let (work, hello) = std::thread::scope(|scope| {
            let work = scope.spawn(|| {
                let (status, took) = get(&server, "/sleep?ms=800");
                (status, took, Instant::now())
            });
            // Sent once the work has begun.
            std::thread::sleep(Duration::from_millis(200));
            let hello = scope.spawn(|| {
                let (status, _) = get(&server, "/");
                (status, Instant::now())
            });
            (work.join().unwrap(), hello.join().unwrap())
        });
        assert_eq!((work.0, hello.0), (200, 200), "{fix}");
        // The work still cost its CPU time…
        assert!(work.1 >= Duration::from_millis(800), "{fix}: {:?}", work.1);
        // …and hello was answered while it ran, not after.
        assert!(hello.1 < work.2, "{fix}: hello waited for the work");
    }
}
