//! What the book shows, made from the records alone: the generic tables and
//! charts a chapter's views are built from, and writing them. A view holds
//! no number its record lacks; which view an experiment gets is the
//! chapter's code, so `--views-only` can change one without measuring.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::charts;
use super::record::{ChapterRecord, ExperimentRecord, LoadOutcome};
use super::sample::ServerSamples;
use evt::load::record::Span;

pub use super::columns::{
    Column, collapsed, cpu_per_request, group_table, group_view, rss_column, server_cpu_column,
    switches_column, table, threads_column,
};
pub use super::format::{cpu_time, format_ms, format_opt_ms, kib, mib, or_dash, thousands};
pub use super::view::{View, command_for, find, group, row_label, stamp};

/// A load in words: `` `/sleep?ms=2000` × 5, all at once ``.
pub fn describe_load(load: &LoadOutcome) -> String {
    let what = if load.requests == 1 {
        format!("`{}`", load.path)
    } else if load.requests == load.connections as u64 {
        format!(
            "`{}` × {}, all at once",
            load.path,
            thousands(load.requests)
        )
    } else {
        format!(
            "`{}` × {} over {} connections",
            load.path,
            thousands(load.requests),
            load.connections
        )
    };
    if load.start_after_s > 0.0 {
        format!("{what}, sent at {}", format_ms(load.start_after_s * 1000.0))
    } else {
        what
    }
}

/// Whether every load is a single request: then latency is the whole story.
fn single_requests(experiment: &ExperimentRecord) -> bool {
    experiment.loads.iter().all(|load| load.requests == 1)
}

/// Whether the loads are the same run repeated (trials of a race).
fn trials(experiment: &ExperimentRecord) -> bool {
    experiment.loads.len() > 2
        && experiment.loads.iter().all(|load| {
            load.path == experiment.loads[0].path && load.requests == experiment.loads[0].requests
        })
}

/// A row per trial: how many answered, how many never were.
fn trials_table(experiment: &ExperimentRecord) -> String {
    let mut out = String::new();
    let first = &experiment.loads[0];
    let _ = writeln!(
        out,
        "`{}` × {} over {} held connections, each trial:\n",
        first.path, first.requests, first.connections
    );
    let _ = writeln!(
        out,
        "| trial | predicted slowest | answered | never answered | slowest answered |"
    );
    let _ = writeln!(out, "|--:|--:|--:|--:|--:|");
    let mut stalled = 0;
    for (index, load) in experiment.loads.iter().enumerate() {
        let counts = load.measured.requests;
        if counts.failed > 0 {
            stalled += 1;
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            index + 1,
            format_ms(load.predicted.max_ms),
            counts.completed,
            if counts.failed > 0 {
                format!("**{}**", counts.failed)
            } else {
                "0".to_string()
            },
            format_opt_ms(load.measured.latency_ms.max),
        );
    }
    let _ = writeln!(
        out,
        "\n**{stalled} of {} trials** left connections unanswered until the client gave up.",
        experiment.loads.len()
    );
    out
}

/// What the sampler saw of the server while the experiment ran, in a sentence.
pub fn samples_line(experiment: &ExperimentRecord) -> String {
    let Some(samples) = &experiment.samples else {
        return "The server was not sampled (sampling reads `/proc`, which this platform lacks).\n"
            .to_string();
    };
    let processes = if samples.peak_processes > 1 {
        format!(" in {} processes", samples.peak_processes)
    } else {
        String::new()
    };
    let mut line = format!(
        "The server while it ran: at most **{} thread{}**{processes}, resident memory {} before \
         the load and {} at its peak, {} of CPU time.",
        samples.peak_threads,
        if samples.peak_threads == 1 { "" } else { "s" },
        mib(samples.before.rss_kib),
        mib(samples.peak_rss_kib),
        cpu_time(samples.cpu_ms),
    );
    let connections: usize = experiment
        .loads
        .iter()
        .map(|load| load.connections)
        .max()
        .unwrap_or(0);
    if connections >= 100 {
        let _ = write!(
            line,
            " That is **{:.1} KiB per connection** ((peak − before) / {}).",
            samples.rss_per_connection_kib(connections),
            thousands(connections as u64)
        );
    }
    if let Some(overflows) = experiment.listen_overflows.filter(|_| connections >= 100) {
        let _ = write!(
            line,
            " The kernel dropped **{}** connection attempts for a full listen backlog \
             (`ListenOverflows` in `/proc/net/netstat`).",
            thousands(overflows)
        );
    }
    line.push('\n');
    line
}

