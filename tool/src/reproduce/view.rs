//! A view, the file a page includes, and the few things every table needs
//! from a record: its stamp, its experiments by slug or group, a row's
//! label. The bottom of the views: it builds on the records alone.

use super::record::{ChapterRecord, ExperimentRecord};

/// One file the book includes: its name in `book/generated/` and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub name: String,
    pub text: String,
}

impl View {
    pub fn new(name: String, text: String) -> View {
        View { name, text }
    }
}

/// The command a reader runs to redo one chapter's numbers.
pub fn command_for(chapter: u32) -> String {
    format!("cargo run --release -- --chapter {chapter}")
}

/// The line under every table: machine, date, command.
pub fn stamp(record: &ChapterRecord) -> String {
    format!(
        "*Measured on {} ({}), {}, by `{}`.*\n",
        record.machine.describe(),
        record.machine.rustc,
        record.measured_at,
        record.command
    )
}

/// The experiment with this slug in the record.
pub fn find<'a>(record: &'a ChapterRecord, slug: &str) -> Option<&'a ExperimentRecord> {
    record.experiments.iter().find(|e| e.slug == slug)
}

/// The rows of the table `name`, in the order the record has them.
pub fn group<'a>(record: &'a ChapterRecord, name: &str) -> Vec<&'a ExperimentRecord> {
    record
        .experiments
        .iter()
        .filter(|e| e.group.as_ref().is_some_and(|g| g.name == name))
        .collect()
}

/// What an experiment is called as a row of its group's table (its title
/// when it is in no group).
pub fn row_label(experiment: &ExperimentRecord) -> &str {
    experiment
        .group
        .as_ref()
        .map_or(experiment.title.as_str(), |group| group.label.as_str())
}
