//! Chapter 2, a pool of threads and workers: seed 002's gunicorn table
//! (workers × threads) beside the seed's numbers; why its 4 × 2 read 24.5
//! requests/s and not 32 (how kept-alive connections spread over workers,
//! and the sticky-connection model that predicts it); keep-alive starvation;
//! a thread sweep to 1,024.

use super::judge::{ChanceRange, Probe, SetBy};
use std::time::Duration;

use super::chapter::{Chapter, Example};
use super::model::{Capacity, ClientStream, predict};
use super::record::{ChapterRecord, ExperimentRecord, Group};
use super::seeds::five_sleeps;
use super::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use super::views::{self, Column, View, format_ms, mib, or_dash, stamp, thousands};
use evt::defaults;
use evt::report::WorkersReport;

pub const THREADS: Example = Example::server(
    "chapter2_threads",
    "W pre-forked worker processes × T threads on one port (gunicorn's model)",
    defaults::CHAPTER2_THREADS_PORT,
    Capacity::Limited(defaults::CHAPTER2_WORKERS as usize * defaults::CHAPTER2_THREADS as usize),
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter2_threads.md"),
    examples: &[THREADS],
    experiments,
    views,
    ..Chapter::planned(2, "A pool of threads, and workers")
};

/// Chapter 2's server started with `args`, modelled as `capacity` requests at once.
pub fn threads_server(args: &[&str], model: &str, capacity: usize) -> ServerUnderTest {
    ServerUnderTest::of(&THREADS)
        .with_args(args, model)
        .with_capacity(Capacity::Limited(capacity))
}

/// The gunicorn setups seed 002 measured, as chapter 2's flags: workers,
/// threads, the flags that make it that kind of worker, in words.
const SEED_002_SETUPS: [(usize, usize, &[&str], &str); 3] = [
    (
        1,
        1,
        &["--pool", "per-connection", "--keep-alive", "0"],
        "1 sync worker",
    ),
    (
        4,
        1,
        &["--pool", "per-connection", "--keep-alive", "0"],
        "4 sync workers",
    ),
    (4, 2, &[], "4 workers × 2 threads (gthread)"),
];

/// Seed 002's loads (`hey -n N -c C`) and what it measured, requests per
/// second, for each setup above (where it measured that pair).
const SEED_002_LOADS: [(u64, usize, [Option<f64>; 3]); 3] = [
    (10, 5, [Some(3.9477), None, None]),
    (20, 10, [Some(3.9432), None, None]),
    (50, 10, [Some(3.9445), Some(15.1464), Some(24.5377)]),
];

fn seed_002_slug(workers: usize, threads: usize, requests: u64, connections: usize) -> String {
    format!("seed002_w{workers}_t{threads}_n{requests}_c{connections}")
}

/// What seed 002 measured for the row with this slug, requests per second.
fn seed_002_rps(slug: &str) -> Option<f64> {
    SEED_002_SETUPS
        .iter()
        .enumerate()
        .flat_map(|(index, &(workers, threads, _, _))| {
            SEED_002_LOADS
                .iter()
                .map(move |&(n, c, seed)| (seed_002_slug(workers, threads, n, c), seed[index]))
        })
        .find(|(row, _)| row == slug)
        .and_then(|(_, rps)| rps)
}

/// Seed 002's table: each gunicorn setup under each of its hey loads, at
/// 250 ms a request, every pair on a fresh server. The loads split their
/// requests as hey does (`--fixed-share`).
fn seed_002_table(scale: f64) -> Vec<Experiment> {
    let delay = scaled(250, scale);
    let mut experiments = Vec::new();
    for (workers, threads, flags, in_words) in SEED_002_SETUPS {
        for (requests, connections, _) in SEED_002_LOADS {
            let (w, t) = (workers.to_string(), threads.to_string());
            let mut args = vec!["--workers", w.as_str(), "--threads", t.as_str()];
            args.extend_from_slice(flags);
            let mut load = LoadSpec::sleeps(requests, connections, delay);
            load.fixed_share = true;
            experiments.push(
                Experiment::new(
                    seed_002_slug(workers, threads, requests, connections),
                    format!("{in_words}, `-n {requests} -c {connections}`"),
                    threads_server(&args, in_words, workers * threads),
                    vec![load],
                )
                .of_seed("002")
                .with_report()
                .in_group(Group::new("seed002", in_words)),
            );
        }
    }
    experiments
}

/// How many times each way of sharing the port is tried for the spread.
pub const SPREAD_TRIALS: usize = 5;

