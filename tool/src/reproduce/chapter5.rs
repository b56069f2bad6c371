//! Chapter 5, other runtimes: tide on async-std and hyper on smol beside
//! chapter 3's tokio server, on seeds 000, 001 and 002 and a thousand sleeps;
//! each runtime's CPU per request on the hello endpoint, on one executor
//! thread and on more; and each timer's resolution (1 ms sleeps in a row).

use std::time::Duration;

use super::chapter::{Chapter, Example};
use super::chapter3;
use super::model::Capacity;
use super::record::{ChapterRecord, Group};
use super::seeds::{five_sleeps, sleeper_then_activer, thousand_sleeps};
use super::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use super::views::{self, Column, View};
use evt::defaults;

pub const ASYNC_STD: Example = Example::server(
    "chapter5_async_std",
    "tide on async-std (both unmaintained; the chapter says so): an executor with a thread per core",
    defaults::CHAPTER5_ASYNC_STD_PORT,
    Capacity::Unlimited,
);

pub const SMOL: Example = Example::server(
    "chapter5_smol",
    "hyper on smol, async-std's maintained successor: one executor thread by default",
    defaults::CHAPTER5_SMOL_PORT,
    Capacity::Unlimited,
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter5_runtimes.md"),
    examples: &[ASYNC_STD, SMOL],
    experiments,
    views,
    ..Chapter::planned(5, "Other runtimes: async-std, tide and smol")
};

/// The runtimes side by side, in the order the tables show them.
const RUNTIMES: [&str; 3] = ["tokio", "tide", "smol"];

/// Chapter 5's servers beside chapter 3's, in the order the tables show them.
fn servers() -> Vec<(&'static str, ServerUnderTest)> {
    vec![
        (
            "tokio",
            ServerUnderTest::of(&chapter3::ASYNC)
                .with_args(&[], "axum on tokio, current-thread (chapter 3)"),
        ),
        (
            "tide",
            ServerUnderTest::of(&ASYNC_STD).with_args(&[], "tide on async-std, default threads"),
        ),
        (
            "smol",
            ServerUnderTest::of(&SMOL).with_args(&[], "hyper on smol, one executor thread"),
        ),
    ]
}

/// Each runtime's own work per request: `GET /` with no delay, so what is
/// measured is the runtime and its HTTP layer. tide's own listener gets
/// fewer requests: it answers ~40 ms late.
fn hello(scale: f64) -> Vec<Experiment> {
    let many = ((100_000.0 * scale.max(0.1)) as u64).max(1000);
    let setups: [(&str, &Example, &[&str], &str, u64); 6] = [
        (
            "tokio",
            &chapter3::ASYNC,
            &[],
            "axum on tokio, 1 thread",
            many,
        ),
        (
            "tide_1",
            &ASYNC_STD,
            &["--threads", "1"],
            "tide on async-std, 1 executor thread",
            many,
        ),
        (
            "tide",
            &ASYNC_STD,
            &[],
            "tide on async-std, default (one per core)",
            many,
        ),
        (
            "tide_listener",
            &ASYNC_STD,
            &["--tide-listener"],
            "tide's own listener (Nagle on)",
            2000,
        ),
        ("smol", &SMOL, &[], "hyper on smol, 1 executor thread", many),
        (
            "smol_2",
            &SMOL,
            &["--threads", "2"],
            "hyper on smol, 2 executor threads",
            many,
        ),
    ];
    setups
        .into_iter()
        .map(|(name, example, flags, label, requests)| {
            Experiment::new(
                format!("hello_{name}"),
                format!("{label}: `GET /`, {requests} requests over 50 connections"),
                ServerUnderTest::of(example).with_args(flags, label),
                vec![LoadSpec::new("/".into(), requests, 50, Duration::ZERO)],
            )
            .in_group(Group::new("hello", label))
        })
        .collect()
}

/// Timer resolution: 1 ms sleeps, one at a time.
fn timers() -> Vec<Experiment> {
    let mut timed = servers();
    timed.push((
        "tide_listener",
        ServerUnderTest::of(&ASYNC_STD)
            .with_args(&["--tide-listener"], "tide's own listener (Nagle on)"),
    ));
    timed
        .into_iter()
        .map(|(name, server)| {
            let label = server.model.clone();
            let requests = if name == "tide_listener" { 100 } else { 500 };
            Experiment::new(
                format!("timer_{name}"),
                format!("{label}: `/sleep?ms=1`, one at a time"),
                server,
                vec![LoadSpec::sleeps(requests, 1, Duration::from_millis(1))],
            )
            .in_group(Group::new("timer", label))
        })
        .collect()
}

/// Chapter 5: seeds 000, 001 and 002 and a thousand 2 s requests for tide,
/// smol and chapter 3's tokio server side by side; then each runtime's
/// CPU cost on the hello endpoint; and its timer's resolution.
fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let mut experiments = Vec::new();
    let delay = scaled(250, scale);
    for (name, server) in servers() {
        let label = server.model.clone();
        let row = || Group::new("io_bound", label.clone());
        let mut five = five_sleeps(server.clone(), scale).in_group(row());
        five.slug = format!("five_{name}");
        let mut load = LoadSpec::sleeps(50, 10, delay);
        load.fixed_share = true;
        let fifty = Experiment::new(
            format!("fifty_{name}"),
            format!("{label}, `-n 50 -c 10`"),
            server.clone(),
            vec![load],
        )
        .of_seed("002")
        .in_group(row());
        let mut thousand = thousand_sleeps(server.clone(), scale).in_group(row());
        thousand.slug = format!("thousand_{name}");
        let mut activer = sleeper_then_activer(server.clone(), scale);
        activer.slug = format!("sleeper_activer_{name}");
        experiments.extend([five, fifty, thousand, activer]);
    }
    experiments.extend(hello(scale));
    experiments.extend(timers());
    experiments
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let mut out = vec![
        views::group_view(
            record,
            "io_bound",
            &[views::threads_column(), views::rss_column()],
            &[],
        ),
        views::group_view(
            record,
            "hello",
            &[
                Column::new("server CPU per request", views::cpu_per_request),
                views::threads_column(),
            ],
            &[views::rss_column(), views::switches_column()],
        ),
        views::group_view(
            record,
            "timer",
            &[views::threads_column(), views::rss_column()],
            &[],
        ),
    ];
    for runtime in RUNTIMES {
        out.extend(views::experiment(
            record,
            &format!("sleeper_activer_{runtime}"),
        ));
    }
    out
}
