//! Chapter 12, when threads win and what overload does: a few requests that
//! need CPU among many light ones (head-of-line blocking); a dependency of
//! fixed capacity (Paterson's database pool, then Grinberg's variation);
//! offered load past capacity, with and without shedding; slow clients.
//! The decision table that ends the book reads every chapter's record
//! (`decision.rs`).

mod cancel;
pub mod decision;
mod figures;
mod hol;
pub mod rules;
mod slow;
mod timers;

use super::judge::{Probe, SetBy};
use std::fmt::Write;
use std::time::Duration;

pub use decision::decision_table;
pub use figures::{READ, Read, figure, figures_read};

use super::chapter::{Chapter, Example};
use super::chapter1;
use super::chapter2;
use super::chapter3;
use super::chapter7;
use super::charts;
use super::model::Capacity;
use super::record::{ChapterRecord, ExperimentRecord, Group, LoadOutcome};
use super::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use super::views::{self, Lines, View, add_point, format_opt_ms, stamp, thousands};
use evt::defaults;
use evt::report::OverloadReport;

pub const OVERLOAD: Example = Example::server(
    "chapter12_overload",
    "the book's server behind a dependency's slots, with load shedding, offloaded CPU work, or more threads",
    defaults::CHAPTER12_OVERLOAD_PORT,
    Capacity::Unlimited,
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter12_threads_win.md"),
    examples: &[OVERLOAD],
    experiments,
    programs: timers::programs,
    views,
    ..Chapter::planned(12, "When threads win, and overload")
};

/// The dependency: slots, and how long each call holds one.
const SLOTS: usize = 16;
const CALL_MS: u64 = 20;
/// Connections of the closed load on the dependency.
const CALLERS: usize = 100;
/// Offered load as multiples of the dependency's capacity.
const OFFERED: [f64; 4] = [0.5, 1.0, 1.5, 2.0];
/// The overload's client: connections, and the deadline an answer is good in.
const OVERLOAD_CONNECTIONS: usize = 1000;
const DEADLINE: Duration = Duration::from_secs(1);
/// Slow clients, and the probe's rate.
const SLOW_CLIENTS: usize = 200;
const PROBE_RATE: f64 = 10.0;

/// The dependency's capacity: slots ÷ call time, requests per second.
fn capacity() -> f64 {
    SLOTS as f64 * 1000.0 / CALL_MS as f64
}

fn call_path() -> String {
    format!("/sleep?ms={CALL_MS}")
}

pub(super) fn loop_server(args: &[&str], label: &str) -> ServerUnderTest {
    ServerUnderTest::of(&OVERLOAD).with_args(args, label)
}

