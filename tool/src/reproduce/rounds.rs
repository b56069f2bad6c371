//! Servers measured in rounds, each in turn (so a noisy moment of the
//! machine falls on one round of one server), read back: the median, the
//! server's CPU per request, a table's rows per server.

use super::record::ExperimentRecord;
use super::views;

/// The median, or `None` of nothing.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

/// Server CPU per completed request, µs (None if unsampled or under a tick).
pub fn cpu_us(experiment: &ExperimentRecord) -> Option<f64> {
    let samples = experiment.samples.as_ref()?;
    let completed = experiment.load()?.measured.requests.completed;
    (samples.cpu_ms > 0 && completed > 0).then(|| samples.cpu_ms as f64 * 1000.0 / completed as f64)
}

/// Per server (in the order first seen): its rows.
pub fn by_series<'a>(members: &[&'a ExperimentRecord]) -> Vec<(String, Vec<&'a ExperimentRecord>)> {
    let mut out: Vec<(String, Vec<&ExperimentRecord>)> = Vec::new();
    for experiment in members {
        let series = views::row_label(experiment).to_string();
        match out.iter_mut().find(|(name, _)| *name == series) {
            Some((_, rows)) => rows.push(experiment),
            None => out.push((series, vec![experiment])),
        }
    }
    out
}

/// The median CPU per request of the rows of `series`.
pub fn median_cpu(members: &[&ExperimentRecord], series: &str) -> Option<f64> {
    median(
        members
            .iter()
            .filter(|e| views::row_label(e) == series)
            .filter_map(|e| cpu_us(e))
            .collect(),
    )
}
