//! Chapter 8, ten thousand connections: 100, 1,000 and 10,000 connections
//! held open against a thread per connection, chapter 3's axum and the
//! minimal hand-written loop; busy (a 1 s request always in flight) and idle
//! (kept alive after one request). What each connection cost in memory
//! (resident, kernel, address space), threads and CPU; the rate against
//! Little's law; the tail; the machine's limits.

use std::fmt::Write;
use std::time::Duration;

use super::chapter::{Chapter, Example};
use super::chapter3;
use super::charts::{self, Legend};
use super::figure::Figure;
use super::held::{HeldServer, cost_table, held_connections, held_idle};
use super::model::Capacity;
use super::record::{ChapterRecord, ExperimentRecord};
use super::spec::{Experiment, Plan, ServerUnderTest, scaled};
use super::views::{self, Lines, View, add_point, format_opt_ms, row_label, stamp, thousands};
use evt::defaults;

pub const THREADS: Example = Example::server(
    "chapter8_threads",
    "a blocking server that starts a thread for every connection (no pool, no limit)",
    defaults::CHAPTER8_THREADS_PORT,
    Capacity::Unlimited,
);

pub const MINIMAL_LOOP: Example = Example::server(
    "chapter8_minimal_loop",
    "a hand-written event loop (epoll via mio, one thread) that keeps no buffer for a waiting connection",
    defaults::CHAPTER8_MINIMAL_LOOP_PORT,
    Capacity::Unlimited,
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter8_connections.md"),
    examples: &[THREADS, MINIMAL_LOOP],
    experiments,
    views,
    facts: evt::sys::connection_limits,
    ..Chapter::planned(8, "Ten thousand connections")
};

fn servers() -> Vec<HeldServer> {
    vec![
        (
            "threads",
            "a thread per connection",
            ServerUnderTest::of(&THREADS).with_args(&[], "a thread per connection (2 MiB stacks)"),
        ),
        axum(),
        minimal_loop(),
    ]
}

/// Chapter 3's axum, as the held-connection tables show it (chapter 9
/// sets it beside its runtimes too).
pub fn axum() -> HeldServer {
    (
        "axum",
        "axum on tokio",
        ServerUnderTest::of(&chapter3::ASYNC)
            .with_args(&[], "chapter 3's axum on a tokio current-thread loop"),
    )
}

/// The minimal hand-written loop, as the held-connection tables show it.
pub fn minimal_loop() -> HeldServer {
    (
        "loop",
        "minimal loop",
        ServerUnderTest::of(&MINIMAL_LOOP).with_args(
            &[],
            "the minimal loop (mio, one thread, no buffer while waiting)",
        ),
    )
}

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let delay = scaled(1000, scale);
    let duration = scaled(10_000, scale);
    let hold = scaled(3000, scale);
    let mut experiments = Vec::new();
    for (name, series, server) in servers() {
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
    // threads with 64 KiB stacks instead of 2 MiB. A row of the table, not a
    // line of the chart.
    let small_stacks = ServerUnderTest::of(&THREADS).with_args(
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
        row.series = None;
        row.x = None;
    }
    experiments.push(experiment);
    experiments
}

