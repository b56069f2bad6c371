//! The book builds with mdbook 0.5, every `{{#include}}` resolves to running
//! source or to a file the reproduce run wrote, and those files come from a
//! full run.

use std::path::PathBuf;

use evt_book::reproduce::record::{ChapterRecord, read_all as read_chapters};
use evt_book::reproduce::views;

fn root() -> PathBuf {
    evt_book::root()
}

/// Every `{{#include path[:anchor]}}` in the book's Markdown: (page, path, anchor).
fn includes() -> Vec<(PathBuf, PathBuf, Option<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root().join("book")).unwrap().flatten() {
        let page = entry.path();
        if page.extension().is_none_or(|ext| ext != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&page).unwrap();
        for piece in text.split("{{#include ").skip(1) {
            let spec = piece.split("}}").next().unwrap().trim();
            let (path, anchor) = match spec.split_once(':') {
                Some((path, anchor)) => (path, Some(anchor.to_string())),
                None => (spec, None),
            };
            found.push((page.clone(), page.parent().unwrap().join(path), anchor));
        }
    }
    found
}

#[test]
fn every_include_names_a_file_and_an_anchor_that_exist() {
    let all = includes();
    assert!(
        all.len() >= 15,
        "the chapters include their code and tables"
    );
    for (page, path, anchor) in all {
        assert!(
            path.is_file(),
            "{}: no file {}",
            page.display(),
            path.display()
        );
        if let Some(anchor) = anchor.filter(|a| !a.chars().next().unwrap().is_ascii_digit()) {
            let source = std::fs::read_to_string(&path).unwrap();
            for marker in [format!("ANCHOR: {anchor}"), format!("ANCHOR_END: {anchor}")] {
                assert!(
                    source
                        .lines()
                        .any(|line| line.trim_end().ends_with(&marker)),
                    "{}: {} has no `{marker}`",
                    page.display(),
                    path.display()
                );
            }
        }
    }
}

#[test]
fn no_code_is_pasted_into_the_book() {
    // Rust in the book comes from the running sources: a ```rust block holds
    // nothing but an include.
    for (page, _, _) in includes() {
        let text = std::fs::read_to_string(&page).unwrap();
        for block in text.split("```rust").skip(1) {
            let body = block.split("```").next().unwrap();
            let lines: Vec<&str> = body
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .collect();
            assert!(
                lines
                    .iter()
                    .all(|line| line.trim().starts_with("{{#include")),
                "{}: a Rust block that is not an include: {lines:?}",
                page.display()
            );
        }
    }
}

