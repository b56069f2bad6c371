//! The book's experiments as data: which server(s) with which flags, which
//! loads, what the model predicts; and running them to get what was measured,
//! with the server sampled while it runs.

use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::chapters;
use crate::generated::format_ms;
use crate::harness::ServerProcess;
use crate::load::cli::LoadArgs;
use crate::load::record::Span;
use crate::load::{self, Summary};
use crate::model::{self, Capacity, ClientStream, Prediction};
use crate::sample::{self, Sampler, ServerSamples};

/// An example server, the flags it is started with, and the model of it the
/// predictions use.
#[derive(Debug, Clone)]
pub struct ServerUnderTest {
    /// The example's name: `cargo run --example NAME`.
    pub example: &'static str,
    /// Flags beyond `--port`; `{upstream}` stands for the first upstream's URL.
    pub args: Vec<String>,
    /// In a few words, what it is.
    pub model: String,
    /// The example's default `--port`, for commands the book shows.
    pub default_port: u16,
    pub capacity: Capacity,
}

impl ServerUnderTest {
    /// A server example from the chapter registry, as it starts by default.
    pub fn of(example: &chapters::Example) -> ServerUnderTest {
        let server = example
            .server
            .expect("experiments load server examples, which have a port");
        ServerUnderTest {
            example: example.name,
            args: Vec::new(),
            model: example.what.to_string(),
            default_port: server.default_port,
            capacity: server.capacity,
        }
    }

    /// The same server started with extra flags, and what that makes it.
    pub fn with_args(mut self, args: &[&str], model: &str) -> ServerUnderTest {
        self.args = args.iter().map(|arg| arg.to_string()).collect();
        self.model = model.to_string();
        self
    }
}

/// What sends the requests of a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The book's load engine, in this process.
    Engine,
    /// An example that takes the `load` command's flags and prints its
    /// `--json` report (a client a chapter is about, as in chapter 6).
    Command { example: &'static str },
}

/// One closed-model load within an experiment.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Path and query, e.g. `/sleep?ms=2000`.
    pub path: String,
    /// When it starts, counted from the experiment's start.
    pub start_after: Duration,
    pub requests: u64,
    pub connections: usize,
    /// What the server spends on each request (the model's service time).
    pub service: Duration,
    /// The most one request may take.
    pub timeout: Duration,
    pub driver: Driver,
    /// Each connection sends its own n / c requests, as hey does (`--fixed-share`).
    pub fixed_share: bool,
    /// A new connection per request (`--no-keepalive`).
    pub no_keepalive: bool,
    /// Flags for a command driver beyond the load's own (`--mode async`).
    pub extra_args: Vec<String>,
    /// Run for this long (`-z`) instead of `requests` requests; `requests`
    /// then holds the model's estimate, for the prediction.
    pub duration: Option<Duration>,
    /// Open every connection first at this many per second (`--connect-rate`).
    pub connect_rate: Option<u32>,
    /// Keep the connections open and idle this long after the last answer (`--hold`).
    pub hold: Option<Duration>,
}

/// Long enough for the slowest request any experiment predicts.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl LoadSpec {
    pub fn new(path: String, requests: u64, connections: usize, service: Duration) -> LoadSpec {
        LoadSpec {
            path,
            start_after: Duration::ZERO,
            requests,
            connections,
            service,
            timeout: DEFAULT_TIMEOUT,
            driver: Driver::Engine,
            fixed_share: false,
            no_keepalive: false,
            extra_args: Vec::new(),
            duration: None,
            connect_rate: None,
            hold: None,
        }
    }

    /// The `load` flags this load runs with: the run parses exactly these,
    /// and the book prints exactly these.
    pub fn load_args(&self, url: &str) -> Vec<String> {
        let mut args: Vec<String> = match self.duration {
            Some(duration) => vec![
                "-z".into(),
                humantime::format_duration(duration).to_string(),
            ],
            None => vec!["-n".into(), self.requests.to_string()],
        };
        args.extend([
            "-c".into(),
            self.connections.to_string(),
            "--timeout".into(),
            humantime::format_duration(self.timeout).to_string(),
        ]);
        if self.fixed_share {
            args.push("--fixed-share".into());
        }
        if self.no_keepalive {
            args.push("--no-keepalive".into());
        }
        if let Some(rate) = self.connect_rate {
            args.extend(["--connect-rate".into(), rate.to_string()]);
        }
        if let Some(idle) = self.hold {
            args.extend([
                "--hold".into(),
                humantime::format_duration(idle).to_string(),
            ]);
        }
        args.extend(self.extra_args.iter().cloned());
        args.push(url.to_string());
        args
    }
}

/// The command a reader types to run `example` with `args` by hand.
pub fn command_line(example: &str, args: &[String]) -> String {
    let shown: Vec<String> = args
        .iter()
        .map(|arg| {
            if arg.contains(['?', '&', ' ']) {
                format!("'{arg}'")
            } else {
                arg.clone()
            }
        })
        .collect();
    format!(
        "cargo run --release --example {example} -- {}",
        shown.join(" ")
    )
}

/// A server, one or more loads against it, and a name.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub chapter: u32,
    /// File-name part: `five_sleeps` gives `chapter1_five_sleeps.md`.
    pub slug: String,
    /// Which seed write-up it redoes ("" for the book's own).
    pub seed: &'static str,
    pub title: String,
    pub server: ServerUnderTest,
    /// Servers started before `server` (an upstream for a proxy).
    pub upstreams: Vec<ServerUnderTest>,
    pub loads: Vec<LoadSpec>,
    /// Whether failed requests are what the experiment shows (a stall).
    pub failures_expected: bool,
    /// Ask the server for `GET /report` after the loads (what it measured of itself).
    pub fetch_report: bool,
    /// The table this experiment is one row of, with several others.
    pub group: Option<Group>,
}

/// One row of a table made of several experiments (a sweep, a seed's table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// File-name part of the table: `chapterN_NAME.md`.
    pub name: String,
    /// What this row is, in a few words (`4 workers × 2 threads`).
    pub label: String,
    /// The swept value, for a chart (threads, connections).
    #[serde(default)]
    pub x: Option<f64>,
    /// What the seed write-up measured for this row, requests per second.
    #[serde(default)]
    pub seed_rps: Option<f64>,
    /// Show the server's CPU time per request (a CPU-bound comparison).
    #[serde(default)]
    pub cpu_per_request: bool,
    /// Which line of a chart of several this row belongs to (a client's mode).
    #[serde(default)]
    pub series: Option<String>,
    /// Show the group as seed 004's latency table (min, p50, p99, p99.9, max, mean).
    #[serde(default)]
    pub latency_table: bool,
    /// Show the group as chapter 8's cost table: memory, address space,
    /// threads and CPU per connection, with charts against connections.
    #[serde(default)]
    pub connection_cost: bool,
}

