//! Chapter 6, the client side (seed 003, which never got its results): N
//! requests sent sequentially, from threads and as futures, against a
//! server of capacity 8 (seed 003's uWSGI) and against chapter 3's server,
//! which has no capacity limit; the client's own threads, memory and CPU.

use super::chapter::{Chapter, Example};
use super::chapter2::{spread_columns, threads_server};
use super::chapter3;
use super::charts;
use super::judge::{Probe, SetBy};
use super::record::{ChapterRecord, Group};
use super::spec::{Driver, Experiment, LoadSpec, Plan, ServerUnderTest, scaled};
use super::views::{self, Column, Lines, View, add_point, cpu_time, mib, or_dash};

pub const CLIENT: Example = Example::client(
    "chapter6_client",
    "N requests with reqwest: sequential, from threads, or as futures (seed 003)",
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter6_client.md"),
    examples: &[CLIENT],
    experiments,
    views,
    ..Chapter::planned(6, "The client side")
};

/// The client's modes, as `--mode` takes them.
const MODES: [&str; 3] = ["sequential", "threads", "async"];

/// One run of the client: `requests` requests in `mode`, all at once
/// unless sequential, against `server`.
fn client_run(
    group: &str,
    server: ServerUnderTest,
    mode: &str,
    requests: u64,
    delay: std::time::Duration,
) -> Experiment {
    let connections = if mode == "sequential" {
        1
    } else {
        requests as usize
    };
    let mut load = LoadSpec::sleeps(requests, connections, delay);
    load.driver = Driver::Command {
        example: CLIENT.name,
    };
    load.extra_args = vec!["--mode".into(), mode.into()];
    Experiment::new(
        format!("{group}_{mode}_n{requests}"),
        format!("{mode} client, N = {requests}, against {}", server.model),
        server,
        vec![load],
    )
    .of_seed("003")
    .in_group(
        Group::new(group, format!("{mode}, N = {requests}"))
            .at(requests as f64)
            .on_line(mode),
    )
}

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let delay = scaled(500, scale);
    let uwsgi = || {
        threads_server(
            &["--workers", "4", "--threads", "2"],
            "4 workers × 2 threads (seed 003's uWSGI)",
            8,
        )
    };
    let mut experiments = Vec::new();
    for mode in MODES {
        for requests in [1u64, 2, 4, 8, 16, 32, 64] {
            experiments.push(client_run("capacity8", uwsgi(), mode, requests, delay).with_report());
        }
    }
    let unlimited = || {
        ServerUnderTest::of(&chapter3::ASYNC)
            .with_args(&[], "chapter 3's event loop (no capacity limit)")
    };
    for mode in ["threads", "async"] {
        for requests in [64u64, 256, 1024, 4096] {
            let run = client_run("unlimited", unlimited(), mode, requests, delay);
            // From 256 connections on, opening and serving them all at once
            // costs the client more CPU than the sleep hides.
            experiments.push(if requests >= 256 {
                run.set_by(SetBy::Cpu(Probe::Hello)).varies_because(
                    "the client's CPU sets these: it opens and serves every connection at once",
                )
            } else {
                run
            });
        }
    }
    experiments
}

/// The client's own threads, peak memory and CPU, as three columns.
fn client_columns() -> [Column<'static>; 3] {
    let client =
        |e: &super::record::ExperimentRecord| e.load().and_then(|l| l.client_samples.clone());
    [
        Column::new("client threads", move |e| {
            or_dash(client(e), |s| s.peak_threads.to_string())
        }),
        Column::new("client peak RSS", move |e| {
            or_dash(client(e), |s| mib(s.peak_rss_kib))
        }),
        Column::new("client CPU", move |e| {
            or_dash(client(e), |s| cpu_time(s.cpu_ms))
        }),
    ]
}

/// Total time against N, measured and predicted, a line per client mode.
fn series_chart(record: &ChapterRecord, name: &str) -> Option<View> {
    let members = views::group(record, name);
    let (mut measured, mut predicted) = (Lines::new(), Lines::new());
    for experiment in &members {
        let group = experiment.group.as_ref()?;
        let (Some(series), Some(x)) = (&group.series, group.x) else {
            continue;
        };
        let load = experiment.load()?;
        add_point(&mut measured, series, (x, load.measured.duration_s));
        add_point(&mut predicted, series, (x, load.predicted.total_s));
    }
    let first = members.first()?;
    let title = format!(
        "Chapter {}: {} against {} (thin: the model)",
        record.chapter,
        first.load()?.path,
        first.model
    );
    let svg = charts::lines_svg(
        &title,
        "requests sent (N)",
        "total time, s",
        &measured,
        &predicted,
        charts::Legend::UpperLeft,
        None,
    )?;
    Some(View::new(
        format!("chapter{}_{name}.svg", record.chapter),
        svg,
    ))
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let [threads, rss, cpu] = client_columns();
    let [workers, predicted] = spread_columns();
    let server = || {
        [
            views::server_cpu_column(),
            Column::new("server threads", |e| {
                or_dash(e.samples.as_ref(), |s| s.peak_threads.to_string())
            }),
            Column::new("server peak RSS", |e| {
                or_dash(e.samples.as_ref(), |s| mib(s.peak_rss_kib))
            }),
        ]
    };
    let [server_cpu, server_threads, server_rss] = server();
    let mut out = vec![views::group_view(
        record,
        "capacity8",
        &[threads, cpu],
        &[
            rss,
            server_cpu,
            server_threads,
            server_rss,
            workers,
            predicted,
        ],
    )];
    let [threads, rss, cpu] = client_columns();
    let [server_cpu, server_threads, server_rss] = server();
    out.push(views::group_view(
        record,
        "unlimited",
        &[threads, cpu],
        &[rss, server_cpu, server_threads, server_rss],
    ));
    out.extend(series_chart(record, "capacity8"));
    out.extend(series_chart(record, "unlimited"));
    out
}
