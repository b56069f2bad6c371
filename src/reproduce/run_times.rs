//! How long each chapter's run takes on the machine that made its record:
//! what a workshop plans around.

use std::fmt::Write;

use super::record::ChapterRecord;
use super::views::View;

/// The file the table is written to.
pub const FILE: &str = "run_times.md";

fn minutes(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.1} min", seconds / 60.0)
    }
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
