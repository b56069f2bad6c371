//! Connections held open against a server, busy or idle, and what each
//! cost it: the experiment and its table, shared by the chapters that hold
//! connections (8, 9 and 11).

use std::time::Duration;

use super::model;
use super::record::{ChapterRecord, ExperimentRecord, Group, LoadOutcome};
use super::sample::ServerSamples;
use super::spec::{Experiment, LoadSpec, ServerUnderTest, sleep_path};
use super::views::{self, Column, format_opt_ms, kib, mib, row_label, sampled, stamp, thousands};

/// A server whose connections are held: file-name part, in words (a
/// chart's line), as started.
pub type HeldServer = (&'static str, &'static str, ServerUnderTest);

/// How fast the connections are opened: under the listen backlog (1,024)
/// per ~200 ms, so no SYN is dropped and retransmitted.
pub const CONNECT_RATE: u32 = 5000;

/// One row of chapter `chapter`'s table: `connections` held open against
/// `server`, either each with a `delay` request always in flight for
/// `duration` (busy), or, with `hold`, each sending one request and then
/// idle for `hold`.
pub fn held_connections(
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
        slug(hold.is_some(), name, connections),
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

/// Whether a row held its connections idle (`--hold`) rather than busy.
pub fn held_idle(load: &LoadOutcome) -> bool {
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
    let slab = Column::new(
        "kernel slab per connection (sockets, both ends)",
        move |e: &ExperimentRecord| {
            sampled(e.samples.as_ref(), |s| {
                views::or_dash(s.slab_per_connection_kib(connections(e)), kib)
            })
        },
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
                server, count, open, threads, peak, rss, kernel, slab, address, syns,
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
            &[
                server, count, law, steady, p99, threads, rss, kernel, slab, cpu,
            ],
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

/// The slug of a held-connection row: `held_idle_NAME_N` or `held_busy_NAME_N`.
pub fn slug(idle: bool, name: &str, connections: usize) -> String {
    let group = if idle { "held_idle" } else { "held_busy" };
    format!("{group}_{name}_{connections}")
}
