//! Chapter 9's switch costs (the brigade, thread and task starts, memory
//! per waiting worker) and the cooperative budget demo, as tables and a chart.

use std::fmt::Write;

use super::super::charts::{self, Legend};
use super::super::record::ChapterRecord;
use super::super::views::{self, Lines, add_point, stamp, thousands};
use super::{ANCHOR_WORKERS, BRIGADE_WORKERS, median};
use evt::report::{BudgetReport, SwitchCosts};

/// The runs of one brigade size, pinned or not.
pub(super) fn runs(switches: &[SwitchCosts], workers: u32, pinned: bool) -> Vec<&SwitchCosts> {
    switches
        .iter()
        .filter(|s| s.workers == workers && s.pinned == pinned)
        .collect()
}

/// One of a run's costs.
type Field = fn(&SwitchCosts) -> f64;

/// The median of `field` over `runs`.
fn median_of(runs: &[&SwitchCosts], field: Field) -> Option<f64> {
    median(runs.iter().map(|s| field(s)).collect())
}

fn micros(ns: Option<f64>) -> String {
    ns.map_or("—".into(), |ns| format!("{:.1} µs", ns / 1000.0))
}

/// A ratio taken run by run (each run measures both sides together), as
/// the median and the range of the runs: `4.1 × (4.1–5.1)`.
pub(super) fn ratio_of_runs(runs: &[&SwitchCosts], ratio: fn(&SwitchCosts) -> f64) -> String {
    let ratios: Vec<f64> = runs
        .iter()
        .map(|s| ratio(s))
        .filter(|r| r.is_finite())
        .collect();
    let (Some(low), Some(high)) = (
        ratios.iter().copied().reduce(f64::min),
        ratios.iter().copied().reduce(f64::max),
    ) else {
        return "—".into();
    };
    match median(ratios) {
        Some(middle) if runs.len() > 1 => format!("{middle:.1} × ({low:.1}–{high:.1})"),
        Some(middle) => format!("{middle:.1} ×"),
        None => "—".into(),
    }
}

/// A hop between threads over one between tokio tasks, whole.
pub(super) fn whole_ratio(s: &SwitchCosts) -> f64 {
    s.thread_hop_ns / s.task_hop_ns
}

/// The same, each less the baseline of its own run.
pub(super) fn less_baseline_ratio(s: &SwitchCosts) -> f64 {
    (s.thread_hop_ns - s.baseline_hop_ns) / (s.task_hop_ns - s.baseline_hop_ns)
}

