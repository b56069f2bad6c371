//! Chapter 8 in small: a couple of hundred connections held open, busy or
//! idle, against a thread per connection and the minimal loop, with the
//! server sampled; and the load client's `--hold` and steady rate.

use std::process::Command;
use std::time::Duration;

use evt::load::{self, LoadConfig, Stop, Target};
use evt_book::reproduce::harness::ServerProcess;
use evt_book::reproduce::sample::Sampler;

mod common;

const HELD: usize = 200;

fn config(server: &ServerProcess, path: &str, requests: u64, connections: usize) -> LoadConfig {
    let mut config = LoadConfig::new(
        Target::parse(&server.url(path)).unwrap(),
        requests,
        connections,
    );
    config.connect_rate = Some(2000);
    config
}

/// `HELD` connections, each sending one request and then idle for `idle`.
fn hold_idle(server: &ServerProcess, idle: Duration) -> load::Results {
    let mut config = config(server, "/", HELD as u64, HELD);
    config.hold = Some(idle);
    load::run(config).unwrap()
}

#[test]
fn a_thread_per_connection_runs_a_thread_for_every_busy_connection() {
    let server = common::start("chapter8_threads");
    let sampler = Sampler::start(server.pid());
    let mut config = config(&server, "/sleep?ms=50", 0, HELD);
    config.stop = Stop::AfterDuration(Duration::from_millis(300));
    let results = load::run(config).unwrap();
    assert_eq!(results.failed(), 0, "{:?}", results.record.failures);
    // Every connection sent at least its first 50 ms request.
    assert!(results.completed() >= HELD as u64);
    assert!(results.duration >= Duration::from_millis(50));
    let Some(sampler) = sampler else {
        return; // no /proc here
    };
    let seen = sampler.finish();
    // The main thread and one per connection.
    assert!(seen.peak_threads > HELD as u64, "{seen:?}");
    // Each thread reserves its stack (2 MiB by default) as address space.
    assert!(
        seen.vm_per_connection_kib(HELD) >= 1024.0,
        "{} KiB",
        seen.vm_per_connection_kib(HELD)
    );
}

#[test]
fn the_steady_rate_of_a_timed_run_is_each_connections_pace_summed() {
    let server = common::start("chapter8_minimal_loop");
    let mut config = config(&server, "/sleep?ms=200", 0, 20);
    config.stop = Stop::AfterDuration(Duration::from_millis(1200));
    let results = load::run(config).unwrap();
    let steady = results.steady_rps().expect("a timed run has a steady rate");
    // Twenty connections each waiting 200 ms: at most 100 a second (Little's
    // law), and not below half of it unless every request were late by a
    // whole extra sleep.
    assert!(steady <= 100.0 * 1.01, "{steady}");
    assert!(steady >= 100.0 * 0.5, "{steady}");
    // A run of a count has none: its connections stop at different times.
    let counted = load::run(config_of_count(&server)).unwrap();
    assert_eq!(counted.steady_rps(), None);
}

fn config_of_count(server: &ServerProcess) -> LoadConfig {
    config(server, "/", 40, 20)
}

#[test]
fn idle_connections_stay_open_on_the_minimal_loop_and_cost_it_little_memory() {
    let server = common::start("chapter8_minimal_loop");
    let sampler = Sampler::start(server.pid());
    let results = hold_idle(&server, Duration::from_millis(300));
    assert_eq!(results.completed(), HELD as u64);
    let hold = results.hold.expect("a hold phase");
    assert_eq!((hold.held, hold.still_open), (HELD as u64, HELD as u64));
    // The hold is not part of the run's time.
    assert!(results.duration < Duration::from_millis(300), "{results:?}");
    let Some(sampler) = sampler else {
        return;
    };
    let seen = sampler.finish();
    assert_eq!(seen.peak_threads, 1, "{seen:?}");
    // The chapter's goal: at most 2 KiB per held connection (a waiting
    // connection owns no buffer).
    let per_connection = seen.rss_per_connection_kib(HELD);
    assert!(per_connection <= 2.0, "{per_connection} KiB per connection");
}

#[test]
fn a_thread_closes_a_connection_idle_past_its_keep_alive_and_the_hold_counts_it() {
    let server = common::start_with("chapter8_threads", &["--port", "0", "--keep-alive", "1"])
        .unwrap_or_else(|error| panic!("{error}"));
    let results = hold_idle(&server, Duration::from_millis(1500));
    let hold = results.hold.expect("a hold phase");
    assert_eq!((hold.held, hold.still_open), (HELD as u64, 0));
    // Within its keep-alive, the same server holds them all.
    let results = hold_idle(&server, Duration::from_millis(200));
    let hold = results.hold.expect("a hold phase");
    assert_eq!(hold.still_open, HELD as u64);
}

#[test]
fn hold_needs_kept_alive_connections_and_a_duration() {
    for bad in [
        &["--hold", "1s", "--no-keepalive"][..],
        &["--hold", "0s"][..],
        &["--hold", "soon"][..],
    ] {
        let output = Command::new(common::example("load"))
            .args(["-n", "1", "-c", "1"])
            .args(bad)
            .arg("http://127.0.0.1:9/")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--hold"), "{bad:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
