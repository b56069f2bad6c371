//! Chapter 12's slow clients, as a table and a chart: a probe's latency
//! while slow connections hold the servers.

use std::fmt::Write;

use super::super::charts;
use super::super::record::{ChapterRecord, ExperimentRecord};
use super::super::views::{self, Lines, format_opt_ms, stamp};
use super::SLOW_CLIENTS;

/// The slowest probe due after the slow clients left (ms), and the number
/// of 100 ms slices of the run that had a probe answered.
fn after_leaving_ms(experiment: &ExperimentRecord) -> Option<f64> {
    let left = experiment.slow_clients.as_ref()?.left_s;
    let load = experiment.load()?;
    load.over_time
        .iter()
        .filter(|(slice, _)| **slice as f64 * 0.1 >= left)
        .map(|(_, bucket)| bucket.max_us as f64 / 1000.0)
        .reduce(f64::max)
}

pub(super) fn slow_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| server | probe: p50 | probe: p99 | **probe: max** | slow connections opened | closed by the server | first closed after | slowest probe due after they left |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let (Some(load), Some(slow)) = (experiment.load(), &experiment.slow_clients) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | **{}** | {} | {} | {} | {} |",
            views::row_label(experiment),
            format_opt_ms(load.measured.latency_ms.p50),
            format_opt_ms(load.measured.latency_ms.p99),
            format_opt_ms(load.measured.latency_ms.max),
            slow.opened,
            slow.closed_by_server,
            views::or_dash(slow.first_closed_after_s, |s| format!("{s:.1} s")),
            views::or_dash(after_leaving_ms(experiment), |ms| format_opt_ms(Some(ms))),
        );
    }
    if let Some(slow) = members.iter().find_map(|e| e.slow_clients.as_ref()) {
        let _ = writeln!(
            out,
            "\nThe slow clients came {:.1} s into the run and left at {:.1} s. Each row: the server, then the probe:\n",
            slow.started_s, slow.left_s
        );
    }
    out.push_str(&views::row_commands(members));
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

pub(super) fn slow_chart(record: &ChapterRecord, members: &[&ExperimentRecord]) -> Option<String> {
    let mut lines = Lines::new();
    let mut shade = None;
    for experiment in members {
        let (Some(load), Some(slow)) = (experiment.load(), &experiment.slow_clients) else {
            continue;
        };
        shade.get_or_insert((slow.started_s, slow.left_s));
        let points = load
            .over_time
            .iter()
            .map(|(slice, bucket)| (*slice as f64 * 0.1, bucket.max_us as f64 / 1e3))
            .collect();
        lines.push((views::row_label(experiment).to_string(), points));
    }
    charts::time_lines_svg(
        &format!(
            "Chapter {}: a probe's latency while {SLOW_CLIENTS} slow clients hold connections",
            record.chapter
        ),
        "slowest probe in each 100 ms, ms",
        &lines,
        shade.map(|(from, to)| (from, to, "slow clients")),
        0.15,
    )
}
