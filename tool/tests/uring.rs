//! Chapter 13's servers: the loop on io_uring and monoio against a peer
//! client (ab, with and without keep-alive), their timers, their own count
//! of system calls against the epoll loop's, and the one line where the
//! kernel refuses io_uring (a seccomp filter, as a container's profile).
#![cfg(target_os = "linux")]

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use evt::load::{self, LoadConfig, Target};
use evt::report::SyscallReport;
use evt_book::reproduce::harness::{ServerProcess, http_get};

mod common;
use common::{ab, ab_number, example, get, start_with};

/// The servers of the chapter, with the flags that change their I/O path.
const SERVERS: &[(&str, &[&str])] = &[
    ("chapter13_uring", &[]),
    ("chapter13_uring", &["--buffers", "per-read"]),
    ("chapter13_uring", &["--taskrun", "interrupt"]),
    ("chapter13_uring", &["--taskrun", "cooperative"]),
    ("chapter13_monoio", &[]),
    ("chapter13_monoio", &["--cooperative"]),
];

/// Whether this machine lets a program use io_uring; where not, one line
/// says the test has nothing to run here (the refusal test still runs).
fn uring_here() -> bool {
    match evt::uring::refusal() {
        None => true,
        Some(why) => {
            eprintln!("io_uring is not usable here ({why}): chapter 13's servers are not run");
            false
        }
    }
}

fn start(name: &str, flags: &[&str]) -> ServerProcess {
    let mut args = vec!["--port", "0"];
    args.extend_from_slice(flags);
    start_with(name, &args).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn chapter13s_servers_answer_ab_with_and_without_keep_alive() {
    if !uring_here() {
        return;
    }
    for (name, flags) in SERVERS {
        let server = start(name, flags);
        let url = server.url("/");
        // -k: HTTP/1.0 with keep-alive, many requests per connection; then
        // a connection per request, each closed by the server.
        for args in [
            &["-k", "-q", "-n", "2000", "-c", "20"][..],
            &["-q", "-n", "300", "-c", "10"][..],
        ] {
            let mut all = args.to_vec();
            all.push(&url);
            let Some(out) = ab(&all) else {
                return;
            };
            let complete = ab_number(&out, "Complete requests:");
            let failed = ab_number(&out, "Failed requests:");
            let wanted: u64 = args[args.iter().position(|a| *a == "-n").unwrap() + 1]
                .parse()
                .unwrap();
            assert_eq!(
                (complete, failed),
                (wanted, 0),
                "{name} {flags:?} {args:?}:\n{out}"
            );
            assert!(!out.contains("Non-2xx"), "{name} {flags:?}:\n{out}");
        }
        assert!(
            server.stderr_text().trim().is_empty(),
            "{name}: {}",
            server.stderr_text()
        );
    }
}

#[test]
fn chapter13s_sleeps_are_timers_five_at_once_take_one_sleep() {
    if !uring_here() {
        return;
    }
    for (name, flags) in SERVERS {
        let server = start(name, flags);
        let started = Instant::now();
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let sent: Vec<_> = (0..5)
                .map(|_| scope.spawn(|| get(&server, "/sleep?ms=400").0))
                .collect();
            sent.into_iter().map(|s| s.join().unwrap()).collect()
        });
        let took = started.elapsed();
        assert_eq!(statuses, [200; 5], "{name} {flags:?}");
        // One thread, and still one sleep's time for all five, not five.
        assert!(took >= Duration::from_millis(400), "{name}: {took:?}");
        assert!(took < Duration::from_millis(1800), "{name}: {took:?}");
    }
}

/// The loop's own count after `requests` hello requests, one at a time on
/// one kept-alive connection.
fn counted(name: &str, flags: &[&str], requests: u64) -> SyscallReport {
    let server = start(name, flags);
    let target = Target::parse(&server.url("/")).unwrap();
    let results = load::run(LoadConfig::new(target, requests, 1)).unwrap();
    assert_eq!(results.completed(), requests);
    let body = http_get(&server.base_url, "/report").unwrap();
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"))
}

#[test]
fn the_completion_loop_makes_fewer_system_calls_than_the_readiness_loop() {
    if !uring_here() {
        return;
    }
    let requests = 300;
    let uring = counted("chapter13_uring", &[], requests);
    let epoll = counted("chapter8_minimal_loop", &[], requests);
    assert_eq!((uring.requests, epoll.requests), (requests, requests));
    let per = |r: &SyscallReport| r.total_calls() as f64 / r.requests as f64;
    // With one request at a time, epoll must learn readiness, read, find
    // the socket empty and write: four calls a request. The completion
    // loop waits for the read's completion, then submits the answer in an
    // enter that returns at once with the send's: two.
    assert!(per(&epoll) >= 3.5, "{epoll:?}");
    assert!(per(&uring) <= 2.1, "{uring:?}");
    // One per connection: the load's, and the one that asked for /report.
    assert_eq!(uring.calls.get("setsockopt"), Some(&2), "{uring:?}");
    // The read stays armed (multishot): a send a request is what is submitted.
    assert!(uring.submitted >= requests, "{uring:?}");
    assert!(uring.submitted < requests + 20, "{uring:?}");
    assert!(uring.loop_kind.contains("ring"), "{uring:?}");
}

/// Runs `name` with a seccomp filter that refuses `io_uring_setup` (EPERM),
/// as Docker's default profile does.
fn refused(name: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(example(name));
    command.args(args);
    // SAFETY: between fork and exec only two system calls (prctl), both
    // async-signal-safe, on memory the closure owns.
    unsafe {
        command.pre_exec(|| {
            const IO_URING_SETUP: u32 = 425;
            let ret_errno_eperm = 0x0005_0000 | libc::EPERM as u32;
            let filter = [
                // Load the system call's number.
                libc::sock_filter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                // io_uring_setup: refuse with EPERM; anything else: allow.
                libc::sock_filter {
                    code: 0x15,
                    jt: 0,
                    jf: 1,
                    k: IO_URING_SETUP,
                },
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: ret_errno_eperm,
                },
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x7fff_0000,
                },
            ];
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().unwrap()
}

#[test]
fn where_io_uring_is_refused_each_example_says_so_in_one_line() {
    let port: &[&str] = &["--port", "0"];
    for (name, args) in [
        ("chapter13_uring", port),
        ("chapter13_monoio", port),
        ("chapter13_syscall_cost", &[]),
        ("exercise13_read_deadline", port),
    ] {
        let out = refused(name, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains("io_uring"), "{name}: {stderr}");
        // Refused by the filter itself where io_uring is otherwise allowed.
        if evt::uring::refusal().is_none() {
            assert!(
                stderr.contains("refused") && stderr.contains("seccomp"),
                "{name}: {stderr}"
            );
        }
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name} must not say it listens");
    }
}
