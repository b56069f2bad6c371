//! How long each chapter's run takes on the machine that made its record:
//! what a workshop plans around.

use std::fmt::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::record::ChapterRecord;
use super::views::View;
use crate::sys::Machine;

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

/// The quick run's times, from its records: the record to keep as
/// [`QUICK_RECORD`] (pretty JSON) and its table, or `None` without a quick
/// record.
pub fn quick_files(records: &[ChapterRecord]) -> Option<(String, View)> {
    let times: Vec<RunTime> = records
        .iter()
        .filter(|r| r.quick)
        .map(RunTime::of)
        .collect();
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
    let dates = |pick: fn(&String, &String) -> bool| {
        records
            .iter()
            .map(|r| &r.measured_at)
            .reduce(|a, b| if pick(a, b) { a } else { b })
            .cloned()
            .unwrap_or_default()
    };
    let _ = writeln!(
        out,
        "*Measured on {} ({}), chapter by chapter from {} to {}, each by the command in its row.*",
        records[0].machine.describe(),
        records[0].machine.rustc,
        dates(|a, b| a <= b),
        dates(|a, b| a >= b),
    );
    Some(View::new(name.to_string(), out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Machine;

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
        let records = [
            record(1, true, 17.0),
            record(2, false, 150.0),
            record(3, true, 2.0),
        ];
        let (json, view) = quick_files(&records).expect("two quick records make a table");
        assert_eq!(view.name, QUICK_FILE);
        assert!(view.text.contains("--chapter 1 --quick"));
        assert!(view.text.contains("--chapter 3 --quick"));
        assert!(!view.text.contains("--chapter 2`"), "{}", view.text);
        assert!(
            view.text
                .contains("| all | | **0 s** | **19 s** | `cargo run --release -- --quick` |"),
            "{}",
            view.text
        );
        assert!(quick_files(&[record(2, false, 150.0)]).is_none());
        // Kept as its record, the table renders again the same.
        let dir = std::env::temp_dir().join(format!("evt-run-times-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(QUICK_RECORD), json).unwrap();
        assert_eq!(quick_table(&dir), Some(view));
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
