//! The reproduce side: what `cargo run --release` measures and writes for the
//! book. No example imports anything here.
//!
//! Dependencies point one way: [`ALL`] lists the chapters; each chapter file
//! (`chapterN.rs`) holds that chapter's experiments, seed data, model extras
//! and views; they build on the generic parts, which name no chapter:
//! [`chapter`] (the interface a chapter fills in), [`spec`] (an experiment as
//! data), [`run`] (running one: [`harness`] starts servers, [`sample`] watches
//! them), [`record`] (what was measured), [`views`] and [`charts`] (tables
//! and SVG from records), [`model`] (predictions); and those on the lesson
//! side's `load` and `sys`. [`seeds`] holds the seed write-ups' shapes that
//! several chapters redo.
//!
//! Adding a chapter: its example(s), its `chapterN.rs`, one line in [`ALL`],
//! its page in `book/`.

pub mod calibrate;
pub mod chapter;
pub mod charts;
pub mod columns;
pub mod figure;
pub mod format;
pub mod harness;
pub mod headline;
pub mod held;
pub mod judge;
pub mod model;
pub mod peers;
pub mod progress;
pub mod record;
pub mod reproducing;
pub mod room;
pub mod rounds;
pub mod run;
pub mod run_times;
pub mod runner;
pub mod sample;
pub mod seeds;
pub mod slow;
pub mod spec;
pub mod strace;
pub mod view;
pub mod views;

pub mod chapter1;
pub mod chapter10;
pub mod chapter11;
pub mod chapter12;
pub mod chapter13;
pub mod chapter14;
pub mod chapter2;
pub mod chapter3;
pub mod chapter4;
pub mod chapter5;
pub mod chapter6;
pub mod chapter7;
pub mod chapter8;
pub mod chapter9;
pub mod measuring;

pub use chapter::{Chapter, Example, Server};

use record::ChapterRecord;
use views::View;

/// The whole book, in reading order.
pub const ALL: &[Chapter] = &[
    measuring::PAGE,
    chapter1::CHAPTER,
    chapter2::CHAPTER,
    chapter3::CHAPTER,
    chapter4::CHAPTER,
    chapter5::CHAPTER,
    chapter6::CHAPTER,
    chapter7::CHAPTER,
    chapter8::CHAPTER,
    chapter9::CHAPTER,
    chapter10::CHAPTER,
    chapter11::CHAPTER,
    chapter12::CHAPTER,
    chapter13::CHAPTER,
    chapter14::CHAPTER,
    Chapter::page(
        "Appendix: inside the load client",
        "appendix_load_client.md",
        &[],
    ),
    Chapter::page("Appendix: running a workshop", "appendix_workshop.md", &[]),
    Chapter::page(
        "Appendix: reproducing the book's numbers",
        "appendix_reproducing.md",
        &[],
    ),
];

/// The numbers of the chapters that measure something, in order.
pub fn measured() -> Vec<u32> {
    ALL.iter()
        .filter(|chapter| {
            !(chapter.experiments)(spec::Plan::here(1.0)).is_empty()
                || !(chapter.programs)(1.0).is_empty()
        })
        .filter_map(|chapter| chapter.number)
        .collect()
}

/// The chapter numbered `number`.
pub fn find(number: u32) -> Option<&'static Chapter> {
    ALL.iter().find(|chapter| chapter.number == Some(number))
}

/// A chapter's experiments; `scale` shrinks every delay (`--quick` uses 0.1).
/// Each is stamped with the chapter's number here: a chapter never types it.
pub fn experiments(number: u32, plan: spec::Plan) -> Vec<spec::Experiment> {
    let mut experiments = find(number).map_or_else(Vec::new, |chapter| (chapter.experiments)(plan));
    for experiment in &mut experiments {
        experiment.chapter = number;
    }
    experiments
}

/// A chapter's measuring programs, scaled as its experiments are.
pub fn programs(number: u32, scale: f64) -> Vec<spec::Program> {
    let mut programs = find(number).map_or_else(Vec::new, |chapter| (chapter.programs)(scale));
    for program in &mut programs {
        program.chapter = number;
    }
    programs
}

/// Every example, in the book's order.
pub fn examples() -> impl Iterator<Item = (&'static Chapter, &'static Example)> {
    ALL.iter().flat_map(|chapter| {
        chapter
            .examples
            .iter()
            .map(move |example| (chapter, example))
    })
}

/// Every server example.
pub fn servers() -> impl Iterator<Item = (&'static Example, Server)> {
    examples().filter_map(|(_, example)| example.server.map(|server| (example, server)))
}

/// Every server example of the book's own, peers from other languages left
/// out: each keeps the book's contract (the route table, the flags, one
/// line for a bad input).
pub fn book_servers() -> impl Iterator<Item = (&'static Example, Server)> {
    servers().filter(|(example, _)| !example.peer)
}