impl Group {
    pub fn new(name: &str, label: String) -> Group {
        Group {
            name: name.to_string(),
            label,
            x: None,
            seed_rps: None,
            cpu_per_request: false,
            series: None,
            latency_table: false,
            connection_cost: false,
        }
    }
}

impl Experiment {
    fn new(
        chapter: u32,
        (slug, seed): (&'static str, &'static str),
        title: String,
        server: ServerUnderTest,
        loads: Vec<LoadSpec>,
    ) -> Experiment {
        Experiment {
            chapter,
            slug: slug.to_string(),
            seed,
            title,
            server,
            upstreams: Vec::new(),
            loads,
            failures_expected: false,
            fetch_report: false,
            group: None,
        }
    }
}

/// Scales a delay for `--quick` runs (`scale` 1.0 for the real thing).
fn scaled(ms: u64, scale: f64) -> Duration {
    Duration::from_millis(((ms as f64) * scale).round() as u64)
}

/// Seed 000's shape: `count` 2 s requests sent at once, over as many connections.
fn sleeps_at_once(
    chapter: u32,
    server: ServerUnderTest,
    scale: f64,
    count: u64,
    (slug, in_words): (&'static str, &str),
) -> Experiment {
    let delay = scaled(2000, scale);
    Experiment::new(
        chapter,
        (slug, "000"),
        format!(
            "{in_words} {} requests sent at once (`-n {count} -c {count}`)",
            format_ms(delay.as_secs_f64() * 1000.0)
        ),
        server,
        vec![LoadSpec::new(
            format!("/sleep?ms={}", delay.as_millis()),
            count,
            count as usize,
            delay,
        )],
    )
}

/// Seed 000: five concurrent 2 s requests.
pub fn five_sleeps(chapter: u32, server: ServerUnderTest, scale: f64) -> Experiment {
    sleeps_at_once(chapter, server, scale, 5, ("five_sleeps", "Five"))
}

/// Seed 000 taken further: a thousand 2 s requests at once. Only a server
/// that keeps every request in flight finishes this in seconds (one blocking
/// thread would need over half an hour).
pub fn thousand_sleeps(chapter: u32, server: ServerUnderTest, scale: f64) -> Experiment {
    sleeps_at_once(
        chapter,
        server,
        scale,
        1000,
        ("thousand_sleeps", "A thousand"),
    )
}

/// Seed 001: a slow `/sleeper`, then a fast `/activer` while it sleeps.
pub fn sleeper_then_activer(chapter: u32, server: ServerUnderTest, scale: f64) -> Experiment {
    let sleeper = scaled(10_000, scale);
    let gap = scaled(500, scale);
    let mut activer = LoadSpec::new("/activer".to_string(), 1, 1, Duration::ZERO);
    activer.start_after = gap;
    Experiment::new(
        chapter,
        ("sleeper_activer", "001"),
        format!(
            "A {} `/sleeper`, then `/activer` {} later",
            format_ms(sleeper.as_secs_f64() * 1000.0),
            format_ms(gap.as_secs_f64() * 1000.0)
        ),
        server,
        vec![
            LoadSpec::new(
                format!("/sleeper?ms={}", sleeper.as_millis()),
                1,
                1,
                sleeper,
            ),
            activer,
        ],
    )
}

/// How many times the tiny_http stall is tried: it is a race, so once says little.
pub const STALL_TRIALS: u32 = 10;

/// tiny_http answering the way it does by itself (keep-alive), against a
/// client that holds its connections open: 16 connections at once, several
/// times. A connection tiny_http's pool never reads ends as a timeout.
pub fn tiny_http_keepalive_stall(scale: f64) -> Experiment {
    let delay = Duration::from_millis(10);
    let timeout = scaled(2000, scale.max(0.5));
    let loads = (0..STALL_TRIALS)
        .map(|trial| {
            let mut load = LoadSpec::new(format!("/sleep?ms={}", delay.as_millis()), 16, 16, delay);
            load.timeout = timeout;
            load.start_after = (timeout + Duration::from_millis(500)) * trial;
            load
        })
        .collect();
    let mut experiment = Experiment::new(
        1,
        ("tiny_http_keepalive_stall", ""),
        format!(
            "tiny_http keeping connections alive: 16 held connections at once, {STALL_TRIALS} \
             times, each request given {}",
            format_ms(timeout.as_secs_f64() * 1000.0)
        ),
        ServerUnderTest::of(&chapters::CHAPTER1_TINY_HTTP).with_args(
            &["--keep-alive"],
            "tiny_http answering with its own respond(), which keeps connections alive",
        ),
        loads,
    );
    experiment.failures_expected = true;
    experiment
}

/// A thousand connections at once against a listen backlog of 128 (what
/// Rust's std and mio, under tokio, ask for): the kernel drops the
/// connections it has no room for, and a client's kernel retries a dropped
/// one only a second later.
pub fn small_backlog(scale: f64) -> Experiment {
    let mut experiment = thousand_sleeps(3, ServerUnderTest::of(&chapters::CHAPTER3_ASYNC), scale);
    experiment.slug = "small_backlog".into();
    experiment.seed = "";
    experiment.title = format!("{}, listen backlog 128", experiment.title);
    experiment.server = experiment.server.with_args(
        &["--backlog", "128"],
        "chapter 3's server listening with std's backlog of 128",
    );
    experiment
}

/// Chapter 1's experiments; `scale` shrinks every delay (`--quick` uses 0.1).
pub fn chapter1(scale: f64) -> Vec<Experiment> {
    let blocking = || ServerUnderTest::of(&chapters::CHAPTER1_BLOCKING);
    let mut on_tiny_http =
        five_sleeps(1, ServerUnderTest::of(&chapters::CHAPTER1_TINY_HTTP), scale);
    on_tiny_http.slug = "tiny_http_five_sleeps".into();
    on_tiny_http.seed = "";
    vec![
        five_sleeps(1, blocking(), scale),
        sleeper_then_activer(1, blocking(), scale),
        on_tiny_http,
        tiny_http_keepalive_stall(scale),
    ]
}

/// Chapter 3's experiments.
pub fn chapter3(scale: f64) -> Vec<Experiment> {
    let looping = || ServerUnderTest::of(&chapters::CHAPTER3_ASYNC);
    vec![
        five_sleeps(3, looping(), scale),
        sleeper_then_activer(3, looping(), scale),
        thousand_sleeps(3, looping(), scale),
        small_backlog(scale),
    ]
}

/// Chapter 2's server started with `args`, modelled as `capacity` requests at once.
fn threads_server(args: &[&str], model: &str, capacity: usize) -> ServerUnderTest {
    let mut server = ServerUnderTest::of(&chapters::CHAPTER2_THREADS).with_args(args, model);
    server.capacity = Capacity::Limited(capacity);
    server
}

/// The gunicorn setups seed 002 measured, as chapter 2's flags: workers,
/// threads, the flags that make it that kind of worker, in words.
const SEED_002_SETUPS: [(usize, usize, &[&str], &str); 3] = [
    (
        1,
        1,
        &["--pool", "per-connection", "--keep-alive", "0"],
        "1 sync worker",
    ),
    (
        4,
        1,
        &["--pool", "per-connection", "--keep-alive", "0"],
        "4 sync workers",
    ),
    (4, 2, &[], "4 workers × 2 threads (gthread)"),
];

/// Seed 002's loads (`hey -n N -c C`) and what it measured, requests per
/// second, for each setup above (where it measured that pair).
const SEED_002_LOADS: [(u64, usize, [Option<f64>; 3]); 3] = [
    (10, 5, [Some(3.9477), None, None]),
    (20, 10, [Some(3.9432), None, None]),
    (50, 10, [Some(3.9445), Some(15.1464), Some(24.5377)]),
];

/// Seed 002's table: each gunicorn setup under each of its hey loads, at
/// 250 ms a request, every pair on a fresh server. The loads split their
/// requests as hey does (`--fixed-share`).
fn seed_002_table(scale: f64) -> Vec<Experiment> {
    let delay = scaled(250, scale);
    let mut experiments = Vec::new();
    for (index, (workers, threads, flags, in_words)) in SEED_002_SETUPS.iter().enumerate() {
        for (requests, connections, seed) in SEED_002_LOADS {
            let (w, t) = (workers.to_string(), threads.to_string());
            let mut args = vec!["--workers", w.as_str(), "--threads", t.as_str()];
            args.extend_from_slice(flags);
            let server = threads_server(&args, in_words, workers * threads);
            let mut load = LoadSpec::new(
                format!("/sleep?ms={}", delay.as_millis()),
                requests,
                connections,
                delay,
            );
            load.fixed_share = true;
            let mut experiment = Experiment::new(
                2,
                ("", "002"),
                format!("{in_words}, `-n {requests} -c {connections}`"),
                server,
                vec![load],
            );
            experiment.slug = format!("seed002_w{workers}_t{threads}_n{requests}_c{connections}");
            experiment.fetch_report = true;
            let mut group = Group::new("seed002", in_words.to_string());
            group.seed_rps = seed[index];
            experiment.group = Some(group);
            experiments.push(experiment);
        }
    }
    experiments
}

/// How many times each way of sharing the port is tried for the spread.
pub const SPREAD_TRIALS: usize = 5;

/// Why seed 002's 4 × 2 read 24.5 requests/s, not 32: `-n 50 -c 10` against
/// 4 workers × 2 threads, several times per way of sharing the port, with
/// the server reporting how the connections spread over the workers.
fn worker_spread(scale: f64) -> Vec<Experiment> {
    let delay = scaled(250, scale);
    let ways: [(&str, &[&str], bool, &str); 5] = [
        (
            "accept",
            &[],
            true,
            "one shared socket, accept when a thread is free",
        ),
        (
            "greedy",
            &["--greedy-accept"],
            true,
            "one shared socket, greedy accept (gunicorn's gthread)",
        ),
        (
            "reuseport",
            &["--share", "reuseport"],
            true,
            "SO_REUSEPORT: the kernel hashes connections to workers",
        ),
        (
            "close",
            &["--keep-alive", "0"],
            true,
            "one shared socket, a new connection per request (--keep-alive 0)",
        ),
        (
            "shared_count",
            &[],
            false,
            "one shared socket; the client shares one count over its connections",
        ),
    ];
    let mut experiments = Vec::new();
    for (name, flags, fixed_share, in_words) in ways {
        let trials = if name == "close" || name == "shared_count" {
            2
        } else {
            SPREAD_TRIALS
        };
        for trial in 1..=trials {
            let mut args = vec!["--workers", "4", "--threads", "2"];
            args.extend_from_slice(flags);
            let mut load = LoadSpec::new(format!("/sleep?ms={}", delay.as_millis()), 50, 10, delay);
            load.fixed_share = fixed_share;
            let mut experiment = Experiment::new(
                2,
                ("", ""),
                format!("4 × 2, {in_words}: trial {trial}"),
                threads_server(&args, in_words, 8),
                vec![load],
            );
            experiment.slug = format!("spread_{name}_{trial}");
            experiment.fetch_report = true;
            experiment.group = Some(Group::new("spread", in_words.to_string()));
            experiments.push(experiment);
        }
    }
    experiments
}

/// The thread sweep: one worker with T = 1, 2, 4 … 1,024 threads under 256
/// connections at 100 ms. The law says min(T, 256) / 0.1 s.
fn thread_sweep(scale: f64) -> Vec<Experiment> {
    let delay = scaled(100, scale);
    let connections = 256;
    (0..=10)
        .map(|power| {
            let threads = 1usize << power;
            // Enough requests for every connection and about eight rounds.
            let requests = (8 * threads.min(connections)).max(connections) as u64;
            let t = threads.to_string();
            let load = LoadSpec::new(
                format!("/sleep?ms={}", delay.as_millis()),
                requests,
                connections,
                delay,
            );
            let mut experiment = Experiment::new(
                2,
                ("", ""),
                format!(
                    "{threads} thread{}, 256 connections",
                    if threads == 1 { "" } else { "s" }
                ),
                threads_server(
                    &["--threads", &t],
                    &format!("1 worker × {threads} threads"),
                    threads,
                ),
                vec![load],
            );
            experiment.slug = format!("thread_sweep_t{threads}");
            let mut group = Group::new(
                "thread_sweep",
                format!("{threads} thread{}", if threads == 1 { "" } else { "s" }),
            );
            group.x = Some(threads as f64);
            experiment.group = Some(group);
            experiment
        })
        .collect()
}

/// More open connections than threads: 8 connections held open, one
/// request each, against 4 threads, for a thread per connection (idle
/// connections hold threads) and a pool of ready connections.
fn keepalive_starvation(scale: f64) -> Vec<Experiment> {
    let delay = scaled(100, scale);
    let designs: [(&str, &[&str], &str); 3] = [
        (
            "per_connection",
            &["--pool", "per-connection"],
            "a thread per connection, kept alive 5 s",
        ),
        (
            "per_connection_close",
            &["--pool", "per-connection", "--keep-alive", "0"],
            "a thread per connection, closed after each answer",
        ),
        ("ready", &[], "a pool of ready connections"),
    ];
    designs
        .into_iter()
        .map(|(name, flags, in_words)| {
            let mut args = vec!["--threads", "4"];
            args.extend_from_slice(flags);
            let load = LoadSpec::new(format!("/sleep?ms={}", delay.as_millis()), 8, 8, delay);
            let mut experiment = Experiment::new(
                2,
                ("", ""),
                format!("4 threads, {in_words}: 8 held connections"),
                threads_server(&args, in_words, 4),
                vec![load],
            );
            experiment.slug = format!("starvation_{name}");
            experiment.group = Some(Group::new("starvation", in_words.to_string()));
            experiment
        })
        .collect()
}

/// Chapter 2's experiments.
pub fn chapter2(scale: f64) -> Vec<Experiment> {
    let mut experiments = vec![five_sleeps(
        2,
        ServerUnderTest::of(&chapters::CHAPTER2_THREADS),
        scale,
    )];
    experiments.extend(seed_002_table(scale));
    experiments.extend(worker_spread(scale));
    experiments.extend(keepalive_starvation(scale));
    experiments.extend(thread_sweep(scale));
    experiments
}

/// Chapter 4's handlers and runtimes: flags, in words, and the capacity the
/// model gives them (`None`: every request at once).
const CHAPTER4_SETUPS: [(&str, &[&str], &str, Option<usize>); 8] = [
    (
        "tokio_current",
        &["--handler", "tokio-sleep"],
        "tokio::time::sleep, current-thread",
        None,
    ),
    (
        "std_current",
        &["--handler", "std-sleep"],
        "std::thread::sleep, current-thread",
        Some(1),
    ),
    (
        "blocking_current",
        &["--handler", "spawn-blocking"],
        "spawn_blocking, current-thread",
        None,
    ),
    (
        "cpu_current",
        &["--handler", "cpu"],
        "CPU work, current-thread",
        Some(1),
    ),
    (
        "tokio_multi",
        &[
            "--handler",
            "tokio-sleep",
            "--runtime",
            "multi",
            "--worker-threads",
            "2",
        ],
        "tokio::time::sleep, 2 worker threads",
        None,
    ),
    (
        "std_multi",
        &[
            "--handler",
            "std-sleep",
            "--runtime",
            "multi",
            "--worker-threads",
            "2",
        ],
        "std::thread::sleep, 2 worker threads",
        Some(2),
    ),
    (
        "blocking_multi",
        &[
            "--handler",
            "spawn-blocking",
            "--runtime",
            "multi",
            "--worker-threads",
            "2",
        ],
        "spawn_blocking, 2 worker threads",
        None,
    ),
    (
        "cpu_multi",
        &[
            "--handler",
            "cpu",
            "--runtime",
            "multi",
            "--worker-threads",
            "2",
        ],
        "CPU work, 2 worker threads",
        Some(2),
    ),
];

/// What seed 002 measured (`hey -n 50 -c 10`, 250 ms) for the setups that
/// match one of chapter 4's: Flask's `async def` view on gunicorn's one sync
/// worker (the blocking sleep on one loop thread), and Quart on hypercorn's
/// one worker (a sleep the loop awaits).
const SEED_002_ASYNC: [(&str, f64); 2] = [("std_current", 3.9445), ("tokio_current", 33.7972)];

/// Chapter 4's experiments: seed 000's five 2 s requests and seed 002's
/// `-n 50 -c 10` at 250 ms for every handler on both runtimes, and seed
/// 001's sleeper and activer on a blocked loop. Every server reports the
/// lag its probe saw.
pub fn chapter4(scale: f64) -> Vec<Experiment> {
    let delay = scaled(250, scale);
    let mut experiments = Vec::new();
    for (name, flags, in_words, capacity) in CHAPTER4_SETUPS {
        let server = || {
            let mut server =
                ServerUnderTest::of(&chapters::CHAPTER4_BLOCKING).with_args(flags, in_words);
            server.capacity = capacity.map_or(Capacity::Unlimited, Capacity::Limited);
            server
        };
        let mut five = five_sleeps(4, server(), scale);
        five.slug = format!("five_{name}");
        five.fetch_report = true;
        five.group = Some(Group::new("five_sleeps", in_words.to_string()));
        experiments.push(five);
        let mut load = LoadSpec::new(format!("/sleep?ms={}", delay.as_millis()), 50, 10, delay);
        load.fixed_share = true;
        let mut fifty = Experiment::new(
            4,
            ("", "002"),
            format!(
                "{in_words}, `-n 50 -c 10` at {}",
                format_ms(delay.as_secs_f64() * 1000.0)
            ),
            server(),
            vec![load],
        );
        fifty.slug = format!("fifty_{name}");
        fifty.fetch_report = true;
        let mut group = Group::new("fifty", in_words.to_string());
        group.seed_rps = SEED_002_ASYNC
            .iter()
            .find(|(setup, _)| *setup == name)
            .map(|&(_, rps)| rps);
        fifty.group = Some(group);
        experiments.push(fifty);
    }
    let mut blocked = sleeper_then_activer(
        4,
        ServerUnderTest::of(&chapters::CHAPTER4_BLOCKING).with_args(
            &["--handler", "std-sleep"],
            "std::thread::sleep, current-thread",
        ),
        scale,
    );
    blocked.server.capacity = Capacity::Limited(1);
    blocked.fetch_report = true;
    experiments.push(blocked);
    experiments
}

/// Chapter 5's servers beside chapter 3's, in the order the tables show them.
fn chapter5_servers() -> Vec<(&'static str, ServerUnderTest)> {
    vec![
        (
            "tokio",
            ServerUnderTest::of(&chapters::CHAPTER3_ASYNC)
                .with_args(&[], "axum on tokio, current-thread (chapter 3)"),
        ),
        (
            "tide",
            ServerUnderTest::of(&chapters::CHAPTER5_ASYNC_STD)
                .with_args(&[], "tide on async-std, default threads"),
        ),
        (
            "smol",
            ServerUnderTest::of(&chapters::CHAPTER5_SMOL)
                .with_args(&[], "hyper on smol, one executor thread"),
        ),
    ]
}

/// Chapter 5: seeds 000, 001 and 002 and a thousand 2 s requests for tide,
/// smol and chapter 3's tokio server side by side; then each runtime's
/// CPU cost on the hello endpoint, with one executor thread and with more;
/// and its timer's resolution (1 ms sleeps one after another).
pub fn chapter5(scale: f64) -> Vec<Experiment> {
    let mut experiments = Vec::new();
    let delay = scaled(250, scale);
    for (name, server) in chapter5_servers() {
        let label = server.model.clone();
        let mut five = five_sleeps(5, server.clone(), scale);
        five.slug = format!("five_{name}");
        five.group = Some(Group::new("io_bound", label.clone()));
        let mut load = LoadSpec::new(format!("/sleep?ms={}", delay.as_millis()), 50, 10, delay);
        load.fixed_share = true;
        let mut fifty = Experiment::new(
            5,
            ("", "002"),
            format!("{label}, `-n 50 -c 10`"),
            server.clone(),
            vec![load],
        );
        fifty.slug = format!("fifty_{name}");
        fifty.group = Some(Group::new("io_bound", label.clone()));
        let mut thousand = thousand_sleeps(5, server.clone(), scale);
        thousand.slug = format!("thousand_{name}");
        thousand.group = Some(Group::new("io_bound", label.clone()));
        let mut activer = sleeper_then_activer(5, server.clone(), scale);
        activer.slug = format!("sleeper_activer_{name}");
        experiments.extend([five, fifty, thousand, activer]);
    }
    // CPU per request: no delay, so what is measured is each runtime's own
    // work. tide's own listener gets fewer requests: it answers ~40 ms late.
    let many = ((100_000.0 * scale.max(0.1)) as u64).max(1000);
    let hello: [(&str, &chapters::Example, &[&str], &str, u64); 6] = [
        (
            "tokio",
            &chapters::CHAPTER3_ASYNC,
            &[],
            "axum on tokio, 1 thread",
            many,
        ),
        (
            "tide_1",
            &chapters::CHAPTER5_ASYNC_STD,
            &["--threads", "1"],
            "tide on async-std, 1 executor thread",
            many,
        ),
        (
            "tide",
            &chapters::CHAPTER5_ASYNC_STD,
            &[],
            "tide on async-std, default (one per core)",
            many,
        ),
        (
            "tide_listener",
            &chapters::CHAPTER5_ASYNC_STD,
            &["--tide-listener"],
            "tide's own listener (Nagle on)",
            2000,
        ),
        (
            "smol",
            &chapters::CHAPTER5_SMOL,
            &[],
            "hyper on smol, 1 executor thread",
            many,
        ),
        (
            "smol_2",
            &chapters::CHAPTER5_SMOL,
            &["--threads", "2"],
            "hyper on smol, 2 executor threads",
            many,
        ),
    ];
    for (name, example, flags, label, requests) in hello {
        let server = ServerUnderTest::of(example).with_args(flags, label);
        let mut experiment = Experiment::new(
            5,
            ("", ""),
            format!("{label}: `GET /`, {requests} requests over 50 connections"),
            server,
            vec![LoadSpec::new("/".into(), requests, 50, Duration::ZERO)],
        );
        experiment.slug = format!("hello_{name}");
        let mut group = Group::new("hello", label.to_string());
        group.cpu_per_request = true;
        experiment.group = Some(group);
        experiments.push(experiment);
    }
    // Timer resolution: 1 ms sleeps, one at a time.
    let mut timed = chapter5_servers();
    timed.push((
        "tide_listener",
        ServerUnderTest::of(&chapters::CHAPTER5_ASYNC_STD)
            .with_args(&["--tide-listener"], "tide's own listener (Nagle on)"),
    ));
    for (name, server) in timed {
        let label = server.model.clone();
        let tick = Duration::from_millis(1);
        let requests = if name == "tide_listener" { 100 } else { 500 };
        let mut experiment = Experiment::new(
            5,
            ("", ""),
            format!("{label}: `/sleep?ms=1`, one at a time"),
            server,
            vec![LoadSpec::new("/sleep?ms=1".into(), requests, 1, tick)],
        );
        experiment.slug = format!("timer_{name}");
        experiment.group = Some(Group::new("timer", label));
        experiments.push(experiment);
    }
    experiments
}

/// Chapter 6's client modes, as `--mode` takes them.
const CLIENT_MODES: [&str; 3] = ["sequential", "threads", "async"];

/// One run of chapter 6's client: `requests` requests in `mode`, all at once
/// unless sequential, against `server`.
fn client_run(
    group: &str,
    server: ServerUnderTest,
    mode: &str,
    requests: u64,
    delay: Duration,
) -> Experiment {
    let connections = if mode == "sequential" {
        1
    } else {
        requests as usize
    };
    let mut load = LoadSpec::new(
        format!("/sleep?ms={}", delay.as_millis()),
        requests,
        connections,
        delay,
    );
    load.driver = Driver::Command {
        example: chapters::CHAPTER6_CLIENT.name,
    };
    load.extra_args = vec!["--mode".into(), mode.into()];
    let mut experiment = Experiment::new(
        6,
        ("", "003"),
        format!("{mode} client, N = {requests}, against {}", server.model),
        server,
        vec![load],
    );
    experiment.slug = format!("{group}_{mode}_n{requests}");
    let mut row = Group::new(group, format!("{mode}, N = {requests}"));
    row.x = Some(requests as f64);
    row.series = Some(mode.to_string());
    experiment.group = Some(row);
    experiment
}

/// Chapter 6 (seed 003, which never got its results): N requests sent
/// sequentially, from threads and as futures, against a server of capacity
/// 8 (4 workers × 2 threads, seed 003's uWSGI) at 500 ms, and against chapter
/// 3's server, which has no capacity limit.
pub fn chapter6(scale: f64) -> Vec<Experiment> {
    let delay = scaled(500, scale);
    let uwsgi = || {
        threads_server(
            &["--workers", "4", "--threads", "2"],
            "4 workers × 2 threads (seed 003's uWSGI)",
            8,
        )
    };
    let mut experiments = Vec::new();
    for mode in CLIENT_MODES {
        for requests in [1u64, 2, 4, 8, 16, 32, 64] {
            let mut experiment = client_run("capacity8", uwsgi(), mode, requests, delay);
            experiment.fetch_report = true;
            experiments.push(experiment);
        }
    }
    let unlimited = || {
        ServerUnderTest::of(&chapters::CHAPTER3_ASYNC)
            .with_args(&[], "chapter 3's event loop (no capacity limit)")
    };
    for mode in ["threads", "async"] {
        for requests in [64u64, 256, 1024, 4096] {
            experiments.push(client_run("unlimited", unlimited(), mode, requests, delay));
        }
    }
    experiments
}

/// Chapter 7's proxy with `model_args`, in front of an upstream that sleeps
/// `delay`; loaded like seed 004 (400 connections for `duration`).
fn proxy_run(
    group: &str,
    (name, model_args, in_words): (String, Vec<String>, String),
    capacity: Capacity,
    delay: Duration,
    duration: Duration,
) -> Experiment {
    let mut args: Vec<String> = vec![
        "--upstream".into(),
        format!("{{upstream}}/sleep?ms={}", delay.as_millis()),
    ];
    args.extend(model_args);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = ServerUnderTest::of(&chapters::CHAPTER7_PROXY).with_args(&arg_refs, &in_words);
    server.capacity = capacity;
    let connections = 400;
    // The model's estimate of how many requests fit in the run, for its
    // prediction. With no upstream delay the model (which knows no overhead)
    // has nothing to say: one round stands in, and the table shows "—".
    let estimate = if delay.is_zero() {
        connections as u64
    } else {
        let rate = model::steady_throughput(connections, capacity, delay);
        (rate * duration.as_secs_f64()).round().max(1.0) as u64
    };
    let mut load = LoadSpec::new("/proxy".into(), estimate, connections, delay);
    load.duration = Some(duration);
    load.timeout = Duration::from_secs(30);
    let mut experiment = Experiment::new(
        7,
        ("", "004"),
        format!(
            "{in_words}, upstream {} ms, 400 connections for {}",
            delay.as_millis(),
            humantime::format_duration(duration)
        ),
        server,
        vec![load],
    );
    experiment.upstreams = vec![
        ServerUnderTest::of(&chapters::CHAPTER3_ASYNC)
            .with_args(&[], "chapter 3's event loop as the upstream"),
    ];
    experiment.slug = format!("{group}_{name}");
    experiment.fetch_report = false;
    let mut row = Group::new(group, in_words);
    row.latency_table = true;
    experiment.group = Some(row);
    experiment
}

/// One proxy setup: file-name part, flags, in words, capacity, chart x.
type ProxySetup = (String, Vec<String>, String, Capacity, Option<f64>);

/// The proxy's setups: threads with pools 10 … 1,000 per worker, and async;
/// two workers each, like seed 004's gunicorn.
fn proxy_setups() -> Vec<ProxySetup> {
    let mut setups: Vec<_> = [10usize, 20, 50, 100, 200, 400, 800, 1000]
        .into_iter()
        .map(|pool| {
            (
                format!("threads_{pool}"),
                vec![
                    "--model".into(),
                    "threads".into(),
                    "--pool".into(),
                    pool.to_string(),
                ],
                format!("threads, pool {pool} × 2 workers"),
                Capacity::Limited(2 * pool),
                Some(pool as f64),
            )
        })
        .collect();
    setups.push((
        "async".into(),
        vec!["--model".into(), "async".into()],
        "async, a loop × 2 workers".into(),
        Capacity::Unlimited,
        None,
    ));
    setups
}

/// Seed 004's own results (2017, Python 3.6, gunicorn with 2 workers, wrk
/// with 400 connections for 20 s against a route that calls nginx): variant,
/// then min, p50, p99, p99.9, max and mean in ms, duration in s, requests.
/// The last three rows are the seed's stack rerun by the team on this
/// machine (nginx upstream, gunicorn 2 workers, `wrk -t2 -c400 -d10s`), as
/// the issue reported them; cells it did not report are NaN.
pub const SEED_004: [(&str, [f64; 6], f64, u64); 14] = [
    (
        "aiohttp",
        [163.27, 247.72, 352.75, 404.59, 1414.08, 257.59],
        20.10,
        30702,
    ),
    (
        "flask:gevent",
        [85.02, 945.17, 6587.19, 8177.32, 8192.75, 1207.66],
        20.08,
        7491,
    ),
    (
        "flask:meinheld",
        [124.99, 2526.55, 6753.13, 6857.55, 6857.55, 3036.93],
        20.10,
        190,
    ),
    (
        "flask:10",
        [163.05, 4419.11, 4505.59, 4659.46, 4667.55, 3880.05],
        20.05,
        1797,
    ),
    (
        "flask:20",
        [110.23, 2368.20, 3140.01, 3434.39, 3476.06, 2163.02],
        20.09,
        3364,
    ),
    (
        "flask:50",
        [122.17, 472.98, 3978.68, 8599.01, 9845.94, 541.13],
        20.10,
        4606,
    ),
    (
        "flask:100",
        [118.26, 499.16, 4428.77, 8714.60, 9987.37, 556.77],
        20.10,
        4555,
    ),
    (
        "flask:200",
        [112.06, 459.85, 4493.61, 8548.99, 9683.27, 527.02],
        20.10,
        4378,
    ),
    (
        "flask:400",
        [121.63, 526.72, 3195.23, 8069.06, 9686.35, 580.54],
        20.06,
        4336,
    ),
    (
        "flask:800",
        [127.94, 430.07, 4503.95, 8653.69, 9722.19, 514.47],
        20.09,
        4381,
    ),
    (
        "flask:1000",
        [184.76, 732.21, 1919.72, 5323.73, 7364.60, 786.26],
        20.04,
        4121,
    ),
    (
        "rerun here, aiohttp",
        [f64::NAN, 207.0, 433.0, f64::NAN, f64::NAN, f64::NAN],
        10.0,
        16854,
    ),
    (
        "rerun here, flask gthread × 10",
        [f64::NAN, 780.0, f64::NAN, f64::NAN, f64::NAN, f64::NAN],
        10.0,
        4953,
    ),
    (
        "rerun here, flask gthread × 100",
        [f64::NAN, f64::NAN, 8730.0, f64::NAN, f64::NAN, f64::NAN],
        10.0,
        3633,
    ),
];

/// Chapter 7: seed 004's proxy under 400 connections, upstream delays of
/// 0 ms (the seed's nginx) and 100 ms.
pub fn chapter7(scale: f64) -> Vec<Experiment> {
    let duration = scaled(20_000, scale);
    let mut experiments = Vec::new();
    for delay_ms in [0u64, 100] {
        let delay = scaled(delay_ms, scale);
        let group = format!("proxy_{delay_ms}ms");
        for (name, args, in_words, capacity, x) in proxy_setups() {
            let mut experiment =
                proxy_run(&group, (name, args, in_words), capacity, delay, duration);
            if let Some(group) = experiment.group.as_mut() {
                // Only the delayed upstream has a prediction worth charting.
                group.x = if delay_ms > 0 { x } else { None };
            }
            experiments.push(experiment);
        }
    }
    experiments
}

/// One of chapter 8's servers: file-name part, in words (a chart's line), as started.
type HeldServer = (&'static str, &'static str, ServerUnderTest);

/// Chapter 8's servers.
fn chapter8_servers() -> Vec<HeldServer> {
    vec![
        (
            "threads",
            "a thread per connection",
            ServerUnderTest::of(&chapters::CHAPTER8_THREADS)
                .with_args(&[], "a thread per connection (2 MiB stacks)"),
        ),
        (
            "axum",
            "axum on tokio",
            ServerUnderTest::of(&chapters::CHAPTER3_ASYNC)
                .with_args(&[], "chapter 3's axum on a tokio current-thread loop"),
        ),
        (
            "loop",
            "minimal loop",
            ServerUnderTest::of(&chapters::CHAPTER8_MINIMAL_LOOP).with_args(
                &[],
                "the minimal loop (mio, one thread, no buffer while waiting)",
            ),
        ),
    ]
}

/// How fast chapter 8 opens its connections: under the listen backlog
/// (1,024) per ~200 ms, so no SYN is dropped and retransmitted.
pub const CHAPTER8_CONNECT_RATE: u32 = 5000;

/// One chapter 8 row: `connections` held open against `server`, either each
/// with a `delay` request always in flight for `duration` (busy), or, with
/// `hold`, each sending one request and then idle for `hold`.
fn held_connections(
    (name, series, server): HeldServer,
    connections: usize,
    delay: Duration,
    duration: Duration,
    hold: Option<Duration>,
) -> Experiment {
    let (group, load) = match hold {
        None => {
            let rate = model::steady_throughput(connections, server.capacity, delay);
            let estimate = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
            let mut load = LoadSpec::new(
                format!("/sleep?ms={}", delay.as_millis()),
                estimate,
                connections,
                delay,
            );
            load.duration = Some(duration);
            ("held_busy", load)
        }
        Some(idle) => {
            let mut load =
                LoadSpec::new("/".into(), connections as u64, connections, Duration::ZERO);
            load.hold = Some(idle);
            ("held_idle", load)
        }
    };
    let load = LoadSpec {
        connect_rate: Some(CHAPTER8_CONNECT_RATE),
        timeout: Duration::from_secs(30),
        ..load
    };
    let title = format!(
        "{}, {} connections {}",
        server.model,
        connections,
        if hold.is_some() {
            "idle after one request"
        } else {
            "each with a request in flight"
        }
    );
    let mut experiment = Experiment::new(8, ("", ""), title, server, vec![load]);
    experiment.slug = format!("{group}_{name}_{connections}");
    let mut row = Group::new(group, series.to_string());
    row.x = Some(connections as f64);
    row.series = Some(series.to_string());
    row.connection_cost = true;
    experiment.group = Some(row);
    experiment
}

/// Chapter 8: 100, 1,000 and 10,000 connections held open against a thread
/// per connection, axum, and the minimal loop; busy (a 1 s request always in
/// flight) and idle (kept alive after one request).
pub fn chapter8(scale: f64) -> Vec<Experiment> {
    let delay = scaled(1000, scale);
    let duration = scaled(10_000, scale);
    let hold = scaled(3000, scale);
    let mut experiments = Vec::new();
    for (name, series, server) in chapter8_servers() {
        for connections in [100usize, 1000, 10_000] {
            let server = || (name, series, server.clone());
            experiments.push(held_connections(
                server(),
                connections,
                delay,
                duration,
                None,
            ));
            experiments.push(held_connections(
                server(),
                connections,
                delay,
                duration,
                Some(hold),
            ));
        }
    }
    // The stack a thread reserves is not the memory it uses: the same 10,000
    // threads with 64 KiB stacks instead of 2 MiB.
    let small_stacks = ServerUnderTest::of(&chapters::CHAPTER8_THREADS).with_args(
        &["--stack-kib", "64"],
        "a thread per connection (64 KiB stacks)",
    );
    let mut experiment = held_connections(
        (
            "threads_stack64",
            "a thread per connection, 64 KiB stacks",
            small_stacks,
        ),
        10_000,
        delay,
        duration,
        None,
    );
    if let Some(row) = experiment.group.as_mut() {
        // A row of the table, not a line of the chart.
        row.series = None;
        row.x = None;
    }
    experiments.push(experiment);
    experiments
}

/// A chapter's experiments; `scale` shrinks every delay (`--quick` uses 0.1).
pub fn chapter(number: u32, scale: f64) -> Vec<Experiment> {
    chapters::find(number).map_or_else(Vec::new, |chapter| (chapter.experiments)(scale))
}

impl Experiment {
    /// What the model predicts for each load, in order.
    pub fn predict(&self) -> Vec<Prediction> {
        let streams: Vec<ClientStream> = self
            .loads
            .iter()
            .map(|load| ClientStream {
                start: load.start_after,
                requests: load.requests,
                connections: load.connections,
                service: load.service,
            })
            .collect();
        model::predict(&streams, self.server.capacity)
    }

    /// Starts the upstreams and the server, runs every load (each on its
    /// own schedule) while sampling the server, and stops them all.
    pub fn run(&self) -> Result<ExperimentRecord, String> {
        let mut upstreams = Vec::new();
        for upstream in &self.upstreams {
            upstreams.push(start_server(upstream, &[])?);
        }
        let upstream_urls: Vec<String> = upstreams.iter().map(|u| u.base_url.clone()).collect();
        let mut server = start_server(&self.server, &upstream_urls)?;
        let overflows_before = sample::listen_overflows();
        let sampler = Sampler::start(server.pid());
        let predictions = self.predict();
        let started = std::time::Instant::now();
        let runs: Vec<_> = self
            .loads
            .iter()
            .map(|spec| {
                let args = spec.load_args(&server.url(&spec.path));
                let spec = spec.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(spec.start_after);
                    drive(&spec, &args).map(|driven| (driven, args))
                })
            })
            .collect();
        let mut loads = Vec::with_capacity(runs.len());
        for ((run, spec), predicted) in runs.into_iter().zip(&self.loads).zip(predictions) {
            let (driven, args) = run
                .join()
                .map_err(|_| "a load thread panicked".to_string())??;
            let example = match spec.driver {
                Driver::Engine => "load",
                Driver::Command { example } => example,
            };
            loads.push(LoadOutcome {
                path: spec.path.clone(),
                start_after_s: spec.start_after.as_secs_f64(),
                // A timed run sends what it sends.
                requests: match spec.duration {
                    Some(_) => driven.summary.requests.sent,
                    None => spec.requests,
                },
                connections: spec.connections,
                command: command_line(example, &args),
                predicted,
                measured: driven.summary,
                report: driven.report,
                timeline: driven.timeline,
                client_samples: driven.client_samples,
            });
        }
        let (server_report, report_at_s) = if self.fetch_report {
            let at = started.elapsed().as_secs_f64();
            let body = crate::harness::http_get(&server.base_url, "/report")?;
            let report = serde_json::from_str(&body).map_err(|error| {
                format!(
                    "{}'s /report is not JSON ({error}): {body}",
                    self.server.example
                )
            })?;
            (Some(report), Some(at))
        } else {
            (None, None)
        };
        let samples = sampler.map(Sampler::finish);
        let listen_overflows = match (overflows_before, sample::listen_overflows()) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        if !server.is_running() {
            return Err(format!(
                "{} died during the run; its stderr: {}",
                self.server.example,
                server.stderr_text().trim()
            ));
        }
        Ok(ExperimentRecord {
            chapter: self.chapter,
            slug: self.slug.clone(),
            seed: self.seed.to_string(),
            title: self.title.clone(),
            example: self.server.example.to_string(),
            server_args: self.server.args.clone(),
            default_port: self.server.default_port,
            model: self.server.model.clone(),
            failures_expected: self.failures_expected,
            samples,
            listen_overflows,
            server_report,
            report_at_s,
            group: self.group.clone(),
            loads,
        })
    }
}

