//! The reproducing appendix's tables, from the records: what sets each
//! chapter's figures, the ranges of the figures chance sets, each machine's
//! calibration, and a second run (an export kept beside the records as
//! [`SECOND_RUN`]) judged figure by figure against the book's.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use super::calibrate;
use super::judge::SetBy;
use super::record::ChapterRecord;
use super::room::{self, Headline, Side};
use super::view::View;

/// An export of a second machine's run, kept beside the records.
pub const SECOND_RUN: &str = "second_run.json";
/// Two exports of one machine, the same chapters run on all its cores and
/// then held to one (`taskset -c 0`): a slower machine the book's
/// calibration never saw, judged against the first by the two runs' probes.
pub const ALL_CORES: &str = "all_cores.json";
pub const ONE_CORE: &str = "one_core.json";

/// Every table of the appendix that the files in `dir` allow.
pub fn views(records: &[ChapterRecord], dir: &Path) -> Result<Vec<View>, String> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let headlines = room::headlines(records);
    let stamp = stamp(records);
    let mut views = vec![
        View::new(
            "reproducing_kinds.md".into(),
            format!("{}\n{stamp}", kinds(&headlines)),
        ),
        View::new(
            "reproducing_chance.md".into(),
            format!("{}\n{stamp}", chance(&headlines)),
        ),
    ];
    let calibrations = calibrate::read_all(dir)?;
    let second = dir.join(SECOND_RUN);
    let second = if second.is_file() {
        Some(room::read(&second)?)
    } else {
        None
    };
    let mut all = calibrations.clone();
    if let Some(side) = &second {
        all.extend(
            side.calibrations
                .iter()
                .filter(|c| !calibrations.iter().any(|b| b.machine == c.machine))
                .cloned(),
        );
    }
    if !all.is_empty() {
        views.push(View::new(
            "reproducing_calibration.md".into(),
            calibration_table(&all),
        ));
    }
    if let Some(side) = second {
        let book = Side {
            name: "the book".into(),
            calibrations,
            headlines,
        };
        let machine = side.machine();
        views.push(View::new(
            "reproducing_second.md".into(),
            judged_run(&format!("A second run: {machine}."), &book, &side),
        ));
    }
    let (all_cores, one_core) = (dir.join(ALL_CORES), dir.join(ONE_CORE));
    if all_cores.is_file() && one_core.is_file() {
        let (all_cores, one_core) = (room::read(&all_cores)?, room::read(&one_core)?);
        let probe = |side: &Side| {
            side.calibrations.first().map_or_else(
                || "no probe".to_string(),
                |c| {
                    format!(
                        "{:.1} µs per hello, {:.2} µs per µs of /work, {:.1} µs a round trip",
                        c.hello_wall_us, c.work_wall_per_us, c.switch_us
                    )
                },
            )
        };
        let machine = all_cores.machine();
        views.push(View::new(
            "reproducing_one_core.md".into(),
            judged_run(
                &format!(
                    "Held to one core, judged against all cores: {machine}. Probed on all cores: {}; on one: {}.",
                    probe(&all_cores),
                    probe(&one_core)
                ),
                &all_cores,
                &one_core,
            ),
        ));
    }
    Ok(views)
}

/// The machines and dates of the records, one line.
fn stamp(records: &[ChapterRecord]) -> String {
    let mut machines: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in records {
        machines
            .entry(record.machine.describe())
            .or_default()
            .push(format!(
                "{} ({})",
                record.chapter,
                &record.measured_at[..10.min(record.measured_at.len())]
            ));
    }
    let parts: Vec<String> = machines
        .iter()
        .map(|(machine, chapters)| format!("{machine}: chapters {}", chapters.join(", ")))
        .collect();
    format!(
        "*From the book's records, measured on {}.*\n",
        parts.join("; ")
    )
}

/// How many figures of each chapter each kind sets.
fn kinds(headlines: &[Headline]) -> String {
    let mut counts: BTreeMap<u32, [usize; 3]> = BTreeMap::new();
    for headline in headlines {
        let slot = match headline.set_by() {
            SetBy::Timers => 0,
            SetBy::Chance => 1,
            SetBy::Cpu(_) => 2,
        };
        counts.entry(headline.chapter).or_default()[slot] += 1;
    }
    let mut out = String::from(
        "| chapter | figures | set by timers | set by chance | set by the CPU |\n|--:|--:|--:|--:|--:|\n",
    );
    let mut total = [0usize; 3];
    for (chapter, count) in &counts {
        let _ = writeln!(
            out,
            "| {chapter} | {} | {} | {} | {} |",
            count.iter().sum::<usize>(),
            count[0],
            count[1],
            count[2]
        );
        for (sum, n) in total.iter_mut().zip(count) {
            *sum += n;
        }
    }
    let _ = writeln!(
        out,
        "| all | {} | {} | {} | {} |",
        total.iter().sum::<usize>(),
        total[0],
        total[1],
        total[2]
    );
    out
}

