//! Chapter 7, a proxy under high I/O (seed 004): `/proxy` calls an upstream,
//! on a blocking pool of 10 … 1,000 threads per worker or on an event loop
//! per worker, two workers each, under 400 connections; upstream delays of
//! 0 ms (the seed's nginx) and 100 ms. Seed 004's own rows stand under the
//! 0 ms table.

use super::judge::SetBy;
use std::fmt::Write;
use std::time::Duration;

use super::chapter::{Chapter, Example};
use super::chapter3;
use super::charts;
use super::model::{self, Capacity};
use super::record::{ChapterRecord, ExperimentRecord, Group};
use super::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use super::views::{
    self, View, format_ms, format_opt_ms, mib, or_dash, row_label, stamp, thousands,
};
use evt::defaults;

pub const PROXY: Example = Example::server(
    "chapter7_proxy",
    "GET /proxy calls an upstream: a blocking pool per worker, or an event loop per worker (seed 004)",
    defaults::CHAPTER7_PROXY_PORT,
    Capacity::Limited(defaults::CHAPTER7_WORKERS as usize * defaults::CHAPTER7_POOL as usize),
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter7_proxy.md"),
    examples: &[PROXY],
    experiments,
    views,
    ..Chapter::planned(7, "A proxy under high I/O")
};

/// Seed 004's connections.
const CONNECTIONS: usize = 400;

/// The proxy with `model_args`, in front of an upstream that sleeps
/// `delay`; loaded like seed 004 (400 connections for `duration`).
fn proxy_run(
    group: &str,
    (name, model_args, in_words): (String, Vec<String>, String),
    capacity: Capacity,
    delay: Duration,
    duration: Duration,
) -> Experiment {
    let mut args: Vec<String> = vec![
        "--upstream".into(),
        format!("{{upstream}}/sleep?ms={}", delay.as_millis()),
    ];
    args.extend(model_args);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerUnderTest::of(&PROXY)
        .with_args(&arg_refs, &in_words)
        .with_capacity(capacity);
    let connections = CONNECTIONS;
    // The model's estimate of how many requests fit in the run, for its
    // prediction. With no upstream delay the model (which knows no overhead)
    // has nothing to say: one round stands in, and the table shows "—".
    let estimate = if delay.is_zero() {
        connections as u64
    } else {
        let rate = model::steady_throughput(connections, capacity, delay);
        (rate * duration.as_secs_f64()).round().max(1.0) as u64
    };
    let mut load = LoadSpec::new("/proxy".into(), estimate, connections, delay);
    load.duration = Some(duration);
    load.timeout = Duration::from_secs(30);
    load.keep_answers_per_connection = true;
    let mut experiment = Experiment::new(
        format!("{group}_{name}"),
        format!(
            "{in_words}, upstream {} ms, 400 connections for {}",
            delay.as_millis(),
            humantime::format_duration(duration)
        ),
        server,
        vec![load],
    )
    .of_seed("004")
    .in_group(Group::new(group, in_words));
    experiment.upstreams = vec![
        ServerUnderTest::of(&chapter3::ASYNC)
            .with_args(&[], "chapter 3's event loop as the upstream"),
    ];
    experiment
}

/// One proxy setup: file-name part, flags, in words, capacity, chart x.
type ProxySetup = (String, Vec<String>, String, Capacity, Option<f64>);

/// The proxy's setups: threads with pools 10 … 1,000 per worker, and async;
/// two workers each, like seed 004's gunicorn.
fn proxy_setups() -> Vec<ProxySetup> {
    let mut setups: Vec<_> = [10usize, 20, 50, 100, 200, 400, 800, 1000]
        .into_iter()
        .map(|pool| {
            (
                format!("threads_{pool}"),
                vec![
                    "--model".into(),
                    "threads".into(),
                    "--pool".into(),
                    pool.to_string(),
                ],
                format!("threads, pool {pool} × 2 workers"),
                Capacity::Limited(2 * pool),
                Some(pool as f64),
            )
        })
        .collect();
    setups.push((
        "async".into(),
        vec!["--model".into(), "async".into()],
        "async, a loop × 2 workers".into(),
        Capacity::Unlimited,
        None,
    ));
    setups
}