pub(super) fn pool(workers: usize, threads: usize, label: &str) -> ServerUnderTest {
    ServerUnderTest::of(&chapter2::THREADS)
        .with_args(
            &[
                "--workers",
                &workers.to_string(),
                "--threads",
                &threads.to_string(),
            ],
            label,
        )
        .with_capacity(Capacity::Limited(workers * threads))
}

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    // 5 s a load keeps the chapter within a workshop's three minutes; the
    // overload rows' queues still outgrow the 1 s deadline within it.
    let run = scaled(5_000, scale);
    let mut out = Vec::new();
    let slots = SLOTS.to_string();

    // 1. Head-of-line blocking: 5 % of requests need 20 ms of CPU.
    out.extend(hol::experiments(plan));
    // Clients that give up: does the server stop the work?
    out.extend(cancel::experiments(plan));

    // 2. The bottleneck is elsewhere: a dependency of 16 slots, 20 ms each;
    // then Grinberg's variation, the wait with no slot limit.
    for (name, server) in [
        (
            "loop_slots",
            loop_server(&["--slots", &slots], &format!("one loop, {SLOTS} slots"))
                .with_capacity(Capacity::Limited(SLOTS)),
        ),
        (
            "threads",
            pool(1, SLOTS, &format!("{SLOTS} threads (chapter 2)")),
        ),
        (
            "loop_free",
            ServerUnderTest::of(&chapter3::ASYNC)
                .with_args(&[], "one loop, no slot limit (chapter 3)"),
        ),
        (
            "threads_many",
            pool(1, CALLERS, &format!("{CALLERS} threads (chapter 2)")),
        ),
    ] {
        let mut load = LoadSpec::new(
            call_path(),
            (capacity() * run.as_secs_f64()) as u64,
            CALLERS,
            Duration::from_millis(CALL_MS),
        );
        load.duration = Some(run);
        load.keep_answers_per_connection = true;
        let label = server.model.clone();
        out.push(
            Experiment::new(
                format!("downstream_{name}"),
                format!("{label}: every request waits 20 ms on a dependency"),
                server,
                vec![load],
            )
            .in_group(Group::new("downstream", label)),
        );
    }

    // 3. Overload: offered load from half to twice the dependency's capacity.
    let overload_servers = [
        ("loop", "one loop, no limit", vec!["--slots", &slots], None),
        ("threads", "16 threads (chapter 2)", vec![], Some(SLOTS)),
        (
            "shed",
            "one loop, at most 64 held, then 503",
            vec!["--slots", &slots, "--limit", "64"],
            None,
        ),
        (
            "timeout",
            "one loop, 503 after 200 ms waiting",
            vec!["--slots", &slots, "--queue-timeout", "200ms"],
            None,
        ),
    ];
    for (name, line, args, threads) in overload_servers {
        for factor in OFFERED {
            let server = match threads {
                Some(threads) => pool(1, threads, line),
                None => loop_server(&args, line).with_capacity(Capacity::Limited(SLOTS)),
            };
            let rate = factor * capacity();
            let mut load = LoadSpec::new(
                call_path(),
                (rate * run.as_secs_f64()) as u64,
                OVERLOAD_CONNECTIONS,
                Duration::from_millis(CALL_MS),
            );
            load.rate = Some(rate);
            load.duration = Some(run);
            load.deadline = Some(DEADLINE);
            let mut experiment = Experiment::new(
                format!("overload_{name}_{}", (factor * 10.0).round() as u32),
                format!("{line}, offered {factor} × capacity"),
                server,
                vec![load],
            )
            .in_group(
                Group::new("overload", format!("{line}, {factor} ×"))
                    .at(rate)
                    .on_line(line),
            );
            if threads.is_none() {
                experiment = experiment.with_report();
            }
            // At exactly the nominal capacity, whether the queue grows
            // through the run turns on whether this machine's real capacity
            // falls short of it by even a little: the CPU's cost per request
            // decides the tail, by far more than its own size.
            if factor == 1.0 {
                experiment = experiment.tail_set_by(SetBy::Cpu(Probe::Hello)).varies_because(
                    "at exactly the nominal capacity the queue grows through the run if this machine's capacity falls short of it by even a little: the p99 moves far more than the CPU's cost",
                );
            }
            // Shedding above capacity: most answers are 503s, and a 503
            // costs only the CPU.
            if name == "shed" && factor > 1.0 {
                experiment = experiment.median_set_by(SetBy::Cpu(Probe::Hello));
            }
            out.push(experiment);
        }
    }

    // 4. Slow clients: 200 connections send half a request head and wait,
    // while a probe asks for hello ten times a second.
    let hold = scaled(6_000, scale);
    let after = scaled(1_000, scale);
    let probe_run = scaled(9_000, scale);
    let slow_servers = [
        (
            "blocking",
            ServerUnderTest::of(&chapter1::BLOCKING)
                .with_args(&[], "one blocking thread (chapter 1)"),
            "/",
            false,
        ),
        (
            "pool",
            pool(4, 2, "4 workers × 2 threads (chapter 2)"),
            "/",
            false,
        ),
        (
            "loop",
            ServerUnderTest::of(&chapter3::ASYNC).with_args(&[], "one loop (chapter 3)"),
            "/",
            false,
        ),
        (
            "front",
            ServerUnderTest::of(&chapter7::PROXY).with_args(
                &[
                    "--model",
                    "async",
                    "--workers",
                    "1",
                    "--upstream",
                    "{upstream}/",
                ],
                "a loop in front of the 4 × 2 pool (chapter 7's proxy)",
            ),
            "/proxy",
            true,
        ),
    ];
    for (name, server, path, behind) in slow_servers {
        let mut probe = LoadSpec::new(
            path.into(),
            (PROBE_RATE * probe_run.as_secs_f64()) as u64,
            4,
            Duration::ZERO,
        );
        probe.rate = Some(PROBE_RATE);
        probe.duration = Some(probe_run);
        probe.no_keepalive = true;
        probe.keep_over_time = true;
        let label = server.model.clone();
        let mut experiment = Experiment::new(
            format!("slow_{name}"),
            format!("{label}: {SLOW_CLIENTS} slow clients"),
            server,
            vec![probe],
        )
        .with_slow_clients(SLOW_CLIENTS, after, hold)
        .in_group(Group::new("slow", label));
        if behind {
            experiment.upstreams = vec![pool(4, 2, "chapter 2's pool, behind the proxy")];
        }
        out.push(experiment);
    }
    out
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let file = |name: &str| format!("chapter{}_{name}", record.chapter);
    let mut out = Vec::new();
    for (group, name) in [("hol", "hol.md"), (hol::BUSY, "hol_busy.md")] {
        let members = views::group(record, group);
        if !members.is_empty() {
            out.push(View::new(file(name), hol::table(record, &members)));
        }
    }
    let cancelled = views::group(record, cancel::GROUP);
    if !cancelled.is_empty() {
        out.push(View::new(
            file("cancel.md"),
            cancel::table(record, &cancelled),
        ));
    }
    out.extend(timers::view(record));
    let downstream = views::group(record, "downstream");
    if !downstream.is_empty() {
        out.push(View::new(
            file("downstream.md"),
            downstream_table(record, &downstream),
        ));
    }
    let overload = views::group(record, "overload");
    if !overload.is_empty() {
        out.push(View::new(
            file("overload.md"),
            overload_table(record, &overload),
        ));
        if let Some(svg) = goodput_chart(record, &overload) {
            out.push(View::new(file("goodput.svg"), svg));
        }
    }
    let slow = views::group(record, "slow");
    if !slow.is_empty() {
        out.push(View::new(file("slow.md"), slow::slow_table(record, &slow)));
        if let Some(svg) = slow::slow_chart(record, &slow) {
            out.push(View::new(file("slow.svg"), svg));
        }
    }
    out
}

