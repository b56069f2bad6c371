//! Chapter 11, all the cores: a route that needs CPU (`/work`), served by
//! one loop, by work-stealing threads, by a loop per core, by a process per
//! core and by a blocking pool, at one and at every core; the utilization
//! law beside each; a heavy client among light ones; how the connections
//! spread over the workers.

mod figures;
mod heavy;
mod trials;
pub use figures::{Scaling, figures_read, imbalance, scaling};

use std::fmt::Write;
use std::time::Duration;

use super::chapter::{Chapter, Example};
use super::chapter2;
use super::chapter3;
use super::charts;
use super::model::Capacity;
use super::record::{ChapterRecord, ExperimentRecord, Group};
use super::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use super::views::{self, Lines, View, add_point, format_opt_ms, stamp, thousands};
use evt::defaults;
use evt::report::WorkersReport;

pub const CORES: Example = Example::server(
    "chapter11_cores",
    "the book's server on every core: work stealing, a loop per core (SO_REUSEPORT), or a process per core",
    defaults::CHAPTER11_CORES_PORT,
    Capacity::Unlimited,
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter11_cores.md"),
    examples: &[CORES],
    experiments,
    views,
    ..Chapter::planned(11, "All the cores")
};

/// The slug of the rows whose connections close after every request.
const CHURN: &str = "churn_processes";

/// CPU per request of the scaling runs, in µs.
const WORK_US: u64 = 200;

/// The worker counts measured on a machine with `cores`: doubling from one
/// up to the cores, the cores, and twice the cores (more threads than
/// cores). On the book's two cores: 1, 2, 4.
fn counts(cores: usize) -> Vec<usize> {
    let cores = cores.max(1);
    let mut out: Vec<usize> = std::iter::successors(Some(1), |n| Some(n * 2))
        .take_while(|&n| n < cores)
        .collect();
    out.push(cores);
    out.push(cores * 2);
    out
}

/// A server of the scaling table: file-name part, chart line, started as.
pub(super) fn scaling_servers(cores: usize) -> Vec<(String, &'static str, usize, ServerUnderTest)> {
    let mut out = vec![(
        "current".to_string(),
        "one loop (chapter 3)",
        1,
        ServerUnderTest::of(&chapter3::ASYNC).with_args(&[], "chapter 3: one current-thread loop"),
    )];
    for (model, line) in [
        ("steal", "work stealing"),
        ("per-core", "a loop per core"),
        ("processes", "a process per core"),
    ] {
        for n in counts(cores) {
            let workers = n.to_string();
            out.push((
                format!("{}_{n}", model.replace('-', "_")),
                line,
                n,
                ServerUnderTest::of(&CORES).with_args(
                    &["--model", model, "--workers", &workers],
                    &format!("{line}, {n} worker{}", if n == 1 { "" } else { "s" }),
                ),
            ));
        }
    }
    // The process per core again, each worker taking only its fair share of
    // the connections.
    for n in counts(cores).into_iter().skip(1) {
        let workers = n.to_string();
        out.push((
            format!("processes_fair_{n}"),
            "a process per core, fair accept",
            n,
            ServerUnderTest::of(&CORES).with_args(
                &[
                    "--model",
                    "processes",
                    "--fair-accept",
                    "--workers",
                    &workers,
                ],
                &format!("a process per core, fair accept, {n} workers"),
            ),
        ));
    }
    for threads in counts(cores) {
        let t = threads.to_string();
        out.push((
            format!("pool_{threads}"),
            "a blocking pool (chapter 2)",
            threads,
            ServerUnderTest::of(&chapter2::THREADS)
                .with_args(
                    &["--workers", "1", "--threads", &t],
                    &format!(
                        "chapter 2's pool, {threads} thread{}",
                        if threads == 1 { "" } else { "s" }
                    ),
                )
                .with_capacity(Capacity::Limited(threads)),
        ));
    }
    out
}