/// Seed 004's own results (2017, Python 3.6, gunicorn with 2 workers, wrk
/// with 400 connections for 20 s against a route that calls nginx): variant,
/// then min, p50, p99, p99.9, max and mean in ms, duration in s, requests.
pub const SEED_004: [(&str, [f64; 6], f64, u64); 11] = [
    (
        "aiohttp",
        [163.27, 247.72, 352.75, 404.59, 1414.08, 257.59],
        20.10,
        30702,
    ),
    (
        "flask:gevent",
        [85.02, 945.17, 6587.19, 8177.32, 8192.75, 1207.66],
        20.08,
        7491,
    ),
    (
        "flask:meinheld",
        [124.99, 2526.55, 6753.13, 6857.55, 6857.55, 3036.93],
        20.10,
        190,
    ),
    (
        "flask:10",
        [163.05, 4419.11, 4505.59, 4659.46, 4667.55, 3880.05],
        20.05,
        1797,
    ),
    (
        "flask:20",
        [110.23, 2368.20, 3140.01, 3434.39, 3476.06, 2163.02],
        20.09,
        3364,
    ),
    (
        "flask:50",
        [122.17, 472.98, 3978.68, 8599.01, 9845.94, 541.13],
        20.10,
        4606,
    ),
    (
        "flask:100",
        [118.26, 499.16, 4428.77, 8714.60, 9987.37, 556.77],
        20.10,
        4555,
    ),
    (
        "flask:200",
        [112.06, 459.85, 4493.61, 8548.99, 9683.27, 527.02],
        20.10,
        4378,
    ),
    (
        "flask:400",
        [121.63, 526.72, 3195.23, 8069.06, 9686.35, 580.54],
        20.06,
        4336,
    ),
    (
        "flask:800",
        [127.94, 430.07, 4503.95, 8653.69, 9722.19, 514.47],
        20.09,
        4381,
    ),
    (
        "flask:1000",
        [184.76, 732.21, 1919.72, 5323.73, 7364.60, 786.26],
        20.04,
        4121,
    ),
];

/// Seed 004's proxy under 400 connections, upstream delays of 0 ms (the
/// seed's nginx) and 100 ms.
fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    // Seed 004 ran wrk for 20 s; 8 s reaches the same steady state and keeps
    // the chapter within a workshop's three minutes.
    let duration = scaled(8_000, scale);
    let mut experiments = Vec::new();
    for delay_ms in [0u64, 100] {
        let delay = scaled(delay_ms, scale);
        let group = format!("proxy_{delay_ms}ms");
        for (name, args, in_words, capacity, x) in proxy_setups() {
            let mut experiment =
                proxy_run(&group, (name, args, in_words), capacity, delay, duration);
            if let Some(group) = experiment.group.as_mut() {
                // Only the delayed upstream has a prediction worth charting.
                group.x = if delay_ms > 0 { x } else { None };
            }
            // A pool smaller than the connections serves some of them over
            // and over while others wait: which is chance.
            if delay_ms > 0
                && matches!(capacity, Capacity::Limited(threads) if threads < CONNECTIONS)
            {
                experiment = experiment
                    .latencies_set_by(SetBy::Chance)
                    .repeated(3)
                    .varies_because("which waiting connections the pool serves next is chance");
            }
            experiments.push(experiment);
        }
    }
    experiments
}

