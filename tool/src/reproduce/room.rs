//! The room's results: every machine in a workshop exports its headline
//! figures (`--export FILE`), and the instructor puts several side by side
//! (`--compare PATH...`): a table of every figure per machine, each judged
//! against the first machine's (as expected, or outside its range and by how
//! much), and a chart of the figures set by timers.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use super::calibrate::{self, Calibration};
use super::charts;
pub use super::headline::{Headline, Side, headlines};
use super::judge::{self, Expected, Reference, SetBy, Verdict};
use super::record::ChapterRecord;
use super::views::{Lines, add_point};
use evt::sys::Machine;

/// One of a side's figures, judged against the reference side's.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub mine: Headline,
    pub set_by: SetBy,
    pub expected: Result<Expected, String>,
    pub verdict: Verdict,
}

/// Every figure of `mine` that `reference` also has, judged against it;
/// figures from the very run the reference holds are left out.
pub fn judge_side(reference: &Side, mine: &Side) -> Vec<Judged> {
    let mut out = Vec::new();
    for headline in &mine.headlines {
        let Some(book) = reference.headlines.iter().find(|b| b.same_figure(headline)) else {
            continue;
        };
        if book.machine == headline.machine {
            continue;
        }
        let set_by = book.set_by();
        let trials = if book.trials.is_empty() {
            std::slice::from_ref(&book.value)
        } else {
            &book.trials[..]
        };
        let expected = judge::expected(
            &Reference {
                set_by,
                unit: &book.unit,
                value: book.value,
                trials,
                predicted: book.predicted,
                model_range: book.model_range,
            },
            reference.calibration_of(book),
            mine.calibration_of(headline),
        );
        let verdict = match &expected {
            Ok(range) => judge::judge(
                headline.value,
                range,
                set_by,
                book.varies_because.as_deref(),
            ),
            Err(why) => Verdict::NoRange(why.clone()),
        };
        out.push(Judged {
            mine: headline.clone(),
            set_by,
            expected,
            verdict,
        });
    }
    out
}

/// How many figures were as expected, outside, and not judged, as one line.
pub fn tally(judged: &[Judged]) -> String {
    let count = |f: &dyn Fn(&Verdict) -> bool| judged.iter().filter(|j| f(&j.verdict)).count();
    let mut kinds = Vec::new();
    for (words, of_kind) in [
        (
            "timers",
            &(|s: SetBy| s == SetBy::Timers) as &dyn Fn(SetBy) -> bool,
        ),
        ("chance", &|s| s == SetBy::Chance),
        ("CPU", &|s| matches!(s, SetBy::Cpu(_))),
    ] {
        let all: Vec<&Judged> = judged.iter().filter(|j| of_kind(j.set_by)).collect();
        if !all.is_empty() {
            let fine = all
                .iter()
                .filter(|j| j.verdict == Verdict::AsExpected)
                .count();
            kinds.push(format!("{words} {fine}/{}", all.len()));
        }
    }
    let by_kind = if kinds.is_empty() {
        String::new()
    } else {
        format!(" (as expected by kind: {})", kinds.join(", "))
    };
    format!(
        "{} as expected, {} outside, {} not judged{by_kind}",
        count(&|v| *v == Verdict::AsExpected),
        count(&|v| matches!(v, Verdict::Outside { .. })),
        count(&|v| matches!(v, Verdict::NoRange(_))),
    )
}

/// One line for a figure outside its range: which, how far, and why.
pub fn outside_line(judged: &Judged) -> Option<String> {
    let Verdict::Outside { off_pct, reason } = &judged.verdict else {
        return None;
    };
    let range = judged.expected.as_ref().ok()?;
    Some(format!(
        "chapter {} {} {}: {} is {} % outside {}–{} ({}): {reason}",
        judged.mine.chapter,
        judged.mine.experiment,
        judged.mine.figure,
        number(judged.mine.value, &judged.mine.unit),
        if off_pct.abs() < 10.0 {
            format!("{off_pct:+.1}")
        } else {
            format!("{off_pct:+.0}")
        },
        number(range.low, &judged.mine.unit),
        number(range.high, &judged.mine.unit),
        judged.set_by.words(),
    ))
}

