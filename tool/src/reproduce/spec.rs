//! An experiment as data: which server with which flags, which loads, what
//! the model predicts. Running one is [`super::run`]'s business.

use std::time::Duration;

use super::judge::FiguresSetBy;
use super::model::{self, Capacity, ClientStream, Prediction};
pub use super::record::Group;
use evt::load::schedule::Arrivals;

/// A program the reader runs with `cargo run --release --example NAME`.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    pub name: &'static str,
    /// What it is, in a few words (the README's table says it).
    pub what: &'static str,
    /// For a server: its default port and how many requests it works on at once.
    pub server: Option<Server>,
    /// Why it cannot run here (a tool it needs is missing), or `None`.
    pub unavailable: Option<fn() -> Option<String>>,
    /// A peer from another language, measured beside the book's servers
    /// but not bound by their contract (the whole route table, the flags).
    pub peer: bool,
}

/// What the harness and the model need to know of a server example.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    /// From `evt::defaults`, where the example reads it too.
    pub default_port: u16,
    pub capacity: Capacity,
}

impl Example {
    /// A server example: what the harness starts and the model predicts.
    pub const fn server(
        name: &'static str,
        what: &'static str,
        default_port: u16,
        capacity: Capacity,
    ) -> Example {
        Example {
            name,
            what,
            server: Some(Server {
                default_port,
                capacity,
            }),
            unavailable: None,
            peer: false,
        }
    }

    /// The same server, as a peer from another language.
    pub const fn as_peer(mut self) -> Example {
        self.peer = true;
        self
    }

    /// The same example, which `check` may say cannot run here.
    pub const fn needing(mut self, check: fn() -> Option<String>) -> Example {
        self.unavailable = Some(check);
        self
    }

    /// Why it cannot run on this machine, or `None`.
    pub fn why_unavailable(&self) -> Option<String> {
        self.unavailable.and_then(|check| check())
    }

    /// A program that is not a server (a client).
    pub const fn client(name: &'static str, what: &'static str) -> Example {
        Example {
            name,
            what,
            server: None,
            unavailable: None,
            peer: false,
        }
    }
}

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
    /// A server example, as it starts by default. A client example has no
    /// port: asking for one is a mistake in a chapter file, found by the
    /// test that builds every chapter's experiments.
    pub fn of(example: &Example) -> ServerUnderTest {
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

    /// The same server modelled as serving `capacity` requests at once.
    pub fn with_capacity(mut self, capacity: Capacity) -> ServerUnderTest {
        self.capacity = capacity;
        self
    }
}

/// What sends the requests of a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The book's load engine, in this process.
    Engine,
    /// An example that takes the `load` command's flags and prints its
    /// `--json` report (a client a chapter is about).
    Command { example: &'static str },
    /// Another load tool (hey, ab, wrk, oha), run as its users run it.
    Peer { tool: super::peers::Peer },
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
    /// Keep when each request ran in the record: only for a load whose
    /// timeline a view draws (or lines up with something else).
    pub keep_timeline: bool,
    /// Keep how many answers each connection got (who waited), for a view
    /// that shows it.
    pub keep_answers_per_connection: bool,
    /// The open model: this many requests per second (`--rate`), spaced
    /// evenly or as Poisson arrivals (`--arrivals poisson --seed N`).
    pub rate: Option<f64>,
    pub arrivals: Arrivals,
    /// Keep the latency over the run (per 100 ms), for a view that draws it.
    pub keep_over_time: bool,
    /// Count the goodput: 2xx answers within this time (`--deadline`).
    pub deadline: Option<Duration>,
}

