//! What the reproduce run writes for the book: per chapter, the JSON record of
//! every experiment and the Markdown tables the chapters `{{#include}}`; per
//! seed, a table comparing the chapters that redid it. Tables are made only
//! from the JSON records, so a view never holds a number the record lacks.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::experiments::{ExperimentRecord, LoadOutcome};
use crate::sys::Machine;

/// One chapter's measurements, stamped with where and when they were made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChapterRecord {
    pub chapter: u32,
    pub machine: Machine,
    /// RFC 3339, UTC.
    pub measured_at: String,
    /// The command that made this record.
    pub command: String,
    /// Delays scaled down (`--quick`): not for the book.
    pub quick: bool,
    pub experiments: Vec<ExperimentRecord>,
    /// The machine's limits on connections and threads, as read for this run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<crate::sys::Limit>,
}

/// The command a reader runs to redo one chapter's numbers.
pub fn command_for(chapter: u32) -> String {
    format!("cargo run --release -- --chapter {chapter}")
}

/// `10.003 s`, `212.9 ms`, `0.41 ms`: to the millisecond above a second, so
/// the server's own overhead on a sleep stays visible.
pub fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.3} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn format_opt_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "—".to_string(), format_ms)
}

/// `1,000` rather than `1000`.
fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The line under every table: machine, date, command.
pub fn stamp(record: &ChapterRecord) -> String {
    format!(
        "*Measured on {} ({}), {}, by `{}`.*\n",
        record.machine.describe(),
        record.machine.rustc,
        record.measured_at,
        record.command
    )
}