/// Collects every warning (and error) mdbook reports while it builds.
#[derive(Default)]
struct Warnings(std::sync::Mutex<Vec<String>>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if let Ok(mut all) = self.0.lock() {
            all.push(format!("{}: {}", event.metadata().level(), message.0));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn the_book_builds_with_every_include_expanded_and_no_warning() {
    let mut book = mdbook_driver::MDBook::load(root()).expect("book.toml and book/SUMMARY.md load");
    let out = std::env::temp_dir().join(format!("evt-book-{}", std::process::id()));
    book.config.build.build_dir = out.clone();
    let warnings = std::sync::Arc::new(Warnings::default());
    tracing::subscriber::with_default(std::sync::Arc::clone(&warnings), || {
        book.build().expect("mdbook builds the book");
    });
    let warnings = warnings.0.lock().unwrap().clone();
    assert!(
        warnings.is_empty(),
        "mdbook warned:\n{}",
        warnings.join("\n")
    );
    for page in [
        "introduction",
        "measuring",
        "chapter1_blocking",
        "chapter3_async",
    ] {
        let html = std::fs::read_to_string(out.join(format!("{page}.html")))
            .unwrap_or_else(|error| panic!("{page}.html: {error}"));
        assert!(
            !html.contains("{{#include"),
            "{page}: an include was left unexpanded"
        );
        // The live lab belongs to `serve` alone: a static build has none of it.
        assert!(
            !html.contains("__lab"),
            "{page}: the static book has lab markup"
        );
    }
    let chapter1 = std::fs::read_to_string(out.join("chapter1_blocking.html")).unwrap();
    assert!(
        chapter1.contains("measured"),
        "chapter 1 shows its measured table"
    );
    assert!(
        chapter1.contains("std::thread::sleep"),
        "chapter 1 shows its code"
    );
    let _ = std::fs::remove_dir_all(out);
}

fn generated() -> Vec<ChapterRecord> {
    read_chapters(&root().join("book/generated")).unwrap()
}

#[test]
fn the_books_numbers_come_from_a_full_reproduce_run() {
    let records = generated();
    let chapters: Vec<u32> = records.iter().map(|r| r.chapter).collect();
    assert_eq!(
        chapters,
        evt_book::reproduce::measured(),
        "a record for every chapter"
    );
    for record in &records {
        assert!(
            !record.quick,
            "chapter {}: committed from a --quick run",
            record.chapter
        );
        assert!(!record.machine.cpu.is_empty() && record.machine.cores > 0);
        assert_eq!(record.command, views::command_for(record.chapter));
        let planned: Vec<String> = evt_book::reproduce::experiments(
            record.chapter,
            evt_book::reproduce::spec::Plan {
                scale: 1.0,
                cores: record.machine.cores,
            },
        )
        .into_iter()
        .map(|e| e.slug)
        .collect();
        let measured: Vec<String> = record.experiments.iter().map(|e| e.slug.clone()).collect();
        assert_eq!(
            measured, planned,
            "chapter {}: rerun it, its experiments changed",
            record.chapter
        );
        for experiment in &record.experiments {
            for load in &experiment.loads {
                let counts = load.measured.requests;
                assert_eq!(counts.sent, counts.completed + counts.failed);
                // Another tool's row (chapter 10): it ran as its users run
                // it, on the connections the record says; its own way of
                // ending a timed run (requests cut off) is its business.
                if let Some(tool) = ["ab ", "hey ", "wrk ", "oha "]
                    .iter()
                    .find(|tool| load.command.starts_with(**tool))
                {
                    assert!(
                        load.command.contains(&format!(" -c {} ", load.connections)),
                        "{tool}: {}",
                        load.command
                    );
                    continue;
                }
                match timed_for(&load.command) {
                    // A timed run sends what fits; it ran for its time and
                    // has a steady rate.
                    Some(seconds) => assert!(
                        load.measured.duration_s >= 0.95 * seconds,
                        "{}: ran {} s of {seconds} s",
                        experiment.slug,
                        load.measured.duration_s
                    ),
                    None => assert_eq!(counts.sent, load.requests, "{}", experiment.slug),
                }
                if !experiment.failures_expected {
                    assert_eq!(
                        counts.failed, 0,
                        "{} {}: failures in the book's run",
                        experiment.slug, load.path
                    );
                }
                // The book prints the command that ran, flag for flag (kept
                // on the CPUs the record names, where it was pinned).
                let command = match &experiment.pinned {
                    Some(pinning) => {
                        let cpus: Vec<String> =
                            pinning.client.iter().map(|c| c.to_string()).collect();
                        let prefix = format!("taskset -c {} ", cpus.join(","));
                        assert!(load.command.starts_with(&prefix), "{}", load.command);
                        &load.command[prefix.len()..]
                    }
                    None => load.command.as_str(),
                };
                assert!(
                    command.starts_with("cargo run --release --example ")
                        && (load
                            .command
                            .contains(&format!("-n {} -c {} ", load.requests, load.connections))
                            || load.command.contains(&format!(" -c {} ", load.connections))
                                && load.command.contains(" -z ")),
                    "{}",
                    load.command
                );
            }
        }
    }
}

/// The seconds of a timed load (`-z 20s`), from its command.
fn timed_for(command: &str) -> Option<f64> {
    let after = command.split(" -z ").nth(1)?;
    let duration = after.split_whitespace().next()?;
    Some(humantime::parse_duration(duration).ok()?.as_secs_f64())
}

#[test]
fn every_generated_file_is_a_view_of_the_records_that_a_page_shows() {
    // Re-render every view from the JSON records: the committed files must
    // be exactly what the records say, so no number was edited by hand; and
    // each is shown by some page, so nothing is kept that nobody reads.
    let dir = root().join("book/generated");
    let mut all = evt_book::reproduce::all_views(&generated());
    assert!(all.len() >= 40, "the chapters' tables and charts");
    // The reproducing appendix's, from the records, their calibrations and
    // the second run's export.
    let reproducing = evt_book::reproduce::reproducing::views(&generated(), &dir).unwrap();
    assert!(
        ["kinds", "chance", "calibration", "second", "one_core"]
            .iter()
            .all(|name| reproducing
                .iter()
                .any(|v| v.name == format!("reproducing_{name}.md"))),
        "the reproducing appendix's five tables"
    );
    all.extend(reproducing);
    // What pages show: their includes, and their pictures (`](generated/X.svg)`).
    let mut included: Vec<String> = includes()
        .iter()
        .filter_map(|(_, path, _)| Some(path.file_name()?.to_str()?.to_string()))
        .collect();
    for page in std::fs::read_dir(root().join("book")).unwrap().flatten() {
        let text = std::fs::read_to_string(page.path()).unwrap_or_default();
        for piece in text.split("](generated/").skip(1) {
            included.push(piece.split(')').next().unwrap_or("").to_string());
        }
    }
    for view in &all {
        let path = dir.join(&view.name);
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some(view.text.as_str()),
            "{} differs from its record: `cargo run --release -- --views-only` rewrites it",
            path.display()
        );
        assert!(
            included.contains(&view.name),
            "no page includes {}",
            view.name
        );
    }
    // The quick run's times: a view of the small record it keeps here.
    let quick = evt_book::reproduce::run_times::quick_table(&dir).expect("the quick run's times");
    assert_eq!(
        std::fs::read_to_string(dir.join(&quick.name))
            .ok()
            .as_deref(),
        Some(quick.text.as_str()),
        "{} differs from {}: `cargo run --release -- --views-only --quick` rewrites it",
        quick.name,
        evt_book::reproduce::run_times::QUICK_RECORD
    );
    assert!(
        included.contains(&quick.name),
        "no page includes {}",
        quick.name
    );
    // Besides the views: the records, the load client's --help, the benchmark.
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            all.iter().any(|view| view.name == name)
                || evt_book::reproduce::record::is_record(&path)
                || name == quick.name
                || name == evt_book::reproduce::run_times::QUICK_RECORD
                || name == "load_help.txt"
                || name == "load_client_bench.md"
                || name == evt_book::reproduce::calibrate::FILE
                || name == evt_book::reproduce::reproducing::SECOND_RUN
                || name == evt_book::reproduce::reproducing::ALL_CORES
                || name == evt_book::reproduce::reproducing::ONE_CORE,
            "{name} in book/generated is made by nothing"
        );
    }
    assert!(dir.join("load_help.txt").is_file());
}

