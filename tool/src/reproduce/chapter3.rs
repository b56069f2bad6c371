//! Chapter 3, one thread and an event loop: seeds 000 and 001 again on axum
//! and a current-thread tokio runtime; a thousand sleeps at once; the same
//! thousand against a listen backlog of 128.

use super::chapter::{Chapter, Example};
use super::judge::SetBy;
use super::model::Capacity;
use super::record::ChapterRecord;
use super::seeds::{five_sleeps, sleeper_then_activer, thousand_sleeps};
use super::spec::{Experiment, Plan, ServerUnderTest};
use super::views::{self, View};
use evt::defaults;

pub const ASYNC: Example = Example::server(
    "chapter3_async",
    "axum on a tokio current-thread runtime: one thread, one event loop",
    defaults::CHAPTER3_ASYNC_PORT,
    Capacity::Unlimited,
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter3_async.md"),
    examples: &[ASYNC],
    experiments,
    views,
    ..Chapter::planned(3, "One thread, an event loop")
};

/// A thousand connections at once against a listen backlog of 128 (what
/// Rust's std and mio, under tokio, ask for): the kernel drops the
/// connections it has no room for, and a client's kernel retries a dropped
/// one only a second later.
fn small_backlog(scale: f64) -> Experiment {
    // How many of a thousand connections overflow the backlog, and wait
    // for the client kernel's retry a second later, is a race between the
    // loop's accepts and the arrivals.
    let mut experiment = thousand_sleeps(ServerUnderTest::of(&ASYNC), scale)
        .set_by(SetBy::Chance)
        .repeated(3)
        .varies_because(
            "how many connections overflow a backlog of 128, and wait for the retry a second later, is a race between the accepts and the arrivals",
        );
    experiment.slug = "small_backlog".into();
    experiment.seed = "";
    experiment.title = format!("{}, listen backlog 128", experiment.title);
    experiment.server = experiment.server.with_args(
        &["--backlog", "128"],
        "chapter 3's server listening with std's backlog of 128",
    );
    experiment
}

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let looping = || ServerUnderTest::of(&ASYNC);
    vec![
        five_sleeps(looping(), scale).with_timeline(),
        sleeper_then_activer(looping(), scale),
        thousand_sleeps(looping(), scale),
        small_backlog(scale),
    ]
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let mut out: Vec<View> = [
        "five_sleeps",
        "sleeper_activer",
        "thousand_sleeps",
        "small_backlog",
    ]
    .into_iter()
    .filter_map(|slug| views::experiment(record, slug))
    .collect();
    out.extend(views::timeline(record, "five_sleeps"));
    out
}
