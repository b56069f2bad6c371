//! Chapter 12's cancellation: clients that give up on a slow request and
//! close their connection. Does the server go on with the work nobody will
//! read? A thread runs its handler to the end; a loop's task is dropped at
//! its next `await` once hyper sees the connection closed.

use std::fmt::Write;
use std::time::Duration;

use super::{OVERLOAD, commands};
use crate::reproduce::chapter2;
use crate::reproduce::model::Capacity;
use crate::reproduce::record::{ChapterRecord, ExperimentRecord, Group};
use crate::reproduce::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use crate::reproduce::views::{self, stamp, thousands};
use evt::report::{OverloadReport, WorkersReport};

pub const GROUP: &str = "cancel";

/// Requests that each wait this long in the server (a slow downstream).
pub const WAIT_MS: u64 = 1_000;
/// Clients that give up after this long, one request each.
const CLIENTS: usize = 50;
pub const GIVE_UP_MS: u64 = 200;

pub fn experiments(plan: Plan) -> Vec<Experiment> {
    let wait = scaled(WAIT_MS, plan.scale);
    let give_up = scaled(GIVE_UP_MS, plan.scale);
    let mut out = Vec::new();
    for (name, server) in [
        (
            "loop",
            ServerUnderTest::of(&OVERLOAD).with_args(&[], "one loop (axum on tokio)"),
        ),
        (
            "threads",
            ServerUnderTest::of(&chapter2::THREADS)
                .with_args(
                    &[
                        "--workers",
                        "1",
                        "--pool",
                        "per-connection",
                        "--threads",
                        &(CLIENTS + 10).to_string(),
                    ],
                    "a thread per connection (chapter 2)",
                )
                .with_capacity(Capacity::Limited(CLIENTS + 10)),
        ),
    ] {
        let mut leaving = LoadSpec::sleeps(CLIENTS as u64, CLIENTS, wait);
        leaving.timeout = give_up;
        // One request after every wait would have ended, so the report is
        // read once every handler that was going to finish has finished.
        let mut after = LoadSpec::new("/".into(), 1, 1, Duration::ZERO);
        after.start_after = wait + wait / 2;
        let label = server.model.clone();
        let mut experiment = Experiment::new(
            format!("cancel_{name}"),
            format!("{label}: {CLIENTS} clients give up on a slow request"),
            server,
            vec![leaving, after],
        )
        .with_report()
        .in_group(Group::new(GROUP, label));
        experiment.failures_expected = true;
        out.push(experiment);
    }
    out
}

/// Handlers that ran to the end, as the server counts them (chapter 12's
/// `answered`, or chapter 2's requests per worker, summed), less the one
/// request sent after the others.
pub fn finished(experiment: &ExperimentRecord) -> Option<u64> {
    let counted = match experiment.report::<OverloadReport>() {
        Some(report) => report.answered,
        None => {
            let report = experiment.report::<WorkersReport>()?;
            report.workers.iter().map(|w| w.requests).sum()
        }
    };
    let after = experiment
        .loads
        .get(1)
        .map_or(0, |l| l.measured.requests.completed);
    Some(counted.saturating_sub(after))
}

/// Requests the clients gave up on.
pub fn given_up(experiment: &ExperimentRecord) -> Option<u64> {
    Some(experiment.loads.first()?.measured.requests.failed)
}

pub fn table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| server | requests the clients gave up on | **handlers that ran to the end anyway** | answered in time |\n\
         |---|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(leaving) = experiment.loads.first() else {
            continue;
        };
        let requests = &leaving.measured.requests;
        let _ = writeln!(
            out,
            "| {} | {} | **{}** | {} |",
            views::row_label(experiment),
            thousands(requests.failed),
            views::or_dash(finished(experiment), thousands),
            thousands(requests.completed),
        );
    }
    let _ = writeln!(
        out,
        "\nEach client asks for a {WAIT_MS} ms wait and gives up after {GIVE_UP_MS} ms, closing its connection. The server counts a handler that returned; the count is read after every wait would have ended (one more request, not counted here, comes first)."
    );
    out.push_str(&commands(members));
    out.push('\n');
    out.push_str(&stamp(record));
    out
}