/// Why seed 002's 4 × 2 read 24.5 requests/s, not 32: `-n 50 -c 10` against
/// 4 workers × 2 threads, several times per way of sharing the port, with
/// the server reporting how the connections spread over the workers.
fn worker_spread(scale: f64) -> Vec<Experiment> {
    let delay = scaled(250, scale);
    let ways: [(&str, &[&str], bool, &str); 5] = [
        (
            "accept",
            &[],
            true,
            "one shared socket, accept when a thread is free",
        ),
        (
            "greedy",
            &["--greedy-accept"],
            true,
            "one shared socket, greedy accept (gunicorn's gthread)",
        ),
        (
            "reuseport",
            &["--share", "reuseport"],
            true,
            "SO_REUSEPORT: the kernel hashes connections to workers",
        ),
        (
            "close",
            &["--keep-alive", "0"],
            true,
            "one shared socket, a new connection per request (--keep-alive 0)",
        ),
        (
            "shared_count",
            &[],
            false,
            "one shared socket; the client shares one count over its connections",
        ),
    ];
    let mut experiments = Vec::new();
    for (name, flags, fixed_share, in_words) in ways {
        let trials = if name == "close" || name == "shared_count" {
            2
        } else {
            SPREAD_TRIALS
        };
        for trial in 1..=trials {
            let mut args = vec!["--workers", "4", "--threads", "2"];
            args.extend_from_slice(flags);
            let mut load = LoadSpec::sleeps(50, 10, delay);
            load.fixed_share = fixed_share;
            let load_for_range = load.clone();
            let experiment = Experiment::new(
                format!("spread_{name}_{trial}"),
                format!("4 × 2, {in_words}: trial {trial}"),
                threads_server(&args, in_words, 8),
                vec![load],
            )
            .with_report()
            .in_group(Group::new("spread", in_words))
            .trial_of(format!("spread_{name}"));
            // A worker that accepts only with a thread free takes no more
            // than its share, so the spread is fixed and the timers set the
            // rest; the other ways leave the spread to chance.
            experiments.push(if name == "accept" || name == "shared_count" {
                experiment.set_by(SetBy::Timers)
            } else {
                experiment
                    .chance_between_if(spread_range(4, 2, &load_for_range, name == "close"))
                    .set_by(SetBy::Chance)
                    .varies_because(
                        "which worker each connection lands on is chance (the accept queue's order or the SO_REUSEPORT hash), and the spread sets the rest",
                    )
            });
        }
    }
    experiments
}

/// What the sticky model allows for `load` over `workers` × `threads`,
/// from every connection on one worker to as even a spread as there can be:
/// the rate from [`sticky_total_s`], a request's latency from how many
/// rounds its worker's threads take to reach it. A new connection per
/// request (`churn`) stays with no worker: no range beyond the trials'.
fn spread_range(
    workers: usize,
    threads: usize,
    load: &LoadSpec,
    churn: bool,
) -> Option<ChanceRange> {
    if churn || workers == 0 || threads == 0 {
        return None;
    }
    let connections = load.connections;
    let worst: Vec<usize> = std::iter::once(connections)
        .chain(std::iter::repeat_n(0, workers - 1))
        .collect();
    let best: Vec<usize> = (0..workers)
        .map(|i| connections / workers + usize::from(i < connections % workers))
        .collect();
    let rate = |spread: &[usize]| {
        load.requests as f64
            / sticky_total_s(
                spread,
                threads,
                load.requests,
                load.service,
                load.fixed_share,
            )
    };
    let service_ms = load.service.as_secs_f64() * 1000.0;
    let wait = |spread: &[usize]| {
        let most = spread.iter().copied().max().unwrap_or(0);
        service_ms * most.div_ceil(threads).max(1) as f64
    };
    Some(ChanceRange {
        rps: Some((rate(&worst), rate(&best))),
        p50_ms: Some((service_ms, wait(&worst))),
        p99_ms: Some((wait(&best), wait(&worst))),
    })
}

