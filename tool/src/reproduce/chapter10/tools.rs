//! Chapter 10's views of the tools: other tools beside the book's client on
//! the same stall, the open model's accuracy, and ab's extra round.

use std::fmt::Write;

use super::super::record::{ChapterRecord, ExperimentRecord};
use super::super::views::{self, format_opt_ms, stamp, thousands};
use evt::report::WorkersReport;

pub(super) fn tools_table(
    record: &ChapterRecord,
    ours: &[&ExperimentRecord],
    tools: &[&ExperimentRecord],
) -> String {
    let mut out = String::from(
        "| tool: how it counts | answered | p50 | **p99** | max | req/s | version |\n\
         |---|--:|--:|--:|--:|--:|---|\n",
    );
    let mut notes = Vec::new();
    // The book's client first: closed, and open on as few connections.
    let own = ours
        .iter()
        .filter(|e| matches!(e.slug.as_str(), "stall_closed" | "stall_open_few"));
    for experiment in own.chain(tools) {
        let Some(load) = experiment.load() else {
            continue;
        };
        let m = &load.measured;
        let label = match experiment.slug.as_str() {
            "stall_closed" => "load: closed, from the send".to_string(),
            "stall_open_few" => "load --rate: open, from when due".to_string(),
            _ => views::row_label(experiment).to_string(),
        };
        if m.errors.contains_key("not_run") {
            let _ = writeln!(out, "| {label} | — | — | — | — | — | not run |");
            notes.push(format!(
                "- {label}: {}",
                load.report.lines().next().unwrap_or("")
            ));
            continue;
        }
        let version = if experiment.slug.starts_with("stall_") {
            "this book's".to_string()
        } else {
            load.report.lines().next().unwrap_or("").to_string()
        };
        let _ = writeln!(
            out,
            "| {label} | {} | {} | **{}** | {} | {} | {version} |",
            thousands(m.requests.completed),
            format_opt_ms(m.latency_ms.p50),
            format_opt_ms(m.latency_ms.p99),
            format_opt_ms(m.latency_ms.max),
            thousands(m.rps.round() as u64),
        );
        notes.push(format!("- {label}: `{}`", load.command));
    }
    if let Some(pause) = tools.iter().find_map(|e| e.pause) {
        let _ = writeln!(
            out,
            "\nEach against the same server, stopped {:.1} s into its run for {:.1} s. The commands:\n",
            pause.at_s, pause.length_s
        );
    }
    for note in notes {
        let _ = writeln!(out, "{note}");
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

// ----- The open model's accuracy -----

pub(super) fn accuracy_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| client | asked | **sent at** (closed: answered) | sent after due: p50, p99 | late: every connection busy | late: the client behind (at worst) | latest | past its -z | p99 | p99 from the send | client CPU per request | server CPU per request |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let m = &load.measured;
        let completed = m.requests.completed.max(1) as f64;
        let per_request = |samples: Option<&super::super::sample::ServerSamples>| {
            views::sampled(samples, |s| {
                if s.cpu_ms == 0 {
                    format!("< {:.1} µs", 10_000.0 / completed)
                } else {
                    format!("{:.1} µs", s.cpu_ms as f64 * 1000.0 / completed)
                }
            })
        };
        let dash = || "—".to_string();
        let (asked, sent, lateness, busy, behind, latest, from_send) = match &m.open {
            Some(open) => (
                format!("{} req/s", thousands(open.asked_rps as u64)),
                views::or_dash(open.sent_rps, |r| {
                    format!("**{}**", thousands(r.round() as u64))
                }),
                format!(
                    "{}, {}",
                    format_opt_ms(open.lateness_p50_ms),
                    format_opt_ms(open.lateness_p99_ms)
                ),
                thousands(open.late - open.late_client),
                match open.late_client {
                    0 => "0".to_string(),
                    behind => format!(
                        "{} ({})",
                        thousands(behind),
                        views::format_ms(open.client_latest_ms)
                    ),
                },
                views::format_ms(open.latest_ms),
                format_opt_ms(open.uncorrected_latency_ms.p99),
            ),
            None => (
                "as fast as answered".to_string(),
                format!("**{}**", thousands(m.rps.round() as u64)),
                dash(),
                dash(),
                dash(),
                dash(),
                format_opt_ms(m.latency_ms.p99),
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {asked} | {sent} | {lateness} | {busy} | {behind} | {latest} | {} | {} | {from_send} | {} | {} |",
            views::row_label(experiment),
            views::or_dash(m.overran_s, |s| views::format_ms(s * 1000.0)),
            format_opt_ms(m.latency_ms.p99),
            per_request(load.client_samples.as_ref()),
            per_request(experiment.samples.as_ref()),
        );
    }
    if let Some(load) = members.first().and_then(|e| e.load()) {
        let _ = write!(out, "\nThe first row: `{}`.\n", load.command);
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

// ----- ab's extra round -----

pub(super) fn round_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| tool | command | predicted total | **total** | answered | connections the server accepted |\n\
         |---|---|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let accepted = experiment
            .report::<WorkersReport>()
            .map(|report| report.accepted().iter().sum::<usize>());
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | **{}** | {} | {} |",
            views::row_label(experiment),
            load.command,
            views::format_ms(load.predicted.total_s * 1000.0),
            views::format_ms(load.measured.duration_s * 1000.0),
            load.measured.requests.completed,
            views::or_dash(accepted, |n| n.to_string()),
        );
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}
