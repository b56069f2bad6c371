//! The book's last table: for each situation, which model, and the figure
//! measured in this book that shows it, read from every chapter's record
//! (so it is the reader's machine's, after the reader's run).

use std::fmt::Write;

use super::super::record::{ChapterRecord, ExperimentRecord};
use super::super::views::{View, format_opt_ms, stamp, thousands};
use super::{CALL_MS, DEADLINE, SLOTS, goodput};
use evt::report::SwitchCosts;

/// The file the table is written to.
pub const FILE: &str = "chapter12_decision.md";

/// One situation: what to choose, and the measured figure that says so.
struct Row {
    situation: &'static str,
    choose: &'static str,
    figure: Option<String>,
    chapter: u32,
    /// No figure can say it: a judgment, said as one.
    judgment: bool,
}

fn experiment<'a>(
    records: &'a [ChapterRecord],
    chapter: u32,
    slug: &str,
) -> Option<&'a ExperimentRecord> {
    records
        .iter()
        .find(|r| r.chapter == chapter)?
        .experiments
        .iter()
        .find(|e| e.slug == slug)
}

fn rps(records: &[ChapterRecord], chapter: u32, slug: &str) -> Option<f64> {
    Some(experiment(records, chapter, slug)?.load()?.measured.rps)
}

