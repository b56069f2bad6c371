//! Chapter 10, measuring honestly: the load client's open model against its
//! closed one. A server stalled for a second in the middle of a run, seen by
//! a closed client, by an open one with as few connections, and by an open
//! one with plenty; and the same server offered 0.5 to 1.2 times what it can
//! serve, open, beside closed clients that can only offer what they get.

use std::fmt::Write;
use std::time::Duration;

mod tools;

use super::chapter::Chapter;
use super::chapter2;
use super::chapter3;
use super::charts;
use super::model::Capacity;
use super::peers::Peer;
use super::record::{ChapterRecord, ExperimentRecord, Group, LoadOutcome};
use super::spec::{Driver, Experiment, LoadSpec, Plan, ServerUnderTest, scaled, sleep_path};
use super::views::{self, Lines, View, add_point, format_opt_ms, stamp, thousands};
use evt::defaults;
use evt::load::record::BUCKET_US;
use evt::load::schedule::{Arrivals, due_within};
use evt::report::WorkersReport;

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter10_measuring.md"),
    experiments,
    views,
    ..Chapter::planned(10, "Measuring honestly")
};

/// Chapter 2's pool as it starts by default: one worker of a few threads,
/// each holding one request at a time: a server whose capacity is known.
fn pool() -> (ServerUnderTest, usize) {
    let threads = defaults::CHAPTER2_WORKERS as usize * defaults::CHAPTER2_THREADS as usize;
    let server = ServerUnderTest::of(&chapter2::THREADS).with_args(
        &[],
        &format!("chapter 2's pool: {threads} threads, one request each"),
    );
    (server, threads)
}

/// One load of `delay` sleeps for `run`: closed on `connections`, or open
/// at `rate` (with as many connections at most in flight).
fn sleeps(delay: Duration, run: Duration, connections: usize, rate: Option<f64>) -> LoadSpec {
    paced(delay, run, connections, rate, Arrivals::Even)
}

/// [`sleeps`], with the open client's arrivals spaced as `arrivals`.
fn paced(
    delay: Duration,
    run: Duration,
    connections: usize,
    rate: Option<f64>,
    arrivals: Arrivals,
) -> LoadSpec {
    let estimate = match rate {
        Some(rate) => due_within(rate, arrivals, run) as f64,
        None => connections as f64 / delay.as_secs_f64() * run.as_secs_f64(),
    };
    let mut load = LoadSpec::new(
        sleep_path(delay),
        estimate.round().max(1.0) as u64,
        connections,
        delay,
    );
    load.duration = Some(run);
    load.rate = rate;
    load.arrivals = arrivals;
    load.keep_over_time = true;
    load
}

/// Connections for the open client that never runs short: more than the
/// requests due in the stall (half the capacity × 1 s).
const MANY: usize = 300;