/// The commands of a group's rows: the server, then each load.
pub(super) fn commands(members: &[&ExperimentRecord]) -> String {
    format!(
        "\nEach row: the server, then the loads:\n\n{}",
        views::row_commands(members)
    )
}

fn peak_rss(experiment: &ExperimentRecord) -> String {
    views::or_dash(experiment.samples.as_ref(), |s| {
        format!("{:.1} MiB", s.peak_rss_kib as f64 / 1024.0)
    })
}

pub(super) fn peak_threads(experiment: &ExperimentRecord) -> String {
    views::or_dash(experiment.samples.as_ref(), |s| s.peak_threads.to_string())
}

fn downstream_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| server | predicted req/s | **req/s** | mean | p50 | **p99** | max | connections answered once at most | threads | peak RSS |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        // Connections left out: answered once (after waiting the whole run) or never.
        let answered_once: u64 = load
            .answers_per_connection
            .iter()
            .filter(|(answers, _)| **answers <= 1)
            .map(|(_, connections)| connections)
            .sum();
        let _ = writeln!(
            out,
            "| {} | {} | **{}** | {} | {} | **{}** | {} | {} of {} | {} | {} |",
            views::row_label(experiment),
            thousands(load.predicted.rps.round() as u64),
            thousands(load.measured.rps.round() as u64),
            format_opt_ms(load.measured.latency_ms.mean),
            format_opt_ms(load.measured.latency_ms.p50),
            format_opt_ms(load.measured.latency_ms.p99),
            format_opt_ms(load.measured.latency_ms.max),
            answered_once,
            load.connections,
            peak_threads(experiment),
            peak_rss(experiment),
        );
    }
    out.push_str(&commands(members));
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// Good answers (2xx within the deadline) per second.
fn goodput(load: &LoadOutcome) -> Option<f64> {
    load.measured.good.map(|good| good.rps)
}

/// Answers with this status.
fn status_count(load: &LoadOutcome, status: &str) -> u64 {
    load.measured.status_codes.get(status).copied().unwrap_or(0)
}

fn overload_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = format!(
        "| server, offered × capacity | offered req/s | sent req/s | answered req/s | **goodput: 200 within {} s, per s** | 503s | p50 | p99 | max | most held | peak RSS |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        DEADLINE.as_secs()
    );
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let offered = load.measured.open.map_or(0.0, |open| open.asked_rps);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} |",
            views::row_label(experiment),
            thousands(offered.round() as u64),
            views::or_dash(load.measured.open.and_then(|open| open.sent_rps), |r| {
                thousands(r.round() as u64)
            }),
            thousands(load.measured.rps.round() as u64),
            views::or_dash(goodput(load), |g| thousands(g.round() as u64)),
            thousands(status_count(load, "503")),
            format_opt_ms(load.measured.latency_ms.p50),
            format_opt_ms(load.measured.latency_ms.p99),
            format_opt_ms(load.measured.latency_ms.max),
            views::or_dash(experiment.report::<OverloadReport>(), |r| {
                thousands(r.peak_held)
            }),
            peak_rss(experiment),
        );
    }
    let _ = writeln!(
        out,
        "\nCapacity: {SLOTS} slots ÷ {CALL_MS} ms = {} requests/s. Sent: the rate requests went out at, from the first to the last (the client holds a request due while all its connections are busy). Latencies count from when each request was due; goodput is per second of the schedule. Each row's commands:\n",
        thousands(capacity().round() as u64)
    );
    out.push_str(&views::row_commands(members));
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

fn goodput_chart(record: &ChapterRecord, members: &[&ExperimentRecord]) -> Option<String> {
    let mut lines = Lines::new();
    for experiment in members {
        let (Some(load), Some(group)) = (experiment.load(), &experiment.group) else {
            continue;
        };
        if let (Some(series), Some(offered), Some(good)) = (&group.series, group.x, goodput(load)) {
            add_point(&mut lines, series, (offered, good));
        }
    }
    let top = OFFERED.iter().fold(0.0, |a: f64, &b| a.max(b)) * capacity();
    // The ideal: every request answered in time up to capacity, then capacity.
    let ideal: Lines = lines
        .iter()
        .map(|(name, points)| {
            (
                name.clone(),
                points
                    .iter()
                    .map(|&(x, _)| (x, x.min(capacity())))
                    .collect(),
            )
        })
        .collect();
    charts::lines_svg(
        &format!(
            "Chapter {}: goodput (200 within {} s) against offered load",
            record.chapter,
            DEADLINE.as_secs()
        ),
        "offered requests/s",
        "good answers/s",
        &lines,
        &ideal,
        charts::Legend::UpperLeft,
        Some(0.0..top * 1.1),
    )
}
