//! Chapter 13, completion instead of readiness: a hand-written loop on
//! io_uring beside chapter 8's loop on epoll, with a buffer per read or a
//! ring of buffers, under three settings of when the kernel does its work;
//! monoio beside tokio under chapter 9's handler. CPU and system calls per
//! request on hello (counted by the loops, and by strace for the
//! runtimes), 10,000 connections busy and idle, and what a system call
//! costs here.

use std::fmt::Write;
use std::time::Duration;

mod tables;

use tables::{cost_table, held_calls_table};

use super::chapter::{Chapter, Example};
use super::chapter8;
use super::chapter9;
use super::figure::Figure;
use super::held::{self, HeldServer};
use super::judge::{Probe, SetBy};
use super::model::Capacity;
use super::record::{ChapterRecord, ExperimentRecord, Group, ProgramRecord};
use super::rounds::{by_series, cpu_us, median, median_cpu};
use super::spec::{Experiment, LoadSpec, Plan, Program, ServerUnderTest, scaled};
use super::views::{self, View, kib, stamp, thousands};
use evt::defaults;
use evt::report::{SyscallCosts, SyscallReport};
use evt::sys::Limit;

pub const URING: Example = Example::server(
    "chapter13_uring",
    "a hand-written event loop on io_uring (one thread): a buffer per read or a ring of buffers",
    defaults::CHAPTER13_URING_PORT,
    Capacity::Unlimited,
);

pub const MONOIO: Example = Example::server(
    "chapter13_monoio",
    "chapter 9's handler on monoio (io_uring), buffers passed by value",
    defaults::CHAPTER13_MONOIO_PORT,
    Capacity::Unlimited,
);

pub const SYSCALL_COST: Example = Example::client(
    "chapter13_syscall_cost",
    "what a system call, a small TCP send and an io_uring no-op cost here",
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter13_uring.md"),
    examples: &[URING, MONOIO, SYSCALL_COST],
    experiments,
    programs,
    views,
    facts: uring_facts,
    unavailable: evt::uring::refusal,
    ..Chapter::planned(13, "Completion instead of readiness: io_uring")
};

/// The series every table names the baseline by.
const EPOLL: &str = "epoll loop (chapter 8)";
const URING_RING: &str = "io_uring loop, ring";
/// Rounds of the hello load, each server in turn.
const HELLO_ROUNDS: usize = 3;
const HELLO_CONNECTIONS: usize = 50;
/// Requests of the strace-counted hello loads (strace slows the server).
const STRACE_REQUESTS: u64 = 20_000;

fn uring(name: &'static str, series: &'static str, args: &[&str], model: &str) -> HeldServer {
    (
        name,
        series,
        ServerUnderTest::of(&URING).with_args(args, model),
    )
}

fn epoll() -> HeldServer {
    let (_, _, server) = chapter8::minimal_loop();
    ("epoll", EPOLL, server)
}

fn tokio() -> HeldServer {
    (
        "tokio",
        "tokio (chapter 9's handler)",
        ServerUnderTest::of(&chapter9::RUNTIME).with_args(
            &["--runtime", "tokio"],
            "chapter 9's async fn handler on tokio's current-thread runtime (epoll)",
        ),
    )
}

fn monoio() -> HeldServer {
    (
        "monoio",
        "monoio (chapter 9's handler)",
        ServerUnderTest::of(&MONOIO).with_args(&[], "chapter 9's handler on monoio (io_uring)"),
    )
}

/// The servers of the hello rounds: the two hand-written loops (io_uring
/// under its three task-work settings, and with a buffer per read), and the
/// two runtimes.
fn hello_servers() -> Vec<HeldServer> {
    vec![
        epoll(),
        uring(
            "uring_interrupt",
            "io_uring loop, ring, interrupted task work",
            &["--taskrun", "interrupt"],
            "the io_uring loop, the kernel's default: interrupted to finish operations",
        ),
        uring(
            "uring_cooperative",
            "io_uring loop, ring, cooperative task work",
            &["--taskrun", "cooperative"],
            "the io_uring loop, task work at its next entry (COOP_TASKRUN)",
        ),
        uring(
            "uring",
            URING_RING,
            &[],
            "the io_uring loop, a ring of buffers, task work deferred to its waits",
        ),
        uring(
            "uring_per_read",
            "io_uring loop, a buffer per read",
            &["--buffers", "per-read"],
            "the io_uring loop, a buffer per read, task work deferred to its waits",
        ),
        tokio(),
        monoio(),
        (
            "monoio_cooperative",
            "monoio, cooperative task work",
            ServerUnderTest::of(&MONOIO).with_args(
                &["--cooperative"],
                "chapter 9's handler on monoio, its ring set up with COOP_TASKRUN",
            ),
        ),
    ]
}

