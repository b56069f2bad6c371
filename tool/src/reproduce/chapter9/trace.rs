//! Chapter 9's trace of one request: the steps of the first connection, as
//! a table and a sequence picture.

use std::fmt::Write;

use super::super::charts;
use super::super::record::{ChapterRecord, ExperimentRecord};
use super::super::views::{self, stamp};
use evt::report::{RuntimeReport, Step, WakeCause};

/// A step of the trace as the page shows it: µs since the connection
/// arrived, which lane (0 the accept loop, 1 the connection, 2 the
/// reactor), and what happened.
pub(super) struct Shown {
    at_us: f64,
    lane: usize,
    what: String,
}

const LANES: [&str; 3] = [
    "task 0: the accept loop",
    "task 1: the connection",
    "reactor: epoll and timers",
];

/// The steps of the first connection's life (task 1), from the wake-up
/// that brought it to its `Ready`, with every reactor step between; the
/// report's own connection, which came later, is left out.
pub(super) fn one_request(trace: &ExperimentRecord) -> Vec<Shown> {
    let Some(report) = trace.report::<RuntimeReport>() else {
        return Vec::new();
    };
    let steps = &report.trace;
    let Some(first_spawn) = steps
        .iter()
        .position(|s| s.step == Step::Spawned { task: 1 })
    else {
        return Vec::new();
    };
    // Back to the wake-up of the accept loop that led to the spawn.
    let start = steps[..first_spawn]
        .iter()
        .rposition(|s| matches!(s.step, Step::Woke { task: 0, .. }))
        .unwrap_or(first_spawn);
    let end = steps
        .iter()
        .position(|s| {
            s.step
                == Step::Polled {
                    task: 1,
                    ready: true,
                }
        })
        .unwrap_or(steps.len() - 1);
    let origin = steps[start].at_us;
    steps[start..=end]
        .iter()
        .filter(|s| match s.step {
            // Task 1 is freed after it ends; later tasks are the report's.
            Step::Spawned { task }
            | Step::Poll { task }
            | Step::Polled { task, .. }
            | Step::WouldBlock { task, .. }
            | Step::Timer { task, .. }
            | Step::Woke { task, .. } => task <= 1,
            Step::Slept { .. } => true,
        })
        .map(|s| {
            let lane = match s.step {
                Step::Slept { .. } | Step::Woke { .. } => 2,
                // The accept loop spawns.
                Step::Spawned { .. } => 0,
                Step::Poll { task }
                | Step::Polled { task, .. }
                | Step::WouldBlock { task, .. }
                | Step::Timer { task, .. } => task.min(1),
            };
            Shown {
                at_us: s.at_us - origin,
                lane,
                what: describe(s.step),
            }
        })
        .collect()
}

/// A step in the page's words.
fn describe(step: Step) -> String {
    match step {
        Step::Spawned { task } => format!("`spawn`: task {task} joins the ready queue"),
        Step::Poll { task } => format!("the executor polls task {task}"),
        Step::Polled { ready: false, .. } => "`poll` returns `Pending`".into(),
        Step::Polled { ready: true, .. } => "`poll` returns `Ready`: the task ends".into(),
        Step::WouldBlock { write: false, .. } => {
            "not ready to read (`WouldBlock`): waker left with the reactor".into()
        }
        Step::WouldBlock { write: true, .. } => {
            "not ready to write (`WouldBlock`): waker left with the reactor".into()
        }
        Step::Timer { ms, .. } => format!("`sleep({ms} ms)`: a timer on the heap"),
        Step::Slept {
            timeout_ms,
            events,
            slept_us,
        } => format!(
            "`epoll_wait` (timeout {}) → {events} event{} after {}",
            timeout_ms.map_or("none".to_string(), |ms| format!("{ms} ms")),
            if events == 1 { "" } else { "s" },
            views::format_ms(slept_us as f64 / 1000.0),
        ),
        Step::Woke { task, by } => format!(
            "wake task {task}: {}",
            match by {
                WakeCause::Readable => "readable",
                WakeCause::Writable => "writable",
                WakeCause::Timer => "timer due",
            }
        ),
    }
}

pub(super) fn trace_table(
    record: &ChapterRecord,
    trace: &ExperimentRecord,
    steps: &[Shown],
) -> String {
    if steps.is_empty() {
        return "*This record has no trace of a connection.*\n".into();
    }
    let mut out =
        String::from("| µs after the connection arrived | where | step |\n|--:|---|---|\n");
    for step in steps {
        let _ = writeln!(
            out,
            "| {:.0} | {} | {} |",
            step.at_us, LANES[step.lane], step.what
        );
    }
    if let Some(load) = trace.load() {
        let _ = write!(
            out,
            "\nThe request: `{}`, sent by `{}`.\n",
            load.path, load.command
        );
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// The steps as a picture: a lane per task and one for the reactor, a dot
/// per step, top to bottom in time order.
pub(super) fn trace_svg(steps: &[Shown]) -> Option<String> {
    let rows: Vec<charts::SequenceStep> = steps
        .iter()
        .map(|s| charts::SequenceStep {
            lane: s.lane,
            at: format!("{:.0} µs", s.at_us),
            label: s.what.replace('`', ""),
        })
        .collect();
    charts::sequence_svg(
        "One request through our runtime: who runs, step by step",
        &LANES,
        &rows,
    )
}
