//! The room's results: every machine in a workshop exports its headline
//! figures (`--export FILE`), and the instructor puts several side by side
//! (`--compare FILE...`): a table of every figure per machine, and a chart
//! of the figures that should match everywhere, the ones set by timers.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::charts;
use super::record::ChapterRecord;
use super::views::{Lines, add_point};
use evt::sys::Machine;

/// A figure is set by its timers, not by the machine's CPU, when the model
/// predicts its requests spend at least this long waiting.
const TIMER_BOUND_MS: f64 = 10.0;

/// One headline figure of one machine's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    pub chapter: u32,
    pub experiment: String,
    /// `req/s`, `p50` or `p99`.
    pub figure: String,
    pub value: f64,
    /// `req/s` or `ms`.
    pub unit: String,
    pub machine: String,
    /// Set by sleeps and timeouts (should match on any machine), not by CPU.
    pub timer_bound: bool,
    /// From a `--quick` run, whose delays are a tenth of a full run's.
    #[serde(default)]
    pub quick: bool,
}

/// Every experiment's first load: its rate, median and p99.
pub fn headlines(records: &[ChapterRecord]) -> Vec<Headline> {
    let mut out = Vec::new();
    for record in records {
        let machine = format!("{}, {}", record.machine.describe(), record.measured_at);
        for experiment in &record.experiments {
            let Some(load) = experiment.load() else {
                continue;
            };
            let timer_bound = load.predicted.p50_ms >= TIMER_BOUND_MS;
            let latency = &load.measured.latency_ms;
            for (figure, value, unit) in [
                ("req/s", Some(load.measured.rps), "req/s"),
                ("p50", latency.p50, "ms"),
                ("p99", latency.p99, "ms"),
            ] {
                if let Some(value) = value {
                    out.push(Headline {
                        chapter: record.chapter,
                        experiment: experiment.slug.clone(),
                        figure: figure.to_string(),
                        value,
                        unit: unit.to_string(),
                        machine: machine.clone(),
                        timer_bound,
                        quick: record.quick,
                    });
                }
            }
        }
    }
    out
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

/// Why several machines' files cannot go side by side, if they cannot: a
/// quick run's timer-bound figures are a tenth of a full run's.
pub fn mixed_kinds(machines: &[(String, Vec<Headline>)]) -> Option<String> {
    let kind = |headlines: &[Headline]| headlines.iter().any(|h| h.quick);
    let quick = machines.iter().find(|(_, h)| kind(h))?;
    let full = machines.iter().find(|(_, h)| !kind(h))?;
    Some(format!(
        "{} is from a quick run and {} from a full one: their delays differ tenfold; \
         compare runs of one kind",
        quick.0, full.0
    ))
}

/// Writes this machine's headlines to `file` as JSON.
pub fn export(records: &[ChapterRecord], file: &Path) -> Result<usize, String> {
    let rows = headlines(records);
    let json = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
    std::fs::write(file, json + "\n")
        .map_err(|error| format!("cannot write {}: {error}", file.display()))?;
    Ok(rows.len())
}

/// Reads the headlines of one exported file.
pub fn read(file: &Path) -> Result<Vec<Headline>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
    serde_json::from_str(&text).map_err(|error| {
        format!(
            "{} is not a file written by --export: {error}",
            file.display()
        )
    })
}