/// Long enough for the slowest request any experiment predicts.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The path of a request the server answers after `delay`.
pub fn sleep_path(delay: Duration) -> String {
    format!("/sleep?ms={}", delay.as_millis())
}

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
            keep_timeline: false,
            keep_answers_per_connection: false,
            rate: None,
            arrivals: Arrivals::Even,
            deadline: None,
            keep_over_time: false,
        }
    }

    /// `requests` requests to `/sleep` that each take `delay`, over `connections`.
    pub fn sleeps(requests: u64, connections: usize, delay: Duration) -> LoadSpec {
        LoadSpec::new(sleep_path(delay), requests, connections, delay)
    }

    /// The `load` flags this load runs with: the run parses exactly these,
    /// and the book prints exactly these.
    pub fn load_args(&self, url: &str) -> Vec<String> {
        if let Driver::Peer { tool } = self.driver {
            let length = match self.duration {
                Some(duration) => super::peers::Length::Time(duration),
                None => super::peers::Length::Requests(self.requests),
            };
            return tool.args(url, self.connections, length, self.rate.unwrap_or(0.0));
        }
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
        if let Some(rate) = self.rate {
            args.extend(["--rate".into(), rate.to_string()]);
        }
        if let Arrivals::Poisson { seed } = self.arrivals {
            args.extend([
                "--arrivals".into(),
                "poisson".into(),
                "--seed".into(),
                seed.to_string(),
            ]);
        }
        if let Some(deadline) = self.deadline {
            args.extend([
                "--deadline".into(),
                humantime::format_duration(deadline).to_string(),
            ]);
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
    /// Keep the sampler's series (memory, threads, CPU over time) in the
    /// record, for a view that draws it; otherwise only before and peaks.
    pub keep_samples: bool,
    /// Stop the server (SIGSTOP to its process group) this long after the
    /// experiment starts, for this long, then let it go on (SIGCONT).
    pub pause: Option<Pause>,
    /// Pin the server to this many CPUs of its own and the load client to
    /// another, where the machine has that many more than one.
    pub pin_server_cpus: Option<usize>,
    /// Slow clients holding connections while the loads run.
    pub slow_clients: Option<super::slow::SlowClients>,
    /// Keep the cores the server leaves idle busy with spinners that yield
    /// to anything else.
    pub fill_idle_cores: Option<Spinner>,
    /// What sets its headline figures, where the rule of thumb (timers when
    /// the model predicts a median of 10 ms or more) is wrong.
    pub set_by: Option<FiguresSetBy>,
    /// How many times it runs (its figures' range, where chance sets them).
    pub trials: usize,
    /// The experiments that are trials of one thing share this name (the
    /// experiment's own slug when it is not one of several).
    pub family: Option<String>,
    /// Why its figures vary from machine to machine, where known.
    pub varies_because: Option<&'static str>,
    /// Where chance sets its figures: the lowest and highest the model allows.
    pub chance_range: Option<super::judge::ChanceRange>,
    /// Count the server's system calls with strace while the loads run.
    pub count_syscalls: bool,
}

/// A spinner on a core the server leaves idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spinner {
    /// `nice -n 19`: the lowest priority of the normal class. Its core is
    /// busy, so the kernel places a woken thread elsewhere if it can.
    Nice,
    /// `chrt -i 0` (SCHED_IDLE): runs only when nothing else wants the
    /// core, and the kernel still counts the core as idle when it places a
    /// woken thread; the core never halts.
    Idle,
}

impl Spinner {
    /// The command line that runs one spinner.
    pub fn command(self) -> [&'static str; 6] {
        const LOOP: &str = "while :; do :; done";
        match self {
            Spinner::Nice => ["nice", "-n", "19", "sh", "-c", LOOP],
            Spinner::Idle => ["chrt", "-i", "0", "sh", "-c", LOOP],
        }
    }

    /// The command as a reader types it.
    pub fn shell(self) -> String {
        let [a, b, c, d, e, body] = self.command();
        format!("{a} {b} {c} {d} {e} '{body}'")
    }
}

/// A stall the harness inflicts on a server: it stops every process of the
/// server for `length`, `after` the experiment starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pause {
    pub after: Duration,
    pub length: Duration,
}

/// What a chapter plans its experiments for: how long (the scale of every
/// delay and duration) and how many cores (for sweeps up to the machine's).
/// A record's plan is found again from its scale and its machine's cores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub scale: f64,
    pub cores: usize,
}