/// A figure with its unit, as tables show it.
pub fn number(value: f64, unit: &str) -> String {
    if unit == "ms" {
        format!("{value:.1} ms")
    } else if value < 10.0 {
        format!("{value:.2} req/s")
    } else {
        format!("{value:.0} req/s")
    }
}

/// The records measured on `machine` (the same CPU, cores and system; the
/// compiler may differ), and the chapters of the others: a reader's
/// `book/generated/` keeps the book's own records for every chapter they
/// have not run, and those are not theirs to export.
pub fn measured_on(
    records: Vec<ChapterRecord>,
    machine: &Machine,
) -> (Vec<ChapterRecord>, Vec<u32>) {
    let (mine, others): (Vec<ChapterRecord>, Vec<ChapterRecord>) = records
        .into_iter()
        .partition(|record| record.machine.describe() == machine.describe());
    (mine, others.iter().map(|record| record.chapter).collect())
}

/// Why several sides cannot be compared, if they cannot: a quick run's
/// timer-bound figures are a tenth of a full run's.
pub fn mixed_kinds(sides: &[Side]) -> Option<String> {
    let kind = |side: &Side| side.headlines.iter().any(|h| h.quick);
    let quick = sides.iter().find(|s| kind(s))?;
    let full = sides.iter().find(|s| !kind(s))?;
    Some(format!(
        "{} is from a quick run and {} from a full one: their delays differ tenfold; \
         compare runs of one kind",
        quick.name, full.name
    ))
}

/// Writes this machine's headlines and its calibration to `file` as JSON.
pub fn export(
    records: &[ChapterRecord],
    calibrations: Vec<Calibration>,
    file: &Path,
) -> Result<usize, String> {
    let side = Side {
        name: String::new(),
        calibrations,
        headlines: headlines(records),
    };
    let json = serde_json::to_string_pretty(&side).map_err(|e| e.to_string())?;
    std::fs::write(file, json + "\n")
        .map_err(|error| format!("cannot write {}: {error}", file.display()))?;
    Ok(side.headlines.len())
}