#[test]
fn the_generated_files_stay_small() {
    let bytes: u64 = std::fs::read_dir(root().join("book/generated"))
        .unwrap()
        .flatten()
        .map(|entry| entry.metadata().unwrap().len())
        .sum();
    assert!(
        bytes < 10 * 1024 * 1024,
        "book/generated holds {bytes} bytes: keep timelines only where a view draws them"
    );
}

#[test]
fn the_summary_and_the_readme_come_from_the_chapter_registry() {
    let summary = std::fs::read_to_string(root().join("book/SUMMARY.md")).unwrap();
    assert_eq!(summary, evt_book::reproduce::summary(), "book/SUMMARY.md");
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&evt_book::reproduce::readme_table()),
        "README.md's table of examples differs from tool/src/reproduce/mod.rs; it should read:\n{}",
        evt_book::reproduce::readme_table()
    );
    for chapter in evt_book::reproduce::ALL {
        if let Some(page) = chapter.page {
            assert!(root().join("book").join(page).is_file(), "{page}");
        }
        for example in chapter.examples {
            // One file, or a folder with its main.rs.
            let examples = root().join("examples");
            assert!(
                examples.join(format!("{}.rs", example.name)).is_file()
                    || examples.join(example.name).join("main.rs").is_file(),
                "{}",
                example.name
            );
        }
    }
}