/// Starts `server` on its default port, so the commands the book shows are
/// the ones that ran; on a free one if the reader has that port in use.
fn start_server(server: &ServerUnderTest, upstreams: &[String]) -> Result<ServerProcess, String> {
    let args: Vec<String> = server
        .args
        .iter()
        .map(|arg| match upstreams.first() {
            Some(url) => arg.replace("{upstream}", url),
            None => arg.clone(),
        })
        .collect();
    let with_port = |port: String| {
        let mut all = vec!["--port".to_string(), port];
        all.extend(args.iter().cloned());
        all
    };
    match ServerProcess::start(server.example, &with_port(server.default_port.to_string())) {
        Err(error) if error.contains("already in use") => {
            ServerProcess::start(server.example, &with_port("0".into()))
        }
        started => started,
    }
}

/// What a driver hands back for one load.
struct Driven {
    summary: Summary,
    report: String,
    timeline: Vec<Span>,
    client_samples: Option<ServerSamples>,
}

/// Runs one load with its driver, from exactly the flags the book prints.
fn drive(spec: &LoadSpec, args: &[String]) -> Result<Driven, String> {
    match spec.driver {
        Driver::Engine => {
            let argv = std::iter::once("load".to_string()).chain(args.iter().cloned());
            let parsed = LoadArgs::try_parse_from(argv).map_err(|error| error.to_string())?;
            let results = load::run(parsed.to_config()?)?;
            Ok(Driven {
                summary: Summary::of(&results),
                report: load::report::text(&results),
                timeline: results.record.timeline.clone(),
                client_samples: None,
            })
        }
        Driver::Command { example } => {
            let program = crate::harness::examples_dir().join(example);
            let child = std::process::Command::new(&program)
                .args(args)
                .arg("--json")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|error| format!("cannot run {}: {error}", program.display()))?;
            // The client is what is studied here: sample its threads and memory.
            let sampler = Sampler::start(child.id());
            let output = child
                .wait_with_output()
                .map_err(|error| format!("{example} did not finish: {error}"))?;
            let client_samples = sampler.map(Sampler::finish);
            let summary: Summary = serde_json::from_slice(&output.stdout).map_err(|error| {
                format!(
                    "{example} did not print a load report ({error}); its stderr: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )
            })?;
            Ok(Driven {
                report: summary.to_json(),
                summary,
                timeline: Vec::new(),
                client_samples,
            })
        }
    }
}