/// Resident memory and the kernel's stacks and page tables per connection,
/// at 10,000 held connections (chapter 8).
fn memory_per_connection(records: &[ChapterRecord], slug: &str) -> Option<f64> {
    let held = experiment(records, 8, slug)?;
    let connections = held.load()?.connections;
    let samples = held.samples.as_ref()?;
    Some(
        samples.rss_per_connection_kib(connections)
            + samples.kernel_per_connection_kib(connections),
    )
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Chapter 9's switch at 500 workers, free: the median hop of a thread
/// and of a task, less the baseline, in µs.
fn switch_us(records: &[ChapterRecord]) -> Option<(f64, f64)> {
    let record = records.iter().find(|r| r.chapter == 9)?;
    let runs: Vec<SwitchCosts> = record
        .programs
        .iter()
        .filter(|p| p.slug.starts_with("switch_500_free_"))
        .filter_map(|p| p.output::<SwitchCosts>())
        .collect();
    let thread = median(
        runs.iter()
            .map(|s| (s.thread_hop_ns - s.baseline_hop_ns) / 1e3)
            .collect(),
    )?;
    let task = median(
        runs.iter()
            .map(|s| (s.task_hop_ns - s.baseline_hop_ns) / 1e3)
            .collect(),
    )?;
    Some((thread, task))
}

fn light_p99(records: &[ChapterRecord], slug: &str) -> Option<f64> {
    experiment(records, 12, slug)?
        .loads
        .first()?
        .measured
        .latency_ms
        .p99
}

fn max_ms(records: &[ChapterRecord], slug: &str) -> Option<f64> {
    experiment(records, 12, slug)?
        .load()?
        .measured
        .latency_ms
        .max
}

fn p99(records: &[ChapterRecord], slug: &str) -> Option<f64> {
    experiment(records, 12, slug)?
        .load()?
        .measured
        .latency_ms
        .p99
}

fn good(records: &[ChapterRecord], slug: &str) -> Option<f64> {
    goodput(experiment(records, 12, slug)?.load()?)
}

fn rows(records: &[ChapterRecord]) -> Vec<Row> {
    let cores = records
        .iter()
        .find(|r| r.chapter == 11)
        .map_or(2, |r| r.machine.cores.max(2));
    vec![
        Row {
            situation: "Requests that mostly wait (on a database, another service, a timer)",
            choose: "a loop, or as many threads as requests waiting at once",
            figure: (|| {
                Some(format!(
                    "{CALL_MS} ms waits, 100 connections: one loop {} req/s, {SLOTS} threads {} req/s, 100 threads {} req/s",
                    thousands(rps(records, 12, "downstream_loop_free")?.round() as u64),
                    thousands(rps(records, 12, "downstream_threads")?.round() as u64),
                    thousands(rps(records, 12, "downstream_threads_many")?.round() as u64),
                ))
            })(),
            chapter: 12,
            judgment: false,
        },
        Row {
            situation: "Many connections open at once, mostly idle",
            choose: "a loop",
            figure: (|| {
                Some(format!(
                    "resident and kernel memory per idle connection at 10,000: a thread each {:.1} KiB, axum on one loop {:.1} KiB, the hand-written loop {:.1} KiB",
                    memory_per_connection(records, "held_idle_threads_10000")?,
                    memory_per_connection(records, "held_idle_axum_10000")?,
                    memory_per_connection(records, "held_idle_loop_10000")?,
                ))
            })(),
            chapter: 8,
            judgment: false,
        },
        Row {
            situation: "Clients that send slowly (slowloris), or hold a connection",
            choose: "a loop, or a loop in front of the threads",
            figure: (|| {
                Some(format!(
                    "a probe's slowest answer under {} slow clients: 4 × 2 pool {}, one loop {}, a loop in front of the pool {}",
                    super::SLOW_CLIENTS,
                    format_opt_ms(Some(max_ms(records, "slow_pool")?)),
                    format_opt_ms(Some(max_ms(records, "slow_loop")?)),
                    format_opt_ms(Some(max_ms(records, "slow_front")?)),
                ))
            })(),
            chapter: 12,
            judgment: false,
        },
        Row {
            situation: "Handlers that need CPU, among light ones",
            choose: "threads (a pool, or the loop's blocking pool), not a bare loop, one or many",
            figure: (|| {
                Some(format!(
                    "p99 of light requests beside 20 ms CPU ones: one loop {}, work stealing {}, CPU offloaded {}, a pool of 8 threads {}",
                    format_opt_ms(Some(light_p99(records, "hol_loop")?)),
                    format_opt_ms(Some(light_p99(records, "hol_steal")?)),
                    format_opt_ms(Some(light_p99(records, "hol_offload")?)),
                    format_opt_ms(Some(light_p99(records, "hol_pool")?)),
                ))
            })(),
            chapter: 12,
            judgment: false,
        },
        Row {
            situation: "Using every core",
            choose: "a loop per core, work stealing or a process per core: all scale",
            figure: (|| {
                let one = rps(records, 11, "scaling_per_core_1")?;
                let all = rps(records, 11, &format!("scaling_per_core_{cores}"))?;
                let steal_one = rps(records, 11, "scaling_steal_1")?;
                let steal_all = rps(records, 11, &format!("scaling_steal_{cores}"))?;
                Some(format!(
                    "1 → {cores} workers on 200 µs of CPU: a loop per core {:.2} ×, work stealing {:.2} ×",
                    all / one,
                    steal_all / steal_one
                ))
            })(),
            chapter: 11,
            judgment: false,
        },
        Row {
            situation: "A downstream of fixed capacity (a pool of database connections)",
            choose: "either: the downstream sets the rate; the loop queues fairly, the pool leaves some clients out",
            figure: (|| {
                Some(format!(
                    "{SLOTS} slots × {CALL_MS} ms: one loop {} req/s (p99 {}), {SLOTS} threads {} req/s (p99 {}, slowest {})",
                    thousands(rps(records, 12, "downstream_loop_slots")?.round() as u64),
                    format_opt_ms(p99(records, "downstream_loop_slots")),
                    thousands(rps(records, 12, "downstream_threads")?.round() as u64),
                    format_opt_ms(p99(records, "downstream_threads")),
                    format_opt_ms(max_ms(records, "downstream_threads")),
                ))
            })(),
            chapter: 12,
            judgment: false,
        },
        Row {
            situation: "More load than capacity",
            choose: "a limit that answers 503 at once (measured on the loop)",
            figure: (|| {
                Some(format!(
                    "goodput (200 within {} s) at twice capacity: no limit {} /s, a limit {} /s, {SLOTS} threads {} /s",
                    DEADLINE.as_secs(),
                    thousands(good(records, "overload_loop_20")?.round() as u64),
                    thousands(good(records, "overload_shed_20")?.round() as u64),
                    thousands(good(records, "overload_threads_20")?.round() as u64),
                ))
            })(),
            chapter: 12,
            judgment: false,
        },
        Row {
            situation: "Switching between many waiting things",
            choose: "tasks: a switch costs less",
            figure: switch_us(records).map(|(thread, task)| {
                format!(
                    "one hop along 500 waiting workers: a thread {thread:.1} µs, a task {task:.1} µs"
                )
            }),
            chapter: 9,
            judgment: false,
        },
        Row {
            situation: "Simple code, readable stack traces, blocking libraries",
            choose: "threads",
            figure: None,
            chapter: 1,
            judgment: true,
        },
    ]
}

/// The decision table, or None when no chapter this needs has a record.
pub fn decision_table(records: &[ChapterRecord]) -> Option<View> {
    let rows = rows(records);
    if rows.iter().all(|row| row.figure.is_none()) {
        return None;
    }
    let mut out = String::from(
        "| situation | choose | measured in this book | chapter |\n|---|---|---|--:|\n",
    );
    for row in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.situation,
            row.choose,
            row.figure.clone().unwrap_or_else(|| if row.judgment {
                "no figure: a judgment (a blocked thread's stack shows where it waits; a task's shows the runtime)".to_string()
            } else {
                format!("not measured yet: `cargo run --release -- --chapter {}`", row.chapter)
            }),
            row.chapter
        );
    }
    out.push_str("\nEach chapter's figures, as measured:\n\n");
    let mut chapters: Vec<u32> = rows.iter().map(|row| row.chapter).collect();
    chapters.sort_unstable();
    chapters.dedup();
    for chapter in chapters {
        if let Some(record) = records.iter().find(|r| r.chapter == chapter) {
            let _ = write!(out, "- chapter {chapter}: {}", stamp(record));
        }
    }
    Some(View::new(FILE.to_string(), out))
}