/// Numbers with a unit that prose may hold because no run measures them:
/// the experiments' inputs, constants of the code, the kernel and the
/// runtimes, the model's arithmetic on those inputs, and the seeds'
/// published figures. Anything measured comes from a generated include.
const NUMBERS_NOT_MEASURED: &[&str] = &[
    // The judging's tolerances (judge.rs: TIMER_TOLERANCE, CPU_TOLERANCE).
    "3 %",
    "25 %",
    // Inputs: the seeds' delays, the sleeper, upstream and sweep delays,
    // runs' lengths, holds, keep-alive, stacks, buffers, timeouts.
    "2 s",
    "10 s",
    // Chapter 12's queue timeout and slow clients' stay.
    "200 ms",
    "8 s",
    // The exercises' inputs and their tests' bounds.
    "25 ms",
    "0.9 s",
    "2 KiB",
    // A page of memory.
    "4 KiB",
    // Chapter 13's read buffers (monoio's handler reads 1 KiB at a time).
    "1 KiB",
    // Chapter 14's coroutine stacks (inputs: --stack-kib).
    "8 KiB",
    "32 KiB",
    "256 KiB",
    "250 ms",
    "100 ms",
    "0.5 s",
    "0.25 s",
    "0.1 s",
    "1 ms",
    "20 s",
    "3 s",
    "5 s",
    "12 s",
    "1 s",
    "30 s",
    "2 MiB",
    "64 KiB",
    "16 KiB",
    "20 ms",
    "10 ms",
    // Constants of the kernel, glibc, CPython, tokio and the histogram.
    "40 ms",
    "5 ms",
    "64 MiB",
    "1 µs",
    "0.1 %",
    "2 ms",
    // The model's arithmetic on the inputs.
    "4 s",
    "6 s",
    "9.5 s",
    "2.0 s",
    "2.5 s",
    "0.5 requests per second",
    "2.5 requests per second",
    "4 requests per second",
    "25 requests per second",
    "40 requests per second",
    "500 requests per second",
    "7.5 requests per second",
    "100 %",
    "5.2 s",
    "1 ×",
    "2 ×",
    "4 ×",
    "5 ×",
    "1,000 ×",
    // Chapter 9's trace request.
    "50 ms",
    // Chapter 10's pool: 4 threads ÷ 10 ms, ÷ 100 ms; half of it.
    "400 requests per second",
    "200 requests per second",
    // Chapter 10's offered loads.
    "0.5 ×",
    "0.9 ×",
    "1.2 ×",
    // The seeds' ab experiment: 400 ms requests.
    "400 ms",
    // Chapter 11's CPU route: 200 µs by default, 50 µs light requests.
    "200 µs",
    "50 µs",
    // tokio's scheduler post (October 2019), chapter 11's anchor.
    "152,259 requests per second",
    // wrk2's README (2014), chapter 10's anchor.
    "1.4 s",
    "2,000 requests per second",
    "1.27 s",
    "6 ms",
    "10.52 ms",
    "5.43 ms",
    // jimblandy/context-switch's published figures (2020), chapter 9's anchor.
    "1.7 µs",
    "0.2 µs",
    "17 µs",
    "0.3 µs",
    "9.5 KiB",
    "10 KiB",
    // Its brigade runs: threads, tokio tasks, threads pinned, a hop each.
    "5.31 µs",
    "3.59 µs",
    "3.42 µs",
    // The load client's threshold for saying a run overran its -z.
    "1 %",
    // A margin of the decision table's rules (chapter 12), stated as a choice.
    "15 %",
    // Chapter 12's limit, sized for a wait allowed before a slot frees.
    "60 ms",
    // The seeds' own figures (002: 2022; 004: 2017).
    "24.5 requests per second",
    "248 ms",
    "353 ms",
    "4.5 s",
    "8.7 s",
];

