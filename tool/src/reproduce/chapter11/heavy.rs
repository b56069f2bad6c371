//! Chapter 11's heavy client among light ones: one connection always asking
//! for 5 ms of CPU while light requests arrive at a steady rate, on every
//! model at every core; work stealing also with its two settings that
//! decide where a woken task runs (no LIFO slot, eager driver hand-off).

use std::fmt::Write;
use std::time::Duration;

use super::CORES;
use crate::reproduce::record::{ChapterRecord, ExperimentRecord, Group};
use crate::reproduce::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use crate::reproduce::views::{self, format_opt_ms, stamp, thousands};
use evt::report::WorkersReport;

/// Light requests a second: over a 12 s run, 6,000 of them, so the p99 is
/// the 60th slowest rather than the 20th of a 4 s run.
const LIGHT_RATE: f64 = 500.0;

/// The models, with their file-name part, row label and flags.
const MODELS: [(&str, &str, &[&str]); 6] = [
    ("steal", "work stealing", &["--model", "steal"]),
    (
        "steal_no_lifo",
        "work stealing, no LIFO slot",
        &["--model", "steal", "--no-lifo-slot"],
    ),
    (
        "steal_eager",
        "work stealing, eager driver hand-off",
        &["--model", "steal", "--eager-driver-handoff"],
    ),
    ("per_core", "a loop per core", &["--model", "per-core"]),
    ("processes", "a process per core", &["--model", "processes"]),
    (
        "processes_fair",
        "a process per core, fair accept",
        &["--model", "processes", "--fair-accept"],
    ),
];

pub fn experiments(plan: Plan) -> Vec<Experiment> {
    let run = scaled(12_000, plan.scale);
    // Every core (two at least), as a server would be run.
    let workers = plan.cores.max(2).to_string();
    let mut out = Vec::new();
    for (name, line, flags) in MODELS {
        let mut args = flags.to_vec();
        args.extend(["--workers", &workers]);
        let server =
            ServerUnderTest::of(&CORES).with_args(&args, &format!("{line}, {workers} workers"));
        let mut heavy = LoadSpec::new(
            "/work?us=5000".into(),
            (200.0 * run.as_secs_f64()) as u64,
            1,
            Duration::from_millis(5),
        );
        heavy.duration = Some(run);
        let mut light = LoadSpec::new(
            "/work?us=50".into(),
            (LIGHT_RATE * run.as_secs_f64()) as u64,
            50,
            Duration::from_micros(50),
        );
        light.duration = Some(run);
        light.rate = Some(LIGHT_RATE);
        out.push(
            Experiment::new(
                format!("imbalance_{name}"),
                format!("{line}: one heavy connection among light ones"),
                server,
                vec![light, heavy],
            )
            .with_report()
            .in_group(Group::new("imbalance", line)),
        );
    }
    out
}

fn per_worker(report: &WorkersReport, value: fn(&evt::report::WorkerCounts) -> u64) -> String {
    report
        .workers
        .iter()
        .map(|w| thousands(value(w)))
        .collect::<Vec<_>>()
        .join(" / ")
}

pub fn table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| server | light: answered | light: p50 | **light: p99** | light: max | heavy: answered req/s | connections accepted, per worker (50 light + 1 heavy) | requests answered, per worker | tasks stolen, per thread | CPU the hypervisor took |\n\
         |---|--:|--:|--:|--:|--:|---|---|---|--:|\n",
    );
    for experiment in members {
        let (Some(light), Some(heavy)) = (experiment.loads.first(), experiment.loads.get(1)) else {
            continue;
        };
        let report = experiment.report::<WorkersReport>();
        let accepted = views::or_dash(report.as_ref(), |report| {
            if report.workers.len() < 2 {
                "one runtime: any thread".to_string()
            } else {
                per_worker(report, |w| w.accepted)
            }
        });
        let answered = views::or_dash(report.as_ref().filter(|r| r.workers.len() > 1), |r| {
            per_worker(r, |w| w.requests)
        });
        let stolen = views::or_dash(report.as_ref().filter(|r| !r.steals.is_empty()), |r| {
            r.steals
                .iter()
                .map(|&n| thousands(n))
                .collect::<Vec<_>>()
                .join(" / ")
        });
        let hypervisor = views::or_dash(experiment.cpu, |cpu| {
            let busy = cpu.busy_ms + cpu.steal_ms;
            format!(
                "{} of {} ms ({:.0} %)",
                thousands(cpu.steal_ms),
                thousands(busy),
                100.0 * cpu.steal_ms as f64 / busy.max(1) as f64
            )
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} |",
            views::row_label(experiment),
            thousands(light.measured.requests.completed),
            format_opt_ms(light.measured.latency_ms.p50),
            format_opt_ms(light.measured.latency_ms.p99),
            format_opt_ms(light.measured.latency_ms.max),
            thousands(heavy.measured.rps.round() as u64),
            accepted,
            answered,
            stolen,
            hypervisor,
        );
    }
    out.push_str(
        "\nThe p99 of the light requests is the slowest 1 % of those answered. Tasks stolen come from tokio's runtime metrics (its unstable API, which this book builds with); CPU the hypervisor took is the machine's `steal` time in `/proc/stat` beside its busy time, while the loads ran.\n",
    );
    if let Some(experiment) = members.first() {
        let _ = writeln!(
            out,
            "\nThe two loads, started together (in two terminals, by hand):\n"
        );
        for load in &experiment.loads {
            let _ = writeln!(out, "- `{}`", load.command);
        }
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}