impl Plan {
    /// The plan for this machine.
    pub fn here(scale: f64) -> Plan {
        Plan {
            scale,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Experiment {
    /// An experiment of the chapter whose list it is in: that list stamps
    /// its chapter's number on it ([`super::experiments`]).
    pub fn new(
        slug: impl Into<String>,
        title: String,
        server: ServerUnderTest,
        loads: Vec<LoadSpec>,
    ) -> Experiment {
        Experiment {
            chapter: 0,
            slug: slug.into(),
            seed: "",
            title,
            server,
            upstreams: Vec::new(),
            loads,
            failures_expected: false,
            fetch_report: false,
            group: None,
            keep_samples: false,
            pause: None,
            pin_server_cpus: None,
            slow_clients: None,
            fill_idle_cores: None,
            set_by: None,
            trials: 1,
            family: None,
            varies_because: None,
            chance_range: None,
            count_syscalls: false,
        }
    }

    /// The same experiment with a `spinner` on every core but one, so no
    /// core ever halts while the loads run.
    pub fn with_idle_cores_filled(mut self, spinner: Spinner) -> Experiment {
        self.fill_idle_cores = Some(spinner);
        self
    }

    /// The same experiment, with `connections` slow clients (half a request
    /// head each) from `after` for `hold`.
    pub fn with_slow_clients(
        mut self,
        connections: usize,
        after: Duration,
        hold: Duration,
    ) -> Experiment {
        self.slow_clients = Some(super::slow::SlowClients {
            connections,
            after,
            hold,
        });
        self
    }

    /// The same experiment with the client on the first allowed CPU and the
    /// server on the next `server_cpus`, where there are that many; else
    /// as it is, and the record says so.
    pub fn pinned(mut self, server_cpus: usize) -> Experiment {
        self.pin_server_cpus = Some(server_cpus);
        self
    }

    /// The same experiment, with the server stopped for `length` at `after`.
    pub fn with_pause(mut self, after: Duration, length: Duration) -> Experiment {
        self.pause = Some(Pause { after, length });
        self
    }

    /// The same experiment, as a redo of seed write-up `seed`.
    pub fn of_seed(mut self, seed: &'static str) -> Experiment {
        self.seed = seed;
        self
    }

    /// The same experiment as one row of the table `group`.
    pub fn in_group(mut self, group: Group) -> Experiment {
        self.group = Some(group);
        self
    }

    /// The same experiment, asking the server for `/report` after the loads.
    pub fn with_report(mut self) -> Experiment {
        self.fetch_report = true;
        self
    }

    /// The same experiment, its server's system calls counted by strace
    /// while the loads run (the server runs slower meanwhile).
    pub fn with_syscalls_counted(mut self) -> Experiment {
        self.count_syscalls = true;
        self
    }

    /// The same experiment, keeping the timeline of every load.
    pub fn with_timeline(mut self) -> Experiment {
        for load in &mut self.loads {
            load.keep_timeline = true;
        }
        self
    }

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
                rate: load.rate,
                arrivals: load.arrivals,
            })
            .collect();
        model::predict(&streams, self.server.capacity)
    }

    /// How long the model expects the whole experiment to take, in seconds.
    pub fn expected_s(&self) -> f64 {
        self.loads
            .iter()
            .zip(self.predict())
            .map(|(load, prediction)| load.start_after.as_secs_f64() + prediction.total_s)
            .fold(0.0, f64::max)
    }
}

/// A program that measures something itself (no server, no load) and
/// prints what it found as JSON with `--json`: a chapter's benchmark.
#[derive(Debug, Clone)]
pub struct Program {
    pub chapter: u32,
    /// File-name part and the record's key.
    pub slug: String,
    pub title: String,
    /// The example's name: `cargo run --example NAME`.
    pub example: &'static str,
    /// Its flags, without `--json`.
    pub args: Vec<String>,
    /// About how long it runs, in seconds (for the spinner).
    pub expected_s: f64,
}

impl Program {
    /// A program of the chapter whose list it is in, which stamps its
    /// number on it ([`super::programs`]).
    pub fn new(
        slug: impl Into<String>,
        title: impl Into<String>,
        example: &'static str,
        args: &[&str],
        expected_s: f64,
    ) -> Program {
        Program {
            chapter: 0,
            slug: slug.into(),
            title: title.into(),
            example,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            expected_s,
        }
    }
}

/// Scales a delay for `--quick` runs (`scale` 1.0 for the real thing).
pub fn scaled(ms: u64, scale: f64) -> Duration {
    Duration::from_millis(((ms as f64) * scale).round() as u64)
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
