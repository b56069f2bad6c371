//! Chapter 11's scaling rows run three times each (at one worker and at
//! every core), round after round so a slow minute of the machine falls on
//! every model alike; and work stealing's one worker with the idle cores
//! kept busy, to test why a request costs less CPU at two workers than at
//! one.

use std::fmt::Write;
use std::time::Duration;

use super::{cpu_us, interrupts_per_request, scaling_servers, work_load};
use crate::reproduce::record::{ChapterRecord, ExperimentRecord, Group};
use crate::reproduce::spec::{Experiment, Plan, Spinner};
use crate::reproduce::views::{self, stamp, thousands};

/// The group of the repeated rows (the first round is the scaling group).
pub const GROUP: &str = "trials";

/// How many times each repeated row runs, the scaling table's own included.
pub const TRIALS: usize = 3;

/// The rows with the idle cores kept busy: slug part, label, spinner.
const FILLED: [(&str, &str, Spinner); 2] = [
    (
        "nice",
        "work stealing, 1 worker, other cores busy at nice 19",
        Spinner::Nice,
    ),
    (
        "idle",
        "work stealing, 1 worker, other cores busy at SCHED_IDLE",
        Spinner::Idle,
    ),
];

pub fn experiments(plan: Plan, run: Duration) -> Vec<Experiment> {
    let mut out = Vec::new();
    for trial in 1..=TRIALS {
        if trial > 1 {
            for (name, line, n, server) in scaling_servers(plan.cores) {
                if n > plan.cores {
                    continue;
                }
                let label = server.model.clone();
                out.push(
                    Experiment::new(
                        format!("scaling_{name}_trial{trial}"),
                        format!("{label}, /work: trial {trial}"),
                        server,
                        vec![work_load(run)],
                    )
                    .in_group(Group::new(GROUP, label).at(n as f64).on_line(line))
                    .trial_of(format!("scaling_{name}")),
                );
            }
        }
        for (slug, label, spinner) in FILLED {
            let (_, line, _, mut server) = scaling_servers(plan.cores)
                .into_iter()
                .find(|(name, ..)| name == "steal_1")
                .expect("work stealing at one worker is a scaling row");
            server.model = label.to_string();
            out.push(
                Experiment::new(
                    format!("filled_{slug}_steal_1_trial{trial}"),
                    format!("{label}, /work: trial {trial}"),
                    server,
                    vec![work_load(run)],
                )
                .with_idle_cores_filled(spinner)
                .in_group(Group::new(GROUP, label).at(1.0).on_line(line))
                .trial_of(format!("filled_{slug}_steal_1")),
            );
        }
    }
    out
}

/// The median, and the range as "low–high".
fn spread(mut values: Vec<f64>, show: impl Fn(f64) -> String) -> String {
    if values.is_empty() {
        return "—".into();
    }
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    if values.len() == 1 {
        return show(median);
    }
    format!(
        "**{}** ({}–{})",
        show(median),
        show(values[0]),
        show(values[values.len() - 1])
    )
}

/// The repeated rows: each model's trials (the scaling table's run and the
/// repeats), their median and range; then the row with the idle cores
/// kept busy.
pub fn table(
    record: &ChapterRecord,
    scaling: &[&ExperimentRecord],
    trials: &[&ExperimentRecord],
) -> String {
    // The models first, in the order they ran; the spinners' rows last.
    let mut labels: Vec<&str> = Vec::new();
    for experiment in trials {
        let label = views::row_label(experiment);
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    let spinner = |label: &str| FILLED.iter().any(|(_, l, _)| *l == label);
    labels.sort_by_key(|label| spinner(label));
    let mut out = String::from(
        "| server | trials | req/s | server CPU per request | server's cores used | server's involuntary switches per request | interrupts between cores per request | idle cores |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for label in labels {
        let runs: Vec<&ExperimentRecord> = scaling
            .iter()
            .chain(trials)
            .filter(|e| views::row_label(e) == label)
            .copied()
            .collect();
        let of = |value: fn(&ExperimentRecord) -> Option<f64>| -> Vec<f64> {
            runs.iter().filter_map(|e| value(e)).collect()
        };
        let two = |v: f64| format!("{v:.2}");
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {} | {} |",
            runs.len(),
            spread(of(|e| e.load().map(|l| l.measured.rps)), |v| thousands(
                v.round() as u64
            )),
            spread(of(cpu_us), |v| format!("{v:.0} µs")),
            spread(of(server_cores), two),
            spread(of(involuntary_per_request), two),
            spread(of(interrupts_per_request), two),
            spread(of(|e| e.cpu.map(|c| c.cores(c.idle_ms))), two),
        );
    }
    let _ = writeln!(
        out,
        "\nEach model's runs alternate with the others', round after round; bold is the median, the range in brackets. Cores used and idle are CPU time over the run's wall time; involuntary switches are the server's threads' (the scheduler took the core away); interrupts between cores are the machine's rescheduling and function-call interrupts (`/proc/interrupts`). For the last two rows, one spinner per core but one runs beside the server: `{}`, or `{}`.\n",
        Spinner::Nice.shell(),
        Spinner::Idle.shell(),
    );
    out.push_str(&stamp(record));
    out
}

/// The cores' worth of CPU time the server used over the run.
fn server_cores(experiment: &ExperimentRecord) -> Option<f64> {
    let cpu = experiment.cpu?;
    Some(cpu.cores(experiment.samples.as_ref()?.cpu_ms))
}

/// The server's involuntary context switches per completed request.
fn involuntary_per_request(experiment: &ExperimentRecord) -> Option<f64> {
    let switches = experiment.samples.as_ref()?.context_switches?;
    let completed = experiment.load()?.measured.requests.completed;
    (completed > 0).then(|| switches.involuntary as f64 / completed as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_is_the_median_and_the_range() {
        let show = |v: f64| format!("{v:.0}");
        assert_eq!(spread(vec![3.0, 1.0, 2.0], show), "**2** (1–3)");
        assert_eq!(spread(vec![5.0], show), "5");
        assert_eq!(spread(Vec::new(), show), "—");
    }

    #[test]
    fn every_row_at_one_worker_and_every_core_runs_three_times_in_rounds() {
        let plan = Plan {
            scale: 1.0,
            cores: 2,
        };
        let out = experiments(plan, Duration::from_secs(4));
        // Two more rounds of the ten rows at 1 and 2 workers (no 4), and
        // three runs of each spinner's row.
        assert_eq!(out.len(), 2 * 10 + 2 * 3);
        let filled: Vec<_> = out.iter().filter(|e| e.fill_idle_cores.is_some()).collect();
        assert_eq!(filled.len(), 2 * TRIALS);
        assert!(out.iter().all(|e| !e.slug.contains("_4")));
        // Round 2 ends with its filled run before round 3 starts.
        let first_trial3 = out.iter().position(|e| e.slug.ends_with("trial3")).unwrap();
        assert_eq!(out[first_trial3 - 1].slug, "filled_idle_steal_1_trial2");
    }
}
