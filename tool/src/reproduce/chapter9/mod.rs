//! Chapter 9, inside the loop: an async runtime by hand (a reactor on mio,
//! a timer heap, a one-thread executor) under the book's server; one
//! request's walk through it, traced; the same handler on our runtime and on
//! tokio's (CPU per request, the size of a connection's future, 10,000 held
//! connections); what a switch, a start and a waiting worker cost between
//! threads and between tasks (a brigade); and a task that never has to wait,
//! on each runtime (tokio's cooperative budget).

use std::fmt::Write;
use std::time::Duration;

mod switch;
mod trace;

use super::chapter::{Chapter, Example};
use super::chapter8;
use super::figure::Figure;
use super::held::{self, HeldServer};
use super::model::Capacity;
use super::record::Group;
use super::record::{ChapterRecord, ExperimentRecord, ProgramRecord};
use super::rounds::{by_series, cpu_us, median, median_cpu};
use super::spec::{Experiment, LoadSpec, Plan, Program, ServerUnderTest, scaled};
use super::views::{self, View, stamp, thousands};
use evt::defaults;
use evt::report::{BudgetReport, RuntimeReport, SwitchCosts};

pub const RUNTIME: Example = Example::server(
    "chapter9_runtime",
    "the book's server on a hand-written async runtime: mio reactor, timer heap, one-thread executor",
    defaults::CHAPTER9_RUNTIME_PORT,
    Capacity::Unlimited,
);

pub const SWITCH: Example = Example::client(
    "chapter9_switch",
    "what a switch, a start and a waiting worker cost, threads against tasks (a brigade)",
);

pub const BUDGET: Example = Example::client(
    "chapter9_budget",
    "a task whose socket is always ready, beside a ticker, on our runtime and on tokio's",
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter9_inside.md"),
    examples: &[RUNTIME, SWITCH, BUDGET],
    experiments,
    programs,
    views,
    ..Chapter::planned(9, "Inside the loop")
};

/// The servers compared: ours and tokio under the same handler, with
/// chapter 3's axum and chapter 8's minimal loop beside them.
fn servers() -> Vec<HeldServer> {
    vec![
        (
            "ours",
            "our runtime",
            ServerUnderTest::of(&RUNTIME).with_args(&[], "the async fn handler on our runtime"),
        ),
        (
            "tokio",
            "tokio, same handler",
            ServerUnderTest::of(&RUNTIME).with_args(
                &["--runtime", "tokio"],
                "the same async fn handler on tokio's current-thread runtime",
            ),
        ),
        chapter8::axum(),
        chapter8::minimal_loop(),
    ]
}

/// Rounds of the hello load per server, taken in turn, so a noisy moment
/// of the machine falls on one round of one server, not on all of one.
const HELLO_ROUNDS: usize = 5;
/// Connections of the hello load.
const HELLO_CONNECTIONS: usize = 50;

/// Brigade sizes; the published anchor used 500.
const BRIGADE_WORKERS: [u32; 4] = [10, 100, 500, 2000];
/// The size the switch table is read at.
const ANCHOR_WORKERS: u32 = 500;
/// Runs of each brigade size, pinned and not.
const SWITCH_ROUNDS: usize = 3;

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let mut experiments = Vec::new();
    // One request's walk through our runtime, traced.
    let trace_delay = scaled(50, scale);
    experiments.push(
        Experiment::new(
            "trace",
            "one request through our runtime, every step traced".into(),
            ServerUnderTest::of(&RUNTIME).with_args(&["--trace"], "our runtime, tracing"),
            vec![LoadSpec::sleeps(1, 1, trace_delay)],
        )
        .with_report(),
    );
    // CPU per request on hello: rounds, each server in turn.
    let requests = (100_000.0 * scale).round().max(100.0) as u64;
    for round in 1..=HELLO_ROUNDS {
        for (name, series, server) in servers() {
            let ours = server.example == RUNTIME.name;
            let load = LoadSpec::new("/".into(), requests, HELLO_CONNECTIONS, Duration::ZERO);
            let experiment = Experiment::new(
                format!("hello_{name}_{round}"),
                format!("{series}: hello, round {round}"),
                server,
                vec![load],
            )
            .in_group(Group::new("hello", series).on_line(series));
            experiments.push(if ours {
                experiment.with_report()
            } else {
                experiment
            });
        }
    }
    // 10,000 connections, each with a 1 s request always in flight.
    let delay = scaled(1000, scale);
    let duration = scaled(10_000, scale);
    for server in servers() {
        experiments.push(held::held_connections(
            server, 10_000, delay, duration, None,
        ));
    }
    experiments
}

