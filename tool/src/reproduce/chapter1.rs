//! Chapter 1, one blocking thread: seed 000's five sleeps and seed 001's
//! sleeper and activer on `std::net` and on tiny_http; tiny_http's stall
//! under held connections; Little's law checked on the five sleeps.

use std::fmt::Write;
use std::time::Duration;

use super::chapter::{Chapter, Example};
use super::model::Capacity;
use super::record::ChapterRecord;
use super::seeds::{five_sleeps, sleeper_then_activer};
use super::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use super::views::{self, View, format_ms, stamp};
use evt::defaults;

pub const BLOCKING: Example = Example::server(
    "chapter1_blocking",
    "one thread, one connection at a time: a blocking server on `std::net`",
    defaults::CHAPTER1_BLOCKING_PORT,
    Capacity::Limited(1),
);

pub const TINY_HTTP: Example = Example::server(
    "chapter1_tiny_http",
    "the same one-thread loop on tiny_http, which reads sockets on a pool of its own",
    defaults::CHAPTER1_TINY_HTTP_PORT,
    Capacity::Limited(1),
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter1_blocking.md"),
    examples: &[BLOCKING, TINY_HTTP],
    experiments,
    views,
    ..Chapter::planned(1, "One blocking thread")
};

/// How many times the tiny_http stall is tried: it is a race, so once says little.
pub const STALL_TRIALS: u32 = 10;

/// tiny_http answering the way it does by itself (keep-alive), against a
/// client that holds its connections open: 16 connections at once, several
/// times. A connection tiny_http's pool never reads ends as a timeout.
fn tiny_http_keepalive_stall(scale: f64) -> Experiment {
    let delay = Duration::from_millis(10);
    let timeout = scaled(2000, scale.max(0.5));
    let loads = (0..STALL_TRIALS)
        .map(|trial| {
            let mut load = LoadSpec::sleeps(16, 16, delay);
            load.timeout = timeout;
            load.start_after = (timeout + Duration::from_millis(500)) * trial;
            load
        })
        .collect();
    let mut experiment = Experiment::new(
        "tiny_http_keepalive_stall",
        format!(
            "tiny_http keeping connections alive: 16 held connections at once, {STALL_TRIALS} \
             times, each request given {}",
            format_ms(timeout.as_secs_f64() * 1000.0)
        ),
        ServerUnderTest::of(&TINY_HTTP).with_args(
            &["--keep-alive"],
            "tiny_http answering with its own respond(), which keeps connections alive",
        ),
        loads,
    );
    experiment.failures_expected = true;
    experiment
}

/// Chapter 1's experiments; `scale` shrinks every delay (`--quick` uses 0.1).
fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let blocking = || ServerUnderTest::of(&BLOCKING);
    let mut on_tiny_http = five_sleeps(ServerUnderTest::of(&TINY_HTTP), scale);
    on_tiny_http.slug = "tiny_http_five_sleeps".into();
    on_tiny_http.seed = "";
    vec![
        five_sleeps(blocking(), scale).with_timeline(),
        sleeper_then_activer(blocking(), scale),
        on_tiny_http,
        tiny_http_keepalive_stall(scale),
    ]
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let mut out: Vec<View> = [
        "five_sleeps",
        "sleeper_activer",
        "tiny_http_five_sleeps",
        "tiny_http_keepalive_stall",
    ]
    .into_iter()
    .filter_map(|slug| views::experiment(record, slug))
    .collect();
    out.extend(views::reports(record, "five_sleeps"));
    out.extend(views::timeline(record, "five_sleeps"));
    out.extend(littles_law(record));
    out
}

/// Little's law checked on the five sleeps: with the client's latencies
/// (time in the system, waiting included) it gives the average number of
/// requests in the system; with the time in service, the number being served.
pub fn littles_law(record: &ChapterRecord) -> Option<View> {
    let experiment = views::find(record, "five_sleeps")?;
    let load = experiment.load()?;
    let measured = &load.measured;
    let throughput = measured.rps;
    let in_system_s = measured.latency_ms.mean? / 1000.0;
    let service_s = load.predicted.min_ms / 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| which latency | seconds | × throughput | = requests inside |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|");
    let _ = writeln!(
        out,
        "| time in the system (the client's latency: waiting + service), mean | {:.3} | {throughput:.3}/s | **{:.2}** |",
        in_system_s,
        throughput * in_system_s
    );
    let _ = writeln!(
        out,
        "| time in service (the handler's sleep) | {:.3} | {throughput:.3}/s | **{:.2}** |",
        service_s,
        throughput * service_s
    );
    let _ = writeln!(
        out,
        "\nFrom chapter 1's run of `{}` × {} at once: {} completed in {}.",
        load.path,
        load.requests,
        measured.requests.completed,
        format_ms(measured.duration_s * 1000.0)
    );
    out.push('\n');
    out.push_str(&stamp(record));
    Some(View::new("littles_law.md".into(), out))
}