/// Every request of an experiment on one clock (each load's spans shifted by
/// when the load started), for its timeline.
pub fn timeline_of(experiment: &ExperimentRecord) -> Vec<Span> {
    experiment
        .loads
        .iter()
        .flat_map(|load| {
            let offset = (load.start_after_s * 1e6) as u64;
            load.timeline.iter().map(move |span| Span {
                start_us: span.start_us + offset,
                end_us: span.end_us + offset,
                ..*span
            })
        })
        .collect()
}

/// The tables for one experiment, predicted beside measured. Single requests
/// (seed 001) get one row each with their latency; runs of several requests
/// get a table each with the run's total, rate and latencies.
pub fn experiment_table(experiment: &ExperimentRecord) -> String {
    let mut out = if trials(experiment) {
        trials_table(experiment)
    } else if single_requests(experiment) {
        single_requests_table(experiment)
    } else {
        runs_table(experiment)
    };
    out.push('\n');
    out.push_str(&samples_line(experiment));
    out
}

fn single_requests_table(experiment: &ExperimentRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| request | sent at | predicted latency | measured latency |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|");
    for load in &experiment.loads {
        let measured = match load.measured.requests.failed {
            0 => format!("**{}**", format_opt_ms(load.measured.latency_ms.max)),
            _ => format!("failed: {:?}", load.measured.errors),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {measured} |",
            load.path,
            if load.start_after_s > 0.0 {
                format_ms(load.start_after_s * 1000.0)
            } else {
                "0 s".to_string()
            },
            format_ms(load.predicted.max_ms),
        );
    }
    out
}

fn runs_table(experiment: &ExperimentRecord) -> String {
    let mut out = String::new();
    for (index, load) in experiment.loads.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let predicted = &load.predicted;
        let measured = &load.measured;
        let _ = writeln!(out, "{}:\n", describe_load(load));
        let _ = writeln!(
            out,
            "| | total time | requests/s | fastest | median | slowest |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|");
        let _ = writeln!(
            out,
            "| predicted | {} | {:.2} | {} | {} | {} |",
            format_ms(predicted.total_s * 1000.0),
            predicted.rps,
            format_ms(predicted.min_ms),
            format_ms(predicted.p50_ms),
            format_ms(predicted.max_ms),
        );
        let _ = writeln!(
            out,
            "| **measured** | **{}** | **{:.2}** | {} | {} | **{}** |",
            format_ms(measured.duration_s * 1000.0),
            measured.rps,
            format_opt_ms(measured.latency_ms.min),
            format_opt_ms(measured.latency_ms.p50),
            format_opt_ms(measured.latency_ms.max),
        );
        let counts = measured.requests;
        let failures = if counts.failed == 0 {
            "none failed".to_string()
        } else {
            format!("**{} failed**: {:?}", counts.failed, measured.errors)
        };
        let _ = writeln!(
            out,
            "\n{} of {} requests completed, {failures}.",
            thousands(counts.completed),
            thousands(counts.sent)
        );
    }
    out
}

/// `chapterN_SLUG.md`: an experiment's table, stamped.
pub fn experiment(record: &ChapterRecord, slug: &str) -> Option<View> {
    let experiment = find(record, slug)?;
    Some(View::new(
        format!("chapter{}_{slug}.md", record.chapter),
        format!("{}\n{}", experiment_table(experiment), stamp(record)),
    ))
}

/// `chapterN_SLUG_reportK.txt` and `.json`: what the load client printed for
/// each load, as a reader running the command sees it, text and `--json`.
pub fn reports(record: &ChapterRecord, slug: &str) -> Vec<View> {
    let Some(experiment) = find(record, slug) else {
        return Vec::new();
    };
    let mut views = Vec::new();
    for (index, load) in experiment.loads.iter().enumerate() {
        let name = format!("chapter{}_{slug}_report{}", record.chapter, index + 1);
        let command = format!("$ {}\n", load.command);
        views.push(View::new(
            format!("{name}.txt"),
            command.clone() + &load.report,
        ));
        views.push(View::new(
            format!("{name}.json"),
            command.replacen(" -- ", " -- --json ", 1) + &load.measured.to_json() + "\n",
        ));
    }
    views
}