/// The figures chance sets: the range of the book's trials.
fn chance(headlines: &[Headline]) -> String {
    let mut out = String::from(
        "| chapter | experiment | figure | trials | lowest | median | highest | the model predicts |\n|--:|---|---|--:|--:|--:|--:|--:|\n",
    );
    let mut seen = Vec::new();
    for headline in headlines {
        if headline.set_by() != SetBy::Chance {
            continue;
        }
        let name = headline
            .family
            .clone()
            .unwrap_or_else(|| headline.experiment.clone());
        let key = (headline.chapter, name.clone(), headline.figure.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let mut trials = if headline.trials.is_empty() {
            vec![headline.value]
        } else {
            headline.trials.clone()
        };
        trials.sort_by(f64::total_cmp);
        let show = |v: f64| room::number(v, &headline.unit);
        let _ = writeln!(
            out,
            "| {} | {name} | {} | {} | {} | {} | {} | {} |",
            headline.chapter,
            headline.figure,
            trials.len(),
            show(trials[0]),
            show(trials[trials.len() / 2]),
            show(trials[trials.len() - 1]),
            match headline.model_range {
                Some((low, high)) => format!("{}–{}", show(low), show(high)),
                None => headline.predicted.map_or_else(|| "—".to_string(), show),
            }
        );
    }
    out
}

fn calibration_table(all: &[calibrate::Calibration]) -> String {
    let mut out = String::from(
        "| machine | when | the machine's time per hello request (what scales) | CPU per hello request (both ends) | wall time per µs of `/work` | a thread's round trip | how |\n|---|---|--:|--:|--:|--:|---|\n",
    );
    for c in all {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} µs | {:.1} µs | {:.2} µs | {:.1} µs | {} |",
            c.machine,
            if c.derived_from.is_some() {
                format!("{} (the probe it is derived from)", c.measured_at)
            } else {
                c.measured_at.clone()
            },
            c.hello_wall_us,
            c.hello_us,
            c.work_wall_per_us,
            c.switch_us,
            c.derived_from
                .as_deref()
                .map_or_else(|| "probed".to_string(), |from| format!("derived: {from}"))
        );
    }
    out
}

/// A run judged against a reference: a tally per chapter, then every figure
/// outside its range.
fn judged_run(intro: &str, book: &Side, second: &Side) -> String {
    let judged = room::judge_side(book, second);
    let mut chapters: BTreeMap<u32, Vec<room::Judged>> = BTreeMap::new();
    for j in &judged {
        chapters.entry(j.mine.chapter).or_default().push(j.clone());
    }
    let mut out = format!("*{intro}*\n\n");
    out.push_str("| chapter | figures judged | as expected | outside | not judged | by kind, as expected |\n|--:|--:|--:|--:|--:|---|\n");
    for (chapter, judged) in &chapters {
        let count = |f: &dyn Fn(&room::Judged) -> bool| judged.iter().filter(|j| f(j)).count();
        let tally = room::tally(judged);
        let by_kind = tally
            .split_once("(as expected by kind: ")
            .map_or("", |(_, rest)| rest.trim_end_matches(')'));
        let _ = writeln!(
            out,
            "| {chapter} | {} | {} | {} | {} | {by_kind} |",
            judged.len(),
            count(&|j| j.verdict == super::judge::Verdict::AsExpected),
            count(&|j| matches!(j.verdict, super::judge::Verdict::Outside { .. })),
            count(&|j| matches!(j.verdict, super::judge::Verdict::NoRange(_))),
        );
    }
    let _ = writeln!(out, "\nAll chapters: {}.\n", room::tally(&judged));
    let outside: Vec<String> = judged.iter().filter_map(room::outside_line).collect();
    if !outside.is_empty() {
        out.push_str("Outside their ranges:\n\n");
        for line in outside {
            let _ = writeln!(out, "- {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_is_counted_once_by_its_kind() {
        // Chapters 1 to 4 hold every kind; the later chapters' plans take
        // long to rebuild in a test build (the book test reads them all).
        let records: Vec<_> = super::super::record::read_all(&crate::root().join("book/generated"))
            .unwrap()
            .into_iter()
            .filter(|r| r.chapter <= 4)
            .collect();
        let headlines = room::headlines(&records);
        let table = kinds(&headlines);
        let all = table.lines().last().unwrap();
        assert!(
            all.starts_with(&format!("| all | {} |", headlines.len())),
            "{all}"
        );
        let counts: Vec<usize> = all
            .split('|')
            .filter_map(|cell| cell.trim().parse().ok())
            .collect();
        assert_eq!(counts[1] + counts[2] + counts[3], counts[0]);
        // Each kind is somewhere in the book.
        assert!(counts[1..].iter().all(|&n| n > 0), "{table}");
        // A directory with no calibration and no second run: two tables.
        let empty = std::env::temp_dir().join(format!("evt-reproducing-{}", std::process::id()));
        let views = views(&records, &empty).unwrap();
        assert_eq!(
            views.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["reproducing_kinds.md", "reproducing_chance.md"]
        );
    }
}
