//! Chapters 2 and 4: the capacity each design promises, on small cases whose
//! timing physics makes robust (lower bounds from sleeps, wide upper margins).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use evt::load::{self, LoadConfig, Target};
use evt_book::reproduce::harness::{ServerProcess, http_get};

mod common;
use common::{example, start_with};

fn server(example: &str, args: &[&str]) -> ServerProcess {
    let mut all = vec!["--port", "0"];
    all.extend_from_slice(args);
    start_with(example, &all).unwrap_or_else(|error| panic!("{error}"))
}

fn run(server: &ServerProcess, path: &str, requests: u64, connections: usize) -> load::Results {
    let target = Target::parse(&server.url(path)).unwrap();
    let results = load::run(LoadConfig::new(target, requests, connections)).unwrap();
    assert_eq!(results.completed(), requests, "{path}");
    results
}

fn report(server: &ServerProcess) -> serde_json::Value {
    serde_json::from_str(&http_get(&server.base_url, "/report").unwrap()).unwrap()
}

#[test]
fn two_workers_of_two_threads_work_on_four_requests_at_once() {
    for share in ["accept", "reuseport"] {
        for pool in ["ready", "per-connection"] {
            let server = server(
                "chapter2_threads",
                &[
                    "--workers",
                    "2",
                    "--threads",
                    "2",
                    "--share",
                    share,
                    "--pool",
                    pool,
                    "--keep-alive",
                    "0",
                ],
            );
            // 8 requests of 200 ms on 4 slots: two rounds (400 ms) at least.
            // A shared socket hands each connection to a free thread: well
            // under the four rounds of one worker's 2 slots. SO_REUSEPORT
            // hashes connections to workers whether or not they are free:
            // all 8 on one worker is 4 rounds, and no more.
            let took = run(&server, "/sleep?ms=200", 8, 8).duration;
            let most = if share == "accept" { 700 } else { 1100 };
            assert!(
                took >= Duration::from_millis(400) && took < Duration::from_millis(most),
                "{share}/{pool}: {took:?}"
            );
            let workers = report(&server)["workers"].as_array().unwrap().clone();
            assert_eq!(workers.len(), 2, "{share}/{pool}");
            let answered: u64 = workers
                .iter()
                .map(|w| w["requests"].as_u64().unwrap())
                .sum();
            assert_eq!(answered, 8, "{share}/{pool}: {workers:?}");
        }
    }
}

#[test]
fn kept_alive_connections_stay_with_the_worker_that_accepted_them() {
    let server = server("chapter2_threads", &["--workers", "2", "--threads", "2"]);
    run(&server, "/sleep?ms=10", 40, 4);
    let workers = report(&server)["workers"].as_array().unwrap().clone();
    let accepted: u64 = workers
        .iter()
        .map(|w| w["accepted"].as_u64().unwrap())
        .sum();
    // Four connections carried forty requests; the report's own is not counted.
    assert_eq!(accepted, 4, "{workers:?}");
}

#[test]
fn a_thread_per_connection_starves_connections_beyond_its_threads() {
    // Two threads, each held by an idle kept-alive connection (keep-alive 1 s):
    // a third connection is answered only when one of them times out.
    let per_connection = server(
        "chapter2_threads",
        &[
            "--threads",
            "2",
            "--pool",
            "per-connection",
            "--keep-alive",
            "1",
        ],
    );
    let starved = run(&per_connection, "/sleep?ms=10", 3, 3)
        .slowest()
        .unwrap();
    assert!(starved >= Duration::from_millis(1000), "{starved:?}");
    let ready = server("chapter2_threads", &["--threads", "2", "--keep-alive", "1"]);
    let prompt = run(&ready, "/sleep?ms=10", 3, 3).slowest().unwrap();
    assert!(prompt < starved / 2, "{prompt:?} vs {starved:?}");
}