/// The stall: how long into the run, and for how long.
const STALL_AT_MS: u64 = 4_000;
const STALL_MS: u64 = 1_000;

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let (server, threads) = pool();
    let mut experiments = Vec::new();
    // A stall: the server stopped for 1 s, 4 s into a 10 s run of 10 ms requests.
    let delay = scaled(10, scale);
    let run = scaled(10_000, scale);
    let capacity = threads as f64 / delay.as_secs_f64();
    let half = (capacity / 2.0).round();
    let stall_cases = [
        (
            "closed",
            format!("closed, {threads} connections"),
            sleeps(delay, run, threads, None),
        ),
        (
            "open_few",
            format!("open at {half} requests/s, {threads} connections"),
            sleeps(delay, run, threads, Some(half)),
        ),
        (
            "open_many",
            format!("open at {half} requests/s, {MANY} connections, a new one per request"),
            LoadSpec {
                no_keepalive: true,
                ..sleeps(delay, run, MANY, Some(half))
            },
        ),
    ];
    for (name, label, load) in stall_cases {
        experiments.push(
            Experiment::new(
                format!("stall_{name}"),
                format!("{label}, the server stopped for a second"),
                server.clone(),
                vec![load],
            )
            .with_pause(scaled(STALL_AT_MS, scale), scaled(STALL_MS, scale))
            .in_group(Group::new("stall", label)),
        );
    }
    // The same stall under other people's tools, each as its users run it.
    let tools = [
        (Peer::Ab, "ab: closed, from the send"),
        (Peer::Hey, "hey: closed, from the send"),
        (Peer::HeyRate, "hey -q: paced per worker, from the send"),
        (
            Peer::Wrk,
            "wrk: closed, from the send, corrected after the run",
        ),
        (Peer::Oha, "oha: closed, from the send"),
        (Peer::OhaRate, "oha -q: paced, from the send"),
        (
            Peer::OhaCorrected,
            "oha -q --latency-correction: paced, from when due",
        ),
    ];
    for (tool, label) in tools {
        let mut load = sleeps(delay, run, threads, Some(half));
        load.driver = Driver::Peer { tool };
        load.keep_over_time = false;
        if matches!(tool, Peer::Ab | Peer::Hey | Peer::Wrk | Peer::Oha) {
            // Closed tools: the model's rate is the closed one.
            load.rate = None;
        }
        experiments.push(
            Experiment::new(
                format!(
                    "tools_{}",
                    label
                        .split(':')
                        .next()
                        .unwrap_or("")
                        .replace([' ', '-'], "_")
                ),
                format!("{label}, the server stopped for a second"),
                server.clone(),
                vec![load],
            )
            .with_pause(scaled(STALL_AT_MS, scale), scaled(STALL_MS, scale))
            .in_group(Group::new("tools", label)),
        );
    }
    // The open model's accuracy: chapter 3's hello asked for at rates from
    // 100 to 100,000 a second, beside a closed run as fast as it goes; the
    // client is run as its own process, so its CPU is measured too.
    let run = scaled(5_000, scale);
    let hello = ServerUnderTest::of(&chapter3::ASYNC);
    // (rate, client threads): the default is one thread per two cores;
    // 50,000 a second once more with a thread per core, to see whether the
    // client's own thread is what falls behind.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // (rate, client threads, connections): 50,000 a second also with more
    // connections, so fewer requests wait for one; 200,000, more than
    // client and server can do together here.
    let rates: [(Option<f64>, Option<usize>, usize); 9] = [
        (Some(100.0), None, 50),
        (Some(1_000.0), None, 50),
        (Some(10_000.0), None, 50),
        (Some(50_000.0), None, 50),
        (Some(50_000.0), Some(cores), 50),
        (Some(50_000.0), None, 200),
        (Some(100_000.0), None, 50),
        (Some(200_000.0), None, 50),
        (None, None, 50),
    ];
    for (rate, threads, connections) in rates {
        let estimate = rate.unwrap_or(50_000.0) * run.as_secs_f64();
        let mut load = LoadSpec::new("/".into(), estimate as u64, connections, Duration::ZERO);
        load.duration = Some(run);
        load.rate = rate;
        load.driver = Driver::Command { example: "load" };
        let mut name = rate.map_or("closed".to_string(), |r| format!("{r}"));
        let mut label = match rate {
            Some(r) => format!("open, {} requests/s", thousands(r as u64)),
            None => "closed".to_string(),
        };
        if let Some(threads) = threads {
            load.extra_args = vec!["--threads".into(), threads.to_string()];
            name.push_str(&format!("_threads_{threads}"));
            label.push_str(&format!(", {threads} client threads"));
        }
        if connections != 50 {
            name.push_str(&format!("_c{connections}"));
            label.push_str(&format!(", {connections} connections"));
        }
        experiments.push(
            Experiment::new(
                format!("accuracy_{name}"),
                match rate {
                    Some(r) => format!("open at {r} requests/s, hello"),
                    None => "closed, hello, as fast as it goes".to_string(),
                },
                hello.clone(),
                vec![load],
            )
            .in_group(Group::new("accuracy", label)),
        );
    }
    // ab's extra round: five requests at once, each 400 ms, on a pool with
    // room for all five, sent by ab, by hey and by load.
    let delay = scaled(400, scale);
    let roomy = ServerUnderTest::of(&chapter2::THREADS)
        .with_args(&["--threads", "8"], "chapter 2's pool with 8 threads")
        .with_capacity(Capacity::Limited(8));
    for (name, driver) in [
        ("ab", Driver::Peer { tool: Peer::Ab }),
        ("hey", Driver::Peer { tool: Peer::Hey }),
        ("load", Driver::Engine),
    ] {
        let mut load = LoadSpec::sleeps(5, 5, delay);
        load.driver = driver;
        experiments.push(
            Experiment::new(
                format!("round_{name}"),
                format!("{name}: five requests at once"),
                roomy.clone(),
                vec![load],
            )
            .with_report()
            .in_group(Group::new("round", name)),
        );
    }
    // Near capacity: 100 ms requests on the same pool, a new connection per
    // request (so no connection waits behind a kept-alive one).
    let delay = scaled(100, scale);
    let capacity = threads as f64 / delay.as_secs_f64();
    // Long enough for a p99 of some hundreds of requests, not of a handful.
    let run = scaled(20_000, scale);
    // Each share twice: evenly spaced arrivals, and Poisson ones (a seed
    // per share, so the model simulates the very arrival times sent).
    for (seed, share) in (1..).zip([0.5, 0.9, 1.0, 1.2]) {
        let rate = capacity * share;
        for arrivals in [Arrivals::Even, Arrivals::Poisson { seed }] {
            let load = LoadSpec {
                no_keepalive: true,
                ..paced(delay, run, 100, Some(rate), arrivals)
            };
            let (slug, name, line) = match arrivals {
                Arrivals::Even => ("open", "evenly spaced", "open, evenly spaced"),
                Arrivals::Poisson { .. } => ("poisson", "Poisson arrivals", "open, Poisson"),
            };
            experiments.push(
                Experiment::new(
                    format!("offered_{slug}_{}", (share * 100.0).round()),
                    format!("open at {share} × capacity ({rate} requests/s), {name}"),
                    server.clone(),
                    vec![load],
                )
                .with_report()
                .in_group(
                    Group::new("offered", format!("{line}, {rate} requests/s"))
                        .at(share)
                        .on_line(line),
                ),
            );
        }
    }
    for connections in [threads / 2, threads, threads * 2] {
        let load = LoadSpec {
            no_keepalive: true,
            ..sleeps(delay, run, connections, None)
        };
        let at_most = connections.min(threads) as f64 / threads as f64;
        experiments.push(
            Experiment::new(
                format!("offered_closed_{connections}"),
                format!("closed on {connections} connections"),
                server.clone(),
                vec![load],
            )
            .with_report()
            .in_group(
                Group::new("offered", format!("closed, {connections} connections"))
                    .at(at_most)
                    .on_line("closed"),
            ),
        );
    }
    experiments
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let chapter = record.chapter;
    let file = |name: &str| format!("chapter{chapter}_{name}");
    let mut out = Vec::new();
    let stall = views::group(record, "stall");
    if !stall.is_empty() {
        out.push(View::new(file("stall.md"), stall_table(record, &stall)));
        if let Some(svg) = stall_chart(chapter, &stall) {
            out.push(View::new(file("stall.svg"), svg));
        }
    }
    let tools = views::group(record, "tools");
    if !tools.is_empty() {
        out.push(View::new(
            file("tools.md"),
            tools::tools_table(record, &stall, &tools),
        ));
    }
    let accuracy = views::group(record, "accuracy");
    if !accuracy.is_empty() {
        out.push(View::new(
            file("accuracy.md"),
            tools::accuracy_table(record, &accuracy),
        ));
    }
    let round = views::group(record, "round");
    if !round.is_empty() {
        out.push(View::new(
            file("round.md"),
            tools::round_table(record, &round),
        ));
    }
    let offered = views::group(record, "offered");
    if !offered.is_empty() {
        out.push(View::new(
            file("offered.md"),
            offered_table(record, &offered),
        ));
        if let Some(svg) = offered_chart(chapter, &offered) {
            out.push(View::new(file("offered.svg"), svg));
        }
    }
    out
}

