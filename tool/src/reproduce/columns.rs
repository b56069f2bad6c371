//! The group tables most chapters show: one row per experiment of a group,
//! the columns every such table has (the server, the load, predicted and
//! measured), and the columns a chapter adds.

use super::format::{cpu_time, format_ms, format_opt_ms, mib, or_dash};
use super::record::{ChapterRecord, ExperimentRecord};
use super::view::{View, group, row_label, stamp};

/// One column a chapter adds to a group table: its head, and the cell of a row.
pub struct Column<'a> {
    pub head: &'static str,
    pub cell: Box<dyn Fn(&ExperimentRecord) -> String + 'a>,
}

impl<'a> Column<'a> {
    pub fn new(head: &'static str, cell: impl Fn(&ExperimentRecord) -> String + 'a) -> Column<'a> {
        Column {
            head,
            cell: Box::new(cell),
        }
    }
}

/// The server's CPU time per completed request, in µs.
pub fn cpu_per_request(experiment: &ExperimentRecord) -> String {
    let completed = experiment
        .load()
        .map_or(1, |l| l.measured.requests.completed.max(1)) as f64;
    or_dash(experiment.samples.as_ref(), |s| {
        if s.cpu_ms == 0 {
            // CPU time is counted in 10 ms clock ticks: less than one tick.
            format!("< {:.1} µs", 10_000.0 / completed)
        } else {
            format!("{:.1} µs", s.cpu_ms as f64 * 1000.0 / completed)
        }
    })
}

/// The server's peak thread count, as a column.
pub fn threads_column() -> Column<'static> {
    Column::new("threads", |e| {
        or_dash(e.samples.as_ref(), |s| s.peak_threads.to_string())
    })
}

/// The server's peak resident memory, as a column.
pub fn rss_column() -> Column<'static> {
    Column::new("peak RSS", |e| {
        or_dash(e.samples.as_ref(), |s| mib(s.peak_rss_kib))
    })
}

/// The server's context switches per completed request, voluntary and
/// involuntary, as a column.
pub fn switches_column() -> Column<'static> {
    Column::new(
        "context switches per request (voluntary / involuntary)",
        |e| {
            let completed = e.load().map_or(1, |l| l.measured.requests.completed.max(1)) as f64;
            or_dash(e.samples.as_ref().and_then(|s| s.context_switches), |c| {
                format!(
                    "{:.2} / {:.2}",
                    c.voluntary as f64 / completed,
                    c.involuntary as f64 / completed
                )
            })
        },
    )
}

/// The server's CPU time over the run, as a column.
pub fn server_cpu_column() -> Column<'static> {
    Column::new("server CPU", |e| {
        or_dash(e.samples.as_ref(), |s| cpu_time(s.cpu_ms))
    })
}

/// A table with a row per experiment of a group: predicted beside measured,
/// then the chapter's `main` columns (two fit on a page); the `more` columns
/// go in a second table, collapsed under the first, row for row.
pub fn group_table(members: &[&ExperimentRecord], main: &[Column], more: &[Column]) -> String {
    let mut head = vec![
        "setup",
        "load",
        "predicted total",
        "**measured total**",
        "predicted req/s",
        "**measured req/s**",
        "median",
    ];
    head.extend(main.iter().map(|column| column.head));
    let mut out = format!("| {} |\n", head.join(" | "));
    out.push_str(&format!("|---|---|{}\n", "--:|".repeat(head.len() - 2)));
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let mut flags = format!("`-n {} -c {}", load.requests, load.connections);
        if load.fixed_share {
            flags.push_str(" --fixed-share");
        }
        flags.push('`');
        // A load with no delay has nothing for the model to predict.
        let predicted = (load.predicted.total_s > 0.0).then_some(&load.predicted);
        let failed = load.measured.requests.failed;
        let mut total = format!("**{}**", format_ms(load.measured.duration_s * 1000.0));
        if failed > 0 {
            total = format!("{total} ({failed} failed)");
        }
        let mut row = vec![
            row_label(experiment).to_string(),
            flags,
            or_dash(predicted, |p| format_ms(p.total_s * 1000.0)),
            total,
            or_dash(predicted, |p| format!("{:.1}", p.rps)),
            format!("**{:.1}**", load.measured.rps),
            format_opt_ms(load.measured.latency_ms.p50),
        ];
        row.extend(main.iter().map(|column| (column.cell)(experiment)));
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    if !more.is_empty() {
        let setup = Column::new("setup", |e| row_label(e).to_string());
        let mut columns = vec![setup];
        columns.extend(more.iter().map(|column| Column {
            head: column.head,
            cell: Box::new(|e| (column.cell)(e)),
        }));
        out.push('\n');
        out.push_str(&collapsed("More columns", &table(members, &columns)));
    }
    out
}

/// A table of `columns`, a row per experiment; right-aligned but the first.
pub fn table(members: &[&ExperimentRecord], columns: &[Column]) -> String {
    let head: Vec<&str> = columns.iter().map(|column| column.head).collect();
    let mut out = format!("| {} |\n", head.join(" | "));
    out.push_str(&format!(
        "|---|{}\n",
        "--:|".repeat(head.len().saturating_sub(1))
    ));
    for experiment in members {
        let row: Vec<String> = columns
            .iter()
            .map(|column| (column.cell)(experiment))
            .collect();
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// `text` collapsed under a one-line summary (HTML `<details>`, which mdBook
/// passes through; the Markdown inside still renders).
pub fn collapsed(summary: &str, text: &str) -> String {
    format!("<details><summary>{summary}</summary>\n\n{text}\n</details>\n")
}

/// A group table under its stamp, as `chapterN_NAME.md`.
pub fn group_view(record: &ChapterRecord, name: &str, main: &[Column], more: &[Column]) -> View {
    let members = group(record, name);
    let mut text = group_table(&members, main, more);
    text.push('\n');
    text.push_str(&stamp(record));
    View::new(format!("chapter{}_{name}.md", record.chapter), text)
}
