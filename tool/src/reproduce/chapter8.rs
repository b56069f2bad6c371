//! Chapter 8, ten thousand connections: 100, 1,000 and 10,000 connections
//! held open against a thread per connection, chapter 3's axum and the
//! minimal hand-written loop; busy (a 1 s request always in flight) and idle
//! (kept alive after one request). What each connection cost in memory
//! (resident, kernel, address space), threads and CPU; the rate against
//! Little's law; the tail; the machine's limits.

use std::fmt::Write;
use std::time::Duration;

use super::chapter::{Chapter, Example};
use super::chapter3;
use super::charts::{self, Legend};
use super::model::{self, Capacity};
use super::record::{ChapterRecord, ExperimentRecord, Group, LoadOutcome};
use super::sample::ServerSamples;
use super::spec::{Experiment, LoadSpec, Plan, ServerUnderTest, scaled, sleep_path};
use super::views::{
    self, Column, Lines, View, add_point, format_opt_ms, kib, mib, row_label, sampled, stamp,
    thousands,
};
use evt::defaults;

pub const THREADS: Example = Example::server(
    "chapter8_threads",
    "a blocking server that starts a thread for every connection (no pool, no limit)",
    defaults::CHAPTER8_THREADS_PORT,
    Capacity::Unlimited,
);

pub const MINIMAL_LOOP: Example = Example::server(
    "chapter8_minimal_loop",
    "a hand-written event loop (epoll via mio, one thread) that keeps no buffer for a waiting connection",
    defaults::CHAPTER8_MINIMAL_LOOP_PORT,
    Capacity::Unlimited,
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter8_connections.md"),
    examples: &[THREADS, MINIMAL_LOOP],
    experiments,
    views,
    facts: evt::sys::connection_limits,
    ..Chapter::planned(8, "Ten thousand connections")
};

/// A server whose connections are held: file-name part, in words (a
/// chart's line), as started.
pub type HeldServer = (&'static str, &'static str, ServerUnderTest);

fn servers() -> Vec<HeldServer> {
    vec![
        (
            "threads",
            "a thread per connection",
            ServerUnderTest::of(&THREADS).with_args(&[], "a thread per connection (2 MiB stacks)"),
        ),
        axum(),
        minimal_loop(),
    ]
}

/// Chapter 3's axum, as the held-connection tables show it (chapter 9
/// sets it beside its runtimes too).
pub fn axum() -> HeldServer {
    (
        "axum",
        "axum on tokio",
        ServerUnderTest::of(&chapter3::ASYNC)
            .with_args(&[], "chapter 3's axum on a tokio current-thread loop"),
    )
}

/// The minimal hand-written loop, as the held-connection tables show it.
pub fn minimal_loop() -> HeldServer {
    (
        "loop",
        "minimal loop",
        ServerUnderTest::of(&MINIMAL_LOOP).with_args(
            &[],
            "the minimal loop (mio, one thread, no buffer while waiting)",
        ),
    )
}

/// How fast the connections are opened: under the listen backlog (1,024)
/// per ~200 ms, so no SYN is dropped and retransmitted.
pub const CONNECT_RATE: u32 = 5000;