fn programs(scale: f64) -> Vec<Program> {
    let hops = (100_000.0 * scale).round().max(1000.0) as u32;
    let mut programs = Vec::new();
    for round in 1..=SWITCH_ROUNDS {
        for workers in BRIGADE_WORKERS {
            for pin in [false, true] {
                let rounds = (hops / (workers + 1)).max(2).to_string();
                let workers_flag = workers.to_string();
                let mut args = vec!["--workers", &workers_flag, "--rounds", &rounds];
                if pin {
                    args.push("--pin");
                }
                programs.push(Program::new(
                    switch_slug(workers, pin, round),
                    format!(
                        "a brigade of {workers}{}, round {round}",
                        if pin { ", pinned to one CPU" } else { "" }
                    ),
                    SWITCH.name,
                    &args,
                    f64::from(hops) * 45e-6 + 1.5,
                ));
            }
        }
    }
    programs.push(Program::new(
        "budget",
        "a greedy task beside a ticker, on each runtime",
        BUDGET.name,
        &[],
        1.0,
    ));
    programs
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let chapter = record.chapter;
    let file = |name: &str| format!("chapter{chapter}_{name}");
    let mut out = Vec::new();
    if let Some(trace) = views::find(record, "trace") {
        let steps = trace::one_request(trace);
        out.push(View::new(
            file("trace.md"),
            trace::trace_table(record, trace, &steps),
        ));
        if let Some(svg) = trace::trace_svg(&steps) {
            out.push(View::new(file("trace.svg"), svg));
        }
    }
    let hello = views::group(record, "hello");
    if !hello.is_empty() {
        out.push(View::new(file("hello.md"), hello_table(record, &hello)));
    }
    let held = views::group(record, "held_busy");
    if !held.is_empty() {
        out.push(View::new(
            file("held_busy.md"),
            held::cost_table(record, &held),
        ));
    }
    let switches: Vec<SwitchCosts> = record
        .programs
        .iter()
        .filter(|p| p.slug.starts_with("switch_"))
        .filter_map(ProgramRecord::output)
        .collect();
    if !switches.is_empty() {
        out.push(View::new(
            file("switch.md"),
            switch::switch_table(record, &switches),
        ));
        out.push(View::new(
            file("switch_costs.md"),
            switch::start_and_memory_table(record, &switches),
        ));
        if let Some(svg) = switch::switch_chart(chapter, &switches) {
            out.push(View::new(file("switch.svg"), svg));
        }
    }
    if let Some(budget) = record
        .programs
        .iter()
        .find(|p| p.slug == "budget")
        .and_then(ProgramRecord::output::<BudgetReport>)
    {
        out.push(View::new(
            file("budget.md"),
            switch::budget_table(record, &budget),
        ));
    }
    out.push(View::new(file("summary.md"), summary(record)));
    out
}

// ----- Runtime against runtime -----

/// The size of a connection's future, from the `/report` of the runtime's rows.
fn future_bytes(members: &[&ExperimentRecord], runtime: &str) -> Option<usize> {
    members
        .iter()
        .filter_map(|e| e.report::<RuntimeReport>())
        .find(|r| r.runtime == runtime && r.connection_future_bytes > 0)
        .map(|r| r.connection_future_bytes)
}