pub(super) fn switch_table(record: &ChapterRecord, switches: &[SwitchCosts]) -> String {
    let mut out = format!(
        "A brigade of {ANCHOR_WORKERS}: time per hop (one write, one wake-up, one read), median of the runs, \
         and the same less the baseline (one thread making a hop's write and read on as many socket pairs, nobody to wake). \
         The ratios are taken run by run, each run's threads against the same run's tasks: the median, and the range.\n\n\
         | | runs | baseline | **threads** | threads, each run | tokio tasks | our tasks | context switches per hop: threads, tokio | threads ÷ tokio | threads − baseline | tokio − baseline | ours − baseline | (threads − baseline) ÷ (tokio − baseline) |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    );
    for pinned in [false, true] {
        let runs = runs(switches, ANCHOR_WORKERS, pinned);
        if runs.is_empty() {
            continue;
        }
        let baseline = median_of(&runs, |s| s.baseline_hop_ns);
        let less = |field: fn(&SwitchCosts) -> f64| {
            median(runs.iter().map(|s| field(s) - s.baseline_hop_ns).collect())
        };
        let each: Vec<String> = runs
            .iter()
            .map(|s| format!("{:.1}", s.thread_hop_ns / 1000.0))
            .collect();
        let switches =
            |field: Field| median_of(&runs, field).map_or("—".into(), |n| format!("{n:.2}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | **{}** | {} µs | {} | {} | {}, {} | {} | {} | {} | {} | {} |",
            if pinned {
                "pinned to one CPU"
            } else {
                "free to use every CPU"
            },
            runs.len(),
            micros(baseline),
            micros(median_of(&runs, |s| s.thread_hop_ns)),
            each.join(", "),
            micros(median_of(&runs, |s| s.task_hop_ns)),
            micros(median_of(&runs, |s| s.ours_hop_ns)),
            switches(|s| s.thread_switches_per_hop),
            switches(|s| s.task_switches_per_hop),
            ratio_of_runs(&runs, whole_ratio),
            micros(less(|s| s.thread_hop_ns)),
            micros(less(|s| s.task_hop_ns)),
            micros(less(|s| s.ours_hop_ns)),
            ratio_of_runs(&runs, less_baseline_ratio),
        );
    }
    if let Some(run) = record.programs.iter().find(|p| {
        p.output::<SwitchCosts>()
            .is_some_and(|s| s.workers == ANCHOR_WORKERS && !s.pinned)
    }) {
        let _ = write!(out, "\nOne run: `{}`.\n", run.command);
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

pub(super) fn start_and_memory_table(record: &ChapterRecord, switches: &[SwitchCosts]) -> String {
    let all: Vec<&SwitchCosts> = switches.iter().filter(|s| !s.pinned).collect();
    let bytes = |value: Option<f64>| {
        value.map_or("—".into(), |b| {
            if b.abs() >= 1024.0 {
                format!("{:.1} KiB", b / 1024.0)
            } else {
                format!("{b:.0} bytes")
            }
        })
    };
    let mut out =
        String::from("| | a thread | a tokio task | thread ÷ task |\n|---|--:|--:|--:|\n");
    // `ratio`: false where the task's figure is only the counters' noise
    // (a task has no kernel stack, and adds next to no page tables).
    let row = |out: &mut String,
               what: &str,
               thread: Option<f64>,
               task: Option<f64>,
               show: &dyn Fn(Option<f64>) -> String,
               ratio: bool| {
        let ratio = match (thread, task) {
            (Some(t), Some(k)) if ratio && k > 0.0 => format!("{:.0} ×", t / k),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {ratio} |",
            show(thread),
            show(task)
        );
    };
    let pinned: Vec<&SwitchCosts> = switches.iter().filter(|s| s.pinned).collect();
    row(
        &mut out,
        "start one (spawn, run to the end, join), free to use every CPU",
        median_of(&all, |s| s.thread_spawn_ns),
        median_of(&all, |s| s.task_spawn_ns),
        &micros,
        true,
    );
    row(
        &mut out,
        "start one, pinned to one CPU",
        median_of(&pinned, |s| s.thread_spawn_ns),
        median_of(&pinned, |s| s.task_spawn_ns),
        &micros,
        true,
    );
    row(
        &mut out,
        "start one the anchor's way (threads: 20 started, then joined; tasks: the spawn call alone, before it runs), free",
        median_of(&all, |s| s.thread_batch_spawn_ns),
        median_of(&all, |s| s.task_spawn_only_ns),
        &micros,
        true,
    );
    row(
        &mut out,
        "**resident memory** per one waiting on a socket (slope)",
        median_of(&all, |s| s.thread_bytes),
        median_of(&all, |s| s.task_bytes),
        &bytes,
        true,
    );
    row(
        &mut out,
        "kernel stack per one waiting (slope of `KernelStack`, machine-wide)",
        median_of(&all, |s| s.thread_kernel_stack_bytes),
        median_of(&all, |s| s.task_kernel_stack_bytes),
        &bytes,
        false,
    );
    row(
        &mut out,
        "page tables per one waiting (slope of this process's `VmPTE`)",
        median_of(&all, |s| s.thread_page_table_bytes),
        median_of(&all, |s| s.task_page_table_bytes),
        &bytes,
        false,
    );
    row(
        &mut out,
        "**resident and kernel** per one waiting (the three above)",
        median_of(&all, |s| {
            s.thread_bytes + s.thread_kernel_stack_bytes + s.thread_page_table_bytes
        }),
        median_of(&all, |s| {
            s.task_bytes + s.task_kernel_stack_bytes + s.task_page_table_bytes
        }),
        &bytes,
        true,
    );
    let counts = |list: &[usize]| {
        let shown: Vec<String> = list.iter().map(|&n| thousands(n as u64)).collect();
        shown.join(", ")
    };
    if let Some(first) = all.first() {
        let _ = write!(
            out,
            "\nMedians of {} runs each (every brigade size), the memory from those not pinned: the \
             slope of a least-squares line through the memory added by {} waiting threads, and by {} \
             waiting tasks.\n\n",
            all.len(),
            counts(&first.waiting_threads),
            counts(&first.waiting_tasks),
        );
    }
    out.push_str(&stamp(record));
    out
}

pub(super) fn switch_chart(chapter: u32, switches: &[SwitchCosts]) -> Option<String> {
    let mut lines = Lines::new();
    let kinds: [(&str, Field); 3] = [
        ("threads", |s| s.thread_hop_ns),
        ("tokio tasks", |s| s.task_hop_ns),
        ("our tasks", |s| s.ours_hop_ns),
    ];
    for pinned in [false, true] {
        for (kind, field) in kinds {
            for workers in BRIGADE_WORKERS {
                let runs = runs(switches, workers, pinned);
                if let Some(ns) =
                    median(runs.iter().map(|s| field(s) - s.baseline_hop_ns).collect())
                {
                    let series = format!("{kind}{}", if pinned { ", pinned" } else { "" });
                    add_point(
                        &mut lines,
                        &series,
                        (f64::from(workers), (ns / 1000.0).max(0.01)),
                    );
                }
            }
        }
    }
    // A linear axis from zero, with room above the lines for the legend:
    // the gap between threads and tasks looks as large as it is.
    let top = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    charts::lines_svg(
        &format!("Chapter {chapter}: a hop less the baseline, by brigade size"),
        "workers in the brigade",
        "µs per hop, less the baseline",
        &lines,
        &[],
        Legend::UpperRight,
        Some(0.0..top * 1.9),
    )
}

// ----- The cooperative budget -----

pub(super) fn budget_table(record: &ChapterRecord, budget: &BudgetReport) -> String {
    let mut out = format!(
        "A greedy task reads {} in 64-byte pieces from a socket another thread keeps full; a ticker asks to wake every {} ms.\n\n\
         | runtime | greedy task took | it gave the thread up | ticker ran | **ticker at worst late by** |\n|---|--:|--:|--:|--:|\n",
        views::mib(budget.bytes / 1024),
        budget.tick_ms
    );
    for run in &budget.runtimes {
        let _ = writeln!(
            out,
            "| {} | {} | {} times | {} times | **{}** |",
            run.runtime,
            views::format_ms(run.greedy_ms),
            thousands(run.greedy_yields),
            thousands(run.ticks),
            views::format_ms(run.max_late_ms),
        );
    }
    if let Some(program) = record.programs.iter().find(|p| p.slug == "budget") {
        let _ = write!(out, "\nRun by `{}`.\n", program.command);
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}
