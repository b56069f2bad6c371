//! How long each chapter's run takes on the machine that made its record:
//! what a workshop plans around.

use std::fmt::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::record::ChapterRecord;
use super::views::View;
use evt::sys::Machine;

/// The file the table is written to.
pub const FILE: &str = "run_times.md";

/// The file the quick run's table is written to, beside the full run's:
/// a quick run keeps its records apart, but a workshop plans with both.
pub const QUICK_FILE: &str = "run_times_quick.md";

/// The quick run's times, kept in the book's `generated` directory as the
/// record its table is a view of (the quick run's chapter records stay in
/// `target/reproduce-quick/`).
pub const QUICK_RECORD: &str = "run_times_quick.json";

/// One chapter run's times: what the table shows of its record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunTime {
    pub chapter: u32,
    /// Experiments and programs.
    pub runs: usize,
    /// Seconds under load (see [`ChapterRecord::load_s`]).
    pub load_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_s: Option<f64>,
    pub command: String,
    pub quick: bool,
    pub measured_at: String,
    pub machine: Machine,
}

impl RunTime {
    pub fn of(record: &ChapterRecord) -> RunTime {
        RunTime {
            chapter: record.chapter,
            runs: record.experiments.len() + record.programs.len(),
            load_s: record.load_s(),
            wall_s: record.wall_s,
            command: record.command.clone(),
            quick: record.quick,
            measured_at: record.measured_at.clone(),
            machine: record.machine.clone(),
        }
    }
}

fn minutes(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.1} min", seconds / 60.0)
    }
}

/// The quick run's times, from its records, with the rows already kept in
/// `generated` for chapters this run did not measure (as a chapter's run
/// replaces only its own row of the full table): the record to keep as
/// [`QUICK_RECORD`] (pretty JSON) and its table, or `None` without a quick
/// record.
pub fn quick_files(records: &[ChapterRecord], generated: &Path) -> Option<(String, View)> {
    let mut times: Vec<RunTime> = records
        .iter()
        .filter(|r| r.quick)
        .map(RunTime::of)
        .collect();
    if times.is_empty() {
        return None;
    }
    let kept: Vec<RunTime> = std::fs::read_to_string(generated.join(QUICK_RECORD))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    for row in kept {
        if !times.iter().any(|time| time.chapter == row.chapter) {
            times.push(row);
        }
    }
    times.sort_by_key(|time| time.chapter);
    let view = render(QUICK_FILE, &times)?;
    let json = serde_json::to_string_pretty(&times).ok()? + "\n";
    Some((json, view))
}

/// The quick run's table, rendered again from the [`QUICK_RECORD`] kept in
/// `dir`; `None` when there is none (or it does not read).
pub fn quick_table(dir: &Path) -> Option<View> {
    let text = std::fs::read_to_string(dir.join(QUICK_RECORD)).ok()?;
    let times: Vec<RunTime> = serde_json::from_str(&text).ok()?;
    render(QUICK_FILE, &times)
}

/// One row per chapter record: its experiments, its time under load, and
/// its whole run where the record says it; then the totals.
pub fn table(records: &[ChapterRecord]) -> Option<View> {
    let times: Vec<RunTime> = records.iter().map(RunTime::of).collect();
    render(FILE, &times)
}