/// Seed 004's table, in two: the rate and the latency distribution with
/// what the server held (threads, memory) first; then, collapsed, the run's
/// length, the rest of the distribution, failures, and what the server spent
/// (CPU as a share of one core, context switches per request). Seed 004's
/// own rows go under both, where it measured something.
fn latency_tables(members: &[&ExperimentRecord], seed_rows: bool) -> String {
    let mut out = String::from(
        "| setup | predicted req/s | **req/s** | p50 | p99 | p99.9 | max | threads | peak RSS |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let (m, samples) = (&load.measured, experiment.samples.as_ref());
        let l = &m.latency_ms;
        let predicted = if load.predicted.total_s > 0.0 && load.predicted.min_ms > 0.0 {
            format!("{:.0}", load.predicted.rps)
        } else {
            "—".to_string()
        };
        let _ = writeln!(
            out,
            "| {} | {predicted} | **{:.0}** | {} | {} | {} | {} | {} | {} |",
            row_label(experiment),
            m.rps,
            format_opt_ms(l.p50),
            format_opt_ms(l.p99),
            format_opt_ms(l.p999),
            format_opt_ms(l.max),
            or_dash(samples, |s| s.peak_threads.to_string()),
            or_dash(samples, |s| mib(s.peak_rss_kib)),
        );
    }
    if seed_rows {
        for row in SEED_004 {
            let (variant, [_, p50, p99, p999, max, _], duration_s, requests) = row;
            let _ = writeln!(
                out,
                "| *seed 004: {variant}* | — | *{:.0}* | {} | {} | {} | {} | — | — |",
                requests as f64 / duration_s,
                seed_cell(p50),
                seed_cell(p99),
                seed_cell(p999),
                seed_cell(max),
            );
        }
    }
    out.push_str(
        "\n<details><summary>The run's length, the rest of the latencies, failures, and what \
         the server spent</summary>\n\n\
         | setup | requests | duration | min | mean | not 2xx | failed | CPU, % of one core | context switches per request (voluntary / involuntary) |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(load) = experiment.load() else {
            continue;
        };
        let (m, samples) = (&load.measured, experiment.samples.as_ref());
        let completed = m.requests.completed.max(1) as f64;
        let not_2xx: u64 = m
            .status_codes
            .iter()
            .filter(|(code, _)| !code.starts_with('2'))
            .map(|(_, count)| count)
            .sum();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row_label(experiment),
            thousands(m.requests.completed),
            format_ms(m.duration_s * 1000.0),
            format_opt_ms(m.latency_ms.min),
            format_opt_ms(m.latency_ms.mean),
            thousands(not_2xx),
            thousands(m.requests.failed),
            or_dash(samples, |s| format!(
                "{:.0} %",
                s.cpu_ms as f64 / (m.duration_s * 10.0)
            )),
            or_dash(samples.and_then(|s| s.context_switches), |c| format!(
                "{:.1} / {:.1}",
                c.voluntary as f64 / completed,
                c.involuntary as f64 / completed
            )),
        );
    }
    if seed_rows {
        for (variant, [min, _, _, _, _, mean], duration_s, requests) in SEED_004 {
            let _ = writeln!(
                out,
                "| *seed 004: {variant}* | *{}* | {} | {} | {} | — | — | — | — |",
                thousands(requests),
                format_ms(duration_s * 1000.0),
                seed_cell(min),
                seed_cell(mean),
            );
        }
    }
    out.push_str("\n</details>\n");
    out
}

/// What seed 004's rates mean per request: with two worker processes, each
/// busy the whole run, a process spent 2 ÷ (requests per second) on each
/// request. Arithmetic on the seed's published numbers, not a measurement.
fn seed_004_per_request() -> View {
    let mut out = String::from(
        "| seed 004's setup | requests in the run | req/s | a process's time per request (2 processes ÷ req/s) |\n\
         |---|--:|--:|--:|\n",
    );
    for (variant, _, duration_s, requests) in SEED_004 {
        let rps = requests as f64 / duration_s;
        let _ = writeln!(
            out,
            "| {variant} | {} | {rps:.0} | {} |",
            thousands(requests),
            format_ms(2000.0 / rps),
        );
    }
    out.push_str(
        "\n*From seed 004's own table (2017, Python 3.6, gunicorn with 2 workers, wrk with 400 \
         connections for 20 s).*\n",
    );
    View::new(CHAPTER.file("seed004_per_request.md"), out)
}