/// The servers that hold 10,000 connections.
fn held_servers() -> Vec<HeldServer> {
    let mut servers = vec![epoll()];
    servers.extend(
        hello_servers()
            .into_iter()
            .filter(|(name, ..)| matches!(*name, "uring" | "uring_per_read" | "tokio" | "monoio")),
    );
    servers
}

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let mut experiments = Vec::new();
    let requests = (100_000.0 * scale).round().max(100.0) as u64;
    for round in 1..=HELLO_ROUNDS {
        for (name, series, server) in hello_servers() {
            let reports = server.example != chapter9::RUNTIME.name && server.example != MONOIO.name;
            let load = LoadSpec::new("/".into(), requests, HELLO_CONNECTIONS, Duration::ZERO);
            let experiment = Experiment::new(
                format!("hello_{name}_{round}"),
                format!("{series}: hello, round {round}"),
                server,
                vec![load],
            )
            .in_group(Group::new("hello", series).on_line(series));
            experiments.push(if reports {
                experiment.with_report()
            } else {
                experiment
            });
        }
    }
    // System calls counted from outside, for the runtimes that cannot count
    // their own, and for the hand-written loops as a check of their counts.
    let counted = (STRACE_REQUESTS as f64 * scale).round().max(100.0) as u64;
    for (name, series, server) in hello_servers()
        .into_iter()
        .filter(|(name, ..)| matches!(*name, "epoll" | "uring" | "tokio" | "monoio"))
    {
        let reports = matches!(name, "epoll" | "uring");
        let load = LoadSpec::new("/".into(), counted, HELLO_CONNECTIONS, Duration::ZERO);
        let experiment = Experiment::new(
            format!("strace_{name}"),
            format!("{series}: hello, system calls counted by strace"),
            server,
            vec![load],
        )
        .in_group(Group::new("strace", series))
        .with_syscalls_counted()
        .set_by(SetBy::Cpu(Probe::Switch))
        .varies_because(
            "strace stops the server at every system call: the rate is what ptrace allows",
        );
        experiments.push(if reports {
            experiment.with_report()
        } else {
            experiment
        });
    }
    // 10,000 connections, busy (a 1 s request always in flight) and idle.
    let delay = scaled(1000, scale);
    let duration = scaled(10_000, scale);
    let hold = scaled(3000, scale);
    for server in held_servers() {
        let reports = server.2.example != chapter9::RUNTIME.name && server.2.example != MONOIO.name;
        for idle in [None, Some(hold)] {
            let experiment = held::held_connections(server.clone(), 10_000, delay, duration, idle);
            experiments.push(if reports {
                experiment.with_report()
            } else {
                experiment
            });
        }
    }
    // A ring smaller than what arrives between two waits, and one far larger.
    for (name, series, buffers) in [
        ("uring_small_ring", "io_uring loop, ring of 8", "8"),
        ("uring_big_ring", "io_uring loop, ring of 16,384", "16384"),
    ] {
        let model = format!("the io_uring loop, a ring of {buffers} buffers");
        let server = uring(name, series, &["--ring-buffers", buffers], &model);
        experiments
            .push(held::held_connections(server, 10_000, delay, duration, None).with_report());
    }
    experiments
}

fn programs(scale: f64) -> Vec<Program> {
    let calls = ((200_000.0 * scale).round() as u32).max(1000).to_string();
    vec![Program::new(
        "syscall_cost",
        "what a system call, a small TCP send and an io_uring no-op cost",
        SYSCALL_COST.name,
        &["--calls", &calls],
        2.0,
    )]
}

/// Whether io_uring could be used when the chapter ran, and the setting.
fn uring_facts() -> Vec<Limit> {
    vec![
        Limit {
            name: "io_uring".into(),
            value: match evt::uring::refusal() {
                None => "available".into(),
                Some(_) => "refused".into(),
            },
            meaning: evt::uring::refusal()
                .unwrap_or_else(|| "a ring could be set up: the chapter ran".into()),
        },
        Limit {
            name: "kernel.io_uring_disabled".into(),
            value: evt::uring::disabled_setting().map_or("none".into(), |v| v.to_string()),
            meaning: "0 lets every program use io_uring, 1 only a group's members, 2 none \
                      (Linux 6.6 and later)"
                .into(),
        },
    ]
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let file = |name: &str| format!("chapter{}_{name}", record.chapter);
    let mut out = Vec::new();
    let hello = views::group(record, "hello");
    if !hello.is_empty() {
        out.push(View::new(file("hello.md"), hello_table(record, &hello)));
    }
    let strace = views::group(record, "strace");
    if !strace.is_empty() {
        out.push(View::new(file("strace.md"), strace_table(record, &strace)));
    }
    for group in ["held_busy", "held_idle"] {
        let members = views::group(record, group);
        if !members.is_empty() {
            out.push(View::new(
                file(&format!("{group}.md")),
                held::cost_table(record, &members),
            ));
        }
    }
    let rings: Vec<&ExperimentRecord> = views::group(record, "held_busy")
        .into_iter()
        .chain(views::group(record, "held_idle"))
        .filter(|e| e.report::<SyscallReport>().is_some())
        .collect();
    if !rings.is_empty() {
        out.push(View::new(
            file("held_calls.md"),
            held_calls_table(record, &rings),
        ));
    }
    if let Some(costs) = syscall_costs(record) {
        out.push(View::new(file("cost.md"), cost_table(record, &costs)));
    }
    out.push(View::new(file("summary.md"), summary(record)));
    out
}