/// Several machines' headlines side by side: the Markdown table, and the
/// chart of the timer-bound figures (each machine's value over the first's).
pub fn compare(machines: &[(String, Vec<Headline>)]) -> (String, Option<String>) {
    type Key = (u32, String, String);
    let mut rows: BTreeMap<Key, (String, bool, Vec<Option<f64>>)> = BTreeMap::new();
    for (index, (_, headlines)) in machines.iter().enumerate() {
        for headline in headlines {
            let key = (
                headline.chapter,
                headline.experiment.clone(),
                headline.figure.clone(),
            );
            let row = rows.entry(key).or_insert_with(|| {
                (
                    headline.unit.clone(),
                    headline.timer_bound,
                    vec![None; machines.len()],
                )
            });
            row.2[index] = Some(headline.value);
        }
    }
    let mut out = String::from("| chapter | experiment | figure | set by |");
    for (name, _) in machines {
        let _ = write!(out, " {name} |");
    }
    out.push_str("\n|--:|---|---|---|");
    out.push_str(&"--:|".repeat(machines.len()));
    out.push('\n');
    let mut lines = Lines::new();
    let mut shown = 0usize;
    for ((chapter, experiment, figure), (unit, timer_bound, values)) in &rows {
        let _ = write!(
            out,
            "| {chapter} | {experiment} | {figure} | {} |",
            if *timer_bound {
                "timers"
            } else {
                "the machine"
            }
        );
        for value in values {
            match value {
                Some(v) if unit == "ms" => {
                    let _ = write!(out, " {v:.1} ms |");
                }
                Some(v) if *v < 10.0 => {
                    let _ = write!(out, " {v:.2} |");
                }
                Some(v) => {
                    let _ = write!(out, " {v:.0} |");
                }
                None => out.push_str(" — |"),
            }
        }
        out.push('\n');
        if *timer_bound
            && figure == "p50"
            && let Some(Some(first)) = values.first()
            && *first > 0.0
        {
            shown += 1;
            for ((name, _), value) in machines.iter().zip(values) {
                if let Some(value) = value {
                    add_point(&mut lines, name, (shown as f64, value / first));
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "\n\"Set by timers\": the model says the requests mostly wait on sleeps, so the \
         figure should match on every machine; the others depend on the machine's CPU."
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
/// `out`, written to `file`. The book's own records (measured elsewhere) are
/// left out, and named in one note line on stderr.
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
    let rows = export(&records, file)?;
    Ok(format!(
        "wrote {rows} headline figures to {}",
        file.display()
    ))
}

/// `--compare FILE...`: several machines' exported headlines, side by side,
/// written to `out`.
pub fn compare_files(files: &[std::path::PathBuf], out: &Path) -> Result<String, String> {
    let mut machines = Vec::new();
    for file in files {
        let headlines = read(file)?;
        let name = file.file_stem().map_or_else(
            || file.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        machines.push((name, headlines));
    }
    if let Some(reason) = mixed_kinds(&machines) {
        return Err(reason);
    }
    let (table, chart) = compare(&machines);
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
    Ok(format!(
        "compared {} machines: {}",
        machines.len(),
        out.join("compare.md").display()
    ))
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
        }
    }

    #[test]
    fn two_machines_side_by_side() {
        let a = vec![
            headline("a", "p50", 2000.0, true),
            headline("a", "req/s", 12.4, true),
        ];
        let b = vec![headline("b", "p50", 2004.0, true)];
        let (table, chart) = compare(&[("laptop".into(), a), ("desktop".into(), b)]);
        assert!(table.contains("| laptop | desktop |"), "{table}");
        assert!(table.contains("| 3 | five_sleeps | p50 | timers | 2000.0 ms | 2004.0 ms |"));
        // A figure one machine lacks is a dash, not a zero.
        assert!(
            table.contains("| 3 | five_sleeps | req/s | timers | 12 | — |"),
            "{table}"
        );
        assert!(chart.is_some_and(|svg| svg.starts_with("<svg")));
    }

    #[test]
    fn a_quick_run_is_not_put_beside_a_full_one() {
        let full = vec![headline("a", "p50", 2000.0, true)];
        let mut quick = vec![headline("b", "p50", 200.0, true)];
        assert_eq!(
            mixed_kinds(&[("a".into(), full.clone()), ("c".into(), full.clone())]),
            None
        );
        quick[0].quick = true;
        let reason = mixed_kinds(&[("a".into(), full), ("b".into(), quick)]).unwrap();
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