/// A cell of the seed's own numbers: what it did not report is a dash.
fn seed_cell(ms: f64) -> String {
    if ms.is_nan() {
        "—".to_string()
    } else {
        format_ms(ms)
    }
}

/// Who waited, at the 100 ms upstream: per setup the rate, how many
/// connections got one answer (or none) in the whole run, what the others
/// got, and the mean latency beside Little's law's (connections ÷ rate),
/// which no queueing policy can change, only who pays it.
fn who_waited(record: &ChapterRecord) -> View {
    let mut out = String::from(
        "| setup | **req/s** | connections answered once or never | the others' answers | mean latency | Little's law: 400 ÷ req/s | p50 | p99 |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for experiment in views::group(record, "proxy_100ms") {
        let Some(load) = experiment.load() else {
            continue;
        };
        let m = &load.measured;
        let answers = &load.answers_per_connection;
        let starved: u64 = answers.range(..2).map(|(_, n)| n).sum();
        let others: Vec<u64> = answers.range(2..).map(|(&a, _)| a).collect();
        let spread = match (others.first(), others.last()) {
            (Some(fewest), Some(most)) if fewest == most => thousands(*fewest),
            (Some(fewest), Some(most)) => format!("{}–{}", thousands(*fewest), thousands(*most)),
            _ => "—".to_string(),
        };
        let little = (m.rps > 0.0).then(|| load.connections as f64 / m.rps * 1000.0);
        let _ = writeln!(
            out,
            "| {} | **{:.0}** | {} of {} | {spread} | {} | {} | {} | {} |",
            row_label(experiment),
            m.rps,
            thousands(starved),
            thousands(load.connections as u64),
            format_opt_ms(m.latency_ms.mean),
            format_opt_ms(little),
            format_opt_ms(m.latency_ms.p50),
            format_opt_ms(m.latency_ms.p99),
        );
    }
    out.push('\n');
    out.push_str(&stamp(record));
    View::new(format!("chapter{}_who_waited.md", record.chapter), out)
}

/// For a few setups at the 100 ms upstream: the share of connections that
/// got at most x answers in the run.
fn answers_chart(record: &ChapterRecord) -> Option<View> {
    let mut lines = Vec::new();
    for experiment in views::group(record, "proxy_100ms") {
        let load = experiment.load()?;
        let total: u64 = load.answers_per_connection.values().sum();
        if total == 0
            || !["threads_10", "threads_50", "threads_200", "async"]
                .iter()
                .any(|name| experiment.slug.ends_with(name))
        {
            continue;
        }
        let mut seen = 0;
        let steps = load
            .answers_per_connection
            .iter()
            .map(|(&answers, &connections)| {
                seen += connections;
                (answers as f64, 100.0 * seen as f64 / total as f64)
            })
            .collect();
        lines.push((row_label(experiment).to_string(), steps));
    }
    let svg = charts::cumulative_svg(
        "Chapter 7: answers per connection in one run, upstream 100 ms",
        "answers one connection got (log scale)",
        "connections with at most that many",
        &lines,
    )?;
    Some(View::new(
        format!("chapter{}_answers.svg", record.chapter),
        svg,
    ))
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let table = |name: &str, seed_rows: bool| {
        let mut text = latency_tables(&views::group(record, name), seed_rows);
        text.push('\n');
        text.push_str(&stamp(record));
        View::new(format!("chapter{}_{name}.md", record.chapter), text)
    };
    let mut out = vec![
        table("proxy_0ms", true),
        table("proxy_100ms", false),
        who_waited(record),
        seed_004_per_request(),
    ];
    out.extend(answers_chart(record));
    out.extend(views::sweep_chart(
        record,
        "proxy_100ms",
        "threads per worker (the pool)",
    ));
    out
}