#[test]
fn no_worker_outlives_its_parent_however_it_ends() {
    for signal in [libc::SIGKILL, libc::SIGINT, libc::SIGTERM] {
        let mut parent = Command::new(example("chapter2_threads"))
            .args(["--port", "0", "--workers", "3"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(parent.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("listening on"), "{line}");
        let workers = evt_book::reproduce::sample::descendants(parent.id());
        assert_eq!(workers.len(), 3, "{workers:?}");
        // Only the parent is signalled (SIGKILL gives it no chance to clean up).
        // SAFETY: kill only sends a signal.
        unsafe { libc::kill(parent.id() as libc::pid_t, signal) };
        parent.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while workers
            .iter()
            .any(|&pid| evt_book::reproduce::sample::is_alive(pid))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let alive: Vec<u32> = workers
            .into_iter()
            .filter(|&pid| evt_book::reproduce::sample::is_alive(pid))
            .collect();
        assert!(
            alive.is_empty(),
            "signal {signal}: orphan workers {alive:?}"
        );
    }
}

#[test]
fn bad_flags_are_one_line_and_a_nonzero_exit() {
    for (name, flags) in [
        ("chapter2_threads", &["--workers", "0"][..]),
        ("chapter2_threads", &["--threads", "many"]),
        ("chapter2_threads", &["--share", "fork"]),
        ("chapter4_blocking", &["--handler", "nap"]),
        ("chapter4_blocking", &["--worker-threads", "0"]),
    ] {
        let output = Command::new(example(name)).args(flags).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{name} {flags:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error:"), "{name} {flags:?}: {stderr}");
    }
}

#[test]
fn a_blocking_sleep_in_an_async_handler_serialises_the_loop() {
    let blocked = server("chapter4_blocking", &["--handler", "std-sleep"]);
    let serial = run(&blocked, "/sleep?ms=100", 4, 4).duration;
    assert!(serial >= Duration::from_millis(400), "{serial:?}");
    // The lag probe saw the loop's thread gone for a whole sleep.
    let lag = report(&blocked)["max_lag_ms"].as_f64().unwrap();
    assert!(lag >= 40.0, "{lag}");

    for fix in [
        &["--handler", "tokio-sleep"][..],
        &["--handler", "spawn-blocking"],
    ] {
        let fixed = server("chapter4_blocking", fix);
        let overlapped = run(&fixed, "/sleep?ms=100", 4, 4).duration;
        assert!(overlapped >= Duration::from_millis(100), "{fix:?}");
        assert!(
            overlapped < serial / 2,
            "{fix:?}: {overlapped:?} vs {serial:?}"
        );
    }

    // Two loop threads: two blocked at a time, so half the serial time.
    let two = server(
        "chapter4_blocking",
        &[
            "--handler",
            "std-sleep",
            "--runtime",
            "multi",
            "--worker-threads",
            "2",
        ],
    );
    let paired = run(&two, "/sleep?ms=200", 4, 4).duration;
    assert!(
        paired >= Duration::from_millis(400) && paired < Duration::from_millis(700),
        "{paired:?}"
    );
}

#[test]
fn cpu_work_takes_its_time_on_the_loop() {
    let cpu = server("chapter4_blocking", &["--handler", "cpu"]);
    // Two requests of 50 ms of CPU each on one thread: at least 100 ms.
    let took = run(&cpu, "/sleep?ms=50", 2, 2).duration;
    assert!(took >= Duration::from_millis(100), "{took:?}");
}

/// Chapter 6's client in `mode`, 8 requests of 100 ms; its JSON report.
fn client(server: &ServerProcess, mode: &str) -> serde_json::Value {
    let output = Command::new(example("chapter6_client"))
        .args(["--mode", mode, "-n", "8", "--json"])
        .arg(server.url("/sleep?ms=100"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{mode}: {output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_client_modes_agree_with_the_model_against_capacity_two() {
    let server = server("chapter2_threads", &["--threads", "2"]);
    // Sequential: eight 100 ms requests one after another.
    let sequential = client(&server, "sequential");
    assert!(
        sequential["duration_s"].as_f64().unwrap() >= 0.8,
        "{sequential}"
    );
    assert_eq!(sequential["requests"]["completed"], 8);
    // Threads and futures: two at a time on the server, four rounds of 100 ms
    // (at least 0.4 s), well under the eight rounds of one at a time.
    for mode in ["threads", "async"] {
        let report = client(&server, mode);
        let took = report["duration_s"].as_f64().unwrap();
        assert!((0.4..0.7).contains(&took), "{mode}: {report}");
    }
}

#[test]
fn the_client_says_what_is_wrong_in_one_line() {
    let refused = Command::new(example("chapter6_client"))
        .args(["--mode", "async", "-n", "2", "http://127.0.0.1:9/"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    for bad in [
        &["ftp://example.com/"][..],
        &["--mode", "fibers", "http://127.0.0.1:9/"],
    ] {
        let output = Command::new(example("chapter6_client"))
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).starts_with("error:"),
            "{bad:?}"
        );
    }
}