/// What one load predicted and measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadOutcome {
    pub path: String,
    pub start_after_s: f64,
    pub requests: u64,
    pub connections: usize,
    /// The command that ran this load, as a reader types it.
    #[serde(default)]
    pub command: String,
    pub predicted: Prediction,
    pub measured: Summary,
    /// The load client's text report of this load, as a reader would see it.
    pub report: String,
    /// When each request ran (the first ones; empty for a command driver).
    #[serde(default)]
    pub timeline: Vec<Span>,
    /// The client's own threads and memory, for a command driver (the
    /// client is what chapter 6 is about).
    #[serde(default)]
    pub client_samples: Option<ServerSamples>,
}

/// One experiment's record, as `book/generated/chapterN.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExperimentRecord {
    pub chapter: u32,
    pub slug: String,
    pub seed: String,
    pub title: String,
    pub example: String,
    /// The server's flags beyond `--port`.
    #[serde(default)]
    pub server_args: Vec<String>,
    pub default_port: u16,
    pub model: String,
    /// Failed requests are the finding, not a broken run.
    #[serde(default)]
    pub failures_expected: bool,
    /// The server's memory, threads and CPU while it ran (None: not sampled).
    #[serde(default)]
    pub samples: Option<ServerSamples>,
    /// Connections the kernel dropped for a full listen backlog during the
    /// run (machine-wide counter, read before and after).
    #[serde(default)]
    pub listen_overflows: Option<u64>,
    /// The server's `GET /report` after the loads, when asked for.
    #[serde(default)]
    pub server_report: Option<serde_json::Value>,
    /// When the report was fetched, in seconds since the experiment started.
    #[serde(default)]
    pub report_at_s: Option<f64>,
    #[serde(default)]
    pub group: Option<Group>,
    pub loads: Vec<LoadOutcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_shown_is_the_arguments_that_run() {
        let load = LoadSpec::new("/sleep?ms=5".into(), 5, 5, Duration::from_millis(5));
        let args = load.load_args("http://127.0.0.1:8001/sleep?ms=5");
        let parsed =
            LoadArgs::try_parse_from(std::iter::once("load".to_string()).chain(args.clone()))
                .unwrap()
                .to_config()
                .unwrap();
        assert_eq!(parsed.timeout, DEFAULT_TIMEOUT);
        assert_eq!(parsed.connections, 5);
        assert_eq!(
            command_line("load", &args),
            "cargo run --release --example load -- -n 5 -c 5 --timeout 2m \
             'http://127.0.0.1:8001/sleep?ms=5'"
        );
    }

    #[test]
    fn every_chapter_server_is_in_the_registry() {
        for number in chapters::measured() {
            for experiment in chapter(number, 0.1) {
                assert!(
                    chapters::servers()
                        .any(|(example, _)| example.name == experiment.server.example),
                    "{}",
                    experiment.server.example
                );
            }
        }
    }
}