/// Every number with a unit in Markdown prose (code blocks, inline code and
/// includes left out).
fn numbers_in(text: &str) -> Vec<String> {
    let units = [
        "requests per second",
        "requests/s",
        "req/s",
        "ms",
        "µs",
        "s",
        "KiB",
        "MiB",
        "GiB",
        "KB",
        "MB",
        "GB",
        "%",
        "×",
    ];
    let mut prose = String::new();
    for (index, block) in text.split("```").enumerate() {
        if index % 2 == 0 {
            for (part, piece) in block.split('`').enumerate() {
                if part % 2 == 0 {
                    prose.push_str(piece);
                    prose.push(' ');
                }
            }
        }
    }
    let words: Vec<&str> = prose.split_whitespace().collect();
    let mut found = Vec::new();
    for (at, word) in words.iter().enumerate() {
        let number = word.trim_start_matches(['(', '~', '≈', '*']);
        let is_number = number.starts_with(|c: char| c.is_ascii_digit())
            && number
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == ',');
        if !is_number || word.contains("{{") {
            continue;
        }
        let number = number.trim_end_matches([',', '.']);
        let rest = words[at + 1..].join(" ");
        let unit = units.iter().find(|unit| {
            rest.strip_prefix(**unit)
                .is_some_and(|after| after.is_empty() || !after.starts_with(char::is_alphanumeric))
        });
        if let Some(unit) = unit {
            found.push(format!("{number} {unit}"));
        }
    }
    found
}

/// Every number with a unit in the book's pages: (page, number with its unit).
fn numbers_in_prose() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root().join("book")).unwrap().flatten() {
        let page = entry.path();
        if page.extension().is_none_or(|ext| ext != "md") {
            continue;
        }
        let name = page.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&page).unwrap();
        found.extend(numbers_in(&text).into_iter().map(|n| (name.clone(), n)));
    }
    found
}

#[test]
fn every_number_in_prose_is_an_input_a_constant_or_a_citation() {
    let typed: Vec<String> = numbers_in_prose()
        .into_iter()
        .filter(|(_, number)| !NUMBERS_NOT_MEASURED.contains(&number.as_str()))
        .map(|(page, number)| format!("{page}: {number}"))
        .collect();
    assert!(
        typed.is_empty(),
        "numbers in prose that look measured; show them from a generated view \
         (or, for an input or a constant, add them to NUMBERS_NOT_MEASURED):\n{}",
        typed.join("\n")
    );
}

#[test]
fn the_number_check_finds_typed_numbers_and_skips_code() {
    let page = "It took 2.003 s (13.6 KiB each), at 24.95 req/s; `-z 10s` and\n\
                ```text\n1.5 ms\n```\nnot 3 threads.";
    assert_eq!(numbers_in(page), ["2.003 s", "13.6 KiB", "24.95 req/s"]);
}