/// The scaling rows' load: 50 connections asking for `/work` for `run`.
pub(super) fn work_load(run: Duration) -> LoadSpec {
    let mut load = LoadSpec::new(
        format!("/work?us={WORK_US}"),
        (5_000.0 * run.as_secs_f64()) as u64,
        50,
        Duration::from_micros(WORK_US),
    );
    load.duration = Some(run);
    load
}

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    // 4 s a load (5 s for the held connections) keeps the chapter within a
    // workshop's three minutes.
    let run = scaled(4_000, scale);
    let mut experiments = Vec::new();
    for (name, line, n, server) in scaling_servers(plan.cores) {
        let load = work_load(run);
        let label = server.model.clone();
        let mut experiment = Experiment::new(
            format!("scaling_{name}"),
            format!("{label}, /work?us={WORK_US}"),
            server,
            vec![load],
        )
        .in_group(Group::new("scaling", label).at(n as f64).on_line(line));
        if !name.starts_with("current") {
            experiment = experiment.with_report();
        }
        experiments.push(experiment);
    }
    // The rows at one worker and at every core twice more, round after
    // round, and one worker with the idle cores kept busy.
    experiments.extend(trials::experiments(plan, run));
    // Fair accept again, where connections close all the time (a new one
    // for every request): can a worker end up past its share?
    for fair in [false, true] {
        let workers = plan.cores.max(2).to_string();
        let mut args = vec!["--model", "processes", "--workers", &workers];
        let mut label = format!("a process per core, {workers} workers, a connection per request");
        if fair {
            args.push("--fair-accept");
            label = format!(
                "a process per core, fair accept, {workers} workers, a connection per request"
            );
        }
        let mut load = work_load(run);
        load.no_keepalive = true;
        experiments.push(
            Experiment::new(
                format!("{CHURN}{}", if fair { "_fair" } else { "" }),
                format!("{label}, /work?us={WORK_US}"),
                ServerUnderTest::of(&CORES).with_args(&args, &label),
                vec![load],
            )
            .with_report()
            .in_group(Group::new("churn", label)),
        );
    }
    // One worker again, with the load client kept on a CPU of its own and
    // the server on another (where the machine has two).
    for (name, line, n, server) in scaling_servers(plan.cores) {
        if n != 1 || name.starts_with("current") || name.starts_with("pool") {
            continue;
        }
        let load = work_load(run);
        let label = format!("{line}, 1 worker, pinned");
        let mut server = server;
        server.model.clone_from(&label);
        experiments.push(
            Experiment::new(
                format!("pinned_{name}"),
                format!("{label}, /work?us={WORK_US}"),
                server,
                vec![load],
            )
            .pinned(1)
            .with_report()
            .in_group(Group::new("pinned", label)),
        );
    }
    // The same servers on hello, up to the cores: here the load
    // client needs about as much CPU as the server.
    for (name, line, n, server) in scaling_servers(plan.cores) {
        if n > plan.cores.max(2) || name.contains("fair") {
            continue;
        }
        let mut load = LoadSpec::new(
            "/".into(),
            (20_000.0 * run.as_secs_f64()) as u64,
            50,
            Duration::ZERO,
        );
        load.duration = Some(run);
        let label = server.model.clone();
        experiments.push(
            Experiment::new(
                format!("hello_{name}"),
                format!("{label}, hello"),
                server,
                vec![load],
            )
            .in_group(Group::new("hello", label).at(n as f64).on_line(line)),
        );
    }
    experiments.extend(heavy::experiments(plan));
    // What each model holds for a thousand connections, each with a 1 s
    // request always in flight (chapter 8's measure).
    let delay = scaled(1000, scale);
    let duration = scaled(5_000, scale);
    let every_core = plan.cores.max(2).to_string();
    let mut held: Vec<super::held::HeldServer> = vec![(
        "current",
        "one loop (chapter 3)",
        ServerUnderTest::of(&chapter3::ASYNC).with_args(&[], "chapter 3: one current-thread loop"),
    )];
    for (name, model, line) in [
        ("steal", "steal", "work stealing"),
        ("per_core", "per-core", "a loop per core"),
        ("processes", "processes", "a process per core"),
    ] {
        held.push((
            name,
            line,
            ServerUnderTest::of(&CORES).with_args(
                &["--model", model, "--workers", &every_core],
                &format!("{line}, {every_core} workers"),
            ),
        ));
    }
    for server in held {
        experiments.push(super::held::held_connections(
            server, 1000, delay, duration, None,
        ));
    }
    experiments
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let chapter = record.chapter;
    let file = |name: &str| format!("chapter{chapter}_{name}");
    let mut out = Vec::new();
    let scaling = views::group(record, "scaling");
    if !scaling.is_empty() {
        out.push(View::new(
            file("scaling.md"),
            scaling_table(record, &scaling),
        ));
        if let Some(svg) = scaling_chart(record, &scaling) {
            out.push(View::new(file("scaling.svg"), svg));
        }
        let mut balance = scaling.clone();
        balance.extend(views::group(record, "churn"));
        out.push(View::new(
            file("balance.md"),
            balance_table(record, &balance),
        ));
    }
    let trials = views::group(record, trials::GROUP);
    if !trials.is_empty() {
        out.push(View::new(
            file("trials.md"),
            trials::table(record, &scaling, &trials),
        ));
    }
    let pinned = views::group(record, "pinned");
    if !pinned.is_empty() {
        out.push(View::new(file("pinned.md"), scaling_table(record, &pinned)));
    }
    let hello = views::group(record, "hello");
    if !hello.is_empty() {
        out.push(View::new(file("hello.md"), scaling_table(record, &hello)));
    }
    let held = views::group(record, "held_busy");
    if !held.is_empty() {
        out.push(View::new(
            file("held_busy.md"),
            super::held::cost_table(record, &held),
        ));
    }
    let imbalance = views::group(record, "imbalance");
    if !imbalance.is_empty() {
        out.push(View::new(
            file("imbalance.md"),
            heavy::table(record, &imbalance),
        ));
    }
    out
}