// ----- The stall -----

/// Requests due while the server was stopped, and answered.
fn due_in_stall(experiment: &ExperimentRecord, load: &LoadOutcome) -> Option<u64> {
    let pause = experiment.pause?;
    // The load's clock starts a moment after the experiment's: near enough
    // for 100 ms slices.
    let (from, to) = (pause.at_s, pause.at_s + pause.length_s);
    Some(
        load.over_time
            .iter()
            .filter(|(slice, _)| {
                // The slices whose middle falls in the stall.
                let middle = (**slice as f64 + 0.5) * BUCKET_US as f64 / 1e6;
                (from..to).contains(&middle)
            })
            .map(|(_, bucket)| bucket.count)
            .sum(),
    )
}

fn stall_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| client | requests answered | due in the stall | p50 | p99 | p99.9 | max | p99 from the send | max from the send | sent late |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let m = &load.measured;
        let open = m.open.as_ref();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | **{}** | {} | {} | {} | {} | {} |",
            views::row_label(experiment),
            thousands(m.requests.completed),
            // A closed client has no schedule: nothing is ever "due".
            views::or_dash(
                due_in_stall(experiment, load).filter(|_| m.open.is_some()),
                thousands
            ),
            format_opt_ms(m.latency_ms.p50),
            format_opt_ms(m.latency_ms.p99),
            format_opt_ms(m.latency_ms.p999),
            format_opt_ms(m.latency_ms.max),
            format_opt_ms(open.map_or(m.latency_ms.p99, |o| o.uncorrected_latency_ms.p99)),
            format_opt_ms(open.map_or(m.latency_ms.max, |o| o.uncorrected_latency_ms.max)),
            open.map_or("—".to_string(), |o| thousands(o.late)),
        );
    }
    let _ = writeln!(
        out,
        "\nAn open client's latencies count from when each request was due; \"from the send\" \
         counts from when it went out, as a closed client's do (for the closed row the two are \
         the same). The stall, as the harness inflicted it (SIGSTOP to the server, SIGCONT after):\n"
    );
    for experiment in members {
        if let (Some(pause), Some(load)) = (experiment.pause, experiment.load()) {
            let _ = writeln!(
                out,
                "- {}: stopped {:.2} s into the run for {:.3} s; `{}`",
                views::row_label(experiment),
                pause.at_s,
                pause.length_s,
                load.command
            );
        }
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

fn stall_chart(chapter: u32, members: &[&ExperimentRecord]) -> Option<String> {
    let mut lines: Lines = Vec::new();
    let mut closed = None;
    let mut shade = None;
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let label = views::row_label(experiment);
        let slice_s = BUCKET_US as f64 / 1e6;
        let point = |slice: u64, us: u64| (slice as f64 * slice_s, us as f64 / 1000.0);
        let corrected: Vec<(f64, f64)> = load
            .over_time
            .iter()
            .map(|(slice, bucket)| point(*slice, bucket.max_us))
            .collect();
        let uncorrected = || {
            load.over_time
                .iter()
                .map(|(slice, bucket)| point(*slice, bucket.uncorrected_max_us))
                .collect()
        };
        match experiment.slug.as_str() {
            "stall_open_few" => {
                lines.push((format!("{label}, from when due"), corrected));
                lines.push((format!("{label}, from the send"), uncorrected()));
            }
            "stall_open_many" => lines.push((format!("{label}, from the send"), uncorrected())),
            // Drawn last, on top: its hole in the stall must show.
            _ => closed = Some((label.to_string(), corrected)),
        }
        if let Some(pause) = experiment.pause {
            shade.get_or_insert((pause.at_s, pause.at_s + pause.length_s));
        }
    }
    lines.extend(closed);
    charts::time_lines_svg(
        &format!("Chapter {chapter}: the slowest request of each 100 ms, around a stall"),
        "slowest latency, ms (log)",
        &lines,
        shade.map(|(from, to)| (from, to, "server stopped")),
        BUCKET_US as f64 / 1e6 * 1.5,
    )
}