/// The thread sweep: one worker with T = 1, 2, 4 … 1,024 threads under 256
/// connections at 100 ms. The law says min(T, 256) / 0.1 s.
fn thread_sweep(scale: f64) -> Vec<Experiment> {
    let delay = scaled(100, scale);
    let connections = 256;
    (0..=10)
        .map(|power| {
            let threads = 1usize << power;
            // Enough requests for every connection and about eight rounds.
            let requests = (8 * threads.min(connections)).max(connections) as u64;
            let t = threads.to_string();
            let plural = if threads == 1 { "" } else { "s" };
            let experiment = Experiment::new(
                format!("thread_sweep_t{threads}"),
                format!("{threads} thread{plural}, 256 connections"),
                threads_server(
                    &["--threads", &t],
                    &format!("1 worker × {threads} threads"),
                    threads,
                ),
                vec![LoadSpec::sleeps(requests, connections, delay)],
            )
            .in_group(
                Group::new("thread_sweep", format!("{threads} thread{plural}")).at(threads as f64),
            );
            // Where the requests are about to stop waiting for a thread, the
            // median sits on the edge between a request served at once and
            // one that waited a round: which connections a thread serves
            // first decides it.
            if (64..connections).contains(&threads) {
                experiment
                    .latencies_set_by(SetBy::Chance)
                    .repeated(3)
                    .latencies_within_the_model()
                    .varies_because("which connections the threads serve first is chance, and it decides whether the median waited a round")
            } else if threads >= connections {
                // A thread for every connection: every request at once, and
                // the tail above the sleep is the scheduler waking hundreds
                // of threads.
                experiment
                    .tail_set_by(SetBy::Cpu(Probe::Switch))
                    .varies_because("hundreds of threads wake at once: the tail above the sleep is the scheduler's")
            } else {
                experiment
            }
        })
        .collect()
}

/// More open connections than threads: 8 connections held open, one
/// request each, against 4 threads, for a thread per connection (idle
/// connections hold threads) and a pool of ready connections.
fn keepalive_starvation(scale: f64) -> Vec<Experiment> {
    let delay = scaled(100, scale);
    let designs: [(&str, &[&str], &str); 3] = [
        (
            "per_connection",
            &["--pool", "per-connection"],
            "a thread per connection, kept alive 5 s",
        ),
        (
            "per_connection_close",
            &["--pool", "per-connection", "--keep-alive", "0"],
            "a thread per connection, closed after each answer",
        ),
        ("ready", &[], "a pool of ready connections"),
    ];
    designs
        .into_iter()
        .map(|(name, flags, in_words)| {
            let mut args = vec!["--threads", "4"];
            args.extend_from_slice(flags);
            let experiment = Experiment::new(
                format!("starvation_{name}"),
                format!("4 threads, {in_words}: 8 held connections"),
                threads_server(&args, in_words, 4),
                vec![LoadSpec::sleeps(8, 8, delay)],
            )
            .in_group(Group::new("starvation", in_words));
            if name == "per_connection" {
                experiment.with_timeline()
            } else {
                experiment
            }
        })
        .collect()
}

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let mut experiments = vec![five_sleeps(ServerUnderTest::of(&THREADS), scale).with_timeline()];
    experiments.extend(seed_002_table(scale));
    experiments.extend(worker_spread(scale));
    experiments.extend(keepalive_starvation(scale));
    experiments.extend(thread_sweep(scale));
    experiments
}

// ANCHOR: sticky
/// Chapter 2: workers whose kept-alive connections stay with the worker that
/// accepted them. `spread[i]` connections sit on worker i, which has
/// `threads` threads. With `fixed_share` each connection sends its own
/// requests / connections (hey); otherwise connections take requests from one
/// count (oha, wrk), so a worker with more connections than threads lends
/// its surplus to no one, and the capacity is Σ min(threads, spread[i]).
/// Returns the predicted total time of the run, in seconds.
pub fn sticky_total_s(
    spread: &[usize],
    threads: usize,
    requests: u64,
    service: Duration,
    fixed_share: bool,
) -> f64 {
    let connections: usize = spread.iter().sum();
    if connections == 0 {
        return 0.0;
    }
    let stream =
        |requests: u64, connections: usize| ClientStream::closed(requests, connections, service);
    if fixed_share {
        let share = requests / connections as u64;
        spread
            .iter()
            .filter(|&&on_worker| on_worker > 0)
            .map(|&on_worker| {
                predict(
                    &[stream(share * on_worker as u64, on_worker)],
                    Capacity::Limited(threads),
                )[0]
                .total_s
            })
            .fold(0.0, f64::max)
    } else {
        let capacity: usize = spread.iter().map(|&on| on.min(threads)).sum();
        predict(
            &[stream(requests, connections)],
            Capacity::Limited(capacity.max(1)),
        )[0]
        .total_s
    }
}
// ANCHOR_END: sticky

/// How many connections each worker accepted, from the server's `/report`.
pub fn spread(experiment: &ExperimentRecord) -> Option<Vec<usize>> {
    Some(experiment.report::<WorkersReport>()?.accepted())
}