fn hello_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let tokio_cpu = median_cpu(members, "tokio, same handler");
    let mut out = String::from(
        "| server | **CPU per request** (median) | rounds: each | against tokio, same handler | req/s (median) | threads | future per connection |\n\
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
        let threads = rows
            .iter()
            .filter_map(|e| e.samples.as_ref().map(|s| s.peak_threads))
            .max();
        let runtime = rows
            .iter()
            .find_map(|e| e.report::<RuntimeReport>())
            .map(|r| r.runtime);
        let future = runtime
            .and_then(|r| future_bytes(members, &r))
            .map_or("—".into(), |bytes| format!("{bytes} bytes"));
        let _ = writeln!(
            out,
            "| {series} | **{}** | {} µs | {} | {} | {} | {future} |",
            cpu.map_or("—".into(), |us| format!("{us:.1} µs")),
            each.join(", "),
            match (cpu, tokio_cpu) {
                (Some(cpu), Some(tokio)) => format!("{:.2} ×", cpu / tokio),
                _ => "—".into(),
            },
            rate.map_or("—".into(), |r| thousands(r.round() as u64)),
            threads.map_or("—".into(), |t| t.to_string()),
        );
    }
    let _ = writeln!(
        out,
        "\nServer CPU from /proc (10 ms ticks) over completed requests. Each round, against each server:\n"
    );
    for (series, rows) in by_series(members) {
        if let Some((experiment, load)) = rows.first().and_then(|e| Some((e, e.load()?))) {
            let _ = writeln!(
                out,
                "- {series}: `{}`, then `{}`",
                views::server_command(experiment),
                load.command
            );
        }
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

// ----- The findings, in sentences -----

fn summary(record: &ChapterRecord) -> String {
    let mut out = String::new();
    let hello = views::group(record, "hello");
    if let (Some(ours), Some(tokio)) = (
        median_cpu(&hello, "our runtime"),
        median_cpu(&hello, "tokio, same handler"),
    ) {
        let _ = writeln!(
            out,
            "- On hello, our runtime spent {ours:.1} µs of CPU per request and tokio {tokio:.1} µs \
             under the same handler: {:.2} × tokio's.",
            ours / tokio
        );
    }
    if let (Some(ours), Some(tokio)) = (future_bytes(&hello, "ours"), future_bytes(&hello, "tokio"))
    {
        let _ = writeln!(
            out,
            "- One connection's future is {ours} bytes on our runtime and {tokio} bytes on tokio's: \
             the same `async fn`, holding each runtime's socket and sleep futures."
        );
    }
    for experiment in views::group(record, "held_busy") {
        let (Some(load), Some(samples)) = (experiment.load(), experiment.samples.as_ref()) else {
            continue;
        };
        if let Some(rate) = load.measured.steady_rps {
            let _ = writeln!(
                out,
                "- {}, {} connections: {} requests/s steady, {:.1} % of Little's law; p99 {}; \
                 {:.1} KiB resident per connection.",
                views::row_label(experiment),
                thousands(load.connections as u64),
                thousands(rate.round() as u64),
                100.0 * rate / load.predicted.rps,
                views::format_opt_ms(load.measured.latency_ms.p99),
                samples.rss_per_connection_kib(load.connections),
            );
        }
    }
    let switches: Vec<SwitchCosts> = record
        .programs
        .iter()
        .filter_map(ProgramRecord::output)
        .collect();
    for pinned in [false, true] {
        let runs = switch::runs(&switches, ANCHOR_WORKERS, pinned);
        let less = |field: fn(&SwitchCosts) -> f64| {
            median(runs.iter().map(|s| field(s) - s.baseline_hop_ns).collect())
        };
        let whole =
            |field: fn(&SwitchCosts) -> f64| median(runs.iter().map(|s| field(s)).collect());
        if let (Some(threads), Some(tasks), Some(thread_hop), Some(task_hop)) = (
            less(|s| s.thread_hop_ns),
            less(|s| s.task_hop_ns),
            whole(|s| s.thread_hop_ns),
            whole(|s| s.task_hop_ns),
        ) {
            let _ = writeln!(
                out,
                "- In a brigade of {ANCHOR_WORKERS}{}, a hop between threads took {:.1} µs and one between \
                 tokio tasks {:.1} µs (medians); run by run, threads ÷ tasks was {} as a whole, and {} \
                 less the baseline (the system calls both make: {:.1} µs against {:.1} µs).",
                if pinned { " pinned to one CPU" } else { "" },
                thread_hop / 1000.0,
                task_hop / 1000.0,
                switch::ratio_of_runs(&runs, switch::whole_ratio),
                switch::ratio_of_runs(&runs, switch::less_baseline_ratio),
                threads / 1000.0,
                tasks / 1000.0,
            );
        }
    }
    if out.is_empty() {
        out.push_str("*This record has none of chapter 9's measurements.*\n");
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// A switch program's slug: `switch_WORKERS_free_ROUND` or `..._pinned_...`.
fn switch_slug(workers: u32, pin: bool, round: usize) -> String {
    format!("{}{round}", switch_prefix(workers, pin))
}

fn switch_prefix(workers: u32, pin: bool) -> String {
    format!("switch_{workers}_{}_", if pin { "pinned" } else { "free" })
}

/// Every round of the brigade of `workers`, pinned or free: the decision
/// table reads the switch cost at 500.
pub fn switch_rounds(workers: u32, pin: bool) -> Figure {
    Figure::programs(9, switch_prefix(workers, pin))
}

/// Every figure other chapters read from this one.
pub fn figures_read(_plan: Plan) -> Vec<Figure> {
    vec![switch_rounds(500, false), switch_rounds(500, true)]
}
