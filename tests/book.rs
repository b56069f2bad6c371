//! The book builds with mdbook 0.5, every `{{#include}}` resolves to running
//! source or to a file the reproduce run wrote, and those files come from a
//! full run.

use std::path::{Path, PathBuf};

use evt::generated::{ChapterRecord, read_chapters};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

#[test]
fn the_book_builds_with_every_include_expanded() {
    let mut book = mdbook_driver::MDBook::load(root()).expect("book.toml and book/SUMMARY.md load");
    let out = std::env::temp_dir().join(format!("evt-book-{}", std::process::id()));
    book.config.build.build_dir = out.clone();
    book.build().expect("mdbook builds the book");
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
    read_chapters(&root().join("book/generated"))
}

#[test]
fn the_books_numbers_come_from_a_full_reproduce_run() {
    let records = generated();
    let chapters: Vec<u32> = records.iter().map(|r| r.chapter).collect();
    assert_eq!(
        chapters,
        evt::chapters::measured(),
        "a record for every chapter"
    );
    for record in &records {
        assert!(
            !record.quick,
            "chapter {}: committed from a --quick run",
            record.chapter
        );
        assert!(!record.machine.cpu.is_empty() && record.machine.cores > 0);
        assert_eq!(record.command, evt::generated::command_for(record.chapter));
        let planned: Vec<String> = evt::experiments::chapter(record.chapter, 1.0)
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
                assert_eq!(counts.sent, load.requests);
                if !experiment.failures_expected {
                    assert_eq!(
                        counts.failed, 0,
                        "{} {}: failures in the book's run",
                        experiment.slug, load.path
                    );
                }
                // The book prints the command that ran, flag for flag.
                assert!(
                    load.command.starts_with("cargo run --release --example ")
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

#[test]
fn the_tables_are_views_of_the_records() {
    // Re-render every table from the JSON records: the committed Markdown must
    // be exactly what the records say, so no number was edited by hand.
    let dir = root().join("book/generated");
    for record in generated() {
        for experiment in &record.experiments {
            let path = dir.join(format!("chapter{}_{}.md", record.chapter, experiment.slug));
            let committed = std::fs::read_to_string(&path).unwrap();
            let rendered = format!(
                "{}\n{}",
                evt::generated::experiment_table(experiment),
                evt::generated::stamp(&record)
            );
            assert_eq!(
                committed,
                rendered,
                "{} differs from its record",
                path.display()
            );
        }
    }
    let all = generated();
    for record in &all {
        for experiment in &record.experiments {
            let path = dir.join(format!(
                "chapter{}_{}_timeline.svg",
                record.chapter, experiment.slug
            ));
            let chart = evt::generated::timeline_chart(record, experiment);
            assert_eq!(
                chart,
                std::fs::read_to_string(&path).ok(),
                "{}",
                path.display()
            );
            let path = dir.join(format!(
                "chapter{}_{}_lag.svg",
                record.chapter, experiment.slug
            ));
            let chart = evt::generated::lag_chart(record, experiment);
            assert_eq!(
                chart,
                std::fs::read_to_string(&path).ok(),
                "{}",
                path.display()
            );
        }
        for (name, members) in evt::generated::groups(record) {
            let path = dir.join(format!("chapter{}_{name}.md", record.chapter));
            assert_eq!(
                Some(evt::generated::group_table(record, &members)),
                std::fs::read_to_string(&path).ok(),
                "{}",
                path.display()
            );
            let path = dir.join(format!("chapter{}_{name}.svg", record.chapter));
            assert_eq!(
                evt::generated::sweep_chart(record, &name, &members),
                std::fs::read_to_string(&path).ok(),
                "{}",
                path.display()
            );
        }
    }
    for seed in ["000", "001", "002"] {
        let committed = std::fs::read_to_string(dir.join(format!("seed{seed}.md"))).unwrap();
        assert_eq!(
            Some(committed),
            evt::generated::seed_comparison(seed, &all),
            "seed{seed}.md"
        );
    }
    assert!(Path::new(&dir.join("load_help.txt")).is_file());
    assert_eq!(
        std::fs::read_to_string(dir.join("littles_law.md")).ok(),
        evt::generated::littles_law(&all),
        "littles_law.md"
    );
}

#[test]
fn the_summary_and_the_readme_come_from_the_chapter_registry() {
    let summary = std::fs::read_to_string(root().join("book/SUMMARY.md")).unwrap();
    assert_eq!(summary, evt::chapters::summary(), "book/SUMMARY.md");
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&evt::chapters::readme_table()),
        "README.md's table of examples differs from src/chapters.rs; it should read:\n{}",
        evt::chapters::readme_table()
    );
    for chapter in evt::chapters::ALL {
        if let Some(page) = chapter.page {
            assert!(root().join("book").join(page).is_file(), "{page}");
        }
        for example in chapter.examples {
            assert!(
                root()
                    .join("examples")
                    .join(format!("{}.rs", example.name))
                    .is_file(),
                "{}",
                example.name
            );
        }
    }
}
