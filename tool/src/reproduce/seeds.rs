//! The seed write-ups' experiments that several chapters redo (seed 000's
//! five sleeps, seed 001's sleeper and activer), and the tables that set
//! every chapter's redo of a seed side by side.

use super::judge::{Probe, SetBy};
use std::fmt::Write;
use std::time::Duration;

use super::record::ChapterRecord;
use super::spec::{Experiment, LoadSpec, ServerUnderTest, scaled};
use super::views::{View, describe_load, format_ms, format_opt_ms, stamp};

/// The seeds whose redos the book compares across chapters.
pub const COMPARED: [&str; 2] = ["000", "001"];

/// Seed 000's shape: `count` 2 s requests sent at once, over as many connections.
fn sleeps_at_once(
    server: ServerUnderTest,
    scale: f64,
    count: u64,
    (slug, in_words): (&str, &str),
) -> Experiment {
    let delay = scaled(2000, scale);
    Experiment::new(
        slug,
        format!(
            "{in_words} {} requests sent at once (`-n {count} -c {count}`)",
            format_ms(delay.as_secs_f64() * 1000.0)
        ),
        server,
        vec![LoadSpec::sleeps(count, count as usize, delay)],
    )
    .of_seed("000")
}

/// Seed 000: five concurrent 2 s requests.
pub fn five_sleeps(server: ServerUnderTest, scale: f64) -> Experiment {
    sleeps_at_once(server, scale, 5, ("five_sleeps", "Five"))
}

/// Seed 000 taken further: a thousand 2 s requests at once. Only a server
/// that keeps every request in flight finishes this in seconds (one blocking
/// thread would need over half an hour).
/// The time above the sleep is the CPU's: a thousand connections opened
/// and answered at once.
pub fn thousand_sleeps(server: ServerUnderTest, scale: f64) -> Experiment {
    sleeps_at_once(server, scale, 1000, ("thousand_sleeps", "A thousand"))
        .set_by(SetBy::Cpu(Probe::Hello))
        .varies_because("a thousand connections opened and answered at once: the time above the sleep is the CPU's")
}

/// Seed 001: a slow `/sleeper`, then a fast `/activer` while it sleeps.
pub fn sleeper_then_activer(server: ServerUnderTest, scale: f64) -> Experiment {
    let sleeper = scaled(10_000, scale);
    let gap = scaled(500, scale);
    let mut activer = LoadSpec::new("/activer".to_string(), 1, 1, Duration::ZERO);
    activer.start_after = gap;
    Experiment::new(
        "sleeper_activer",
        format!(
            "A {} `/sleeper`, then `/activer` {} later",
            format_ms(sleeper.as_secs_f64() * 1000.0),
            format_ms(gap.as_secs_f64() * 1000.0)
        ),
        server,
        vec![
            LoadSpec::new(
                format!("/sleeper?ms={}", sleeper.as_millis()),
                1,
                1,
                sleeper,
            ),
            activer,
        ],
    )
    .of_seed("001")
}

/// A table per seed comparing every chapter that redid it: the whole run's
/// time for runs of several requests, the latency for single requests.
pub fn comparison(seed: &str, records: &[ChapterRecord]) -> Option<String> {
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
    // The stamps of the chapters with a row here, and no others.
    for record in records
        .iter()
        .filter(|r| r.experiments.iter().any(|e| e.seed == seed))
    {
        out.push('\n');
        out.push_str(&format!("Chapter {}: {}", record.chapter, stamp(record)));
    }
    Some(out)
}

/// `seedNNN.md` for every compared seed the records redo.
pub fn comparisons(records: &[ChapterRecord]) -> Vec<View> {
    COMPARED
        .iter()
        .filter_map(|seed| {
            comparison(seed, records).map(|text| View::new(format!("seed{seed}.md"), text))
        })
        .collect()
}
