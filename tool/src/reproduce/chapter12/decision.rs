//! The book's last table: for each situation, which model, and the figure
//! measured in this book that shows it, read from every chapter's record
//! (so it is the reader's machine's, after the reader's run).

use std::fmt::Write;

use super::super::chapter8::{self, Held};
use super::super::chapter9;
use super::super::chapter11::{self, Scaling};
use super::super::figure::Missing;
use super::super::record::ChapterRecord;
use super::super::views::{View, format_opt_ms, stamp, thousands};
use super::{CALL_MS, DEADLINE, Read, SLOTS, goodput};
use evt::report::SwitchCosts;

/// The file the table is written to.
pub const FILE: &str = "chapter12_decision.md";

/// One situation: what to choose, and the measured figure that says so.
struct Row {
    situation: &'static str,
    choose: &'static str,
    /// None: no figure can say it, a judgment, said as one.
    figure: Option<Result<String, Missing>>,
    chapter: u32,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Chapter 9's switch at 500 workers, free: the median hop of a thread
/// and of a task, less the baseline, in µs.
fn switch_us(records: &[ChapterRecord]) -> Result<(f64, f64), Missing> {
    let figure = chapter9::switch_rounds(500, false);
    let runs: Vec<SwitchCosts> = figure
        .runs(records)?
        .into_iter()
        .filter_map(|p| p.output::<SwitchCosts>())
        .collect();
    let hop = |cost: fn(&SwitchCosts) -> f64| {
        median(
            runs.iter()
                .map(|s| (cost(s) - s.baseline_hop_ns) / 1e3)
                .collect(),
        )
    };
    match (hop(|s| s.thread_hop_ns), hop(|s| s.task_hop_ns)) {
        (Some(thread), Some(task)) => Ok((thread, task)),
        _ => Err(Missing::NoValue {
            chapter: 9,
            slug: figure.slug,
        }),
    }
}

/// Every figure the table shows, read through the chapters' typed figures.
fn rows(records: &[ChapterRecord]) -> Vec<Row> {
    let cores = records
        .iter()
        .find(|r| r.chapter == 11)
        .map_or(2, |r| r.machine.cores.max(2));
    let twelve = super::figure;
    let rate = |read| -> Result<String, Missing> {
        Ok(thousands(twelve(read).rps(records)?.round() as u64))
    };
    let ms = |value: Result<f64, Missing>| -> Result<String, Missing> {
        Ok(format_opt_ms(Some(value?)))
    };
    let light_p99 = |name| -> Result<String, Missing> {
        let figure = twelve(Read::Hol(name));
        ms(figure.value(records, |e| e.loads.first()?.measured.latency_ms.p99))
    };
    let good = |name| -> Result<String, Missing> {
        let figure = twelve(Read::Overload(name, 20));
        Ok(thousands(
            figure.value(records, |e| goodput(e.load()?))?.round() as u64,
        ))
    };
    let memory =
        |server| chapter8::idle_10000(server).value(records, chapter8::memory_per_connection_kib);
    vec![
        Row {
            situation: "Requests that mostly wait (on a database, another service, a timer)",
            choose: "a loop, or as many threads as requests waiting at once",
            figure: Some((|| {
                Ok(format!(
                    "{CALL_MS} ms waits, 100 connections: one loop {} req/s, {SLOTS} threads {} req/s, 100 threads {} req/s",
                    rate(Read::Downstream("loop_free"))?,
                    rate(Read::Downstream("threads"))?,
                    rate(Read::Downstream("threads_many"))?,
                ))
            })()),
            chapter: 12,
        },
        Row {
            situation: "Many connections open at once, mostly idle",
            choose: "a loop",
            figure: Some((|| {
                Ok(format!(
                    "resident and kernel memory per idle connection at 10,000: a thread each {:.1} KiB, axum on one loop {:.1} KiB, the hand-written loop {:.1} KiB",
                    memory(Held::Threads)?,
                    memory(Held::Axum)?,
                    memory(Held::Loop)?,
                ))
            })()),
            chapter: 8,
        },
        Row {
            situation: "Clients that send slowly (slowloris), or hold a connection",
            choose: "a loop, or a loop in front of the threads",
            figure: Some((|| {
                Ok(format!(
                    "a probe's slowest answer under {} slow clients: 4 × 2 pool {}, one loop {}, a loop in front of the pool {}",
                    super::SLOW_CLIENTS,
                    ms(twelve(Read::Slow("pool")).max_ms(records))?,
                    ms(twelve(Read::Slow("loop")).max_ms(records))?,
                    ms(twelve(Read::Slow("front")).max_ms(records))?,
                ))
            })()),
            chapter: 12,
        },
        Row {
            situation: "Handlers that need CPU, among light ones",
            choose: "threads (a pool, or the loop's blocking pool), not a bare loop, one or many",
            figure: Some((|| {
                Ok(format!(
                    "p99 of light requests beside 20 ms CPU ones: one loop {}, work stealing {}, CPU offloaded {}, a pool of 8 threads {}",
                    light_p99("loop")?,
                    light_p99("steal")?,
                    light_p99("offload")?,
                    light_p99("pool")?,
                ))
            })()),
            chapter: 12,
        },
        Row {
            situation: "Using every core",
            choose: "a loop per core, work stealing or a process per core: all scale",
            figure: Some((|| {
                let ratio = |model| -> Result<f64, Missing> {
                    Ok(chapter11::scaling(model, cores).rps(records)?
                        / chapter11::scaling(model, 1).rps(records)?)
                };
                Ok(format!(
                    "1 → {cores} workers on 200 µs of CPU: a loop per core {:.2} ×, work stealing {:.2} ×",
                    ratio(Scaling::PerCore)?,
                    ratio(Scaling::Steal)?,
                ))
            })()),
            chapter: 11,
        },
        Row {
            situation: "A downstream of fixed capacity (a pool of database connections)",
            choose: "either: the downstream sets the rate; the loop queues fairly, the pool leaves some clients out",
            figure: Some((|| {
                let slots = twelve(Read::Downstream("loop_slots"));
                let threads = twelve(Read::Downstream("threads"));
                Ok(format!(
                    "{SLOTS} slots × {CALL_MS} ms: one loop {} req/s (p99 {}), {SLOTS} threads {} req/s (p99 {}, slowest {})",
                    rate(Read::Downstream("loop_slots"))?,
                    ms(slots.p99_ms(records))?,
                    rate(Read::Downstream("threads"))?,
                    ms(threads.p99_ms(records))?,
                    ms(threads.max_ms(records))?,
                ))
            })()),
            chapter: 12,
        },
        Row {
            situation: "More load than capacity",
            choose: "a limit that answers 503 at once (measured on the loop)",
            figure: Some((|| {
                Ok(format!(
                    "goodput (200 within {} s) at twice capacity: no limit {} /s, a limit {} /s, {SLOTS} threads {} /s",
                    DEADLINE.as_secs(),
                    good("loop")?,
                    good("shed")?,
                    good("threads")?,
                ))
            })()),
            chapter: 12,
        },
        Row {
            situation: "Switching between many waiting things",
            choose: "tasks: a switch costs less",
            figure: Some(switch_us(records).map(|(thread, task)| {
                format!(
                    "one hop along 500 waiting workers: a thread {thread:.1} µs, a task {task:.1} µs"
                )
            })),
            chapter: 9,
        },
        Row {
            situation: "Simple code, readable stack traces, blocking libraries",
            choose: "threads",
            figure: None,
            chapter: 1,
        },
    ]
}

/// Every figure the table reads that is missing from `records`: empty when
/// the table is whole.
pub fn missing(records: &[ChapterRecord]) -> Vec<Missing> {
    rows(records)
        .into_iter()
        .filter_map(|row| row.figure?.err())
        .collect()
}

/// The decision table, or None when no chapter this needs has a record.
pub fn decision_table(records: &[ChapterRecord]) -> Option<View> {
    let rows = rows(records);
    if rows.iter().all(|row| !matches!(row.figure, Some(Ok(_)))) {
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
            match &row.figure {
                Some(Ok(figure)) => figure.clone(),
                Some(Err(missing)) => missing.to_string(),
                None => "no figure: a judgment (a blocked thread's stack shows where it waits; a task's shows the runtime)".to_string(),
            },
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