fn syscall_costs(record: &ChapterRecord) -> Option<SyscallCosts> {
    record
        .programs
        .iter()
        .find(|p| p.slug == "syscall_cost")
        .and_then(ProgramRecord::output::<SyscallCosts>)
}

/// What a loop counted of itself: system calls and waits per request,
/// completions (or ready sockets) per wait.
pub(super) struct Counted {
    pub(super) calls: f64,
    pub(super) waits: f64,
    pub(super) per_wait: f64,
}

pub(super) fn counted(report: &SyscallReport) -> Option<Counted> {
    let requests = report.requests as f64;
    (requests > 0.0 && report.waits > 0).then(|| Counted {
        calls: report.total_calls() as f64 / requests,
        waits: report.waits as f64 / requests,
        per_wait: report.events as f64 / report.waits as f64,
    })
}

fn hello_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let epoll = median_cpu(members, EPOLL);
    let mut out = String::from(
        "| server | **CPU per request** (median) | rounds: each | against the epoll loop | \
         req/s (median) | system calls per request (its own count) | events per wait |\n\
         |---|--:|---|--:|--:|--:|--:|\n",
    );
    for (series, rows) in by_series(members) {
        let each: Vec<String> = rows
            .iter()
            .map(|e| cpu_us(e).map_or("—".into(), |us| format!("{us:.1}")))
            .collect();
        let cpu = median_cpu(members, &series);
        let rate = median(
            rows.iter()
                .filter_map(|e| e.load().map(|l| l.measured.rps))
                .collect(),
        );
        let own: Vec<Counted> = rows
            .iter()
            .filter_map(|e| e.report::<SyscallReport>())
            .filter_map(|r| counted(&r))
            .collect();
        let calls = median(own.iter().map(|c| c.calls).collect());
        let per_wait = median(own.iter().map(|c| c.per_wait).collect());
        let _ = writeln!(
            out,
            "| {series} | **{}** | {} µs | {} | {} | {} | {} |",
            cpu.map_or("—".into(), |us| format!("{us:.1} µs")),
            each.join(", "),
            match (cpu, epoll) {
                (Some(cpu), Some(epoll)) => format!("{:.2} ×", cpu / epoll),
                _ => "—".into(),
            },
            rate.map_or("—".into(), |r| thousands(r.round() as u64)),
            calls.map_or("— (strace below)".into(), |c| format!("{c:.2}")),
            per_wait.map_or("—".into(), |c| format!("{c:.1}")),
        );
    }
    let _ = writeln!(
        out,
        "\nServer CPU from /proc (10 ms ticks) over completed requests, {HELLO_CONNECTIONS} \
         connections. A loop's own count is every system call it made over the requests it \
         answered; an event is a ready socket (epoll) or a completion (io_uring). Each round, \
         against each server:\n"
    );
    let firsts: Vec<&ExperimentRecord> = by_series(members)
        .into_iter()
        .filter_map(|(_, rows)| rows.first().copied())
        .collect();
    out.push_str(&views::row_commands(&firsts));
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

