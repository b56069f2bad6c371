//! What the reproduce run knows of a chapter: the one interface every
//! chapter file fills in. The run, the tests, the README's table and the
//! book's SUMMARY read chapters only through it.

use super::record::ChapterRecord;
pub use super::spec::{Example, Server};
use super::spec::{Experiment, Plan, Program};
use super::views::View;
use evt::sys::Limit;

/// One chapter of the book.
#[derive(Debug, Clone, Copy)]
pub struct Chapter {
    /// `None` for the pages around the chapters (Measuring).
    pub number: Option<u32>,
    pub title: &'static str,
    /// Its page in `book/`, or `None` while it is planned.
    pub page: Option<&'static str>,
    pub examples: &'static [Example],
    /// Its experiments, with every delay scaled by the argument (1.0 for real).
    pub experiments: fn(Plan) -> Vec<Experiment>,
    /// Its measuring programs (benchmarks that need no server), run after
    /// the experiments; the argument scales them as it does experiments.
    pub programs: fn(f64) -> Vec<Program>,
    /// Every table and chart its page shows, made from its record alone.
    pub views: fn(&ChapterRecord) -> Vec<View>,
    /// Facts of the machine its record keeps beside the measurements.
    pub facts: fn() -> Vec<Limit>,
    /// Why this machine cannot run the chapter (a kernel feature it lacks),
    /// or `None`: the run then skips it with that line and goes on.
    pub unavailable: fn() -> Option<String>,
}

fn no_experiments(_plan: Plan) -> Vec<Experiment> {
    Vec::new()
}

fn no_programs(_scale: f64) -> Vec<Program> {
    Vec::new()
}

fn no_views(_record: &ChapterRecord) -> Vec<View> {
    Vec::new()
}

fn no_facts() -> Vec<Limit> {
    Vec::new()
}

fn always_available() -> Option<String> {
    None
}

impl Chapter {
    /// A view file of this chapter: `chapterN_NAME`.
    pub fn file(&self, name: &str) -> String {
        format!("chapter{}_{name}", self.number.unwrap_or(0))
    }

    /// A chapter with a title and nothing else yet.
    pub const fn planned(number: u32, title: &'static str) -> Chapter {
        Chapter {
            number: Some(number),
            title,
            page: None,
            examples: &[],
            experiments: no_experiments,
            programs: no_programs,
            views: no_views,
            facts: no_facts,
            unavailable: always_available,
        }
    }

    /// A page around the chapters, with its examples and no experiments.
    pub const fn page(
        title: &'static str,
        page: &'static str,
        examples: &'static [Example],
    ) -> Chapter {
        Chapter {
            number: None,
            title,
            page: Some(page),
            examples,
            experiments: no_experiments,
            programs: no_programs,
            views: no_views,
            facts: no_facts,
            unavailable: always_available,
        }
    }

    /// `Chapter 3: One thread, an event loop`, or the title alone.
    pub fn heading(&self) -> String {
        match self.number {
            Some(number) => format!("Chapter {number}: {}", self.title),
            None => self.title.to_string(),
        }
    }
}