// ----- Offered load -----

fn offered_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| client | offered | requests | answered req/s | predicted p50 | p50 | predicted p99 | p99 | predicted max | max | sent late | past its -z |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let m = &load.measured;
        // Poisson arrivals offer what their draw gave: the arrivals ÷ -z.
        let offered = m.open.as_ref().map_or_else(
            || "what it gets".to_string(),
            |o| match (o.arrivals, m.planned_s) {
                (Arrivals::Poisson { .. }, Some(length)) if length > 0.0 => format!(
                    "{} req/s (drawn: {:.1})",
                    thousands(o.asked_rps.round() as u64),
                    m.requests.sent as f64 / length
                ),
                _ => format!("{} req/s", thousands(o.asked_rps.round() as u64)),
            },
        );
        let _ = writeln!(
            out,
            "| {} | {offered} | {} | {} | {} | {} | {} | **{}** | {} | {} | {} | {} |",
            views::row_label(experiment),
            thousands(m.requests.sent),
            thousands(m.rps.round() as u64),
            views::format_ms(load.predicted.p50_ms),
            format_opt_ms(m.latency_ms.p50),
            views::format_ms(load.predicted.p99_ms),
            format_opt_ms(m.latency_ms.p99),
            views::format_ms(load.predicted.max_ms),
            format_opt_ms(m.latency_ms.max),
            m.open
                .as_ref()
                .map_or("—".to_string(), |o| thousands(o.late)),
            views::or_dash(m.overran_s, |s| views::format_ms(s * 1000.0)),
        );
    }
    if let Some(load) = members.first().and_then(|e| e.load()) {
        let _ = write!(
            out,
            "\nThe first row: `{}`. \"Past its -z\": how much longer than its `-z` the run took, \
             answering what was in flight or queued when the time ran out (its answered \
             requests per second are over the whole run).\n",
            load.command
        );
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

fn offered_chart(chapter: u32, members: &[&ExperimentRecord]) -> Option<String> {
    let capacity = members.iter().find_map(|e| capacity_of(e, e.load()?))?;
    let mut lines = Lines::new();
    for experiment in members {
        let (Some(load), Some(group)) = (experiment.load(), &experiment.group) else {
            continue;
        };
        let Some(series) = &group.series else {
            continue;
        };
        let Some(p99) = load.measured.latency_ms.p99 else {
            continue;
        };
        // Open: what it offered. Closed: what it got, the most it can offer.
        let offered = load
            .measured
            .open
            .as_ref()
            .map_or(load.measured.rps, |o| o.asked_rps);
        add_point(&mut lines, series, (offered / capacity, p99));
        // The queue the model simulates on the same Poisson arrivals
        // (M/D/c: random arrivals, a fixed service time, c threads).
        if load
            .measured
            .open
            .as_ref()
            .is_some_and(|o| o.arrivals != Arrivals::Even)
        {
            add_point(
                &mut lines,
                "model, Poisson (M/D/c)",
                (offered / capacity, load.predicted.p99_ms),
            );
        }
    }
    for (_, points) in &mut lines {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    charts::linear_x_svg(
        &format!("Chapter {chapter}: p99 against the load offered"),
        "offered load ÷ capacity (closed: what it got)",
        "p99, ms (log)",
        &lines,
        Some((1.0, 1.25, "beyond capacity")),
        f64::INFINITY,
    )
}

/// The server's capacity in requests per second, from what it said of
/// itself (`/report`: workers × threads) and the delay asked for.
fn capacity_of(experiment: &ExperimentRecord, load: &LoadOutcome) -> Option<f64> {
    let report: WorkersReport = experiment.report()?;
    let slots = report.threads_per_worker * report.workers.len();
    let delay_ms: f64 = load.path.split("ms=").nth(1)?.parse().ok()?;
    Some(slots as f64 / (delay_ms / 1000.0))
}
