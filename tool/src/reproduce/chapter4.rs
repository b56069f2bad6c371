//! Chapter 4, blocking inside the loop: seed 000's five sleeps and seed
//! 002's `-n 50 -c 10` for every handler (tokio's sleep, a blocking sleep,
//! spawn_blocking, CPU work) on one loop thread and on two; seed 001 on a
//! blocked loop; the loop's lag as its probe saw it.

use super::chapter::{Chapter, Example};
use super::charts;
use super::judge::{Probe, SetBy};
use super::model::Capacity;
use super::record::{ChapterRecord, ExperimentRecord, Group};
use super::seeds::{five_sleeps, sleeper_then_activer};
use super::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use super::views::{self, Column, View, format_ms, or_dash, row_label};
use evt::defaults;
use evt::report::LagReport;

pub const BLOCKING: Example = Example::server(
    "chapter4_blocking",
    "chapter 3's server with the wait blocking, moved off the loop, or spent on CPU; a lag probe",
    defaults::CHAPTER4_BLOCKING_PORT,
    Capacity::Unlimited,
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter4_blocking.md"),
    examples: &[BLOCKING],
    experiments,
    views,
    ..Chapter::planned(4, "Blocking inside the loop")
};

/// Chapter 4's handlers and runtimes: flags, in words, and the capacity the
/// model gives them (`None`: every request at once).
const SETUPS: [(&str, &[&str], &str, Option<usize>); 8] = [
    (
        "tokio_current",
        &["--handler", "tokio-sleep"],
        "tokio::time::sleep, current-thread",
        None,
    ),
    (
        "std_current",
        &["--handler", "std-sleep"],
        "std::thread::sleep, current-thread",
        Some(1),
    ),
    (
        "blocking_current",
        &["--handler", "spawn-blocking"],
        "spawn_blocking, current-thread",
        None,
    ),
    (
        "cpu_current",
        &["--handler", "cpu"],
        "CPU work, current-thread",
        Some(1),
    ),
    (
        "tokio_multi",
        &[
            "--handler",
            "tokio-sleep",
            "--runtime",
            "multi",
            "--worker-threads",
            "2",
        ],
        "tokio::time::sleep, 2 worker threads",
        None,
    ),
    (
        "std_multi",
        &[
            "--handler",
            "std-sleep",
            "--runtime",
            "multi",
            "--worker-threads",
            "2",
        ],
        "std::thread::sleep, 2 worker threads",
        Some(2),
    ),
    (
        "blocking_multi",
        &[
            "--handler",
            "spawn-blocking",
            "--runtime",
            "multi",
            "--worker-threads",
            "2",
        ],
        "spawn_blocking, 2 worker threads",
        None,
    ),
    (
        "cpu_multi",
        &[
            "--handler",
            "cpu",
            "--runtime",
            "multi",
            "--worker-threads",
            "2",
        ],
        "CPU work, 2 worker threads",
        Some(2),
    ),
];

/// What seed 002 measured (`hey -n 50 -c 10`, 250 ms) for the setups that
/// match one of chapter 4's: Flask's `async def` view on gunicorn's one sync
/// worker (the blocking sleep on one loop thread), and Quart on hypercorn's
/// one worker (a sleep the loop awaits). By the row's slug.
const SEED_002_ASYNC: [(&str, f64); 2] = [
    ("fifty_std_current", 3.9445),
    ("fifty_tokio_current", 33.7972),
];

