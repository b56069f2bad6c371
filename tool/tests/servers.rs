//! The chapter servers, run as the reader runs them: as their own processes.
//! (`cargo test` builds the examples first.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use evt::load::{self, LoadConfig, Target};
use evt_book::reproduce::harness::ServerProcess;
use evt_book::reproduce::model::Capacity;

mod common;
use common::{example, start, start_with};

fn load(server: &ServerProcess, path: &str, requests: u64, connections: usize) -> load::Results {
    let target = Target::parse(&server.url(path)).unwrap();
    load::run(LoadConfig::new(target, requests, connections)).unwrap()
}

/// Sends raw bytes and returns what comes back until the server closes
/// (requests here say `Connection: close`; bad ones get closed anyway).
fn raw(server: &ServerProcess, bytes: &[u8]) -> String {
    let addr = server.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // No half-close: hyper (like many servers) takes EOF mid-request as the client leaving.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[test]
fn chapter1_serialises_five_requests() {
    let server = start("chapter1_blocking");
    let results = load(&server, "/sleep?ms=100", 5, 5);
    assert_eq!(results.completed(), 5);
    // One thread, five 100 ms sleeps one after another: physics says ≥ 500 ms.
    assert!(
        results.duration >= Duration::from_millis(500),
        "{:?}",
        results.duration
    );
    // And the last in line waited for the four before it.
    assert!(results.slowest().unwrap() >= Duration::from_millis(500));
}

#[test]
fn chapter3_overlaps_five_requests() {
    let server = start("chapter3_async");
    let results = load(&server, "/sleep?ms=200", 5, 5);
    assert_eq!(results.completed(), 5);
    assert!(results.fastest().unwrap() >= Duration::from_millis(200));
    // All five sleep at once: about 200 ms, far under the 1 s one thread
    // would need (the margin is for a machine busy with other work).
    assert!(
        results.duration < Duration::from_millis(600),
        "{:?}",
        results.duration
    );
}

/// Sends a 1 s `/sleeper`, then times `/activer` sent while it sleeps. The
/// sleeper's bytes are in the server's socket before the activer connects,
/// so a server that takes connections in order takes the sleeper first,
/// however slowly its thread gets to run.
fn activer_while_sleeping(server: &ServerProcess) -> Duration {
    let authority = server.base_url.trim_start_matches("http://");
    let mut sleeper = std::net::TcpStream::connect(authority).unwrap();
    sleeper
        .write_all(b"GET /sleeper?ms=1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let activer = load(server, "/activer", 1, 1);
    let mut answer = String::new();
    sleeper.read_to_string(&mut answer).unwrap();
    assert!(status_line(&answer).contains("200"), "{answer}");
    assert_eq!(activer.completed(), 1);
    activer.slowest().unwrap()
}

#[test]
fn a_sleeper_stalls_the_activer_on_one_thread_only() {
    let blocking = start("chapter1_blocking");
    let looping = start("chapter3_async");
    // On one blocking thread the activer waits out the sleeper (≈ 1 s).
    let stalled = activer_while_sleeping(&blocking);
    assert!(stalled >= Duration::from_millis(500), "{stalled:?}");
    // On the loop it is answered while the sleeper sleeps.
    let prompt = activer_while_sleeping(&looping);
    assert!(prompt < stalled / 2, "{prompt:?} vs {stalled:?}");
}

#[test]
fn bad_requests_are_answered_and_the_servers_keep_serving() {
    for (example, _) in evt_book::reproduce::servers_here() {
        let example = example.name;
        let server = start(example);
        let big_header = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(9000)
        );
        let cases: [(&[u8], &[&str]); 7] = [
            (b"GET /sleep?ms=abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &["400"]),
            (b"GET /work?us=lots HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &["400"]),
            (b"GET /sleep?ms=60001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &["400"]),
            (b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &["404"]),
            (b"POST /sleep HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", &["405"]),
            (big_header.as_bytes(), &["431", ""]),
            (b"\x00\xff garbage \x01\r\n\r\n", &["400", ""]),
        ];
        for (request, allowed) in cases {
            let answer = raw(&server, request);
            let status = status_line(&answer);
            assert!(
                allowed.iter().any(|code| if code.is_empty() {
                    status.is_empty()
                } else {
                    status.contains(code)
                }),
                "{example}: {:?} got {status:?}",
                String::from_utf8_lossy(&request[..request.len().min(40)])
            );
        }
        let still = raw(
            &server,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(status_line(&still).contains("200"), "{example}: {still:?}");
        assert!(still.ends_with("Hello\n"), "{example}: {still:?}");
        // The CPU route, on every server (chapter 11).
        let worked = raw(
            &server,
            b"GET /work?us=300 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            status_line(&worked).contains("200"),
            "{example}: {worked:?}"
        );
        assert!(worked.contains("worked 300 µs"), "{example}: {worked:?}");
    }
}

#[test]
fn a_taken_port_is_one_clear_line() {
    for (example, _) in evt_book::reproduce::servers_here() {
        let example = example.name;
        let first = start(example);
        let port = first.base_url.rsplit(':').next().unwrap().to_string();
        let started = Instant::now();
        let error = start_with(example, &["--port", &port])
            .err()
            .expect("a second server on a taken port must fail");
        assert!(
            error.contains(&format!("port {port} on 127.0.0.1 is already in use")),
            "{error}"
        );
        assert!(error.contains("--port"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5), "no hang");
    }
}

#[test]
fn servers_explain_their_flags() {
    for (server_example, _) in evt_book::reproduce::book_servers() {
        let example_name = server_example.name;
        let output = std::process::Command::new(example(example_name))
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success());
        assert!(help.contains("--port") && help.contains("--host"), "{help}");
        assert!(help.contains("[default: 127.0.0.1]"), "{help}");
        let bad = std::process::Command::new(example(example_name))
            .args(["--port", "not-a-port"])
            .output()
            .unwrap();
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).starts_with("error:"));
    }
}

#[test]
fn without_flags_a_server_listens_on_its_default_port() {
    for (example, server) in evt_book::reproduce::servers_here() {
        let port = server.default_port;
        match start_with(example.name, &[]) {
            Ok(running) => assert_eq!(running.base_url, format!("http://127.0.0.1:{port}")),
            // Something (a reader's own server) has the port: the error must say which.
            Err(error) => assert!(
                error.contains(&format!("port {port} on 127.0.0.1")),
                "{error}"
            ),
        }
    }
}

#[test]
fn the_experiments_know_each_example_default_port() {
    for (server_example, server) in evt_book::reproduce::book_servers() {
        let output = std::process::Command::new(example(server_example.name))
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains(&format!("[default: {}]", server.default_port)),
            "{}: {help}",
            server_example.name
        );
    }
}

/// hey's, oha's and a browser's pattern, with plain sockets: open `count`
/// connections, send one request on each, and keep every one open until all
/// are answered (or `deadline` passes). Returns how many were answered, and
/// when the last one was.
fn held_connections(
    server: &ServerProcess,
    path: &str,
    count: usize,
    deadline: Duration,
) -> (usize, Duration) {
    let addr = server.base_url.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let mut streams: Vec<TcpStream> = (0..count)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    let (mut answered, mut last) = (0, Duration::ZERO);
    for stream in &mut streams {
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        let mut first = [0u8; 12];
        if stream.read_exact(&mut first).is_ok() && first.starts_with(b"HTTP/1.1 200") {
            answered += 1;
            last = started.elapsed();
        }
    }
    // Only now, with every answer in (or the deadline past), do the connections close.
    drop(streams);
    (answered, last)
}

#[test]
fn every_server_answers_clients_that_hold_their_connections_open() {
    const DELAY_MS: u64 = 20;
    for (example, server) in evt_book::reproduce::servers_here() {
        let example = example.name;
        let running = start_with(example, &["--port", "0"]).unwrap();
        for count in [5u64, 16, 64] {
            // The model: `capacity` at a time, so ⌈count / capacity⌉ delays.
            let rounds = match server.capacity {
                Capacity::Limited(slots) => count.div_ceil(slots as u64),
                Capacity::Unlimited => 1,
            };
            let model = Duration::from_millis(DELAY_MS * rounds);
            let deadline = model + Duration::from_secs(3);
            let (answered, last) = held_connections(
                &running,
                &format!("/sleep?ms={DELAY_MS}"),
                count as usize,
                deadline,
            );
            assert_eq!(
                answered, count as usize,
                "{example}: {answered} of {count} held connections answered within {deadline:?}"
            );
            assert!(
                last >= model,
                "{example}: {last:?} is faster than the model's {model:?}"
            );
        }
    }
}

#[test]
fn every_server_answers_http_1_0_with_a_status() {
    // ab speaks HTTP/1.0 and counts a silent close as a complete request.
    for (example, _) in evt_book::reproduce::servers_here() {
        let server = start(example.name);
        let answer = raw(&server, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
        let status = status_line(&answer);
        assert!(
            status.starts_with("HTTP/1.") && (status.contains("200") || status.contains("505")),
            "{}: {answer:?}",
            example.name
        );
    }
}

#[test]
fn chapter9s_report_says_which_runtime_and_how_big_a_connection_is() {
    for runtime in ["ours", "tokio"] {
        let server = start_with("chapter9_runtime", &["--port", "0", "--runtime", runtime])
            .unwrap_or_else(|error| panic!("{error}"));
        let answer = raw(
            &server,
            b"GET /report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(status_line(&answer).contains("200"), "{runtime}: {answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        let report: evt::report::RuntimeReport = serde_json::from_str(body.trim())
            .unwrap_or_else(|error| panic!("{runtime}: {error}: {body}"));
        assert_eq!(report.runtime, runtime);
        // The connection asking is itself a future the accept loop built:
        // at least its 1 KiB read buffer.
        assert!(
            report.connection_future_bytes >= 1024,
            "{runtime}: {report:?}"
        );
        assert!(report.trace.is_empty(), "no trace unless asked for");
    }
}

#[test]
fn chapter9s_trace_follows_a_request_from_spawn_to_ready() {
    use evt::report::{Step, WakeCause};
    let server = start_with("chapter9_runtime", &["--port", "0", "--trace"])
        .unwrap_or_else(|error| panic!("{error}"));
    let results = load(&server, "/sleep?ms=20", 1, 1);
    assert_eq!(results.completed(), 1);
    let answer = raw(
        &server,
        b"GET /report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let report: evt::report::RuntimeReport = serde_json::from_str(body.trim()).unwrap();
    let steps: Vec<Step> = report.trace.iter().map(|s| s.step).collect();
    let at = |wanted: Step| {
        steps
            .iter()
            .position(|&s| s == wanted)
            .unwrap_or_else(|| panic!("no {wanted:?} in {steps:?}"))
    };
    // The walk: spawned, polled, a timer, Pending, woken by the timer,
    // polled again, and at last Ready.
    let spawned = at(Step::Spawned { task: 1 });
    let timer = at(Step::Timer { task: 1, ms: 20 });
    let woken = at(Step::Woke {
        task: 1,
        by: WakeCause::Timer,
    });
    let ready = at(Step::Polled {
        task: 1,
        ready: true,
    });
    assert!(
        spawned < timer && timer < woken && woken < ready,
        "{steps:?}"
    );
    assert!(
        steps[timer..woken]
            .iter()
            .any(|s| matches!(s, Step::Slept { .. })),
        "the loop slept in epoll while the timer ran: {steps:?}"
    );
    // Time only goes forward.
    assert!(report.trace.windows(2).all(|w| w[0].at_us <= w[1].at_us));
}

#[test]
fn chapter9s_trace_is_refused_on_tokio_in_one_line() {
    let output = std::process::Command::new(example("chapter9_runtime"))
        .args(["--port", "0", "--runtime", "tokio", "--trace"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error:"), "{stderr}");
}

/// A flag that would change nothing with the other flags given is refused in
/// one line (exit 2), never taken and ignored.
#[test]
fn a_flag_that_would_change_nothing_is_refused_in_one_line() {
    for (example, args) in [
        ("chapter4_blocking", &["--worker-threads", "2"][..]),
        (
            "chapter4_blocking",
            &["--runtime", "current", "--worker-threads", "2"],
        ),
        (
            "chapter2_threads",
            &["--pool", "per-connection", "--greedy-accept"],
        ),
        (
            "chapter2_threads",
            &["--share", "reuseport", "--greedy-accept"],
        ),
        ("chapter7_proxy", &["--model", "async", "--pool", "4"]),
        ("chapter9_runtime", &["--runtime", "tokio", "--trace"]),
        ("chapter11_cores", &["--model", "per-core", "--fair-accept"]),
        ("chapter12_overload", &["--queue-timeout", "1s"]),
    ] {
        let output = std::process::Command::new(self::example(example))
            .args(["--port", "0"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{example} {args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{example} {args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: --"),
            "{example} {args:?}: {stderr}"
        );
    }
}

#[test]
fn chapter9s_handler_overlaps_requests_on_both_runtimes() {
    for runtime in ["ours", "tokio"] {
        let server = start_with("chapter9_runtime", &["--port", "0", "--runtime", runtime])
            .unwrap_or_else(|error| panic!("{error}"));
        let results = load(&server, "/sleep?ms=200", 5, 5);
        assert_eq!(results.completed(), 5, "{runtime}");
        assert!(results.fastest().unwrap() >= Duration::from_millis(200));
        // All five sleep at once: about 200 ms, far under the 1 s of one at a time.
        assert!(
            results.duration < Duration::from_millis(600),
            "{runtime}: {:?}",
            results.duration
        );
        let hello = raw(
            &server,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(status_line(&hello).contains("200"), "{runtime}: {hello}");
    }
}

#[test]
fn chapter11s_three_models_say_how_their_workers_split_the_work() {
    for (model, workers, threads_per_worker) in
        [("steal", 1, 2), ("per-core", 2, 1), ("processes", 2, 1)]
    {
        let server = start_with(
            "chapter11_cores",
            &["--port", "0", "--model", model, "--workers", "2"],
        )
        .unwrap_or_else(|error| panic!("{model}: {error}"));
        let results = load(&server, "/work?us=500", 40, 8);
        assert_eq!(results.completed(), 40, "{model}");
        // Every answer cost at least the CPU it asked for.
        assert!(results.fastest().unwrap() >= Duration::from_micros(500));
        let answer = raw(
            &server,
            b"GET /report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        let report: evt::report::WorkersReport = serde_json::from_str(body.trim())
            .unwrap_or_else(|error| panic!("{model}: {error}: {body}"));
        assert_eq!(report.workers.len(), workers, "{model}: {report:?}");
        assert_eq!(report.threads_per_worker, threads_per_worker, "{model}");
        let answered: u64 = report.workers.iter().map(|w| w.requests).sum();
        assert!(answered >= 40, "{model}: {report:?}");
    }
}

#[test]
fn chapter11s_fair_accept_spreads_a_burst_and_needs_processes() {
    let server = start_with(
        "chapter11_cores",
        &[
            "--port",
            "0",
            "--model",
            "processes",
            "--workers",
            "2",
            "--fair-accept",
        ],
    )
    .unwrap_or_else(|error| panic!("{error}"));
    // Eight connections at once, each held for its whole run.
    let results = load(&server, "/sleep?ms=100", 16, 8);
    assert_eq!(results.completed(), 16);
    let answer = raw(
        &server,
        b"GET /report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let report: evt::report::WorkersReport = serde_json::from_str(body.trim()).unwrap();
    // A worker at its share waits; the other takes the next connection.
    // Two workers checking at the same moment may both take one: a margin.
    for worker in &report.workers {
        assert!(worker.accepted >= 2, "{report:?}");
    }
    let output = std::process::Command::new(example("chapter11_cores"))
        .args(["--port", "0", "--model", "steal", "--fair-accept"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