/// What the sticky-connection model predicts from the spread the server
/// reported: only where connections stayed put (as many accepted as the
/// client opened).
pub fn sticky_prediction_s(experiment: &ExperimentRecord) -> Option<f64> {
    let report: WorkersReport = experiment.report()?;
    let spread = report.accepted();
    let load = experiment.load()?;
    if spread.iter().sum::<usize>() != load.connections || spread.len() < 2 {
        return None;
    }
    let service = Duration::from_secs_f64(load.predicted.min_ms / 1000.0);
    Some(sticky_total_s(
        &spread,
        report.threads_per_worker,
        load.requests,
        service,
        load.fixed_share,
    ))
}

/// The two spread columns: connections per worker, and the model's total from them.
pub fn spread_columns() -> [Column<'static>; 2] {
    [
        Column::new("connections per worker", |e| {
            or_dash(spread(e), |s| {
                s.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" · ")
            })
        }),
        Column::new("predicted from the spread", |e| {
            or_dash(sticky_prediction_s(e), |s| format_ms(s * 1000.0))
        }),
    ]
}

/// For the thread sweep: what each extra thread added to the server's peak
/// resident memory, between the fewest and the most threads.
fn thread_cost_line(members: &[&ExperimentRecord]) -> Option<String> {
    let points: Vec<(u64, u64)> = members
        .iter()
        .filter_map(|e| {
            let samples = e.samples.as_ref()?;
            Some((samples.peak_threads, samples.peak_rss_kib))
        })
        .collect();
    let fewest = points.iter().min_by_key(|p| p.0)?;
    let most = points.iter().max_by_key(|p| p.0)?;
    if most.0 <= fewest.0 {
        return None;
    }
    let per_thread = (most.1 as f64 - fewest.1 as f64) / (most.0 - fewest.0) as f64;
    Some(format!(
        "From {} to {} threads the peak resident memory went from {} to {}: \
         **{per_thread:.1} KiB per thread** (stack pages actually touched, not the stack \
         reserved).\n",
        thousands(fewest.0),
        thousands(most.0),
        mib(fewest.1),
        mib(most.1),
    ))
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let mut out: Vec<View> = Vec::new();
    out.extend(views::experiment(record, "five_sleeps"));
    out.extend(views::timeline(record, "five_sleeps"));
    out.extend(views::timeline(record, "starvation_per_connection"));
    let [workers, predicted] = spread_columns();
    let seed = Column::new("seed's req/s", |e| {
        or_dash(seed_002_rps(&e.slug), |rps| format!("{rps:.2}"))
    });
    let (threads, rss) = (views::threads_column, views::rss_column);
    out.push(views::group_view(
        record,
        "seed002",
        &[seed, predicted],
        &[workers, threads(), rss()],
    ));
    out.push(views::group_view(
        record,
        "spread",
        &spread_columns(),
        &[threads(), rss()],
    ));
    out.push(views::group_view(
        record,
        "starvation",
        &[threads(), rss()],
        &[],
    ));
    let sweep = views::group(record, "thread_sweep");
    let mut text = views::group_table(&sweep, &[threads(), rss()], &[]);
    if let Some(line) = thread_cost_line(&sweep) {
        text.push('\n');
        text.push_str(&line);
    }
    text.push('\n');
    text.push_str(&stamp(record));
    out.push(View::new(
        format!("chapter{}_thread_sweep.md", record.chapter),
        text,
    ));
    out.extend(views::sweep_chart(
        record,
        "thread_sweep",
        "threads (doubling)",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_002_four_by_two_is_the_busiest_worker() {
        let quarter = Duration::from_millis(250);
        // hey's 5 requests per connection; three connections on two threads: 8 rounds.
        assert_eq!(sticky_total_s(&[3, 3, 2, 2], 2, 50, quarter, true), 2.0);
        assert_eq!(sticky_total_s(&[4, 2, 2, 2], 2, 50, quarter, true), 2.5);
        // One shared count: every worker keeps both threads busy, capacity 8.
        assert_eq!(sticky_total_s(&[3, 3, 2, 2], 2, 50, quarter, false), 1.75);
        assert_eq!(sticky_total_s(&[10, 0, 0, 0], 2, 50, quarter, false), 6.25);
    }

    #[test]
    fn every_seed_002_row_finds_the_seeds_number() {
        assert_eq!(seed_002_rps("seed002_w4_t2_n50_c10"), Some(24.5377));
        assert_eq!(seed_002_rps("seed002_w4_t2_n10_c5"), None);
        let rows = seed_002_table(1.0);
        let with_seed = rows
            .iter()
            .filter(|e| seed_002_rps(&e.slug).is_some())
            .count();
        assert_eq!(with_seed, 5, "seed 002 measured five of the nine pairs");
    }
}
