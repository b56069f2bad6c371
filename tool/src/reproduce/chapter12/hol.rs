//! Chapter 12's head-of-line blocking: 5 % of requests need 20 ms of CPU,
//! on one loop, on the loop with the CPU work offloaded (to the blocking
//! pool as it grows, or to a bounded pool of one place per core), on work
//! stealing (also with its two settings of where a woken task runs) and on
//! chapter 2's pool; then the offloaded loop again with more CPU work than
//! it can start at once, where a bounded pool and the blocking pool differ.

use std::fmt::Write;
use std::time::Duration;

use super::{commands, loop_server, peak_threads, pool};
use crate::reproduce::chapter3;
use crate::reproduce::record::{ChapterRecord, ExperimentRecord, Group};
use crate::reproduce::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use crate::reproduce::views::{self, format_opt_ms, stamp};
use evt::load::schedule::{Arrivals, due_within};

/// The heavy requests' CPU, µs, and the two rates (5 % heavy).
const HEAVY_US: u64 = 20_000;
const LIGHT_RATE: f64 = 190.0;
const HEAVY_RATE: f64 = 10.0;
/// The busier mix: heavy requests enough for 1.6 cores of CPU.
const BUSY_HEAVY_RATE: f64 = 80.0;

/// The group of the busier mix.
pub const BUSY: &str = "hol_busy";

/// The two loads, light and heavy, each Poisson from a fixed seed: every
/// server gets the same arrival times, and no light request is locked in
/// step with the heavy ones, as two evenly spaced schedules would be.
fn loads(run: Duration, heavy_rate: f64) -> Vec<LoadSpec> {
    let (light_arrivals, heavy_arrivals) =
        (Arrivals::Poisson { seed: 1 }, Arrivals::Poisson { seed: 2 });
    let mut light = LoadSpec::new(
        "/".into(),
        due_within(LIGHT_RATE, light_arrivals, run),
        20,
        Duration::ZERO,
    );
    light.rate = Some(LIGHT_RATE);
    light.arrivals = light_arrivals;
    light.duration = Some(run);
    let mut heavy = LoadSpec::new(
        format!("/work?us={HEAVY_US}"),
        due_within(heavy_rate, heavy_arrivals, run),
        (heavy_rate as usize).max(10),
        Duration::from_micros(HEAVY_US),
    );
    heavy.rate = Some(heavy_rate);
    heavy.arrivals = heavy_arrivals;
    heavy.duration = Some(run);
    vec![light, heavy]
}

pub fn experiments(plan: Plan) -> Vec<Experiment> {
    // 10 s: about 1,900 light requests, so the p99 is the 19th slowest.
    let run = scaled(10_000, plan.scale);
    let cores = plan.cores.max(2).to_string();
    let bounded = format!("one loop, CPU work on a pool of {cores} places");
    let steal = format!("work stealing, {cores} threads");
    let mut out = Vec::new();
    for (name, server) in [
        (
            "loop",
            ServerUnderTest::of(&chapter3::ASYNC).with_args(&[], "one loop (chapter 3)"),
        ),
        (
            "offload",
            loop_server(&["--offload"], "one loop, CPU work on the blocking pool"),
        ),
        (
            "offload_bounded",
            loop_server(&["--offload", "--cpu-pool", &cores], &bounded),
        ),
        ("steal", loop_server(&["--threads", &cores], &steal)),
        (
            "steal_no_lifo",
            loop_server(
                &["--threads", &cores, "--no-lifo-slot"],
                &format!("{steal}, no LIFO slot"),
            ),
        ),
        (
            "steal_eager",
            loop_server(
                &["--threads", &cores, "--eager-driver-handoff"],
                &format!("{steal}, eager driver hand-off"),
            ),
        ),
        (
            "pool",
            pool(1, 8, "a blocking pool of 8 threads (chapter 2)"),
        ),
    ] {
        let label = server.model.clone();
        out.push(
            Experiment::new(
                format!("hol_{name}"),
                format!("{label}: 5 % of requests need 20 ms of CPU"),
                server,
                loads(run, HEAVY_RATE),
            )
            .in_group(Group::new("hol", label)),
        );
    }
    for (name, server) in [
        (
            "offload",
            loop_server(&["--offload"], "one loop, CPU work on the blocking pool"),
        ),
        (
            "offload_bounded",
            loop_server(&["--offload", "--cpu-pool", &cores], &bounded),
        ),
    ] {
        let label = server.model.clone();
        out.push(
            Experiment::new(
                format!("hol_busy_{name}"),
                format!("{label}: heavy requests for 1.6 cores of CPU"),
                server,
                loads(run, BUSY_HEAVY_RATE),
            )
            .in_group(Group::new(BUSY, label)),
        );
    }
    out
}

pub fn table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| server | light: answered | light: p50 | **light: p99** | light: max | heavy: answered | heavy: p50 | heavy: p99 | threads |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let (Some(light), Some(heavy)) = (experiment.loads.first(), experiment.loads.get(1)) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | **{}** | {} | {} | {} | {} | {} |",
            views::row_label(experiment),
            views::thousands(light.measured.requests.completed),
            format_opt_ms(light.measured.latency_ms.p50),
            format_opt_ms(light.measured.latency_ms.p99),
            format_opt_ms(light.measured.latency_ms.max),
            views::thousands(heavy.measured.requests.completed),
            format_opt_ms(heavy.measured.latency_ms.p50),
            format_opt_ms(heavy.measured.latency_ms.p99),
            peak_threads(experiment),
        );
    }
    out.push_str(&commands(members));
    out.push('\n');
    out.push_str(&stamp(record));
    out
}
