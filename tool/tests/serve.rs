//! `serve`: the book built in-process and served, rebuilt on a change, and
//! the live lab's run API with its refusals. Each test serves a copy of the
//! book in a directory of its own, so changing it touches nothing else.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// A `serve` on a free port, serving a copy of the book; stopped on drop.
struct Served {
    child: Child,
    host: String,
    root: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn project() -> PathBuf {
    evt_book::root()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn serve(name: &str) -> Served {
    let root = std::env::temp_dir().join(format!("evt-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    copy_tree(&project().join("book"), &root.join("book"));
    std::fs::copy(project().join("book.toml"), root.join("book.toml")).unwrap();
    std::fs::create_dir_all(root.join("tool")).unwrap();
    for code in evt_book::serve::stage::CODE {
        std::os::unix::fs::symlink(project().join(code), root.join(code)).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_event-loops-vs-threads"))
        .args(["serve", "--port", "0", "--root"])
        .arg(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let host = first
        .strip_prefix("serving the book on http://")
        .unwrap_or_else(|| panic!("{first}"))
        .trim_end_matches('/')
        .to_string();
    // Keep reading its output so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, host, root }
}

/// One request; the status and body. `headers` are extra header lines.
fn request(
    served: &Served,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(&served.host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        head.push_str(&format!("Host: {}\r\n", served.host));
    }
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    write!(stream, "{head}\r\n{body}").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn get(served: &Served, path: &str) -> (u16, String) {
    request(served, "GET", path, &[], "")
}

/// The token a served page carries.
fn token(served: &Served) -> String {
    let (_, page) = get(served, "/chapter3_async.html");
    page.split("data-token=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string()
}

fn status(served: &Served) -> serde_json::Value {
    serde_json::from_str(&get(served, "/__lab/status").1).unwrap()
}

/// Polls the status until `done` says so, or panics after `limit`.
fn wait_for(
    served: &Served,
    limit: Duration,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let now = status(served);
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {now}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn it_serves_the_index_and_a_chapter_with_the_lab_and_rebuilds_on_a_change() {
    let served = serve("pages");
    let (code, index) = get(&served, "/");
    assert_eq!(code, 200);
    assert!(index.contains("Event loops versus threads"), "{index}");
    let (code, page) = get(&served, "/chapter1_blocking.html");
    assert_eq!(code, 200);
    assert!(page.contains("/__lab/lab.js"));
    // The code the page includes is there, from the project's sources.
    assert!(!page.contains("{{#include"), "an include was not expanded");
    assert!(
        page.contains("take the next connection, read its request"),
        "chapter 1's code is missing"
    );
    assert_eq!(get(&served, "/__lab/lab.js").0, 200);
    assert_eq!(get(&served, "/no-such-page.html").0, 404);
    assert_eq!(get(&served, "/../book.toml").0, 404);
    // A change under book/ is served after a rebuild, with a new generation.
    let before = status(&served)["generation"].as_u64().unwrap();
    let page = served.root.join("book/introduction.md");
    let text = std::fs::read_to_string(&page).unwrap();
    std::fs::write(&page, format!("{text}\nA sentence the test added.\n")).unwrap();
    wait_for(&served, Duration::from_secs(30), |s| {
        s["generation"].as_u64() > Some(before)
    });
    assert!(
        get(&served, "/introduction.html")
            .1
            .contains("A sentence the test added.")
    );
}

#[test]
fn the_lab_refuses_a_foreign_host_a_foreign_origin_and_a_missing_token() {
    let served = serve("refusals");
    let token = token(&served);
    let origin = format!("Origin: http://{}", served.host);
    let with_token = format!("X-Lab-Token: {token}");
    let ask = r#"{"chapter": 3, "mode": "quick"}"#;
    // DNS rebinding: another name pointed at this address.
    let (code, why) = request(&served, "GET", "/", &["Host: attacker.example:80"], "");
    assert_eq!(code, 403, "{why}");
    let (code, _) = request(
        &served,
        "POST",
        "/__lab/run",
        &["Host: attacker.example", &origin, &with_token],
        ask,
    );
    assert_eq!(code, 403);
    // Another site's page.
    let (code, why) = request(
        &served,
        "POST",
        "/__lab/run",
        &["Origin: http://attacker.example", &with_token],
        ask,
    );
    assert_eq!(code, 403, "{why}");
    assert!(why.contains("Origin"), "{why}");
    let (code, _) = request(&served, "POST", "/__lab/run", &[&with_token], ask);
    assert_eq!(code, 403);
    // No token, or a wrong one.
    let (code, why) = request(&served, "POST", "/__lab/run", &[&origin], ask);
    assert_eq!(code, 403, "{why}");
    assert!(why.contains("token"), "{why}");
    let (code, _) = request(
        &served,
        "POST",
        "/__lab/run",
        &[&origin, "X-Lab-Token: 00"],
        ask,
    );
    assert_eq!(code, 403);
    let (code, _) = request(&served, "POST", "/__lab/cancel", &[&origin], "{}");
    assert_eq!(code, 403);
    // Nothing ran.
    assert!(status(&served)["run"].is_null());
    // A bad ask from the page itself is one line.
    let (code, why) = request(
        &served,
        "POST",
        "/__lab/run",
        &[&origin, &with_token],
        r#"{"chapter": 99, "mode": "quick"}"#,
    );
    assert_eq!(code, 404, "{why}");
}

#[test]
fn a_quick_run_through_the_lab_writes_its_files_and_reports_progress_to_the_end() {
    common::examples_built();
    let served = serve("run");
    let headers = [
        format!("Origin: http://{}", served.host),
        format!("X-Lab-Token: {}", token(&served)),
    ];
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let before = status(&served)["generation"].as_u64().unwrap();
    let (code, body) = request(
        &served,
        "POST",
        "/__lab/run",
        &headers,
        r#"{"chapter": 3, "mode": "quick"}"#,
    );
    assert_eq!(code, 202, "{body}");
    // One run at a time.
    let (code, _) = request(
        &served,
        "POST",
        "/__lab/run",
        &headers,
        r#"{"chapter": 1, "mode": "quick"}"#,
    );
    assert_eq!(code, 409);
    let mut seen_steps = std::collections::BTreeSet::new();
    let end = wait_for(&served, Duration::from_secs(120), |s| {
        if let Some(step) = s["run"]["step"].as_u64() {
            seen_steps.insert(step);
        }
        s["run"]["state"] != "running"
    });
    assert_eq!(end["run"]["state"], "done", "{end}");
    let steps = end["run"]["steps"].as_u64().unwrap();
    assert!(steps >= 1 && end["run"]["step"] == steps, "{end}");
    // Progress was reported while it ran, not only at the end.
    assert!(seen_steps.iter().any(|&k| k >= 1), "{seen_steps:?}");
    // Its files are laid over the book's, and the book was rebuilt.
    assert!(
        served
            .root
            .join("target/serve/overlay/chapter3.json")
            .is_file()
    );
    assert!(end["generation"].as_u64() > Some(before), "{end}");
    let (_, page) = get(&served, "/chapter3_async.html");
    assert!(
        page.contains("--quick"),
        "the page does not show the quick run's tables"
    );
    // The book's own records are untouched by a quick run.
    assert_eq!(
        std::fs::read(served.root.join("book/generated/chapter3.json")).unwrap(),
        std::fs::read(project().join("book/generated/chapter3.json")).unwrap()
    );
    let (code, compare) = get(&served, "/__lab/compare?chapter=3");
    assert_eq!(code, 200, "{compare}");
    let compare: serde_json::Value = serde_json::from_str(&compare).unwrap();
    assert_eq!(compare["quick"], true);
    let rows = compare["rows"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["book"].is_number()));
    // A quick run is not judged against the book's full one, and says so.
    assert!(
        rows.iter().all(|r| r["verdict"]
            .as_str()
            .is_some_and(|v| v.starts_with("not judged: a quick run"))),
        "{compare}"
    );
}

#[test]
fn cancel_stops_every_process_the_run_started() {
    common::examples_built();
    let served = serve("cancel");
    let headers = [
        format!("Origin: http://{}", served.host),
        format!("X-Lab-Token: {}", token(&served)),
    ];
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    // Chapter 2's quick run starts worker processes under its servers.
    let (code, body) = request(
        &served,
        "POST",
        "/__lab/run",
        &headers,
        r#"{"chapter": 2, "mode": "quick"}"#,
    );
    assert_eq!(code, 202, "{body}");
    let running = wait_for(&served, Duration::from_secs(60), |s| {
        s["run"]["step"].as_u64() >= Some(2)
    });
    let pid = running["run"]["pid"].as_u64().unwrap() as u32;
    // Every process below the run, as the run goes (servers come and go).
    let mut started = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while started.len() < 2 && Instant::now() < deadline {
        started.extend(evt_book::serve::lab::descendants(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    started.extend(evt_book::serve::lab::descendants(pid));
    assert!(!started.is_empty(), "the run started nothing");
    // As the page's beacon sends it when the page goes away: the token in
    // the body, no header.
    let beacon = format!(r#"{{"token": "{}"}}"#, token(&served));
    let (code, body) = request(&served, "POST", "/__lab/cancel", &headers[..1], &beacon);
    assert_eq!((code, body.trim()), (200, "cancelled"));
    let end = wait_for(&served, Duration::from_secs(20), |s| {
        s["run"]["state"] != "running"
    });
    assert_eq!(end["run"]["state"], "cancelled", "{end}");
    // The run and everything it had started are gone.
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while (alive(pid) || started.iter().any(|&p| alive(p))) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "the run is still alive");
    let left: Vec<u32> = started.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
}

#[test]
fn a_port_in_use_and_a_missing_book_are_one_line_each() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_event-loops-vs-threads"))
        .args(["serve", "--port", &port])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        said.lines().last().unwrap().contains("already in use"),
        "{said}"
    );
    let empty = std::env::temp_dir().join(format!("evt-serve-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_event-loops-vs-threads"))
        .args(["serve", "--port", "0", "--root"])
        .arg(&empty)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        said.lines()
            .last()
            .unwrap()
            .starts_with("error: no book in"),
        "{said}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_event-loops-vs-threads"))
        .args(["serve", "--host", "0.0.0.0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&empty);
}