/// Server CPU per completed request, µs.
pub(super) use super::rounds::cpu_us;

/// The threads that run requests: what `/report` says, else the row's x.
fn threads_serving(experiment: &ExperimentRecord) -> usize {
    match experiment.report::<WorkersReport>() {
        Some(report) => report.threads_per_worker * report.workers.len(),
        None => experiment.group.as_ref().and_then(|g| g.x).unwrap_or(1.0) as usize,
    }
}

/// The server's voluntary context switches (a thread went to sleep waiting
/// for work) per completed request.
fn switches_per_request(experiment: &ExperimentRecord) -> Option<f64> {
    let switches = experiment.samples.as_ref()?.context_switches?;
    let completed = experiment.load()?.measured.requests.completed;
    (completed > 0).then(|| switches.voluntary as f64 / completed as f64)
}

/// Interrupts between cores (machine-wide) per completed request.
pub(super) fn interrupts_per_request(experiment: &ExperimentRecord) -> Option<f64> {
    let interrupts = experiment.samples.as_ref()?.cross_core_interrupts?;
    let completed = experiment.load()?.measured.requests.completed;
    (completed > 0).then(|| interrupts as f64 / completed as f64)
}

/// The cores the load client used while this row ran (None: not measured).
fn client_cores(experiment: &ExperimentRecord) -> Option<f64> {
    experiment.cpu.map(|cpu| cpu.cores(cpu.client_ms))
}

/// Cores' worth of time over the run: the server's, the client's, and what
/// was idle or taken by the hypervisor.
fn cores_used(experiment: &ExperimentRecord) -> Option<String> {
    let cpu = experiment.cpu?;
    let server = experiment.samples.as_ref()?.cpu_ms;
    let mut out = format!(
        "{:.2} / {:.2} / {:.2}",
        cpu.cores(server),
        cpu.cores(cpu.client_ms),
        cpu.cores(cpu.idle_ms)
    );
    if cpu.steal_ms > 0 {
        let _ = write!(out, " (+{:.2} stolen)", cpu.cores(cpu.steal_ms));
    }
    Some(out)
}

/// What one worker of the same model costs a request (CPU, µs): the
/// figure the prediction for more workers starts from.
fn one_worker_cpu_us(members: &[&ExperimentRecord], series: &str) -> Option<f64> {
    members
        .iter()
        .find(|e| {
            e.group
                .as_ref()
                .is_some_and(|g| g.series.as_deref() == Some(series) && g.x == Some(1.0))
        })
        .and_then(|e| cpu_us(e))
}

/// The rate predicted for `experiment` before it ran, from its model's
/// one-worker CPU per request: min(threads, cores − the client's share) ÷ D₁.
fn predicted_from_one(
    experiment: &ExperimentRecord,
    members: &[&ExperimentRecord],
    cores: usize,
) -> Option<f64> {
    let series = experiment.group.as_ref()?.series.as_deref()?;
    let one = one_worker_cpu_us(members, series)?;
    let free = cores as f64 - client_cores(experiment).unwrap_or(0.0);
    Some((threads_serving(experiment) as f64).min(free) / (one / 1e6))
}

