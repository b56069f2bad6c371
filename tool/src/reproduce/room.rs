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
        "chapter {} {} {}: {} is {off_pct:+.0} % outside {}–{} ({}): {reason}",
        judged.mine.chapter,
        judged.mine.experiment,
        judged.mine.figure,
        number(judged.mine.value, &judged.mine.unit),
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
                    .map_or_else(|| "same run".to_string(), |j| j.verdict.words());
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

/// `--compare PATH...`: several sides (exported files, records, or
/// directories of records) side by side, each judged against the first,
/// written to `out`. With one path, the first side is the book's own
/// records in `book_dir`.
pub fn compare_files(
    paths: &[std::path::PathBuf],
    book_dir: &Path,
    out: &Path,
) -> Result<String, String> {
    let mut sides = Vec::new();
    if paths.len() == 1 {
        let mut book = read(book_dir)?;
        book.name = "the book".to_string();
        sides.push(book);
    }
    for path in paths {
        sides.push(read(path)?);
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
mod tests {
    use super::*;

    fn headline(machine: &str, figure: &str, value: f64, timer_bound: bool) -> Headline {
        Headline {
            chapter: 3,
            experiment: "five_sleeps".into(),
            figure: figure.into(),
            value,
            unit: if figure == "req/s" { "req/s" } else { "ms" }.into(),
            machine: machine.into(),
            timer_bound,
            quick: false,
            set_by: None,
            trials: Vec::new(),
            predicted: None,
            varies_because: None,
            family: None,
        }
    }

    fn side(name: &str, headlines: Vec<Headline>) -> Side {
        Side {
            name: name.into(),
            calibrations: Vec::new(),
            headlines,
        }
    }

    #[test]
    fn two_machines_side_by_side() {
        let a = vec![
            headline("a", "p50", 2000.0, true),
            headline("a", "req/s", 12.4, true),
        ];
        let b = vec![headline("b", "p50", 2100.0, true)];
        let (table, chart) = compare(&[side("laptop", a), side("desktop", b)]);
        assert!(
            table.contains("| laptop | desktop | desktop: judged |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| 3 | five_sleeps | p50 | timers | 2000.0 ms | 2100.0 ms | outside, +2 % |"
            ),
            "{table}"
        );
        // A figure one machine lacks is a dash, not a zero.
        assert!(
            table.contains("| 3 | five_sleeps | req/s | timers | 12 | — | — |"),
            "{table}"
        );
        assert!(table.starts_with("desktop against laptop: 0 as expected, 1 outside"));
        assert!(chart.is_some_and(|svg| svg.starts_with("<svg")));
    }

    #[test]
    fn a_figure_of_the_same_run_is_not_judged_against_itself() {
        let book = side("book", vec![headline("a", "p50", 2000.0, true)]);
        let mine = side(
            "mine",
            vec![
                headline("a", "p50", 2000.0, true),
                headline("b", "p99", 1.0, true),
            ],
        );
        assert_eq!(judge_side(&book, &mine), []);
    }

    #[test]
    fn a_chance_figure_is_judged_against_the_trials_and_a_cpu_one_by_calibration() {
        let calibration = |machine: &str, hello_us| Calibration {
            machine: machine.into(),
            measured_at: String::new(),
            hello_us,
            work_wall_per_us: 1.0,
            switch_us: 10.0,
        };
        let mut spread = headline("book, 2026-12-01", "p50", 150.0, false);
        spread.set_by = Some(SetBy::Chance);
        spread.trials = vec![150.0, 260.0, 110.0];
        let mut hello = headline("book, 2026-12-01", "req/s", 50_000.0, false);
        hello.experiment = "hello".into();
        let book = Side {
            name: "book".into(),
            calibrations: vec![calibration("book", 20.0)],
            headlines: vec![spread.clone(), hello.clone()],
        };
        let mine = |p50, rate| Side {
            name: "mine".into(),
            calibrations: vec![calibration("mine", 10.0)],
            headlines: vec![
                Headline {
                    machine: "mine, 2026-12-04".into(),
                    value: p50,
                    ..spread.clone()
                },
                Headline {
                    machine: "mine, 2026-12-04".into(),
                    value: rate,
                    ..hello.clone()
                },
            ],
        };
        let verdicts = |side: &Side| -> Vec<Verdict> {
            judge_side(&book, side)
                .into_iter()
                .map(|j| j.verdict)
                .collect()
        };
        // Half the CPU per request here: about twice the book's rate.
        assert_eq!(
            verdicts(&mine(250.0, 95_000.0)),
            [Verdict::AsExpected, Verdict::AsExpected]
        );
        let judged = judge_side(&book, &mine(400.0, 50_000.0));
        assert!(matches!(judged[0].verdict, Verdict::Outside { off_pct, .. } if off_pct > 0.0));
        assert!(matches!(judged[1].verdict, Verdict::Outside { off_pct, .. } if off_pct < 0.0));
        let line = outside_line(&judged[1]).unwrap();
        assert!(
            line.starts_with("chapter 3 hello req/s: 50000 req/s is -33 % outside 75000 req/s–125000 req/s (CPU (hello))"),
            "{line}"
        );
        assert!(
            tally(&judged)
                .starts_with("0 as expected, 2 outside, 0 not judged (chance 0/1, CPU 0/1)")
        );
    }

    #[test]
    fn a_quick_run_is_not_put_beside_a_full_one() {
        let full = vec![headline("a", "p50", 2000.0, true)];
        let mut quick = vec![headline("b", "p50", 200.0, true)];
        assert_eq!(
            mixed_kinds(&[side("a", full.clone()), side("c", full.clone())]),
            None
        );
        quick[0].quick = true;
        let reason = mixed_kinds(&[side("a", full), side("b", quick)]).unwrap();
        assert!(
            reason.starts_with("b is from a quick run and a from a full one"),
            "{reason}"
        );
    }

    #[test]
    fn only_this_machines_records_are_exported() {
        let machine = |cpu: &str| Machine {
            cpu: cpu.into(),
            cores: 2,
            os: "linux".into(),
            rustc: "rustc".into(),
        };
        let record = |chapter, cpu: &str| ChapterRecord {
            chapter,
            machine: machine(cpu),
            measured_at: String::new(),
            command: String::new(),
            quick: false,
            experiments: vec![],
            limits: vec![],
            programs: vec![],
            wall_s: None,
        };
        let mut here = machine("mine");
        here.rustc = "a newer rustc".into();
        let (mine, others) = measured_on(
            vec![record(1, "book"), record(3, "mine"), record(4, "book")],
            &here,
        );
        assert_eq!(mine.iter().map(|r| r.chapter).collect::<Vec<_>>(), [3]);
        assert_eq!(others, [1, 4]);
    }
}