/// One row of chapter `chapter`'s table: `connections` held open against
/// `server`, either each with a `delay` request always in flight for
/// `duration` (busy), or, with `hold`, each sending one request and then
/// idle for `hold`.
pub fn held_connections(
    chapter: u32,
    (name, series, server): HeldServer,
    connections: usize,
    delay: Duration,
    duration: Duration,
    hold: Option<Duration>,
) -> Experiment {
    let (group, load) = match hold {
        None => {
            let rate = model::steady_throughput(connections, server.capacity, delay);
            let estimate = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
            let mut load = LoadSpec::new(sleep_path(delay), estimate, connections, delay);
            load.duration = Some(duration);
            ("held_busy", load)
        }
        Some(idle) => {
            let mut load =
                LoadSpec::new("/".into(), connections as u64, connections, Duration::ZERO);
            load.hold = Some(idle);
            ("held_idle", load)
        }
    };
    let load = LoadSpec {
        connect_rate: Some(CONNECT_RATE),
        timeout: Duration::from_secs(30),
        ..load
    };
    let title = format!(
        "{}, {} connections {}",
        server.model,
        connections,
        if hold.is_some() {
            "idle after one request"
        } else {
            "each with a request in flight"
        }
    );
    Experiment::new(
        chapter,
        format!("{group}_{name}_{connections}"),
        title,
        server,
        vec![load],
    )
    .in_group(
        Group::new(group, series)
            .at(connections as f64)
            .on_line(series),
    )
}

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let delay = scaled(1000, scale);
    let duration = scaled(10_000, scale);
    let hold = scaled(3000, scale);
    let mut experiments = Vec::new();
    for (name, series, server) in servers() {
        for connections in [100usize, 1000, 10_000] {
            let server = || (name, series, server.clone());
            experiments.push(held_connections(
                8,
                server(),
                connections,
                delay,
                duration,
                None,
            ));
            experiments.push(held_connections(
                8,
                server(),
                connections,
                delay,
                duration,
                Some(hold),
            ));
        }
    }
    // The stack a thread reserves is not the memory it uses: the same 10,000
    // threads with 64 KiB stacks instead of 2 MiB. A row of the table, not a
    // line of the chart.
    let small_stacks = ServerUnderTest::of(&THREADS).with_args(
        &["--stack-kib", "64"],
        "a thread per connection (64 KiB stacks)",
    );
    let mut experiment = held_connections(
        8,
        (
            "threads_stack64",
            "a thread per connection, 64 KiB stacks",
            small_stacks,
        ),
        10_000,
        delay,
        duration,
        None,
    );
    if let Some(row) = experiment.group.as_mut() {
        row.series = None;
        row.x = None;
    }
    experiments.push(experiment);
    experiments
}

/// Whether a row held its connections idle (`--hold`) rather than busy.
fn held_idle(load: &LoadOutcome) -> bool {
    load.measured.hold.is_some()
}