fn scaling_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let cores = record.machine.cores;
    let mut out = String::from(
        "| server | threads serving | **req/s** | predicted from 1 worker: min(threads, cores − client) ÷ its CPU | req/s ÷ predicted | server CPU per request | cores used: server / client / idle | server's voluntary context switches per request | interrupts between cores per request | p99 | max |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let predicted = predicted_from_one(experiment, members, cores);
        let _ = writeln!(
            out,
            "| {} | {} | **{}** | {} | {} | {} | {} | {} | {} | {} | {} |",
            views::row_label(experiment),
            threads_serving(experiment),
            thousands(load.measured.rps.round() as u64),
            views::or_dash(predicted, |b| thousands(b.round() as u64)),
            views::or_dash(predicted, |b| format!(
                "{:.0} %",
                100.0 * load.measured.rps / b
            )),
            views::or_dash(cpu_us(experiment), |us| format!("{us:.0} µs")),
            views::or_dash(cores_used(experiment), |s| s),
            views::or_dash(switches_per_request(experiment), |s| format!("{s:.2}")),
            views::or_dash(interrupts_per_request(experiment), |s| format!("{s:.2}")),
            format_opt_ms(load.measured.latency_ms.p99),
            format_opt_ms(load.measured.latency_ms.max),
        );
    }
    let _ = writeln!(
        out,
        "\nThe machine has {cores} cores, shared by the server and the load client (this process, with its sampler); cores used is CPU time over the run's wall time, from `/proc`; interrupts between cores are the machine's rescheduling and function-call interrupts (`/proc/interrupts`), mostly one thread waking another that waits on another core. Each row: the server, then the load:\n"
    );
    out.push_str(&views::row_commands(members));
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

fn scaling_chart(record: &ChapterRecord, members: &[&ExperimentRecord]) -> Option<String> {
    let mut lines = Lines::new();
    // Each line's prediction from its one-worker row, drawn faint beside it.
    let mut law_line = Lines::new();
    for experiment in members {
        let (Some(load), Some(group)) = (experiment.load(), &experiment.group) else {
            continue;
        };
        if let (Some(series), Some(x)) = (&group.series, group.x) {
            add_point(&mut lines, series, (x, load.measured.rps));
            if let Some(bound) = predicted_from_one(experiment, members, record.machine.cores) {
                add_point(&mut law_line, series, (x, bound));
            }
        }
    }
    let top = lines
        .iter()
        .chain(&law_line)
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    charts::lines_svg(
        &format!(
            "Chapter {}: requests/s of /work?us={WORK_US} against threads",
            record.chapter
        ),
        "threads serving requests",
        "requests/s",
        &lines,
        &law_line,
        charts::Legend::UpperLeft,
        Some(0.0..top * 1.6),
    )
}

fn balance_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| server | connections accepted, per worker | most held at once, per worker | most past its fair share after an accept, per worker | share checks (1 ms apart), per worker | requests answered, per worker |\n|---|---|---|---|---|---|\n",
    );
    for experiment in members {
        let Some(report) = experiment.report::<WorkersReport>() else {
            continue;
        };
        if report.workers.len() < 2 {
            continue;
        }
        let list = |value: fn(&evt::report::WorkerCounts) -> u64| {
            report
                .workers
                .iter()
                .map(|w| thousands(value(w)))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            views::row_label(experiment),
            list(|w| w.accepted),
            list(|w| w.most_open),
            list(|w| w.most_over_share),
            list(|w| w.share_checks),
            list(|w| w.requests),
        );
    }
    out.push_str(
        "\nA worker's fair share is the connections open at that moment over the workers, rounded up; each accept compares the worker's own count with it. A worker with fair accept that does not hold less than its share (of the open connections plus the next one) waits and looks again a millisecond later: each look is a share check.\n",
    );
    let churn: Vec<&ExperimentRecord> = members
        .iter()
        .filter(|e| e.slug.starts_with(CHURN))
        .copied()
        .collect();
    if !churn.is_empty() {
        out.push_str("\nThe last rows' load opens a new connection for every request:\n\n");
        out.push_str(&views::row_commands(&churn));
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_counts_double_up_to_the_cores_then_go_past_them() {
        assert_eq!(counts(1), [1, 2]);
        assert_eq!(counts(2), [1, 2, 4]);
        assert_eq!(counts(6), [1, 2, 4, 6, 12]);
        assert_eq!(counts(8), [1, 2, 4, 8, 16]);
    }
}