#[test]
fn every_chapter_asks_for_predictions_has_an_exercise_and_notes_for_an_instructor() {
    for chapter in evt_book::reproduce::ALL
        .iter()
        .filter(|chapter| chapter.number.is_some())
    {
        let page = chapter.page.expect("every numbered chapter has a page");
        let text = std::fs::read_to_string(root().join("book").join(page)).unwrap();
        let prompts = text.matches("> **Predict.**").count();
        // Collapsed answers: every collapsed block but notes and solutions.
        let answers = text.matches("<details><summary>").count()
            - text.matches("<summary>Instructor notes</summary>").count()
            - text.matches("<summary>Solution</summary>").count();
        assert!(prompts >= 1, "{page}: no prediction prompt");
        // Every prompt is answered after the measurement, collapsed.
        assert!(
            answers >= prompts,
            "{page}: {prompts} prompts, {answers} answers"
        );
        assert_eq!(
            text.matches("<details><summary>Instructor notes</summary>")
                .count(),
            1,
            "{page}: instructor notes"
        );
        // Every collapsed block is closed.
        assert_eq!(
            text.matches("<details>").count(),
            text.matches("</details>").count(),
            "{page}"
        );
        // At least one exercise, and each has its solution collapsed, shown
        // from the running sources (which tests/exercises.rs checks).
        let exercises: Vec<&str> = text.split("\n## Exercise").skip(1).collect();
        assert!(!exercises.is_empty(), "{page}: no exercise");
        for exercise in exercises {
            let section = exercise.split("\n## ").next().unwrap_or_default();
            let title = section.lines().next().unwrap_or_default();
            let solution = section
                .split("<details><summary>Solution</summary>")
                .nth(1)
                .unwrap_or_else(|| panic!("{page}: exercise{title} has no collapsed solution"));
            assert!(
                solution.contains("{{#include ../examples/"),
                "{page}: exercise{title}: the solution shows no running code"
            );
        }
    }
}

/// Every figure the decision table shows is in the book's own records: a
/// figure whose experiment was renamed, or not measured, fails here.
#[test]
fn the_decision_table_finds_every_figure_in_the_books_records() {
    let records = read_chapters(&root().join("book/generated")).unwrap();
    let missing = evt_book::reproduce::chapter12::decision::missing(&records);
    assert!(missing.is_empty(), "{missing:?}");
    // Without chapter 8's record, its two rows (idle and busy connections)
    // say how to measure them.
    let without: Vec<ChapterRecord> = records.into_iter().filter(|r| r.chapter != 8).collect();
    let missing = evt_book::reproduce::chapter12::decision::missing(&without);
    assert_eq!(
        missing,
        vec![evt_book::reproduce::figure::Missing::NotRun { chapter: 8 }; 2]
    );
}

/// The decision table's verdicts come from rules over the figures: on the
/// book's records every row holds, and a machine whose figures break a rule
/// is told so in that row, not shown the book's choice as if it held.
#[test]
fn the_decision_table_says_when_a_machine_disagrees() {
    use evt_book::reproduce::chapter12::decision::{FILE, decision_table, verdicts};
    let records = read_chapters(&root().join("book/generated")).unwrap();
    for verdict in verdicts(&records).into_iter().flatten() {
        let verdict = verdict.expect("every figure is in the book's records");
        assert!(verdict.holds, "the book's own machine breaks: {verdict:?}");
    }
    let table = decision_table(&records).unwrap();
    assert!(!table.text.contains("disagrees:"), "{}", table.text);
    // A machine where the slow clients hurt the loop as much as the pool.
    let mut slow_loop = records.clone();
    let twelve = slow_loop.iter_mut().find(|r| r.chapter == 12).unwrap();
    let probe = twelve
        .experiments
        .iter_mut()
        .find(|e| e.slug == "slow_loop")
        .unwrap();
    for load in &mut probe.loads {
        load.measured.latency_ms.max = Some(60_000.0);
    }
    let table = decision_table(&slow_loop).unwrap();
    assert_eq!(table.name, FILE);
    let row = table
        .text
        .lines()
        .find(|line| line.contains("send slowly"))
        .unwrap();
    assert!(row.contains("this machine disagrees"), "{row}");
    // The other rows still hold.
    assert_eq!(table.text.matches("this machine disagrees").count(), 1);
}