/// Every server example of the book's own this machine can run: a chapter
/// it cannot run (a kernel feature it lacks) is left out with one line on
/// stderr saying why.
pub fn servers_here() -> impl Iterator<Item = (&'static Example, Server)> {
    examples().filter_map(|(chapter, example)| {
        let server = example.server.filter(|_| !example.peer)?;
        if let Some(why) = (chapter.unavailable)().or_else(|| example.why_unavailable()) {
            eprintln!("{} left out here: {why}", example.name);
            return None;
        }
        Some((example, server))
    })
}

/// Every figure one chapter reads from another's record (the decision
/// table's), as the chapters that measure them make them.
pub fn figures_read(plan: spec::Plan) -> Vec<figure::Figure> {
    let mut figures = chapter8::figures_read(plan);
    figures.extend(chapter9::figures_read(plan));
    figures.extend(chapter11::figures_read(plan));
    figures.extend(chapter12::figures_read(plan));
    figures.extend(chapter13::figures_read(plan));
    figures.extend(chapter14::figures_read(plan));
    figures
}

/// Every view of the book: each chapter's, from its own record, and the
/// seed comparisons across chapters.
pub fn all_views(records: &[ChapterRecord]) -> Vec<View> {
    let mut views: Vec<View> = records
        .iter()
        .flat_map(|record| find(record.chapter).map_or_else(Vec::new, |c| (c.views)(record)))
        .collect();
    views.extend(seeds::comparisons(records));
    views.extend(chapter12::decision_table(records));
    views.extend(run_times::table(records));
    views
}

/// The README's table of examples.
pub fn readme_table() -> String {
    let mut out =
        String::from("| chapter | example | what it is | default port |\n|---|---|---|---|\n");
    for (chapter, example) in examples() {
        let chapter = chapter.number.map_or_else(
            || chapter.title.split(':').next().unwrap_or("").to_string(),
            |n| n.to_string(),
        );
        let port = example
            .server
            .map_or_else(|| "—".to_string(), |server| server.default_port.to_string());
        out.push_str(&format!(
            "| {chapter} | `{}` | {} | {port} |\n",
            example.name, example.what
        ));
    }
    out
}

/// The book's `SUMMARY.md`: written chapters as links, planned ones as drafts.
pub fn summary() -> String {
    let mut out = String::from("# Summary\n\n[Introduction](introduction.md)\n\n");
    for chapter in ALL {
        match chapter.page {
            Some(page) => out.push_str(&format!("- [{}]({page})\n", chapter.heading())),
            None => out.push_str(&format!("- [{} (planned)]()\n", chapter.heading())),
        }
    }
    out
}

/// Rewrites `book/SUMMARY.md` and the README's table of examples (the lines
/// from its head row to the first line after it that is not a row) from
/// [`ALL`].
pub fn write_contents(root: &std::path::Path) -> Result<String, String> {
    let write = |path: std::path::PathBuf, text: String| {
        std::fs::write(&path, text)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))
    };
    write(root.join("book/SUMMARY.md"), summary())?;
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .map_err(|error| format!("cannot read {}: {error}", readme_path.display()))?;
    write(readme_path, with_readme_table(&readme)?)?;
    Ok("wrote book/SUMMARY.md and README.md's table of examples".to_string())
}

/// `readme` with its table of examples replaced by [`readme_table`].
pub fn with_readme_table(readme: &str) -> Result<String, String> {
    let head = readme_table();
    let head_row = head.lines().next().unwrap_or_default();
    let start = readme
        .find(head_row)
        .ok_or_else(|| format!("README.md has no table of examples (no line `{head_row}`)"))?;
    let rows: usize = readme[start..]
        .split_inclusive('\n')
        .take_while(|line| line.starts_with('|'))
        .map(str::len)
        .sum();
    Ok(format!(
        "{}{head}{}",
        &readme[..start],
        &readme[start + rows..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A renamed or removed experiment that another chapter's table reads
    /// fails here, on every machine size, before any record is made.
    #[test]
    fn every_figure_a_chapter_reads_from_another_is_planned() {
        for cores in [1, 2, 4, 16] {
            let plan = spec::Plan { scale: 1.0, cores };
            for figure in figures_read(plan) {
                let experiments = experiments(figure.chapter, plan);
                let programs = programs(figure.chapter, plan.scale);
                assert!(
                    figure.is_planned(&experiments, &programs),
                    "chapter {} plans no `{}` on {cores} cores, but another chapter reads it",
                    figure.chapter,
                    figure.slug
                );
            }
        }
        // Each experiment carries its chapter's number, stamped by the list.
        for chapter in measured() {
            let plan = spec::Plan {
                scale: 1.0,
                cores: 2,
            };
            assert!(
                experiments(chapter, plan)
                    .iter()
                    .all(|e| e.chapter == chapter)
            );
            assert!(programs(chapter, 1.0).iter().all(|p| p.chapter == chapter));
        }
        let renamed = figure::Figure::experiment(12, "hol_renamed");
        assert!(!renamed.is_planned(
            &experiments(
                12,
                spec::Plan {
                    scale: 1.0,
                    cores: 2
                }
            ),
            &[]
        ));
    }
}
