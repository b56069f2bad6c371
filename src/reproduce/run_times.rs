//! How long each chapter's run takes on the machine that made its record:
//! what a workshop plans around.

use std::fmt::Write;

use super::record::ChapterRecord;
use super::views::View;

/// The file the table is written to.
pub const FILE: &str = "run_times.md";

/// The file the quick run's table is written to, beside the full run's:
/// a quick run keeps its records apart, but a workshop plans with both.
pub const QUICK_FILE: &str = "run_times_quick.md";

fn minutes(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.1} min", seconds / 60.0)
    }
}

/// The quick run's table: the same rows, from the quick run's records.
pub fn quick_table(records: &[ChapterRecord]) -> Option<View> {
    let quick: Vec<ChapterRecord> = records.iter().filter(|r| r.quick).cloned().collect();
    table(&quick).map(|view| View::new(QUICK_FILE.to_string(), view.text))
}

/// One row per chapter record: its experiments, its time under load, and
/// its whole run where the record says it; then the totals.
pub fn table(records: &[ChapterRecord]) -> Option<View> {
    if records.is_empty() {
        return None;
    }
    let mut out = String::from(
        "| chapter | experiments and programs | time under load | whole run | command |\n|--:|--:|--:|--:|---|\n",
    );
    let (mut load, mut wall, mut all_walls) = (0.0, 0.0, true);
    for record in records {
        load += record.load_s();
        match record.wall_s {
            Some(seconds) => wall += seconds,
            None => all_walls = false,
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | `{}` |",
            record.chapter,
            record.experiments.len() + record.programs.len(),
            minutes(record.load_s()),
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
         every delay and duration down tenfold.\n\n",
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
    Some(View::new(FILE.to_string(), out))
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
    fn quick_table_keeps_only_the_quick_rows_and_says_so() {
        let records = [
            record(1, true, 17.0),
            record(2, false, 150.0),
            record(3, true, 2.0),
        ];
        let view = quick_table(&records).expect("two quick records make a table");
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
        assert!(quick_table(&[record(2, false, 150.0)]).is_none());
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
