//! The two clocks this chapter's servers wait on, side by side: tokio's
//! timer (the loop's sleeps) and `std::thread::sleep` (chapter 2's pool),
//! for the dependency's 20 ms. The downstream comparison reads it.

use std::fmt::Write;

use super::super::record::ChapterRecord;
use super::super::spec::Program;
use super::super::views::{View, stamp};
use super::{OVERLOAD, SLOTS};
use evt::report::TimerCheck;

/// The program's slug in the record.
const SLUG: &str = "timer_check";

/// Times the two sleeps (about 4 s: a hundred of each).
pub(super) fn programs(_scale: f64) -> Vec<Program> {
    vec![Program::new(
        SLUG,
        "the loop's timer and the pool's sleep, each asked for 20 ms",
        OVERLOAD.name,
        &["--timer-check"],
        4.5,
    )]
}

/// The table, when the record has the program's output.
pub(super) fn view(record: &ChapterRecord) -> Option<View> {
    let program = record.programs.iter().find(|p| p.slug == SLUG)?;
    let check: TimerCheck = program.output()?;
    let mut out = format!(
        "| sleep | asked | **took** (mean) | over what was asked | {SLOTS} slots held that long: at most |\n|---|--:|--:|--:|--:|\n"
    );
    for (name, took) in [
        ("tokio's timer (the loop)", check.tokio_ms),
        ("`std::thread::sleep` (chapter 2's pool)", check.std_ms),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {:.1} ms | **{took:.2} ms** | {:+.1} % | {:.0} req/s |",
            check.asked_ms,
            100.0 * (took / check.asked_ms - 1.0),
            SLOTS as f64 / (took / 1e3),
        );
    }
    let _ = write!(
        out,
        "\nMeans of {} sleeps each: `{}`.\n\n",
        check.samples, program.command
    );
    out.push_str(&stamp(record));
    Some(View::new(
        format!("chapter{}_timers.md", record.chapter),
        out,
    ))
}