fn describe_load(load: &LoadOutcome) -> String {
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
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
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
        format_ms(samples.cpu_ms as f64),
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
pub fn timeline_of(experiment: &ExperimentRecord) -> Vec<crate::load::record::Span> {
    experiment
        .loads
        .iter()
        .flat_map(|load| {
            let offset = (load.start_after_s * 1e6) as u64;
            load.timeline
                .iter()
                .map(move |span| crate::load::record::Span {
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
    let mut out = experiment_numbers(experiment);
    out.push('\n');
    out.push_str(&samples_line(experiment));
    out
}

fn experiment_numbers(experiment: &ExperimentRecord) -> String {
    let mut out = String::new();
    if trials(experiment) {
        return trials_table(experiment);
    }
    if single_requests(experiment) {
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
        return out;
    }
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

/// A table per seed comparing every chapter that redid it: the whole run's
/// time for runs of several requests, the latency for single requests.
pub fn seed_comparison(seed: &str, records: &[ChapterRecord]) -> Option<String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| chapter | example | request | predicted | measured |"
    );
    let _ = writeln!(out, "|--:|---|---|--:|--:|");
    let mut rows = 0;
    for record in records {
        for experiment in record.experiments.iter().filter(|e| e.seed == seed) {
            for load in &experiment.loads {
                let (predicted, measured) = if load.requests == 1 {
                    (load.predicted.max_ms, load.measured.latency_ms.max)
                } else {
                    (
                        load.predicted.total_s * 1000.0,
                        Some(load.measured.duration_s * 1000.0),
                    )
                };
                let example = match &experiment.group {
                    Some(group) => format!("`{}` ({})", experiment.example, group.label),
                    None => format!("`{}`", experiment.example),
                };
                let _ = writeln!(
                    out,
                    "| {} | {example} | {} | {} | **{}** |",
                    record.chapter,
                    describe_load(load),
                    format_ms(predicted),
                    format_opt_ms(measured),
                );
                rows += 1;
            }
        }
    }
    if rows == 0 {
        return None;
    }
    let _ = writeln!(
        out,
        "\nFor a run of several requests, the time for the whole run; for a single \
         request, its latency."
    );
    for record in records {
        out.push('\n');
        out.push_str(&format!("Chapter {}: {}", record.chapter, stamp(record)));
    }
    Some(out)
}

/// Writes `chapterN.json` and `chapterN_SLUG.md` for one chapter into `dir`.
pub fn write_chapter(dir: &Path, record: &ChapterRecord) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let mut written = Vec::new();
    let json = serde_json::to_string_pretty(record)
        .map_err(|error| format!("cannot encode chapter {}: {error}", record.chapter))?;
    let path = dir.join(format!("chapter{}.json", record.chapter));
    write(&path, &(json + "\n"))?;
    written.push(path);
    for experiment in &record.experiments {
        let path = dir.join(format!("chapter{}_{}.md", record.chapter, experiment.slug));
        let view = format!("{}\n{}", experiment_table(experiment), stamp(record));
        write(&path, &view)?;
        written.push(path);
        if let Some(svg) = timeline_chart(record, experiment) {
            let path = dir.join(format!(
                "chapter{}_{}_timeline.svg",
                record.chapter, experiment.slug
            ));
            write(&path, &svg)?;
            written.push(path);
        }
        for (index, load) in experiment.loads.iter().enumerate() {
            let path = dir.join(format!(
                "chapter{}_{}_report{}.txt",
                record.chapter,
                experiment.slug,
                index + 1
            ));
            let command = format!("$ {}\n", load.command);
            write(&path, &(command.clone() + &load.report))?;
            let json_path = path.with_extension("json");
            written.push(path);
            let path = json_path;
            let json = command.replacen(" -- ", " -- --json ", 1) + &load.measured.to_json() + "\n";
            write(&path, &json)?;
            written.push(path);
        }
        if let Some(svg) = lag_chart(record, experiment) {
            let path = dir.join(format!(
                "chapter{}_{}_lag.svg",
                record.chapter, experiment.slug
            ));
            write(&path, &svg)?;
            written.push(path);
        }
    }
    for (name, members) in groups(record) {
        let path = dir.join(format!("chapter{}_{name}.md", record.chapter));
        write(&path, &group_table(record, &members))?;
        written.push(path);
        if let Some(svg) = sweep_chart(record, &name, &members) {
            let path = dir.join(format!("chapter{}_{name}.svg", record.chapter));
            write(&path, &svg)?;
            written.push(path);
        }
        for (suffix, svg) in connection_cost_charts(record, &members) {
            let path = dir.join(format!("chapter{}_{name}_{suffix}.svg", record.chapter));
            write(&path, &svg)?;
            written.push(path);
        }
        if let Some(summary) = connection_cost_summary(&members) {
            let path = dir.join(format!("chapter{}_{name}_summary.md", record.chapter));
            write(&path, &summary)?;
            written.push(path);
        }
    }
    if groups(record).iter().any(|(_, members)| {
        members
            .iter()
            .any(|e| e.group.as_ref().is_some_and(|g| g.connection_cost))
    }) {
        let path = dir.join(format!("chapter{}_limits.md", record.chapter));
        write(&path, &limits_table(record))?;
        written.push(path);
    }
    Ok(written)
}

/// The tables made of several experiments, by name, in the order they first
/// appear in the record.
pub fn groups(record: &ChapterRecord) -> Vec<(String, Vec<&ExperimentRecord>)> {
    let mut groups: Vec<(String, Vec<&ExperimentRecord>)> = Vec::new();
    for experiment in &record.experiments {
        let Some(group) = &experiment.group else {
            continue;
        };
        match groups.iter_mut().find(|(name, _)| *name == group.name) {
            Some((_, members)) => members.push(experiment),
            None => groups.push((group.name.clone(), vec![experiment])),
        }
    }
    groups
}

/// What an experiment is called as a row of its group's table (its title
/// when it is in no group).
fn row_label(experiment: &ExperimentRecord) -> &str {
    experiment
        .group
        .as_ref()
        .map_or(experiment.title.as_str(), |group| group.label.as_str())
}

/// The value of a server flag (`--threads 4`) an experiment ran with.
fn server_flag(experiment: &ExperimentRecord, flag: &str) -> Option<usize> {
    let args = &experiment.server_args;
    let at = args.iter().position(|arg| arg == flag)?;
    args.get(at + 1)?.parse().ok()
}

/// How many connections each worker accepted, from chapter 2's `/report`.
pub fn spread(experiment: &ExperimentRecord) -> Option<Vec<usize>> {
    let workers = experiment
        .server_report
        .as_ref()?
        .get("workers")?
        .as_array()?;
    workers
        .iter()
        .map(|worker| Some(worker.get("accepted")?.as_u64()? as usize))
        .collect()
}

/// The most the loop's lag probe saw, from chapter 4's `/report`.
fn max_lag_ms(experiment: &ExperimentRecord) -> Option<f64> {
    experiment
        .server_report
        .as_ref()?
        .get("max_lag_ms")?
        .as_f64()
}

/// What the sticky-connection model predicts from the spread the server
/// reported: only where connections stayed put (as many accepted as the
/// client opened).
pub fn sticky_prediction_s(experiment: &ExperimentRecord) -> Option<f64> {
    let spread = spread(experiment)?;
    let load = experiment.loads.first()?;
    if spread.iter().sum::<usize>() != load.connections || spread.len() < 2 {
        return None;
    }
    let threads = server_flag(experiment, "--threads").unwrap_or(4);
    let service = std::time::Duration::from_secs_f64(load.predicted.min_ms / 1000.0);
    Some(crate::model::sticky_total_s(
        &spread,
        threads,
        load.requests,
        service,
        load.command.contains("--fixed-share"),
    ))
}

/// A table with a row per experiment of a group: predicted beside measured,
/// the seed's own number where it had one, how the connections spread over
/// the workers, the loop's lag, and the server's threads and memory.
pub fn group_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    if members
        .iter()
        .any(|e| e.group.as_ref().is_some_and(|g| g.connection_cost))
    {
        return connection_cost_table(record, members);
    }
    if members
        .iter()
        .any(|e| e.group.as_ref().is_some_and(|g| g.latency_table))
    {
        return latency_table(record, members);
    }
    let has_seed = members
        .iter()
        .any(|e| e.group.as_ref().is_some_and(|g| g.seed_rps.is_some()));
    let has_spread = members
        .iter()
        .any(|e| spread(e).is_some_and(|s| s.len() > 1));
    let has_lag = members.iter().any(|e| max_lag_ms(e).is_some());
    let has_client = members
        .iter()
        .any(|e| e.loads.iter().any(|l| l.client_samples.is_some()));
    let has_cpu = members
        .iter()
        .any(|e| e.group.as_ref().is_some_and(|g| g.cpu_per_request));
    let mut head = vec![
        "setup",
        "load",
        "predicted total",
        "**measured total**",
        "predicted req/s",
        "**measured req/s**",
        "median",
    ];
    if has_seed {
        head.push("seed's req/s");
    }
    if has_spread {
        head.extend(["connections per worker", "predicted from the spread"]);
    }
    if has_lag {
        head.push("worst loop lag");
    }
    if has_cpu {
        head.push("server CPU per request");
    }
    if has_client {
        head.extend(["client threads", "client peak RSS", "client CPU"]);
    }
    head.extend(["threads", "peak RSS"]);
    let mut out = format!("| {} |\n", head.join(" | "));
    out.push_str(&format!("|---|---|{}\n", "--:|".repeat(head.len() - 2)));
    for experiment in members {
        let Some(load) = experiment.loads.first() else {
            continue;
        };
        let label = row_label(experiment);
        let mut flags = format!("`-n {} -c {}", load.requests, load.connections);
        if load.command.contains("--fixed-share") {
            flags.push_str(" --fixed-share");
        }
        flags.push('`');
        // A load with no delay has nothing for the model to predict.
        let predicted = (load.predicted.total_s > 0.0).then_some(&load.predicted);
        let mut row = vec![
            label.to_string(),
            flags,
            predicted.map_or_else(|| "—".into(), |p| format_ms(p.total_s * 1000.0)),
            format!("**{}**", format_ms(load.measured.duration_s * 1000.0)),
            predicted.map_or_else(|| "—".into(), |p| format!("{:.1}", p.rps)),
            format!("**{:.1}**", load.measured.rps),
            format_opt_ms(load.measured.latency_ms.p50),
        ];
        if has_seed {
            let seed = experiment.group.as_ref().and_then(|g| g.seed_rps);
            row.push(seed.map_or_else(|| "—".to_string(), |rps| format!("{rps:.2}")));
        }
        if has_spread {
            row.push(spread(experiment).map_or_else(
                || "—".to_string(),
                |s| {
                    s.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(" · ")
                },
            ));
            row.push(
                sticky_prediction_s(experiment)
                    .map_or_else(|| "—".to_string(), |s| format_ms(s * 1000.0)),
            );
        }
        if has_lag {
            row.push(format_opt_ms(max_lag_ms(experiment)));
        }
        if has_cpu {
            let completed = load.measured.requests.completed.max(1) as f64;
            row.push(experiment.samples.as_ref().map_or_else(
                || "—".to_string(),
                |s| format!("{:.1} µs", s.cpu_ms as f64 * 1000.0 / completed),
            ));
        }
        if has_client {
            let client = load.client_samples.as_ref();
            row.push(client.map_or_else(|| "—".to_string(), |s| s.peak_threads.to_string()));
            row.push(client.map_or_else(
                || "—".to_string(),
                |s| format!("{:.1} MiB", s.peak_rss_kib as f64 / 1024.0),
            ));
            row.push(client.map_or_else(|| "—".to_string(), |s| format_ms(s.cpu_ms as f64)));
        }
        let samples = experiment.samples.as_ref();
        row.push(samples.map_or_else(|| "—".to_string(), |s| s.peak_threads.to_string()));
        row.push(samples.map_or_else(
            || "—".to_string(),
            |s| format!("{:.1} MiB", s.peak_rss_kib as f64 / 1024.0),
        ));
        let failed = load.measured.requests.failed;
        if failed > 0 {
            row[3] = format!("{} ({failed} failed)", row[3]);
        }
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    if let Some(line) = thread_cost_line(members) {
        out.push('\n');
        out.push_str(&line);
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// Seed 004's table: per row the requests in the run, its length, and the
/// latency distribution, with the model's requests/s and what the server
/// used (threads, memory, CPU as a share of one core).
fn latency_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| setup | predicted req/s | **requests** | duration | **req/s** | min | p50 | p99 | p99.9 | max | mean | not 2xx | failed | threads | peak RSS | CPU |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(load) = experiment.loads.first() else {
            continue;
        };
        let label = row_label(experiment);
        let m = &load.measured;
        let l = &m.latency_ms;
        let samples = experiment.samples.as_ref();
        let predicted = if load.predicted.total_s > 0.0 && load.predicted.min_ms > 0.0 {
            format!("{:.0}", load.predicted.rps)
        } else {
            "—".to_string()
        };
        let _ = writeln!(
            out,
            "| {label} | {predicted} | **{}** | {} | **{:.0}** | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(m.requests.completed),
            format_ms(m.duration_s * 1000.0),
            m.rps,
            format_opt_ms(l.min),
            format_opt_ms(l.p50),
            format_opt_ms(l.p99),
            format_opt_ms(l.p999),
            format_opt_ms(l.max),
            format_opt_ms(l.mean),
            thousands(
                m.status_codes
                    .iter()
                    .filter(|(code, _)| !code.starts_with('2'))
                    .map(|(_, count)| count)
                    .sum()
            ),
            thousands(m.requests.failed),
            samples.map_or_else(|| "—".to_string(), |s| s.peak_threads.to_string()),
            samples.map_or_else(
                || "—".to_string(),
                |s| format!("{:.1} MiB", s.peak_rss_kib as f64 / 1024.0)
            ),
            samples.map_or_else(
                || "—".to_string(),
                |s| format!("{:.0} %", s.cpu_ms as f64 / (m.duration_s * 10.0))
            ),
        );
    }
    if members
        .iter()
        .any(|e| e.group.as_ref().is_some_and(|g| g.name == "proxy_0ms"))
    {
        out.push_str(&seed_004_rows());
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// Whether a chapter 8 row held its connections idle (`--hold`) rather than busy.
fn held_idle(load: &LoadOutcome) -> bool {
    load.measured.hold.is_some()
}

/// Chapter 8's table: what each held connection cost the server (resident
/// memory and address space added, per connection; threads; CPU per request)
/// and, for busy connections, the rate against Little's law and the tail.
fn connection_cost_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let idle = members
        .iter()
        .any(|e| e.loads.first().is_some_and(held_idle));
    let head = if idle {
        "| server | connections | still open after the hold | threads | peak RSS | **RSS per connection** | kernel stacks and page tables per connection | address space per connection | SYNs dropped |"
    } else {
        "| server | connections | Little's law req/s | **steady req/s** | req/s over the run | p50 | p99 | threads | peak RSS | **RSS per connection** | kernel stacks and page tables per connection | address space per connection | CPU per request | SYNs dropped |"
    };
    let columns = head.matches(" | ").count() + 1;
    let mut out = format!("{head}\n|---|{}\n", "--:|".repeat(columns - 1));
    for experiment in members {
        let Some(load) = experiment.loads.first() else {
            continue;
        };
        let m = &load.measured;
        let samples = experiment.samples.as_ref();
        let sampled = |show: &dyn Fn(&crate::sample::ServerSamples) -> String| {
            samples.map_or_else(|| "—".to_string(), show)
        };
        let kib = |value: f64| {
            if value >= 100.0 {
                format!("{} KiB", thousands(value.round() as u64))
            } else {
                format!("{value:.1} KiB")
            }
        };
        let mut row = vec![
            row_label(experiment).to_string(),
            thousands(load.connections as u64),
        ];
        if idle {
            row.push(m.hold.map_or_else(
                || "—".to_string(),
                |hold| format!("{} of {}", thousands(hold.still_open), thousands(hold.held)),
            ));
        } else {
            row.extend([
                thousands(load.predicted.rps.round() as u64),
                m.steady_rps.map_or_else(
                    || "—".to_string(),
                    |rate| format!("**{}**", thousands(rate.round() as u64)),
                ),
                thousands(m.rps.round() as u64),
                format_opt_ms(m.latency_ms.p50),
                format_opt_ms(m.latency_ms.p99),
            ]);
        }
        row.extend([
            sampled(&|s| thousands(s.peak_threads)),
            sampled(&|s| format!("{:.1} MiB", s.peak_rss_kib as f64 / 1024.0)),
            sampled(&|s| format!("**{}**", kib(s.rss_per_connection_kib(load.connections)))),
            sampled(&|s| kib(s.kernel_per_connection_kib(load.connections))),
            sampled(&|s| kib(s.vm_per_connection_kib(load.connections))),
        ]);
        if !idle {
            row.push(sampled(&|s| {
                let requests = m.requests.completed.max(1) as f64;
                if s.cpu_ms == 0 {
                    // CPU time is counted in 10 ms clock ticks: less than one tick.
                    format!("< {:.0} µs", 10_000.0 / requests)
                } else {
                    format!("{:.0} µs", s.cpu_ms as f64 * 1000.0 / requests)
                }
            }));
        }
        row.push(
            experiment
                .listen_overflows
                .map_or_else(|| "—".to_string(), thousands),
        );
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
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

/// Chapter 8's findings at the most connections, in sentences made from the
/// records: per server, the rate against Little's law, the tail, and what a
/// connection cost.
fn connection_cost_summary(members: &[&ExperimentRecord]) -> Option<String> {
    if !members
        .iter()
        .any(|e| e.group.as_ref().is_some_and(|g| g.connection_cost))
    {
        return None;
    }
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

/// Chapter 8's charts, against connections held (one line per server):
/// resident memory per connection, and for busy connections the steady rate
/// beside Little's law. File-name suffix and SVG.
pub fn connection_cost_charts(
    record: &ChapterRecord,
    members: &[&ExperimentRecord],
) -> Vec<(&'static str, String)> {
    if !members
        .iter()
        .any(|e| e.group.as_ref().is_some_and(|g| g.connection_cost))
    {
        return Vec::new();
    }
    type Lines = Vec<(String, Vec<(f64, f64)>)>;
    let add = |lines: &mut Lines, series: &str, point: (f64, f64)| match lines
        .iter_mut()
        .find(|(name, _)| name == series)
    {
        Some((_, points)) => points.push(point),
        None => lines.push((series.to_string(), vec![point])),
    };
    let (mut memory, mut share, mut p99) = (Lines::new(), Lines::new(), Lines::new());
    let mut idle = false;
    for experiment in members {
        let (Some(group), Some(load)) = (&experiment.group, experiment.loads.first()) else {
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
                add(&mut memory, series, (x, per_connection));
            }
        }
        if let Some(rate) = load
            .measured
            .steady_rps
            .filter(|_| load.predicted.rps > 0.0)
        {
            add(&mut share, series, (x, 100.0 * rate / load.predicted.rps));
        }
        if let (false, Some(ms)) = (held_idle(load), load.measured.latency_ms.p99) {
            add(&mut p99, series, (x, ms));
        }
    }
    let Some(first) = members.first().and_then(|e| e.loads.first()) else {
        return Vec::new();
    };
    let held = if idle {
        "idle after one request".to_string()
    } else {
        format!("each waiting on {}", first.path)
    };
    let mut charts = Vec::new();
    let chapter = record.chapter;
    let mut chart = |suffix, title: String, y_label, lines: &Lines, legend| {
        if let Some(svg) =
            crate::charts::lines_svg(&title, "connections held open", y_label, lines, &[], legend)
        {
            charts.push((suffix, svg));
        }
    };
    use crate::charts::Legend;
    chart(
        "rss",
        format!("Chapter {chapter}: memory per connection, {held}"),
        "resident memory per connection, KiB",
        &memory,
        Legend::MiddleRight,
    );
    if !idle {
        chart(
            "rps",
            format!("Chapter {chapter}: steady requests/s as % of Little's law, {held}"),
            "% of connections ÷ delay",
            &share,
            Legend::LowerLeft,
        );
        chart(
            "p99",
            format!("Chapter {chapter}: p99 latency, {held}"),
            "p99, ms",
            &p99,
            Legend::UpperLeft,
        );
    }
    charts
}

/// Seed 004's own rows, in the same columns, under chapter 7's 0 ms table
/// (its upstream was nginx): what Python measured, beside what Rust does.
fn seed_004_rows() -> String {
    let mut out = String::new();
    for (variant, [min, p50, p99, p999, max, mean], duration_s, requests) in
        crate::experiments::SEED_004
    {
        let cell = |ms: f64| {
            if ms.is_nan() {
                "—".to_string()
            } else {
                format_ms(ms)
            }
        };
        let _ = writeln!(
            out,
            "| *seed 004: {variant}* | — | *{}* | {} | *{:.0}* | {} | {} | {} | {} | {} | {} | — | — | — | — | — |",
            thousands(requests),
            format_ms(duration_s * 1000.0),
            requests as f64 / duration_s,
            cell(min),
            cell(p50),
            cell(p99),
            cell(p999),
            cell(max),
            cell(mean),
        );
    }
    out
}

/// For a sweep over threads: what each extra thread added to the server's
/// peak resident memory, between the fewest and the most threads.
fn thread_cost_line(members: &[&ExperimentRecord]) -> Option<String> {
    let points: Vec<(u64, u64)> = members
        .iter()
        .filter(|e| e.group.as_ref().is_some_and(|g| g.x.is_some()))
        .filter_map(|e| {
            let samples = e.samples.as_ref()?;
            Some((samples.peak_threads, samples.peak_rss_kib))
        })
        .collect();
    let fewest = points.iter().min_by_key(|p| p.0)?;
    let most = points.iter().max_by_key(|p| p.0)?;
    if most.0 <= fewest.0 {
        return None;
    }
    let per_thread = (most.1 as f64 - fewest.1 as f64) / (most.0 - fewest.0) as f64;
    Some(format!(
        "From {} to {} threads the peak resident memory went from {:.1} MiB to {:.1} MiB: \
         **{per_thread:.1} KiB per thread** (stack pages actually touched, not the stack \
         reserved).\n",
        thousands(fewest.0),
        thousands(most.0),
        fewest.1 as f64 / 1024.0,
        most.1 as f64 / 1024.0,
    ))
}

/// The chart of a sweep group (rows with an x value), if it is one.
pub fn sweep_chart(
    record: &ChapterRecord,
    name: &str,
    members: &[&ExperimentRecord],
) -> Option<String> {
    if members
        .iter()
        .any(|e| e.group.as_ref().is_some_and(|g| g.connection_cost))
    {
        // Chapter 8 draws its own: connection_cost_charts.
        return None;
    }
    if members
        .iter()
        .any(|e| e.group.as_ref().is_some_and(|g| g.series.is_some()))
    {
        return series_chart(record, members);
    }
    let points: Vec<(f64, f64, f64)> = members
        .iter()
        .filter_map(|e| {
            let load = e.loads.first()?;
            Some((e.group.as_ref()?.x?, load.predicted.rps, load.measured.rps))
        })
        .collect();
    let first = members.first()?.loads.first()?;
    let title = format!(
        "Chapter {}: {} ({} connections, {})",
        record.chapter,
        name.replace('_', " "),
        first.connections,
        first.path
    );
    let x_label = if name == "thread_sweep" {
        "threads (doubling)"
    } else {
        "threads per worker (the pool)"
    };
    crate::charts::sweep_svg(&title, x_label, &points)
}

/// A group whose rows belong to several lines (chapter 6's client modes):
/// total time against the swept value, measured and predicted, per line.
fn series_chart(record: &ChapterRecord, members: &[&ExperimentRecord]) -> Option<String> {
    let mut measured: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut predicted: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for experiment in members {
        let group = experiment.group.as_ref()?;
        let (Some(series), Some(x)) = (group.series.clone(), group.x) else {
            continue;
        };
        let load = experiment.loads.first()?;
        for (lines, y) in [
            (&mut measured, load.measured.duration_s),
            (&mut predicted, load.predicted.total_s),
        ] {
            match lines.iter_mut().find(|(n, _)| *n == series) {
                Some((_, points)) => points.push((x, y)),
                None => lines.push((series.clone(), vec![(x, y)])),
            }
        }
    }
    let first = members.first()?;
    let title = format!(
        "Chapter {}: {} against {} (thin: the model)",
        record.chapter,
        first.loads.first()?.path,
        first.model
    );
    crate::charts::lines_svg(
        &title,
        "requests sent (N)",
        "total time, s",
        &measured,
        &predicted,
        crate::charts::Legend::UpperLeft,
    )
}

/// The loop-lag chart of an experiment whose server reported its lag probe:
/// the probe's samples put on the run's clock (seconds since the first
/// request was sent), from just before the run to just after it.
pub fn lag_chart(record: &ChapterRecord, experiment: &ExperimentRecord) -> Option<String> {
    let report = experiment.server_report.as_ref()?;
    let now_ms = report.get("now_ms")?.as_f64()?;
    let fetched_s = experiment.report_at_s?;
    // Where the probe's clock started, on the run's clock.
    let probe_start_s = fetched_s - now_ms / 1000.0;
    let end_s = timeline_of(experiment)
        .iter()
        .map(|span| span.end_us)
        .max()? as f64
        / 1e6;
    // A sample is taken when the probe wakes, `lag` late: the loop was held
    // from `at - lag` to `at`, and a probe due in between would have been
    // later the longer it waited. So each sample draws a ramp from zero.
    let points: Vec<(f64, f64)> = report
        .get("lag_ms")?
        .as_array()?
        .iter()
        .filter_map(|pair| {
            let at = probe_start_s + pair.get(0)?.as_f64()? / 1000.0;
            let lag = pair.get(1)?.as_f64()?;
            (0.0..=end_s + 0.5).contains(&at).then_some((at, lag))
        })
        .flat_map(|(at, lag)| [((at - lag / 1000.0).max(0.0), 0.0), (at, lag)])
        .collect();
    let title = format!(
        "Chapter {}: loop lag, {}",
        record.chapter,
        row_label(experiment)
    );
    crate::charts::lag_svg(&title, &points)
}

/// The timeline chart of a small experiment (`None` for large ones).
pub fn timeline_chart(record: &ChapterRecord, experiment: &ExperimentRecord) -> Option<String> {
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
    crate::charts::timeline_svg(&title, &timeline_of(experiment))
}

/// Reads every `chapterN.json` in `dir`, in chapter order.
pub fn read_chapters(dir: &Path) -> Vec<ChapterRecord> {
    let mut records: Vec<ChapterRecord> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "json")
                && path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("chapter"))
        })
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect();
    records.sort_by_key(|record| record.chapter);
    records
}

/// Rewrites `seedNNN.md` for every seed any record in `dir` redoes.
pub fn write_seed_comparisons(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let records = read_chapters(dir);
    let mut seeds: Vec<String> = records
        .iter()
        .flat_map(|record| record.experiments.iter().map(|e| e.seed.clone()))
        .filter(|seed| !seed.is_empty())
        .collect();
    seeds.sort();
    seeds.dedup();
    let mut written = Vec::new();
    for seed in seeds {
        if let Some(view) = seed_comparison(&seed, &records) {
            let path = dir.join(format!("seed{seed}.md"));
            write(&path, &view)?;
            written.push(path);
        }
    }
    Ok(written)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// Little's law checked on chapter 1's five sleeps: with the client's
/// latencies (time in the system, waiting included) it gives the average
/// number of requests in the system; with the time in service, the number
/// being served. `None` until chapter 1 has been measured.
pub fn littles_law(records: &[ChapterRecord]) -> Option<String> {
    let record = records.iter().find(|record| record.chapter == 1)?;
    let experiment = record
        .experiments
        .iter()
        .find(|e| e.slug == "five_sleeps")?;
    let load = experiment.loads.first()?;
    let measured = &load.measured;
    let throughput = measured.rps;
    let in_system_s = measured.latency_ms.mean? / 1000.0;
    let service_s = load.predicted.min_ms / 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| which latency | seconds | × throughput | = requests inside |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|");
    let _ = writeln!(
        out,
        "| time in the system (the client's latency: waiting + service), mean | {:.3} | {throughput:.3}/s | **{:.2}** |",
        in_system_s,
        throughput * in_system_s
    );
    let _ = writeln!(
        out,
        "| time in service (the handler's sleep) | {:.3} | {throughput:.3}/s | **{:.2}** |",
        service_s,
        throughput * service_s
    );
    let _ = writeln!(
        out,
        "\nFrom chapter 1's run of `{}` × {} at once: {} completed in {}.",
        load.path,
        load.requests,
        measured.requests.completed,
        format_ms(measured.duration_s * 1000.0)
    );
    out.push('\n');
    out.push_str(&stamp(record));
    Some(out)
}

/// Writes `littles_law.md` from the records in `dir`, once chapter 1 is there.
pub fn write_littles_law(dir: &Path) -> Result<(), String> {
    match littles_law(&read_chapters(dir)) {
        Some(view) => write(&dir.join("littles_law.md"), &view),
        None => Ok(()),
    }
}
