//! The load client measured against servers whose behaviour is known.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use evt::load::{self, ErrorKind, LoadConfig, Stop, Summary, Target};
use evt_book::reproduce::harness::ServerProcess;

mod common;

fn chapter3() -> ServerProcess {
    common::start("chapter3_async")
}

fn config(url: &str, requests: u64, connections: usize) -> LoadConfig {
    LoadConfig::new(Target::parse(url).unwrap(), requests, connections)
}

/// A loopback server that treats every connection with `behaviour`, and counts them.
fn fake_server(behaviour: fn(TcpStream)) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || behaviour(stream));
        }
    });
    (addr, accepted)
}

/// Reads one request head; false when the client has gone.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<bool> {
    let mut close = false;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line.to_ascii_lowercase().starts_with("connection: close") {
            close = true;
        }
        if line == "\r\n" {
            return Some(close);
        }
    }
}

/// Answers every request on the connection with `response`, written in
/// `pieces` with a pause between them; closes after one answer if `once`.
fn answer_with(stream: TcpStream, response: &[u8], pieces: usize, once: bool) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some(close) = read_request(&mut reader) {
        for piece in response.chunks(response.len().div_ceil(pieces)) {
            let _ = writer.write_all(piece);
            if pieces > 1 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        if close || once {
            return;
        }
    }
}

/// Answers `OK` to every request on the connection, keep-alive or not.
fn answer_ok(stream: TcpStream) {
    answer_with(
        stream,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
        1,
        false,
    );
}