/// The machine's limits on connections, as the run read them.
fn limits_table(record: &ChapterRecord) -> String {
    if record.limits.is_empty() {
        return "*This record has no limits read (made before the book read them).*\n".into();
    }
    let mut out = String::from("| limit | here | what it caps, and the fix |\n|---|--:|---|\n");
    for limit in &record.limits {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            limit.name, limit.value, limit.meaning
        );
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// The findings at the most connections, in sentences made from the
/// records: per server, the rate against Little's law, the tail, and what a
/// connection cost.
fn cost_summary(members: &[&ExperimentRecord]) -> Option<String> {
    let most = members
        .iter()
        .map(|e| e.loads.first().map_or(0, |l| l.connections))
        .max()?;
    let mut out = format!("At {} connections:\n\n", thousands(most as u64));
    for experiment in members {
        let Some(load) = experiment.loads.first().filter(|l| l.connections == most) else {
            continue;
        };
        let samples = experiment.samples.as_ref()?;
        let m = &load.measured;
        let mut line = format!("- **{}**: ", row_label(experiment));
        if let Some(rate) = m.steady_rps {
            let _ = write!(
                line,
                "{} requests/s steady, {:.1} % of Little's law's {}, p99 {}; ",
                thousands(rate.round() as u64),
                100.0 * rate / load.predicted.rps,
                thousands(load.predicted.rps.round() as u64),
                format_opt_ms(m.latency_ms.p99),
            );
        }
        if let Some(hold) = m.hold {
            let _ = write!(
                line,
                "{} of {} still open after {} idle; ",
                thousands(hold.still_open),
                thousands(hold.held),
                humantime::format_duration(Duration::from_secs_f64(hold.idle_s)),
            );
        }
        let _ = writeln!(
            line,
            "{:.1} KiB resident, {:.1} KiB of kernel stacks and page tables and {} KiB of \
             address space per connection, {} thread{}.",
            samples.rss_per_connection_kib(most),
            samples.kernel_per_connection_kib(most),
            thousands(samples.vm_per_connection_kib(most).round() as u64),
            thousands(samples.peak_threads),
            if samples.peak_threads == 1 { "" } else { "s" },
        );
        out.push_str(&line);
    }
    Some(out)
}

/// The charts against connections held (one line per server): resident
/// memory per connection, and for busy connections the steady rate beside
/// Little's law and the p99. File-name suffix and SVG.
fn cost_charts(
    record: &ChapterRecord,
    members: &[&ExperimentRecord],
) -> Vec<(&'static str, String)> {
    let (mut memory, mut share, mut p99) = (Lines::new(), Lines::new(), Lines::new());
    let mut idle = false;
    for experiment in members {
        let (Some(group), Some(load)) = (&experiment.group, experiment.load()) else {
            continue;
        };
        let (Some(series), Some(x)) = (&group.series, group.x) else {
            continue;
        };
        idle |= held_idle(load);
        if let Some(samples) = &experiment.samples {
            let per_connection = samples.rss_per_connection_kib(load.connections);
            // A log scale has no zero: a server that added no whole page is left off.
            if per_connection > 0.0 {
                add_point(&mut memory, series, (x, per_connection));
            }
        }
        if let Some(rate) = load
            .measured
            .steady_rps
            .filter(|_| load.predicted.rps > 0.0)
        {
            add_point(&mut share, series, (x, 100.0 * rate / load.predicted.rps));
        }
        if let (false, Some(ms)) = (held_idle(load), load.measured.latency_ms.p99) {
            add_point(&mut p99, series, (x, ms));
        }
    }
    let Some(first) = members.first().and_then(|e| e.load()) else {
        return Vec::new();
    };
    let held = if idle {
        "idle after one request".to_string()
    } else {
        format!("each waiting on {}", first.path)
    };
    let chapter = record.chapter;
    let mut out = Vec::new();
    let mut chart = |suffix, title: String, y_label, lines: &Lines, legend, y_range| {
        if let Some(svg) = charts::lines_svg(
            &title,
            "connections held open",
            y_label,
            lines,
            &[],
            legend,
            y_range,
        ) {
            out.push((suffix, svg));
        }
    };
    chart(
        "rss",
        format!("Chapter {chapter}: memory per connection, {held}"),
        "resident memory per connection, KiB",
        &memory,
        Legend::MiddleRight,
        None,
    );
    if !idle {
        chart(
            "rps",
            format!("Chapter {chapter}: steady requests/s as % of Little's law, {held}"),
            "% of connections ÷ delay",
            &share,
            Legend::LowerLeft,
            Some(0.0..110.0),
        );
        chart(
            "p99",
            format!("Chapter {chapter}: p99 latency, {held}"),
            "p99, ms",
            &p99,
            Legend::UpperLeft,
            None,
        );
    }
    out
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let mut out = Vec::new();
    for name in ["held_busy", "held_idle"] {
        let members = views::group(record, name);
        let file = |suffix: &str| format!("chapter{}_{name}{suffix}", record.chapter);
        out.push(View::new(file(".md"), cost_table(record, &members)));
        for (suffix, svg) in cost_charts(record, &members) {
            out.push(View::new(file(&format!("_{suffix}.svg")), svg));
        }
        if let Some(summary) = cost_summary(&members) {
            out.push(View::new(file("_summary.md"), summary));
        }
    }
    out.push(View::new(
        format!("chapter{}_limits.md", record.chapter),
        limits_table(record),
    ));
    out
}

/// The servers whose held connections other chapters read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Threads,
    Axum,
    Loop,
}

impl Held {
    pub const ALL: [Held; 3] = [Held::Threads, Held::Axum, Held::Loop];

    /// Its name in the slugs (the first part of its [`HeldServer`]).
    pub fn name(self) -> &'static str {
        match self {
            Held::Threads => "threads",
            Held::Axum => "axum",
            Held::Loop => "loop",
        }
    }
}

/// 10,000 connections held idle against `server`: the decision table reads
/// their memory.
pub fn idle_10000(server: Held) -> Figure {
    Figure::experiment(8, super::held::slug(true, server.name(), 10_000))
}

/// 10,000 connections, each with a request always in flight, against
/// `server`: the decision table reads their memory too.
pub fn busy_10000(server: Held) -> Figure {
    Figure::experiment(8, super::held::slug(false, server.name(), 10_000))
}

/// Kernel slab per connection (KiB) of a held-connection row: the
/// sockets, their files and epoll entries, both ends (machine-wide).
pub fn slab_per_connection_kib(experiment: &ExperimentRecord) -> Option<f64> {
    let connections = experiment.load()?.connections;
    experiment
        .samples
        .as_ref()?
        .slab_per_connection_kib(connections)
}

/// Resident and kernel memory per connection (KiB) of a held-connection row.
pub fn memory_per_connection_kib(experiment: &ExperimentRecord) -> Option<f64> {
    let connections = experiment.load()?.connections;
    let samples = experiment.samples.as_ref()?;
    Some(
        samples.rss_per_connection_kib(connections)
            + samples.kernel_per_connection_kib(connections),
    )
}

/// Every figure other chapters read from this one.
pub fn figures_read(_plan: Plan) -> Vec<Figure> {
    Held::ALL
        .into_iter()
        .flat_map(|server| [idle_10000(server), busy_10000(server)])
        .collect()
}
