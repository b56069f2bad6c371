//! Figures one chapter reads from another's record, by type: a chapter makes
//! a [`Figure`] for each of its experiments another table reads (the
//! decision table, say), and lists them, so a test finds each among the
//! experiments the chapter plans. A renamed experiment then fails that
//! test, instead of leaving a table to say "not measured yet".

use std::fmt;

use super::record::{ChapterRecord, ExperimentRecord, LoadOutcome, ProgramRecord};

/// One experiment (or measuring program) of one chapter that another
/// chapter's view reads. Only the chapter that runs it makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    pub chapter: u32,
    pub slug: String,
    /// A measuring program's slug prefix (the rounds of one program), not
    /// an experiment's.
    pub program: bool,
}

/// Why a figure could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The chapter has no record here: it has not been run.
    NotRun { chapter: u32 },
    /// The record has no such experiment (measured before it was added, or
    /// renamed since).
    NoExperiment { chapter: u32, slug: String },
    /// The experiment ran, but this figure was not measured.
    NoValue { chapter: u32, slug: String },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::NotRun { chapter } => write!(
                f,
                "not measured yet: `cargo run --release -- --chapter {chapter}`"
            ),
            Missing::NoExperiment { chapter, slug } => write!(
                f,
                "chapter {chapter}'s record has no `{slug}`: run the chapter again (`cargo run --release -- --chapter {chapter}`)"
            ),
            Missing::NoValue { chapter, slug } => {
                write!(f, "chapter {chapter}'s `{slug}` measured no such figure")
            }
        }
    }
}

impl Figure {
    /// An experiment of `chapter`.
    pub fn experiment(chapter: u32, slug: impl Into<String>) -> Figure {
        Figure {
            chapter,
            slug: slug.into(),
            program: false,
        }
    }

    /// Every run of a measuring program of `chapter` whose slug starts so.
    pub fn programs(chapter: u32, prefix: impl Into<String>) -> Figure {
        Figure {
            chapter,
            slug: prefix.into(),
            program: true,
        }
    }

    fn record<'a>(&self, records: &'a [ChapterRecord]) -> Result<&'a ChapterRecord, Missing> {
        records
            .iter()
            .find(|r| r.chapter == self.chapter)
            .ok_or(Missing::NotRun {
                chapter: self.chapter,
            })
    }

    fn no_value(&self) -> Missing {
        Missing::NoValue {
            chapter: self.chapter,
            slug: self.slug.clone(),
        }
    }

    /// The experiment's record.
    pub fn read<'a>(&self, records: &'a [ChapterRecord]) -> Result<&'a ExperimentRecord, Missing> {
        self.record(records)?
            .experiments
            .iter()
            .find(|e| e.slug == self.slug)
            .ok_or_else(|| Missing::NoExperiment {
                chapter: self.chapter,
                slug: self.slug.clone(),
            })
    }

    /// The program runs' records (at least one).
    pub fn runs<'a>(
        &self,
        records: &'a [ChapterRecord],
    ) -> Result<Vec<&'a ProgramRecord>, Missing> {
        let runs: Vec<&ProgramRecord> = self
            .record(records)?
            .programs
            .iter()
            .filter(|p| p.slug.starts_with(&self.slug))
            .collect();
        if runs.is_empty() {
            return Err(Missing::NoExperiment {
                chapter: self.chapter,
                slug: self.slug.clone(),
            });
        }
        Ok(runs)
    }

    /// Its first load.
    pub fn load<'a>(&self, records: &'a [ChapterRecord]) -> Result<&'a LoadOutcome, Missing> {
        self.read(records)?.load().ok_or_else(|| self.no_value())
    }

    /// Its first load's measured rate.
    pub fn rps(&self, records: &[ChapterRecord]) -> Result<f64, Missing> {
        Ok(self.load(records)?.measured.rps)
    }

    /// Its first load's p99.
    pub fn p99_ms(&self, records: &[ChapterRecord]) -> Result<f64, Missing> {
        self.load(records)?
            .measured
            .latency_ms
            .p99
            .ok_or_else(|| self.no_value())
    }

    /// Its first load's slowest answer.
    pub fn max_ms(&self, records: &[ChapterRecord]) -> Result<f64, Missing> {
        self.load(records)?
            .measured
            .latency_ms
            .max
            .ok_or_else(|| self.no_value())
    }

    /// A value computed from the experiment, missing when `value` is None.
    pub fn value<T>(
        &self,
        records: &[ChapterRecord],
        value: impl FnOnce(&ExperimentRecord) -> Option<T>,
    ) -> Result<T, Missing> {
        value(self.read(records)?).ok_or_else(|| self.no_value())
    }

    /// Whether `chapter`'s plan has this figure's experiment or program.
    pub fn is_planned(
        &self,
        experiments: &[super::spec::Experiment],
        programs: &[super::spec::Program],
    ) -> bool {
        if self.program {
            programs
                .iter()
                .any(|p| p.chapter == self.chapter && p.slug.starts_with(&self.slug))
        } else {
            experiments
                .iter()
                .any(|e| e.chapter == self.chapter && e.slug == self.slug)
        }
    }
}