/// Every one of `requests` completed, and none failed (the failures say why if not).
fn assert_all_completed(results: &load::Results, requests: u64) {
    assert_eq!(
        (results.completed(), results.failed()),
        (requests, 0),
        "{:?}",
        results.record.failures
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_50_ms_endpoint_reads_50_ms() {
    let server = chapter3();
    let results = load::run(config(&server.url("/sleep?ms=50"), 40, 4)).unwrap();
    assert_eq!(results.completed(), 40);
    let fastest = results.fastest().unwrap();
    let median = results.latency_at(0.5).unwrap();
    // Nothing answers a 50 ms sleep early; on loopback it should be late by little.
    assert!(fastest >= Duration::from_millis(50), "{fastest:?}");
    // Late by scheduling only: well under a second round of the sleep, even
    // with every core busy with other work.
    assert!(median < Duration::from_millis(100), "{median:?}");
    // Ten rounds of four at ≈ 50 ms each: at least 500 ms.
    assert!(results.duration >= Duration::from_millis(500));
}

#[test]
fn every_request_is_accounted_for_exactly() {
    let server = chapter3();
    for (requests, connections) in [(37, 5), (1, 1), (64, 64)] {
        let results = load::run(config(&server.url("/"), requests, connections)).unwrap();
        let summary = Summary::of(&results);
        assert_eq!(summary.requests.sent, requests);
        assert_eq!(summary.requests.completed, requests);
        assert_eq!(summary.requests.failed, 0);
        assert_eq!(summary.status_codes.get("200"), Some(&requests));
    }
    let not_found = load::run(config(&server.url("/nowhere"), 10, 2)).unwrap();
    // A 404 is a whole response: completed, counted by status.
    assert_eq!(not_found.completed(), 10);
    assert_eq!(not_found.record.status_codes[&404], 10);
}

#[test]
fn a_duration_run_stops_by_itself() {
    let server = chapter3();
    let mut timed = config(&server.url("/sleep?ms=20"), 1, 2);
    timed.stop = Stop::AfterDuration(Duration::from_millis(300));
    let results = load::run(timed).unwrap();
    assert!(results.duration >= Duration::from_millis(300));
    assert!(
        results.duration < Duration::from_secs(3),
        "{:?}",
        results.duration
    );
    // Two connections, 20 ms each, for 300 ms: about 30; at the least a handful.
    assert!(results.completed() >= 6, "{}", results.completed());
    assert_eq!(results.failed(), 0);
}

#[test]
fn refused_connections_fail_fast_and_are_counted() {
    let url = format!("http://127.0.0.1:{}/", free_port());
    let started = Instant::now();
    let results = load::run(config(&url, 20, 4)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(results.completed(), 0);
    assert_eq!(results.failed(), 20);
    assert_eq!(results.record.failures[&ErrorKind::Refused].count, 20);
}

#[test]
fn dropped_and_garbled_connections_are_failures_by_kind() {
    let (dropped, _) = fake_server(drop);
    let results = load::run(config(&format!("http://{dropped}/"), 6, 2)).unwrap();
    assert_eq!(results.failed(), 6);
    assert_eq!(results.sent(), 6);
    let kinds: Vec<_> = results.record.failures.keys().copied().collect();
    assert!(
        kinds
            .iter()
            .all(|kind| matches!(kind, ErrorKind::Closed | ErrorKind::Reset)),
        "{kinds:?}"
    );

    let (garbled, _) = fake_server(|mut stream| {
        let _ = stream.read(&mut [0u8; 1024]);
        let _ = stream.write_all(b"this is not HTTP at all\r\n\r\n");
    });
    let results = load::run(config(&format!("http://{garbled}/"), 4, 2)).unwrap();
    assert_eq!(results.failed(), 4);
    assert_eq!(results.record.failures[&ErrorKind::BadResponse].count, 4);
}

#[test]
fn a_silent_server_times_out() {
    let (silent, _) = fake_server(|stream| {
        std::thread::sleep(Duration::from_secs(3));
        drop(stream);
    });
    let mut patient = config(&format!("http://{silent}/"), 2, 2);
    patient.timeout = Duration::from_millis(200);
    let started = Instant::now();
    let results = load::run(patient).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(results.record.failures[&ErrorKind::Timeout].count, 2);
}

/// A server that reads and never answers (for 3 s).
fn never_answer(stream: TcpStream) {
    std::thread::sleep(Duration::from_secs(3));
    drop(stream);
}

#[test]
fn a_timed_out_request_counts_in_the_percentiles_when_the_client_gave_up() {
    let (silent, _) = fake_server(never_answer);
    let mut patient = config(&format!("http://{silent}/"), 4, 2);
    patient.timeout = Duration::from_millis(200);
    let results = load::run(patient).unwrap();
    assert_eq!(results.completed(), 0);
    assert_eq!(results.record.timed_out, 4);
    // Each waited its whole timeout: that is in the percentiles, a floor.
    let p50 = results
        .latency_at(0.5)
        .expect("timeouts are in the latencies");
    assert!(p50 >= Duration::from_millis(200), "{p50:?}");
    let summary = Summary::of(&results);
    assert_eq!(summary.timed_out_in_latency, 4);
    assert_eq!(summary.left_out_of_latency, 0);
    let text = load::report::text(&results);
    assert!(
        text.contains("4 timed out, counted when the client gave up"),
        "{text}"
    );
}

#[test]
fn an_open_runs_timeout_counts_from_when_the_request_was_due() {
    // One connection, a server that never answers, five requests due
    // 10 ms apart, a 200 ms timeout. The first waits its 200 ms; the others
    // waited for the connection meanwhile, and a user who came when they
    // were due gives up 200 ms after that, not 200 ms after the send.
    let (silent, _) = fake_server(never_answer);
    let mut open = config(&format!("http://{silent}/"), 5, 1);
    open.rate = Some(100.0);
    open.timeout = Duration::from_millis(200);
    let results = load::run(open).unwrap();
    assert_eq!(results.record.timed_out, 5);
    let slowest = results.slowest().unwrap();
    assert!(slowest >= Duration::from_millis(200), "{slowest:?}");
    // Counted from each send, the last would have waited about 960 ms from
    // when it was due (four timeouts before it, then its own); from when it
    // was due, about 200 ms. The bound leaves a busy machine 400 ms.
    assert!(slowest < Duration::from_millis(600), "{slowest:?}");
}

#[test]
fn a_run_that_overruns_its_length_says_by_how_much() {
    let (silent, _) = fake_server(never_answer);
    let mut timed = config(&format!("http://{silent}/"), 1, 1);
    timed.stop = Stop::AfterDuration(Duration::from_millis(100));
    timed.timeout = Duration::from_millis(600);
    let results = load::run(timed).unwrap();
    // The one request sent in time waits its 600 ms timeout.
    let over = results.overran().expect("a 100 ms run that took 600 ms");
    assert!(over >= Duration::from_millis(400), "{over:?}");
    assert!(Summary::of(&results).overran_s.is_some());
    assert!(load::report::text(&results).contains("Overran:"));
}

#[test]
fn poisson_arrivals_send_what_their_seed_makes_due() {
    use evt::load::schedule::{Arrivals, due_within};
    let (addr, _) = fake_server(answer_ok);
    let arrivals = Arrivals::Poisson { seed: 11 };
    let mut open = config(&format!("http://{addr}/"), 1, 8);
    open.rate = Some(400.0);
    open.arrivals = arrivals;
    let length = Duration::from_millis(500);
    open.stop = Stop::AfterDuration(length);
    let results = load::run(open).unwrap();
    assert_eq!(results.sent(), due_within(400.0, arrivals, length));
    // The run lasts its schedule, even when the last arrival came early.
    assert!(results.duration >= length, "{:?}", results.duration);
    assert_all_completed(&results, results.sent());
    let summary = Summary::of(&results);
    assert_eq!(summary.open.map(|o| o.arrivals), Some(arrivals));
}

#[test]
fn keepalive_reuses_connections_and_no_keepalive_does_not() {
    let (server, accepted) = fake_server(answer_ok);
    let url = format!("http://{server}/");
    let results = load::run(config(&url, 30, 3)).unwrap();
    assert_eq!(results.completed(), 30);
    assert_eq!(accepted.swap(0, Ordering::SeqCst), 3);

    let mut fresh = config(&url, 30, 3);
    fresh.keepalive = false;
    let results = load::run(fresh).unwrap();
    assert_eq!(results.completed(), 30);
    assert_eq!(accepted.load(Ordering::SeqCst), 30);
}

fn load_command(args: &[&str]) -> std::process::Output {
    Command::new(common::example("load"))
        .args(args)
        .output()
        .expect("the load example is built by cargo test")
}

#[test]
fn json_output_has_exactly_the_documented_fields() {
    let server = chapter3();
    let output = load_command(&["-n", "6", "-c", "2", "--json", &server.url("/sleep?ms=5")]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let keys = |value: &serde_json::Value| {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&json),
        [
            "connections",
            "duration_s",
            "errors",
            "latency_ms",
            "left_out_of_latency",
            "requests",
            "retries",
            "rps",
            "status_codes",
            "timed_out_in_latency",
            "url"
        ]
    );
    assert_eq!(keys(&json["requests"]), ["completed", "failed", "sent"]);
    assert_eq!(
        keys(&json["latency_ms"]),
        [
            "max", "mean", "min", "p50", "p75", "p90", "p95", "p99", "p999"
        ]
    );
    assert_eq!(json["requests"]["sent"], 6);
    assert_eq!(json["status_codes"]["200"], 6);
    assert!(json["latency_ms"]["min"].as_f64().unwrap() >= 5.0);
}

#[test]
fn bad_input_is_one_line_and_a_nonzero_exit() {
    let refused = format!("http://127.0.0.1:{}/", free_port());
    for (args, says) in [
        (
            vec!["-c", "0", "http://127.0.0.1:1/"],
            "-c must be at least 1",
        ),
        (
            vec!["-n", "2", "-c", "5", "http://127.0.0.1:1/"],
            "smaller than -c",
        ),
        (vec!["ftp://127.0.0.1/"], "use http://"),
        (vec!["not a url"], "needs a scheme"),
        (vec!["http://no-such-host.invalid/"], "unknown host"),
        (
            vec!["-n", "4", "-c", "2", refused.as_str()],
            "is a server listening there?",
        ),
    ] {
        let output = load_command(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        let error_lines: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("error:"))
            .collect();
        assert_eq!(error_lines.len(), 1, "{args:?}: {stderr}");
        assert!(error_lines[0].contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn ctrl_c_stops_the_run_and_still_reports() {
    let server = chapter3();
    let mut child = Command::new(common::example("load"))
        .args(["-n", "1000", "-c", "2", &server.url("/sleep?ms=100")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It says what it is about to do once it listens for Ctrl-C.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first_line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first_line).unwrap();
    assert!(
        first_line.starts_with("load: 1000 requests over 2 connections"),
        "{first_line}"
    );
    // Five rounds of 100 ms: a few answers are in before the stop.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = Instant::now();
    let output = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "load did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("stopped early"), "{report}");
    assert!(report.contains("interrupted"), "{report}");
    assert!(
        report.contains("[200]"),
        "some requests finished before the stop: {report}"
    );
}

#[test]
fn bodies_end_by_length_by_chunks_or_by_close() {
    // Chunked, delivered in small pieces, with a trailer: one connection serves all.
    let (chunked, accepted) = fake_server(|stream| {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                         5\r\nHello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
        answer_with(stream, response, 7, false)
    });
    let results = load::run(config(&format!("http://{chunked}/"), 6, 1)).unwrap();
    assert_all_completed(&results, 6);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // No length, no chunks: the body ends when the server closes.
    let (closing, accepted) =
        fake_server(|stream| answer_with(stream, b"HTTP/1.1 200 OK\r\n\r\nuntil the end", 3, true));
    let results = load::run(config(&format!("http://{closing}/"), 4, 2)).unwrap();
    assert_all_completed(&results, 4);
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
}

#[test]
fn a_keepalive_connection_the_server_dropped_is_retried_not_failed() {
    // Looks keep-alive, but the server closes after each answer: the next
    // request finds the connection gone before any response, and goes again.
    let (forgetful, accepted) = fake_server(|stream| {
        answer_with(
            stream,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
            1,
            true,
        )
    });
    let results = load::run(config(&format!("http://{forgetful}/"), 10, 2)).unwrap();
    assert_all_completed(&results, 10);
    assert!(accepted.load(Ordering::SeqCst) >= 10);
}

#[test]
fn an_absurd_chunk_size_is_a_bad_response_not_a_panic() {
    let (server, _) = fake_server(|stream| {
        let response =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc";
        answer_with(stream, response, 1, false)
    });
    let results = load::run(config(&format!("http://{server}/"), 3, 1)).unwrap();
    assert_eq!(results.failed(), 3, "{:?}", results.record.failures);
    assert_eq!(results.record.failures[&ErrorKind::BadResponse].count, 3);
}

#[test]
fn response_heads_over_64_kib_are_bad_responses() {
    let (server, _) = fake_server(|stream| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nOK",
            "a".repeat(100 * 1024)
        );
        answer_with(stream, head.as_bytes(), 1, false)
    });
    let results = load::run(config(&format!("http://{server}/"), 2, 1)).unwrap();
    assert_eq!(results.record.failures[&ErrorKind::BadResponse].count, 2);
}

#[test]
fn stale_keepalive_retries_are_counted_and_reported() {
    let (forgetful, _) = fake_server(|stream| {
        answer_with(
            stream,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
            1,
            true,
        )
    });
    let results = load::run(config(&format!("http://{forgetful}/"), 10, 2)).unwrap();
    assert_all_completed(&results, 10);
    // Each connection's first request is on a fresh connection; the other
    // eight each found their connection closed and went again.
    assert_eq!(results.record.retries, 8);
    assert_eq!(Summary::of(&results).retries, 8);
    assert!(load::report::text(&results).contains("Retries:"));
}

#[test]
fn a_run_that_needs_more_files_than_allowed_is_refused_by_the_engine() {
    let limit = evt::sys::raise_open_file_limit();
    let connections = (limit + 1000) as usize;
    let refused = format!("http://127.0.0.1:{}/", free_port());
    let error = load::run(config(&refused, connections as u64, connections))
        .expect_err("more connections than open files is an error before the run");
    assert!(error.contains("ulimit -n"), "{error}");
}

#[test]
fn connections_stay_open_until_the_whole_run_is_over() {
    // The first connection is answered at once, the second after 300 ms. A
    // client like hey keeps the first open until the second is answered too;
    // the server notes when the first one closes.
    static ORDER: AtomicUsize = AtomicUsize::new(0);
    static FIRST_CLOSED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let (server, _) = fake_server(|stream| {
        let mine = ORDER.fetch_add(1, Ordering::SeqCst);
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        if read_request(&mut reader).is_none() {
            return;
        }
        if mine == 1 {
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
        if mine == 0 {
            let _ = reader.read(&mut [0u8; 16]);
            let _ = FIRST_CLOSED.set(Instant::now());
        }
    });
    let started = Instant::now();
    let results = load::run(config(&format!("http://{server}/"), 2, 2)).unwrap();
    assert_all_completed(&results, 2);
    std::thread::sleep(Duration::from_millis(50));
    let closed = FIRST_CLOSED
        .get()
        .expect("the first connection was closed by the client");
    assert!(
        closed.duration_since(started) >= Duration::from_millis(300),
        "the first connection closed {:?} into the run, before the last answer",
        closed.duration_since(started)
    );
}

#[test]
fn fixed_share_gives_every_connection_its_own_part_as_hey_does() {
    let server = chapter3();
    let mut fixed = config(&server.url("/sleep?ms=5"), 11, 4);
    fixed.fixed_share = true;
    let results = load::run(fixed).unwrap();
    assert_all_completed(&results, 11);
    let mut per_connection = [0u32; 4];
    for span in &results.record.timeline {
        per_connection[span.connection as usize] += 1;
    }
    // 11 over 4: the first 11 % 4 connections send one more.
    assert_eq!(per_connection, [3, 3, 3, 2]);
}

#[test]
fn a_connect_rate_opens_every_connection_first_and_keeps_it_out_of_the_latencies() {
    let server = chapter3();
    let mut paced = config(&server.url("/sleep?ms=5"), 20, 20);
    paced.connect_rate = Some(100);
    let results = load::run(paced).unwrap();
    assert_all_completed(&results, 20);
    let phase = results.connect.expect("a connect phase");
    assert_eq!(phase.opened, 20);
    // Twenty connections at 100 a second: the last one's turn is 190 ms in.
    assert!(phase.took >= Duration::from_millis(190), "{phase:?}");
    // The requests' own clock starts after it: one 5 ms round, not 190 ms.
    assert!(
        results.duration < phase.took,
        "{:?} vs {phase:?}",
        results.duration
    );
    let summary = Summary::of(&results);
    assert_eq!(summary.connect.unwrap().opened, 20);
    assert!(summary.to_json().contains("\"connect\""));
}

/// Answers `OK` at once, except the 100th request on the connection, which
/// it holds for 500 ms first: a server that stalls once.
fn answer_ok_but_stall_once(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut answered = 0;
    while read_request(&mut reader).is_some() {
        answered += 1;
        if answered == 100 {
            std::thread::sleep(Duration::from_millis(500));
        }
        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
    }
}

fn open(url: &str, requests: u64, connections: usize, rate: f64) -> load::Results {
    let mut config = config(url, requests, connections);
    config.rate = Some(rate);
    load::run(config).unwrap()
}

#[test]
fn the_open_model_keeps_its_schedule_and_no_faster() {
    let (addr, _) = fake_server(answer_ok);
    let results = open(&format!("http://{addr}/"), 100, 4, 200.0);
    assert_all_completed(&results, 100);
    // Request 99 is due 495 ms after the start; the client's timer may send
    // it at most 1 ms early, so neither its send nor the run can come
    // sooner, however idle the machine.
    assert!(
        results.record.last_send_us >= 494_000,
        "{}",
        results.record.last_send_us
    );
    assert!(
        results.duration >= Duration::from_millis(494),
        "{:?}",
        results.duration
    );
    assert!(results.sent_rps().unwrap() > 0.0);
    let summary = Summary::of(&results);
    let schedule = summary.open.expect("an open run reports its schedule");
    assert_eq!(schedule.asked_rps, 200.0);
}

#[test]
fn after_a_stall_corrected_latencies_include_it_and_uncorrected_ones_do_not() {
    let (addr, _) = fake_server(answer_ok_but_stall_once);
    // One connection, 200 requests/s for 2 s; the 100th answer is held 500 ms.
    let results = open(&format!("http://{addr}/"), 400, 1, 200.0);
    assert_all_completed(&results, 400);
    // Requests due in the stall's first half (one every 5 ms, 50 of the 400)
    // could not go out before it ended: each waited 250 ms or more from when
    // it was due. So the top 12.5 % of the corrected latencies are ≥ 250 ms.
    let corrected = results.latency_at(0.9).unwrap();
    assert!(corrected >= Duration::from_millis(250), "{corrected:?}");
    assert!(results.record.late >= 50, "{} late", results.record.late);
    // From the actual send, only the one held request waited the stall.
    let uncorrected = results.uncorrected_at(0.9).unwrap();
    assert!(uncorrected < Duration::from_millis(250), "{uncorrected:?}");
    assert!(results.slowest().unwrap() >= Duration::from_millis(500));
}

#[test]
fn a_bad_rate_is_one_line_and_exit_2() {
    for (args, says) in [
        (vec!["--rate", "0", "http://127.0.0.1:1/"], "above zero"),
        (vec!["--rate=-5", "http://127.0.0.1:1/"], "above zero"),
        (
            vec!["--rate", "fast", "http://127.0.0.1:1/"],
            "not a number",
        ),
        (
            vec!["--rate", "10", "--fixed-share", "http://127.0.0.1:1/"],
            "--fixed-share",
        ),
    ] {
        let output = load_command(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].contains(says), "{args:?}: {stderr}");
    }
}