/// `chapterN_SLUG_timeline.svg`: a bar per request of a small experiment.
pub fn timeline(record: &ChapterRecord, slug: &str) -> Option<View> {
    let experiment = find(record, slug)?;
    let title = format!(
        "Chapter {}: {} ({})",
        record.chapter,
        experiment.example,
        experiment
            .loads
            .iter()
            .map(|l| l.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let svg = charts::timeline_svg(&title, &timeline_of(experiment))?;
    Some(View::new(
        format!("chapter{}_{slug}_timeline.svg", record.chapter),
        svg,
    ))
}

/// The command that starts an experiment's server, as a reader types it
/// (on its default port, with the flags it ran with).
pub fn server_command(experiment: &ExperimentRecord) -> String {
    let mut args = vec!["--port".to_string(), experiment.default_port.to_string()];
    args.extend(experiment.server_args.iter().cloned());
    let command = super::spec::command_line(&experiment.example, &args);
    match &experiment.pinned {
        Some(pinning) => format!(
            "taskset -c {} {command}",
            evt::sys::cpu_list(&pinning.server)
        ),
        None => command,
    }
}

/// How each row of a table was run, a line per row: its label, the command
/// that started its server, then each of its loads' commands.
pub fn row_commands(members: &[&ExperimentRecord]) -> String {
    let mut out = String::new();
    for experiment in members {
        if experiment.loads.is_empty() {
            continue;
        }
        let loads: Vec<String> = experiment
            .loads
            .iter()
            .map(|load| format!("`{}`", load.command))
            .collect();
        out.push_str(&format!(
            "- {}: `{}`, then {}\n",
            row_label(experiment),
            server_command(experiment),
            loads.join(" and ")
        ));
    }
    out
}

/// The chart of a sweep (rows with an x value): requests/s predicted and
/// measured against x, as `chapterN_NAME.svg`.
pub fn sweep_chart(record: &ChapterRecord, name: &str, x_label: &str) -> Option<View> {
    let members = group(record, name);
    let points: Vec<(f64, f64, f64)> = members
        .iter()
        .filter_map(|e| {
            let load = e.load()?;
            Some((e.group.as_ref()?.x?, load.predicted.rps, load.measured.rps))
        })
        .collect();
    let first = members.first()?.load()?;
    let title = format!(
        "Chapter {}: {} ({} connections, {})",
        record.chapter,
        name.replace('_', " "),
        first.connections,
        first.path
    );
    let svg = charts::sweep_svg(&title, x_label, &points)?;
    Some(View::new(
        format!("chapter{}_{name}.svg", record.chapter),
        svg,
    ))
}

/// Lines of (x, y) points by name, in the order the names first come.
pub type Lines = Vec<(String, Vec<(f64, f64)>)>;

/// Adds a point to the line `series`, starting it if it is new.
pub fn add_point(lines: &mut Lines, series: &str, point: (f64, f64)) {
    match lines.iter_mut().find(|(name, _)| name == series) {
        Some((_, points)) => points.push(point),
        None => lines.push((series.to_string(), vec![point])),
    }
}

/// What a sampled process did, for a table cell: threads, peak RSS, CPU.
pub fn sampled(
    samples: Option<&ServerSamples>,
    show: impl FnOnce(&ServerSamples) -> String,
) -> String {
    samples.map_or_else(|| "—".to_string(), show)
}

/// Writes every view into `dir`, and removes the views an earlier run
/// wrote that no chapter makes any more (records and other files stay).
pub fn write_all(dir: &Path, views: &[View]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let mut written = Vec::new();
    for view in views {
        let path = dir.join(&view.name);
        std::fs::write(&path, &view.text)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        written.push(path);
    }
    for stale in stale_views(dir, views) {
        std::fs::remove_file(&stale)
            .map_err(|error| format!("cannot remove {}: {error}", stale.display()))?;
    }
    Ok(written)
}

/// Files in `dir` that look like views (`chapter…` or `seed…`, not a
/// record) and are not among `views`.
pub fn stale_views(dir: &Path, views: &[View]) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name.starts_with("chapter") || name.starts_with("seed"))
                && !super::record::is_record(path)
                && !views.iter().any(|view| view.name == name)
        })
        .collect()
}