/// Reads one side of a comparison from `path`: a file written by
/// `--export`, one chapter's record (`chapterN.json`), or a directory of
/// records (`book/generated`), with the calibrations kept beside them.
pub fn read(path: &Path) -> Result<Side, String> {
    let name = path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    if path.is_dir() {
        let records = super::record::read_all(path)?;
        if records.is_empty() {
            return Err(format!("{} holds no chapter records", path.display()));
        }
        return Ok(Side {
            name: path.display().to_string(),
            calibrations: calibrate::read_all(path)?,
            headlines: headlines(&records),
        });
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    if super::record::is_record(path) {
        let record: ChapterRecord = serde_json::from_str(&text)
            .map_err(|error| format!("cannot read the record {}: {error}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        return Ok(Side {
            name,
            calibrations: calibrate::read_all(dir)?,
            headlines: headlines(std::slice::from_ref(&record)),
        });
    }
    // An export, or an export from before calibrations (a bare list).
    let side = serde_json::from_str::<Side>(&text).or_else(|error| {
        serde_json::from_str::<Vec<Headline>>(&text)
            .map(|headlines| Side {
                name: String::new(),
                calibrations: Vec::new(),
                headlines,
            })
            .map_err(|_| {
                format!(
                    "{} is not a file written by --export, a chapter record or a directory of them: {error}",
                    path.display()
                )
            })
    })?;
    Ok(Side { name, ..side })
}

/// Several sides' headlines side by side, each after the first judged
/// against it: the Markdown table, and the chart of the timer-bound medians
/// (each side's value over the first's).
pub fn compare(sides: &[Side]) -> (String, Option<String>) {
    type Key = (u32, String, String);
    /// Unit, what sets it, each side's value, each side's verdict.
    type Row = (String, SetBy, Vec<Option<f64>>, Vec<String>);
    let mut rows: BTreeMap<Key, Row> = BTreeMap::new();
    let judged: Vec<Vec<Judged>> = sides
        .iter()
        .map(|side| sides.first().map_or_else(Vec::new, |r| judge_side(r, side)))
        .collect();
    for (index, side) in sides.iter().enumerate() {
        for headline in &side.headlines {
            let key = (
                headline.chapter,
                headline.experiment.clone(),
                headline.figure.clone(),
            );
            let row = rows.entry(key).or_insert_with(|| {
                (
                    headline.unit.clone(),
                    headline.set_by(),
                    vec![None; sides.len()],
                    vec![String::new(); sides.len()],
                )
            });
            row.2[index] = Some(headline.value);
            if index > 0 {
                row.3[index] = judged[index]
                    .iter()
                    .find(|j| j.mine.same_figure(headline))
                    .map_or_else(
                        || "same run".to_string(),
                        |j| match &j.expected {
                            Ok(range) => format!(
                                "{} (range {}–{})",
                                j.verdict.words(),
                                number(range.low, &headline.unit),
                                number(range.high, &headline.unit)
                            ),
                            Err(_) => j.verdict.words(),
                        },
                    );
            }
        }
    }
    let mut out = String::new();
    for (side, judged) in sides.iter().zip(&judged).skip(1) {
        let _ = writeln!(
            out,
            "{} against {}: {}.\n",
            side.name,
            sides[0].name,
            tally(judged)
        );
    }
    out.push_str("| chapter | experiment | figure | set by |");
    for (index, side) in sides.iter().enumerate() {
        let _ = write!(out, " {} |", side.name);
        if index > 0 {
            let _ = write!(out, " {}: judged |", side.name);
        }
    }
    out.push_str("\n|--:|---|---|---|");
    out.push_str(&"--:|".repeat(sides.len()));
    out.push_str(&"---|".repeat(sides.len().saturating_sub(1)));
    out.push('\n');
    let mut lines = Lines::new();
    let mut shown = 0usize;
    for ((chapter, experiment, figure), (unit, set_by, values, verdicts)) in &rows {
        let _ = write!(
            out,
            "| {chapter} | {experiment} | {figure} | {} |",
            set_by.words()
        );
        for (index, (value, verdict)) in values.iter().zip(verdicts).enumerate() {
            match value {
                Some(v) => {
                    let _ = write!(out, " {} |", number(*v, unit).trim_end_matches(" req/s"));
                }
                None => out.push_str(" — |"),
            }
            if index > 0 {
                let _ = write!(out, " {} |", if verdict.is_empty() { "—" } else { verdict });
            }
        }
        out.push('\n');
        if *set_by == SetBy::Timers
            && figure == "p50"
            && let Some(Some(first)) = values.first()
            && *first > 0.0
        {
            shown += 1;
            for (side, value) in sides.iter().zip(values) {
                if let Some(value) = value {
                    add_point(&mut lines, &side.name, (shown as f64, value / first));
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "\nSet by timers: the model adds up sleeps and timeouts, and another machine's figure \
         lands within {:.0} % (or {} ms) of the book's. Chance: another machine's lands in the \
         range of the book's trials. CPU: the book's figure scaled by the two machines' \
         calibrations, within {:.0} %.",
        judge::TIMER_TOLERANCE * 100.0,
        judge::TIMER_SLACK_MS,
        judge::CPU_TOLERANCE * 100.0
    );
    let chart = charts::linear_x_svg(
        "The figures set by timers: each machine's median over the first machine's",
        "figure (timer-bound medians, in the table's order)",
        "median ÷ the first machine's",
        &lines,
        None,
        1.5,
    );
    (out, chart)
}

/// `--export FILE`: this machine's headline figures from the records in
/// `out`, with its calibration, written to `file`. The book's own records
/// (measured elsewhere) are left out, and named in one note line on stderr.
pub fn export_from(out: &Path, file: &Path) -> Result<String, String> {
    let records = super::record::read_all(out)?;
    if records.is_empty() {
        return Err(format!(
            "no chapter records in {}: run the measurements first",
            out.display()
        ));
    }
    let this = Machine::this();
    let (records, others) = measured_on(records, &this);
    if records.is_empty() {
        return Err(format!(
            "no chapter record in {} was measured on this machine ({}): run a chapter first (`cargo run --release -- --chapter N`, or its page's button under `serve`)",
            out.display(),
            this.describe()
        ));
    }
    if !others.is_empty() {
        let list: Vec<String> = others.iter().map(u32::to_string).collect();
        eprintln!(
            "note: left out {} {}: measured on another machine (the book's own records)",
            if others.len() == 1 {
                "chapter"
            } else {
                "chapters"
            },
            list.join(", ")
        );
    }
    let calibrations: Vec<Calibration> = calibrate::read_all(out)?
        .into_iter()
        .filter(|c| c.machine == this.describe())
        .collect();
    if calibrations.is_empty() {
        eprintln!(
            "note: no calibration of this machine in {}: its CPU-set figures cannot be judged (a run writes one)",
            out.display()
        );
    }
    let rows = export(&records, calibrations, file)?;
    Ok(format!(
        "wrote {rows} headline figures to {}",
        file.display()
    ))
}

/// Where the book's own records are kept for comparing: the copy made the
/// first time this clone ran or served anything ([`keep_reference`]), else
/// `book/generated` as it is.
pub fn book_records(root: &Path) -> std::path::PathBuf {
    let kept = reference_dir(root);
    if kept.is_dir() {
        kept
    } else {
        root.join("book/generated")
    }
}

/// `target/reference/`: the book's records as they were before this clone
/// measured anything.
pub fn reference_dir(root: &Path) -> std::path::PathBuf {
    root.join("target/reference")
}

/// Keeps a copy of the records in `generated` (and their calibrations) in
/// `reference`, once: the first time a run or `serve` starts in this clone,
/// before any of the reader's runs replaces them.
pub fn keep_reference(generated: &Path, reference: &Path) {
    if reference.is_dir() {
        return;
    }
    let _ = std::fs::create_dir_all(reference);
    for entry in std::fs::read_dir(generated).into_iter().flatten().flatten() {
        let path = entry.path();
        if super::record::is_record(&path) || entry.file_name() == calibrate::FILE {
            let _ = std::fs::copy(&path, reference.join(entry.file_name()));
        }
    }
}

/// The word that stands for the book's own records in `--compare`.
pub const BOOK: &str = "book";

/// `--compare PATH...`: several sides (exported files, records, or
/// directories of records) side by side, each judged against the first,
/// written to `out`. The word [`BOOK`] stands for the book's own records in
/// `book_dir`; with one path, they come first.
pub fn compare_files(
    paths: &[std::path::PathBuf],
    book_dir: &Path,
    out: &Path,
) -> Result<String, String> {
    let book = || -> Result<Side, String> {
        let mut book = read(book_dir)?;
        book.name = "the book".to_string();
        Ok(book)
    };
    let mut sides = Vec::new();
    if paths.len() == 1 && paths[0] != Path::new(BOOK) {
        sides.push(book()?);
    }
    for path in paths {
        // `book/` itself holds the pages, not records: the word is the book's.
        if path == Path::new(BOOK) {
            sides.push(book()?);
        } else {
            sides.push(read(path)?);
        }
    }
    if let Some(reason) = mixed_kinds(&sides) {
        return Err(reason);
    }
    let (table, chart) = compare(&sides);
    std::fs::create_dir_all(out)
        .map_err(|error| format!("cannot create {}: {error}", out.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(out.join(name), text)
            .map_err(|error| format!("cannot write {}: {error}", out.join(name).display()))
    };
    write("compare.md", &table)?;
    if let Some(svg) = chart {
        write("compare.svg", &svg)?;
    }
    let mut said = String::new();
    for side in &sides[1..] {
        let judged = judge_side(&sides[0], side);
        let _ = writeln!(
            said,
            "{} against {}: {}",
            side.name,
            sides[0].name,
            tally(&judged)
        );
        for line in judged.iter().filter_map(outside_line) {
            let _ = writeln!(said, "  {line}");
        }
    }
    let _ = write!(
        said,
        "compared {} sides: {}",
        sides.len(),
        out.join("compare.md").display()
    );
    Ok(said)
}

#[cfg(test)]
#[path = "room_tests.rs"]
mod tests;