/// Chapter 4's experiments: seed 000's five 2 s requests and seed 002's
/// `-n 50 -c 10` at 250 ms for every handler on both runtimes, and seed
/// 001's sleeper and activer on a blocked loop. Every server reports the
/// lag its probe saw.
fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let delay = scaled(250, scale);
    let mut experiments = Vec::new();
    for (name, flags, in_words, capacity) in SETUPS {
        let server = || {
            ServerUnderTest::of(&BLOCKING)
                .with_args(flags, in_words)
                .with_capacity(capacity.map_or(Capacity::Unlimited, Capacity::Limited))
        };
        let mut five = five_sleeps(server(), scale)
            .with_report()
            .in_group(Group::new("five_sleeps", in_words));
        five.slug = format!("five_{name}");
        experiments.push(five);
        let mut load = LoadSpec::sleeps(50, 10, delay);
        load.fixed_share = true;
        let fifty = Experiment::new(
            format!("fifty_{name}"),
            format!(
                "{in_words}, `-n 50 -c 10` at {}",
                format_ms(delay.as_secs_f64() * 1000.0)
            ),
            server(),
            vec![load],
        )
        .of_seed("002")
        .with_report()
        .in_group(Group::new("fifty", in_words));
        // Blocking handlers on two workers: which tasks share a blocked
        // worker is chance, and the median moves with it.
        experiments.push(match name {
            "std_multi" => fifty
                .set_by(SetBy::Chance)
                .repeated(3)
                .latencies_within_the_model()
                .varies_because("which tasks share a blocked worker thread is chance"),
            // CPU time, not a sleep: its wall time is as long as the cores
            // free to run it make it.
            "cpu_multi" => fifty
                .set_by(SetBy::Cpu(Probe::Work))
                .varies_because("each request is 250 ms of CPU: how long it takes on the wall depends on the cores free to run it"),
            _ => fifty,
        });
    }
    let blocked = sleeper_then_activer(
        ServerUnderTest::of(&BLOCKING)
            .with_args(
                &["--handler", "std-sleep"],
                "std::thread::sleep, current-thread",
            )
            .with_capacity(Capacity::Limited(1)),
        scale,
    );
    experiments.push(blocked.with_report().with_timeline());
    experiments
}

/// The most the loop's lag probe saw.
fn max_lag_ms(experiment: &ExperimentRecord) -> Option<f64> {
    Some(experiment.report::<LagReport>()?.max_lag_ms)
}

/// The loop-lag chart of an experiment: the probe's samples put on the
/// run's clock (seconds since the first request was sent), from just before
/// the run to just after it, as `chapter4_SLUG_lag.svg`.
fn lag_chart(record: &ChapterRecord, slug: &str) -> Option<View> {
    let experiment = views::find(record, slug)?;
    let report: LagReport = experiment.report()?;
    let fetched_s = experiment.report_at_s?;
    // Where the probe's clock started, on the run's clock.
    let probe_start_s = fetched_s - report.now_ms / 1000.0;
    let end_s = experiment
        .loads
        .iter()
        .map(|load| load.start_after_s + load.measured.duration_s)
        .fold(0.0, f64::max);
    // A sample is taken when the probe wakes, `lag` late: the loop was held
    // from `at - lag` to `at`, and a probe due in between would have been
    // later the longer it waited. So each sample draws a ramp from zero.
    let points: Vec<(f64, f64)> = report
        .lag_ms
        .iter()
        .map(|&(at, lag)| (probe_start_s + at / 1000.0, lag))
        .filter(|(at, _)| (0.0..=end_s + 0.5).contains(at))
        .flat_map(|(at, lag)| [((at - lag / 1000.0).max(0.0), 0.0), (at, lag)])
        .collect();
    let title = format!(
        "Chapter {}: loop lag, {}",
        record.chapter,
        row_label(experiment)
    );
    let svg = charts::lag_svg(&title, &points)?;
    Some(View::new(
        format!("chapter{}_{slug}_lag.svg", record.chapter),
        svg,
    ))
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let lag = || Column::new("worst loop lag", |e| or_dash(max_lag_ms(e), format_ms));
    let seed = Column::new("seed's req/s", |e| {
        or_dash(
            SEED_002_ASYNC.iter().find(|(slug, _)| *slug == e.slug),
            |(_, rps)| format!("{rps:.2}"),
        )
    });
    let mut out = vec![
        views::group_view(
            record,
            "five_sleeps",
            &[lag(), views::threads_column()],
            &[views::rss_column()],
        ),
        views::group_view(
            record,
            "fifty",
            &[seed, views::threads_column()],
            &[lag(), views::rss_column()],
        ),
    ];
    out.extend(views::experiment(record, "sleeper_activer"));
    out.extend(views::timeline(record, "sleeper_activer"));
    for slug in [
        "five_tokio_current",
        "five_std_current",
        "five_cpu_current",
        "fifty_std_current",
        "fifty_std_multi",
        "sleeper_activer",
    ] {
        out.extend(lag_chart(record, slug));
    }
    out
}