fn strace_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| server | system calls per request (strace) | the most frequent, per request | \
         its own count, per request | req/s while counted |\n|---|--:|---|--:|--:|\n",
    );
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let completed = load.measured.requests.completed.max(1) as f64;
        let own = experiment
            .report::<SyscallReport>()
            .and_then(|r| counted(&r))
            .map_or("—".into(), |c| format!("{:.2}", c.calls));
        let (total, top) = match &experiment.syscalls {
            Some(count) if count.skipped.is_none() => {
                let mut calls: Vec<(&String, &u64)> = count.calls.iter().collect();
                calls.sort_by(|a, b| b.1.cmp(a.1));
                let top: Vec<String> = calls
                    .iter()
                    .take(3)
                    .map(|(name, n)| format!("{name} {:.2}", **n as f64 / completed))
                    .collect();
                (
                    format!("**{:.2}**", count.total() as f64 / completed),
                    top.join(", "),
                )
            }
            Some(count) => (
                "not counted".into(),
                count.skipped.clone().unwrap_or_default(),
            ),
            None => ("not counted".into(), "—".into()),
        };
        let _ = writeln!(
            out,
            "| {} | {total} | {top} | {own} | {} |",
            views::row_label(experiment),
            thousands(load.measured.rps.round() as u64),
        );
    }
    let _ = writeln!(
        out,
        "\nstrace (`strace -f -c -p PID`) attached to the server while the load ran; the /report \
         request that read the loop's own count came after it detached. strace stops the server \
         at every call, so more arrives at each wait than without it: waits are fewer per \
         request here, reads and writes as many.\n"
    );
    out.push_str(&views::row_commands(members));
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// The chapter's findings against its goals, in sentences from the records.
fn summary(record: &ChapterRecord) -> String {
    let mut out = String::new();
    let hello = views::group(record, "hello");
    if let (Some(epoll), Some(ring)) = (median_cpu(&hello, EPOLL), median_cpu(&hello, URING_RING)) {
        let _ = writeln!(
            out,
            "- CPU per hello request: the io_uring loop {ring:.1} µs, the epoll loop {epoll:.1} µs: \
             {:.2} × (the goal was at most 0.8 ×).",
            ring / epoll
        );
    }
    let own = |series: &str| {
        median(
            hello
                .iter()
                .filter(|e| views::row_label(e) == series)
                .filter_map(|e| e.report::<SyscallReport>())
                .filter_map(|r| counted(&r).map(|c| c.calls))
                .collect(),
        )
    };
    if let (Some(epoll), Some(ring)) = (own(EPOLL), own(URING_RING)) {
        let _ = writeln!(
            out,
            "- System calls per hello request: {ring:.2} against {epoll:.2} ({:.0} × fewer).",
            epoll / ring
        );
    }
    if let Some(costs) = syscall_costs(record) {
        if let (Some(epoll_calls), Some(epoll_cpu)) = (own(EPOLL), median_cpu(&hello, EPOLL)) {
            let _ = writeln!(
                out,
                "- At {:.0} ns for an empty call and {:.0} ns for a read that finds nothing, the \
                 epoll loop's {epoll_calls:.2} calls per request cost it about {:.2} µs of \
                 its {epoll_cpu:.1} µs ({:.0} %): about what fewer calls can save, before io_uring's own cost per operation.",
                costs.empty_call_ns,
                costs.empty_read_ns,
                epoll_calls * costs.empty_read_ns / 1000.0,
                100.0 * epoll_calls * costs.empty_read_ns / 1000.0 / epoll_cpu,
            );
        }
    }
    for experiment in views::group(record, "held_idle")
        .into_iter()
        .chain(views::group(record, "held_busy"))
    {
        let (Some(load), Some(samples)) = (experiment.load(), experiment.samples.as_ref()) else {
            continue;
        };
        let _ = writeln!(
            out,
            "- {}, {} connections {}: {} resident per connection{}.",
            views::row_label(experiment),
            thousands(load.connections as u64),
            if held::held_idle(load) {
                "idle"
            } else {
                "busy"
            },
            kib(samples.rss_per_connection_kib(load.connections)),
            load.measured
                .steady_rps
                .map_or(String::new(), |rate| format!(
                    ", {} requests/s steady ({:.1} % of Little's law), p99 {}",
                    thousands(rate.round() as u64),
                    100.0 * rate / load.predicted.rps,
                    views::format_opt_ms(load.measured.latency_ms.p99)
                )),
        );
    }
    if out.is_empty() {
        out.push_str("*This record has none of chapter 13's measurements.*\n");
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// The hello rounds of one of the chapter's servers (`epoll`, `uring`,
/// `uring_interrupt`...): figures the decision table reads.
pub fn hello_rounds(name: &str) -> Vec<Figure> {
    (1..=HELLO_ROUNDS)
        .map(|round| Figure::experiment(13, format!("hello_{name}_{round}")))
        .collect()
}

/// One of the chapter's servers with 10,000 connections idle.
pub fn idle_at_ten_thousand(name: &str) -> Figure {
    Figure::experiment(13, held::slug(true, name, 10_000))
}

/// Every figure other chapters read from this one.
pub fn figures_read(_plan: Plan) -> Vec<Figure> {
    let mut figures: Vec<Figure> = ["epoll", "uring", "uring_interrupt"]
        .into_iter()
        .flat_map(hello_rounds)
        .collect();
    figures.extend(["uring", "uring_per_read"].map(idle_at_ten_thousand));
    figures
}