/// The cost table: what each held connection cost the server (resident
/// memory and address space added, per connection; threads; CPU per request)
/// and, for busy connections, the rate against Little's law and the tail.
pub fn cost_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let idle = members.iter().any(|e| e.load().is_some_and(held_idle));
    let connections = |e: &ExperimentRecord| e.load().map_or(1, |l| l.connections);
    let measured = |e: &ExperimentRecord| e.load().map(|l| l.measured.clone());
    let per_connection = |show: fn(&ServerSamples, usize) -> String| {
        move |e: &ExperimentRecord| sampled(e.samples.as_ref(), |s| show(s, connections(e)))
    };
    let server = Column::new("server", |e| row_label(e).to_string());
    let count = Column::new("connections", move |e| thousands(connections(e) as u64));
    let threads = Column::new("threads", |e| {
        sampled(e.samples.as_ref(), |s| thousands(s.peak_threads))
    });
    let rss = Column::new(
        "**RSS per connection**",
        per_connection(|s, c| format!("**{}**", kib(s.rss_per_connection_kib(c)))),
    );
    let kernel = Column::new(
        "kernel stacks and page tables per connection",
        per_connection(|s, c| kib(s.kernel_per_connection_kib(c))),
    );
    let address = Column::new(
        "address space per connection",
        per_connection(|s, c| kib(s.vm_per_connection_kib(c))),
    );
    let peak = Column::new("peak RSS", |e| {
        sampled(e.samples.as_ref(), |s| mib(s.peak_rss_kib))
    });
    let syns = Column::new("SYNs dropped", |e| {
        views::or_dash(e.listen_overflows, thousands)
    });
    let mut out = if idle {
        let open = Column::new("still open after the hold", move |e| {
            views::or_dash(measured(e).and_then(|m| m.hold), |hold| {
                format!("{} of {}", thousands(hold.still_open), thousands(hold.held))
            })
        });
        views::table(
            members,
            &[
                server, count, open, threads, peak, rss, kernel, address, syns,
            ],
        )
    } else {
        let law = Column::new("Little's law req/s", |e| {
            views::or_dash(e.load(), |l| thousands(l.predicted.rps.round() as u64))
        });
        let steady = Column::new("**steady req/s**", move |e| {
            views::or_dash(measured(e).and_then(|m| m.steady_rps), |rate| {
                format!("**{}**", thousands(rate.round() as u64))
            })
        });
        let p99 = Column::new("p99", move |e| {
            format_opt_ms(measured(e).and_then(|m| m.latency_ms.p99))
        });
        let cpu = Column::new("CPU per request", move |e| {
            let requests = measured(e).map_or(1, |m| m.requests.completed.max(1)) as f64;
            sampled(e.samples.as_ref(), |s| {
                if s.cpu_ms == 0 {
                    // CPU time is counted in 10 ms clock ticks: less than one tick.
                    format!("< {:.0} µs", 10_000.0 / requests)
                } else {
                    format!("{:.0} µs", s.cpu_ms as f64 * 1000.0 / requests)
                }
            })
        });
        let mut text = views::table(
            members,
            &[server, count, law, steady, p99, threads, rss, kernel, cpu],
        );
        let over_run = Column::new("req/s over the run", move |e| {
            views::or_dash(measured(e), |m| thousands(m.rps.round() as u64))
        });
        let p50 = Column::new("p50", move |e| {
            format_opt_ms(measured(e).and_then(|m| m.latency_ms.p50))
        });
        let switches = Column::new(
            "context switches per request (voluntary / involuntary)",
            move |e| {
                let requests = measured(e).map_or(1, |m| m.requests.completed.max(1)) as f64;
                views::or_dash(e.samples.as_ref().and_then(|s| s.context_switches), |c| {
                    format!(
                        "{:.1} / {:.1}",
                        c.voluntary as f64 / requests,
                        c.involuntary as f64 / requests
                    )
                })
            },
        );
        let server = Column::new("server", |e| row_label(e).to_string());
        let count = Column::new("connections", move |e| thousands(connections(e) as u64));
        text.push('\n');
        text.push_str(&views::collapsed(
            "More columns",
            &views::table(
                members,
                &[server, count, over_run, p50, peak, address, switches, syns],
            ),
        ));
        text
    };
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// The machine's limits on connections, as the run read them.
fn limits_table(record: &ChapterRecord) -> String {
    if record.limits.is_empty() {
        return "*This record has no limits read (made before the book read them).*\n".into();
    }
    let mut out = String::from("| limit | here | what it caps, and the fix |\n|---|--:|---|\n");
    for limit in &record.limits {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            limit.name, limit.value, limit.meaning
        );
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// The findings at the most connections, in sentences made from the
/// records: per server, the rate against Little's law, the tail, and what a
/// connection cost.
fn cost_summary(members: &[&ExperimentRecord]) -> Option<String> {
    let most = members
        .iter()
        .map(|e| e.loads.first().map_or(0, |l| l.connections))
        .max()?;
    let mut out = format!("At {} connections:\n\n", thousands(most as u64));
    for experiment in members {
        let Some(load) = experiment.loads.first().filter(|l| l.connections == most) else {
            continue;
        };
        let samples = experiment.samples.as_ref()?;
        let m = &load.measured;
        let mut line = format!("- **{}**: ", row_label(experiment));
        if let Some(rate) = m.steady_rps {
            let _ = write!(
                line,
                "{} requests/s steady, {:.1} % of Little's law's {}, p99 {}; ",
                thousands(rate.round() as u64),
                100.0 * rate / load.predicted.rps,
                thousands(load.predicted.rps.round() as u64),
                format_opt_ms(m.latency_ms.p99),
            );
        }
        if let Some(hold) = m.hold {
            let _ = write!(
                line,
                "{} of {} still open after {} idle; ",
                thousands(hold.still_open),
                thousands(hold.held),
                humantime::format_duration(Duration::from_secs_f64(hold.idle_s)),
            );
        }
        let _ = writeln!(
            line,
            "{:.1} KiB resident, {:.1} KiB of kernel stacks and page tables and {} KiB of \
             address space per connection, {} thread{}.",
            samples.rss_per_connection_kib(most),
            samples.kernel_per_connection_kib(most),
            thousands(samples.vm_per_connection_kib(most).round() as u64),
            thousands(samples.peak_threads),
            if samples.peak_threads == 1 { "" } else { "s" },
        );
        out.push_str(&line);
    }
    Some(out)
}

/// The charts against connections held (one line per server): resident
/// memory per connection, and for busy connections the steady rate beside
/// Little's law and the p99. File-name suffix and SVG.
fn cost_charts(
    record: &ChapterRecord,
    members: &[&ExperimentRecord],
) -> Vec<(&'static str, String)> {
    let (mut memory, mut share, mut p99) = (Lines::new(), Lines::new(), Lines::new());
    let mut idle = false;
    for experiment in members {
        let (Some(group), Some(load)) = (&experiment.group, experiment.load()) else {
            continue;
        };
        let (Some(series), Some(x)) = (&group.series, group.x) else {
            continue;
        };
        idle |= held_idle(load);
        if let Some(samples) = &experiment.samples {
            let per_connection = samples.rss_per_connection_kib(load.connections);
            // A log scale has no zero: a server that added no whole page is left off.
            if per_connection > 0.0 {
                add_point(&mut memory, series, (x, per_connection));
            }
        }
        if let Some(rate) = load
            .measured
            .steady_rps
            .filter(|_| load.predicted.rps > 0.0)
        {
            add_point(&mut share, series, (x, 100.0 * rate / load.predicted.rps));
        }
        if let (false, Some(ms)) = (held_idle(load), load.measured.latency_ms.p99) {
            add_point(&mut p99, series, (x, ms));
        }
    }
    let Some(first) = members.first().and_then(|e| e.load()) else {
        return Vec::new();
    };
    let held = if idle {
        "idle after one request".to_string()
    } else {
        format!("each waiting on {}", first.path)
    };
    let chapter = record.chapter;
    let mut out = Vec::new();
    let mut chart = |suffix, title: String, y_label, lines: &Lines, legend, y_range| {
        if let Some(svg) = charts::lines_svg(
            &title,
            "connections held open",
            y_label,
            lines,
            &[],
            legend,
            y_range,
        ) {
            out.push((suffix, svg));
        }
    };
    chart(
        "rss",
        format!("Chapter {chapter}: memory per connection, {held}"),
        "resident memory per connection, KiB",
        &memory,
        Legend::MiddleRight,
        None,
    );
    if !idle {
        chart(
            "rps",
            format!("Chapter {chapter}: steady requests/s as % of Little's law, {held}"),
            "% of connections ÷ delay",
            &share,
            Legend::LowerLeft,
            Some(0.0..110.0),
        );
        chart(
            "p99",
            format!("Chapter {chapter}: p99 latency, {held}"),
            "p99, ms",
            &p99,
            Legend::UpperLeft,
            None,
        );
    }
    out
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let mut out = Vec::new();
    for name in ["held_busy", "held_idle"] {
        let members = views::group(record, name);
        let file = |suffix: &str| format!("chapter{}_{name}{suffix}", record.chapter);
        out.push(View::new(file(".md"), cost_table(record, &members)));
        for (suffix, svg) in cost_charts(record, &members) {
            out.push(View::new(file(&format!("_{suffix}.svg")), svg));
        }
        if let Some(summary) = cost_summary(&members) {
            out.push(View::new(file("_summary.md"), summary));
        }
    }
    out.push(View::new(
        format!("chapter{}_limits.md", record.chapter),
        limits_table(record),
    ));
    out
}
