//! The workshop's exercises: each solution is built and checked here. The
//! starting point of most is its chapter's own example, which the other
//! tests run; chapters 3 and 5 start from an exercise example run without
//! its fix, checked here too. Chapter 9's solution is checked by its own
//! tests (`exercise9_timeout`, an example with `test = true`).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use evt_book::reproduce::harness::ServerProcess;
use evt_book::reproduce::slow::SlowClients;

mod common;
use common::{get, start, start_with};

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
#[cfg(target_os = "linux")]
fn chapter13s_solution_closes_a_silent_client_at_its_read_deadline() {
    if let Some(why) = evt::uring::refusal() {
        eprintln!("io_uring is not usable here ({why}): exercise 13 is not run");
        return;
    }
    common::examples_built();
    let server = ServerProcess::start(
        "exercise13_read_deadline",
        &[
            "--port".into(),
            "0".into(),
            "--deadline".into(),
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
    // The kernel cancelled each read at its deadline, not before.
    assert!(record.first_closed_after_s.unwrap() >= 0.45, "{record:?}");
    // A whole request is answered, twice on one connection, and a route
    // it does not serve is a status, not a hang.
    assert_eq!(get(&server, "/").0, 200);
    assert_eq!(get(&server, "/nope").0, 404);
    let target = evt::load::Target::parse(&server.url("/")).unwrap();
    let results = evt::load::run(evt::load::LoadConfig::new(target, 200, 4)).unwrap();
    assert_eq!(results.completed(), 200);
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

/// Sends `requests` GETs of `path` at once, each on its own connection: each
/// one's status and the instant its answer came.
fn all_at_once(server: &ServerProcess, path: &str, requests: usize) -> Vec<(u16, Instant)> {
    std::thread::scope(|scope| {
        let sent: Vec<_> = (0..requests)
            .map(|_| scope.spawn(|| (get(server, path).0, Instant::now())))
            .collect();
        sent.into_iter().map(|s| s.join().unwrap()).collect()
    })
}

#[test]
fn chapter2s_solution_answers_503_at_once_when_its_queue_is_full() {
    let server = start_with(
        "exercise2_bounded_queue",
        &["--port", "0", "--threads", "2", "--queue", "2"],
    )
    .unwrap();
    let answers = all_at_once(&server, "/sleep?ms=500", 8);
    let ok: Vec<Instant> = answers.iter().filter(|a| a.0 == 200).map(|a| a.1).collect();
    let busy: Vec<Instant> = answers.iter().filter(|a| a.0 == 503).map(|a| a.1).collect();
    // Two threads and two places in the queue: at most four are served, at
    // least the two the threads hold; the rest are turned away.
    assert_eq!(ok.len() + busy.len(), 8, "{answers:?}");
    assert!((2..=4).contains(&ok.len()), "{answers:?}");
    // Turned away at once: every 503 came before the first 200, which had
    // to sleep.
    assert!(busy.iter().max() < ok.iter().min(), "{answers:?}");
    // And the server goes on serving.
    assert_eq!(get(&server, "/").0, 200);
}

#[test]
fn chapter3s_hidden_block_holds_the_loop_until_fixed() {
    // Twenty lookups of 25 ms each: one after another on the loop they take
    // at least 500 ms; on the blocking pool they overlap.
    let took = |flags: &[&str]| {
        let server = start_with("exercise3_hidden_block", flags).unwrap();
        let started = Instant::now();
        let answers = all_at_once(&server, "/user?id=7", 20);
        assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
        started.elapsed()
    };
    let hidden = took(&["--port", "0"]);
    let fixed = took(&["--port", "0", "--fixed"]);
    assert!(hidden >= Duration::from_millis(500), "{hidden:?}");
    assert!(fixed < Duration::from_millis(400), "{fixed:?}");
}

#[test]
fn chapter5s_nagle_delay_shows_and_both_fixes_remove_it() {
    // Thirty requests on one kept-alive connection; how many waited for a
    // delayed ACK (40 ms at least on Linux).
    let delayed = |fix: &str| {
        let server = start_with("exercise5_nagle", &["--port", "0", "--fix", fix]).unwrap();
        let mut stream = TcpStream::connect(server.base_url.trim_start_matches("http://")).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        let slow = (0..30)
            .filter(|_| {
                let asked = Instant::now();
                assert_eq!(common::ask_on(&mut stream, "/"), 200);
                asked.elapsed() >= Duration::from_millis(35)
            })
            .count();
        (slow, started.elapsed())
    };
    let (slow, _) = delayed("none");
    assert!(slow >= 10, "only {slow} of 30 answers waited for an ACK");
    for fix in ["nodelay", "one-write"] {
        let (slow, took) = delayed(fix);
        // Thirty delayed answers would take at least 1.05 s.
        assert!(
            slow < 10 && took < Duration::from_millis(1050),
            "{fix}: {slow}, {took:?}"
        );
    }
}

#[test]
fn chapter6s_solution_takes_the_first_answer_and_drops_the_other() {
    let server = start("chapter3_async");
    let slow = format!("{}/sleep?ms=3000", server.base_url);
    let fast = format!("{}/sleep?ms=100", server.base_url);
    let started = Instant::now();
    let (code, out) = common::run_example("exercise6_first_answer_wins", &[&slow, &fast]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("url 2 answered first: status 200"), "{out}");
    // Not waiting for the slow one.
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

#[test]
fn chapter7s_solution_makes_one_upstream_call_for_many_requests() {
    let upstream = start("chapter12_overload");
    let url = format!("{}/sleep?ms=300", upstream.base_url);
    let proxy = start_with("exercise7_coalesce", &["--port", "0", "--upstream", &url]).unwrap();
    let answers = all_at_once(&proxy, "/proxy", 20);
    assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
    let (status, report) = common::get_text(&upstream, "/report");
    assert_eq!(status, 200, "{report}");
    let report: evt::report::OverloadReport = serde_json::from_str(&report).unwrap();
    // Twenty requests within a few 300 ms calls: far fewer calls than requests.
    assert!(report.answered <= 10, "{report:?}");
}

#[test]
fn chapter8s_solution_measures_resident_memory_per_connection() {
    let server = start("chapter3_async");
    let pid = server.pid().to_string();
    let url = format!("{}/", server.base_url);
    let (code, out) = common::run_example(
        "exercise8_rss_per_connection",
        &["--pid", &pid, "-c", "300", &url],
    );
    assert_eq!(code, 0, "{out}");
    let per: f64 = out
        .split(": ")
        .last()
        .and_then(|tail| tail.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    // Each open connection keeps more than a page resident (hyper's buffers).
    assert!(per > 4.0 && per < 1024.0, "{out}");
    // A pid that is not running is one line, not a panic.
    let (code, _) = common::run_example(
        "exercise8_rss_per_connection",
        &["--pid", "4194305", "-c", "1", &url],
    );
    assert_eq!(code, 1);
}

#[test]
fn chapter10s_open_client_sees_the_stall_the_closed_one_misses() {
    let server = start_with(
        "chapter4_blocking",
        &["--port", "0", "--handler", "std-sleep"],
    )
    .unwrap();
    let url = format!("{}/", server.base_url);
    let (code, out) = common::run_example("exercise10_stall", &["--duration", "3s", &url]);
    assert_eq!(code, 0, "{out}");
    let figure = |client: &str, name: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(client))
            .unwrap_or_else(|| panic!("{out}"));
        line.split(", ")
            .find_map(|part| part.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" ms").parse().ok())
            .unwrap_or_else(|| panic!("{out}"))
    };
    // Both clients saw one request take the stall's second…
    assert!(figure("closed", "slowest") >= 900.0, "{out}");
    assert!(figure("open", "slowest") >= 900.0, "{out}");
    // …but at 200 a second, a second's requests (a third of the run) fell due
    // during the stall, and half of them waited over 500 ms: the open p99.
    assert!(figure("open", "p99") >= 500.0, "{out}");
    // The closed client sent nothing meanwhile: its p99 is a normal hello.
    assert!(figure("closed", "p99") < 500.0, "{out}");
}

#[test]
fn chapter11s_solution_spreads_connections_over_its_loops() {
    let server = start_with("exercise11_loop_per_core", &["--port", "0", "--loops", "2"]).unwrap();
    let loops: std::collections::BTreeSet<String> = (0..32)
        .map(|_| common::get_text(&server, "/loop").1)
        .collect();
    // 32 connections from 32 ports: the kernel's hash puts them all on one
    // socket once in two billion runs.
    assert_eq!(loops.len(), 2, "{loops:?}");
    assert!(threads(server.pid()) >= 3);
}