fn render(name: &str, records: &[RunTime]) -> Option<View> {
    if records.is_empty() {
        return None;
    }
    let mut out = String::from(
        "| chapter | experiments and programs | time under load | whole run | command |\n|--:|--:|--:|--:|---|\n",
    );
    let (mut load, mut wall, mut all_walls) = (0.0, 0.0, true);
    for record in records {
        load += record.load_s;
        match record.wall_s {
            Some(seconds) => wall += seconds,
            None => all_walls = false,
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | `{}` |",
            record.chapter,
            record.runs,
            minutes(record.load_s),
            record.wall_s.map_or("—".to_string(), minutes),
            record.command
        );
    }
    let _ = writeln!(
        out,
        "| all | | **{}** | {} | `cargo run --release{}` |",
        minutes(load),
        if all_walls {
            format!("**{}**", minutes(wall))
        } else {
            "—".to_string()
        },
        if records.iter().any(|r| r.quick) {
            " -- --quick"
        } else {
            ""
        }
    );
    out.push_str(
        "\nTime under load is what the experiments' loads and programs took; a run also \
         starts and stops every server, so the whole run (recorded from the first \
         experiment to the record, where the record has it) is longer. `--quick` scales \
         every delay, duration and count down tenfold; what does not scale (starting \
         servers, threads and thousands of connections) makes a quick run longer than a \
         tenth of a full one.\n\n",
    );
    // The stamp: each machine with its chapters and dates (one machine, as
    // a single run makes; several once a reader has run some chapters).
    let mut machines: Vec<(String, Vec<&RunTime>)> = Vec::new();
    for record in records {
        let key = format!("{} ({})", record.machine.describe(), record.machine.rustc);
        match machines.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rows)) => rows.push(record),
            None => machines.push((key, vec![record])),
        }
    }
    let stamps: Vec<String> = machines
        .iter()
        .map(|(machine, rows)| {
            let first = rows.iter().map(|r| &r.measured_at).min().cloned();
            let last = rows.iter().map(|r| &r.measured_at).max().cloned();
            let chapters = if machines.len() == 1 {
                String::new()
            } else {
                let list: Vec<String> = rows.iter().map(|r| r.chapter.to_string()).collect();
                format!(
                    "{} {} ",
                    if list.len() == 1 {
                        "chapter"
                    } else {
                        "chapters"
                    },
                    list.join(", ")
                )
            };
            format!(
                "{chapters}on {machine}, chapter by chapter from {} to {}",
                first.unwrap_or_default(),
                last.unwrap_or_default()
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "*Measured {}, each by the command in its row.*",
        stamps.join("; ")
    );
    Some(View::new(name.to_string(), out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use evt::sys::Machine;

    fn record(chapter: u32, quick: bool, wall_s: f64) -> ChapterRecord {
        ChapterRecord {
            chapter,
            machine: Machine {
                cpu: "test cpu".into(),
                cores: 2,
                os: "linux".into(),
                rustc: "rustc 1.0".into(),
            },
            measured_at: format!("2026-12-01T00:00:0{chapter}Z"),
            command: format!(
                "cargo run --release -- --chapter {chapter}{}",
                if quick { " --quick" } else { "" }
            ),
            quick,
            experiments: vec![],
            limits: vec![],
            programs: vec![],
            wall_s: Some(wall_s),
        }
    }

    #[test]
    fn the_quick_table_keeps_only_quick_rows_and_reads_back_from_its_record() {
        let dir = std::env::temp_dir().join(format!("evt-run-times-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let records = [
            record(1, true, 17.0),
            record(2, false, 150.0),
            record(3, true, 2.0),
        ];
        let (json, view) = quick_files(&records, &dir).expect("two quick records make a table");
        assert_eq!(view.name, QUICK_FILE);
        assert!(view.text.contains("--chapter 1 --quick"));
        assert!(view.text.contains("--chapter 3 --quick"));
        assert!(!view.text.contains("--chapter 2"), "{}", view.text);
        assert!(
            view.text
                .contains("| all | | **0 s** | **19 s** | `cargo run --release -- --quick` |"),
            "{}",
            view.text
        );
        assert!(
            view.text.contains(
                "*Measured on test cpu (2 cores), linux (rustc 1.0), chapter by chapter from"
            ),
            "{}",
            view.text
        );
        assert!(quick_files(&[record(2, false, 150.0)], &dir).is_none());
        // Kept as its record, the table renders again the same.
        std::fs::write(dir.join(QUICK_RECORD), json).unwrap();
        assert_eq!(quick_table(&dir), Some(view));
        // A later quick run of chapter 2 on another machine replaces no
        // other chapter's row, and the stamp names both machines.
        let mut other = record(2, true, 21.0);
        other.machine.cpu = "other cpu".into();
        let (_, view) = quick_files(&[other], &dir).unwrap();
        let rows: Vec<&str> = view
            .text
            .lines()
            .filter(|l| l.contains("--chapter"))
            .collect();
        assert_eq!(rows.len(), 3, "{}", view.text);
        assert!(
            view.text.contains("chapters 1, 3 on test cpu")
                && view.text.contains("chapter 2 on other cpu"),
            "{}",
            view.text
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(quick_table(&dir), None);
    }

    #[test]
    fn full_table_totals_every_row() {
        let view = table(&[record(1, false, 53.0), record(2, false, 144.0)]).unwrap();
        assert_eq!(view.name, FILE);
        assert!(
            view.text
                .contains("| all | | **0 s** | **3.3 min** | `cargo run --release` |"),
            "{}",
            view.text
        );
    }
}
