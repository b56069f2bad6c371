//! The book's last table: for each situation, which model, and the figure
//! measured in this book that shows it, read from every chapter's record
//! (so it is the reader's machine's, after the reader's run).

use std::fmt::Write;

use super::super::chapter8::{self, Held};
use super::super::chapter9;
use super::super::chapter11::{self, Scaling};
use super::super::chapter13;
use super::super::chapter14;
use super::super::figure::Missing;
use super::super::record::ChapterRecord;
use super::super::rounds::cpu_us;
use super::super::views::{View, format_opt_ms, stamp, thousands};
use super::{CALL_MS, DEADLINE, Read, SLOTS, goodput};
use evt::report::{CoroutineCosts, SwitchCosts};

/// The file the table is written to.
pub const FILE: &str = "chapter12_decision.md";

/// One situation: what to choose, the rule that says this machine agrees,
/// and the measured figures the rule reads.
struct Row {
    situation: &'static str,
    choose: &'static str,
    /// None: no figure can say it, a judgment, said as one.
    verdict: Option<Result<Verdict, Missing>>,
    /// What stands in for the figures where the row is a judgment.
    judgment: &'static str,
    chapter: u32,
}

/// What a row's rule found on this machine's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The figures, as the table prints them.
    pub figures: String,
    /// The rule, in words: what the figures must show for "choose" to hold.
    pub rule: &'static str,
    /// Whether they show it here.
    pub holds: bool,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Chapter 9's switch at 500 workers, free or pinned: the median hop of a
/// thread and of a task, less each run's baseline, in µs.
fn switch_us(records: &[ChapterRecord], pinned: bool) -> Result<(f64, f64), Missing> {
    let figure = chapter9::switch_rounds(500, pinned);
    let runs: Vec<SwitchCosts> = figure
        .runs(records)?
        .into_iter()
        .filter_map(|p| p.output::<SwitchCosts>())
        .collect();
    let hop = |cost: fn(&SwitchCosts) -> f64| {
        median(
            runs.iter()
                .map(|s| (cost(s) - s.baseline_hop_ns) / 1e3)
                .collect(),
        )
    };
    match (hop(|s| s.thread_hop_ns), hop(|s| s.task_hop_ns)) {
        (Some(thread), Some(task)) => Ok((thread, task)),
        _ => Err(Missing::NoValue {
            chapter: 9,
            slug: figure.slug,
        }),
    }
}

pub use super::rules;

/// A rule over a thread's memory per connection and the loops'.
type MemoryRule = fn(f64, &[f64]) -> bool;

/// Chapter 8's 10,000 held connections (idle or busy): resident memory,
/// kernel stacks and page tables per connection for a thread each and the
/// two loops, and the sockets' own slab beside them where it was sampled.
fn held_memory(
    records: &[ChapterRecord],
    figure: fn(Held) -> super::super::figure::Figure,
    kind: &str,
    rule: (&'static str, MemoryRule),
) -> Result<Verdict, Missing> {
    let memory = |server| figure(server).value(records, chapter8::memory_per_connection_kib);
    let (thread, axum, hand) = (
        memory(Held::Threads)?,
        memory(Held::Axum)?,
        memory(Held::Loop)?,
    );
    let slab = |server| figure(server).value(records, chapter8::slab_per_connection_kib);
    let sockets = match (slab(Held::Threads), slab(Held::Axum), slab(Held::Loop)) {
        (Ok(a), Ok(b), Ok(c)) => format!(
            "; beside them, the kernel slab, not in those figures (both ends' sockets; a thread's own record too): {a:.1}, {b:.1} and {c:.1} KiB"
        ),
        _ => "; the sockets' own kernel memory was not sampled in this record".to_string(),
    };
    Ok(Verdict {
        figures: format!(
            "resident memory, kernel stacks and page tables per {kind} connection at 10,000: \
             a thread each {thread:.1} KiB, axum on one loop {axum:.1} KiB, the hand-written loop {hand:.1} KiB{sockets}"
        ),
        rule: rule.0,
        holds: (rule.1)(thread, &[axum, hand]),
    })
}

/// Every figure the table shows, read through the chapters' typed figures,
/// with the rule of its row.
fn rows(records: &[ChapterRecord]) -> Vec<Row> {
    let cores = records
        .iter()
        .find(|r| r.chapter == 11)
        .map_or(2, |r| r.machine.cores.max(2));
    let twelve = super::figure;
    let rate = |read| twelve(read).rps(records);
    let light_p99 = |name| -> Result<f64, Missing> {
        twelve(Read::Hol(name)).value(records, |e| e.loads.first()?.measured.latency_ms.p99)
    };
    let good = |name| -> Result<f64, Missing> {
        twelve(Read::Overload(name, 20)).value(records, |e| goodput(e.load()?))
    };
    let ms = |value: f64| format_opt_ms(Some(value));
    let rps = |value: f64| thousands(value.round() as u64);
    vec![
        Row {
            situation: "Requests that mostly wait (on a database, another service, a timer)",
            choose: "a loop, or as many threads as requests waiting at once",
            verdict: Some((|| {
                let (one_loop, small, each) = (
                    rate(Read::Downstream("loop_free"))?,
                    rate(Read::Downstream("threads"))?,
                    rate(Read::Downstream("threads_many"))?,
                );
                Ok(Verdict {
                    figures: format!(
                        "{CALL_MS} ms waits, 100 connections: one loop {} req/s, {SLOTS} threads {} req/s, 100 threads {} req/s",
                        rps(one_loop),
                        rps(small),
                        rps(each),
                    ),
                    rule: "one loop ≥ 0.8 × 100 threads, and ≥ 2 × 16 threads",
                    holds: rules::waiting(one_loop, small, each),
                })
            })()),
            judgment: "",
            chapter: 12,
        },
        Row {
            situation: "Many connections open at once, mostly idle",
            choose: "a loop",
            verdict: Some(held_memory(
                records,
                chapter8::idle_10000,
                "idle",
                ("each loop under half a thread's memory", rules::held),
            )),
            judgment: "",
            chapter: 8,
        },
        Row {
            situation: "Many connections, each with a request in flight",
            choose: "a loop, for the least memory: a thread each costs the most, and how much a loop saves is its buffers' choice (axum's keep more than the hand-written loop's)",
            verdict: Some(held_memory(
                records,
                chapter8::busy_10000,
                "busy",
                (
                    "each loop under a thread's memory, the leanest under a tenth of it",
                    rules::busy,
                ),
            )),
            judgment: "",
            chapter: 8,
        },
        Row {
            situation: "Clients that send slowly (slowloris), or hold a connection",
            choose: "a loop, or a loop in front of the threads; either way a deadline on the whole request head (a per-read timeout is reset by every byte a slowloris sends)",
            verdict: Some((|| {
                let (pool, one_loop, front) = (
                    twelve(Read::Slow("pool")).max_ms(records)?,
                    twelve(Read::Slow("loop")).max_ms(records)?,
                    twelve(Read::Slow("front")).max_ms(records)?,
                );
                Ok(Verdict {
                    figures: format!(
                        "a probe's slowest answer under {} slow clients: 4 × 2 pool {}, one loop {}, a loop in front of the pool {}",
                        super::SLOW_CLIENTS,
                        ms(pool),
                        ms(one_loop),
                        ms(front),
                    ),
                    rule: "both loops' slowest under a tenth of the pool's",
                    holds: rules::slow(pool, &[one_loop, front]),
                })
            })()),
            judgment: "",
            chapter: 12,
        },
        Row {
            situation: "Handlers that need CPU, among light ones",
            choose: "threads (a pool, or the loop sending its CPU work to a pool bounded to the cores), not a bare loop, one or many",
            verdict: Some((|| {
                let (one_loop, steal, eager, offload, bounded, pool) = (
                    light_p99("loop")?,
                    light_p99("steal")?,
                    light_p99("steal_eager")?,
                    light_p99("offload")?,
                    light_p99("offload_bounded")?,
                    light_p99("pool")?,
                );
                let heavy_p99 = |name| -> Result<f64, Missing> {
                    twelve(Read::Hol(name))
                        .value(records, |e| e.loads.get(1)?.measured.latency_ms.p99)
                };
                let (busy_each, busy_bounded) = (
                    heavy_p99("busy_offload")?,
                    heavy_p99("busy_offload_bounded")?,
                );
                Ok(Verdict {
                    figures: format!(
                        "p99 of light requests beside 20 ms CPU ones: one loop {}, work stealing {} ({} with the eager driver hand-off), CPU offloaded {} ({} to a pool of a place per core), a pool of 8 threads {}; \
                         the heavy requests' own p99: one loop {}, offloaded {}, the pool {}; with heavy requests for 1.6 cores, their p99 with a thread each {}, with a pool of a place per core {}",
                        ms(one_loop),
                        ms(steal),
                        ms(eager),
                        ms(offload),
                        ms(bounded),
                        ms(pool),
                        ms(heavy_p99("loop")?),
                        ms(heavy_p99("offload")?),
                        ms(heavy_p99("pool")?),
                        ms(busy_each),
                        ms(busy_bounded),
                    ),
                    rule: "offloaded (either way) and pool each under half of every loop's light p99 (one loop, work stealing with either setting); the bounded pool's heavy p99 at most the unbounded one's",
                    holds: rules::cpu(&[one_loop, steal, eager], &[offload, bounded, pool])
                        && rules::bounded(busy_each, busy_bounded),
                })
            })()),
            judgment: "",
            chapter: 12,
        },
        Row {
            situation: "Using every core",
            choose: "a loop per core, work stealing, or a process per core that shares its socket fairly: all scale (left to the kernel, one process can take every connection); which keeps light requests fast beside a heavy one, two cores do not settle",
            verdict: Some((|| {
                let one = |model| chapter11::scaling(model, 1).rps(records);
                let all = |model| chapter11::scaling(model, cores).rps(records);
                let (per_core, steal, processes, fair) = (
                    all(Scaling::PerCore)? / one(Scaling::PerCore)?,
                    all(Scaling::Steal)? / one(Scaling::Steal)?,
                    all(Scaling::Processes)? / one(Scaling::Processes)?,
                    // Fair accept has no one-worker row: it is the same process.
                    all(Scaling::FairAccept)? / one(Scaling::Processes)?,
                );
                let light_p99 = |model| chapter11::imbalance(model).p99_ms(records);
                let tails = format!(
                    "light requests' p99 beside one heavy connection: a loop per core {}, work stealing {}, a process per core {}, fair accept {}",
                    ms(light_p99(Scaling::PerCore)?),
                    ms(light_p99(Scaling::Steal)?),
                    ms(light_p99(Scaling::Processes)?),
                    ms(light_p99(Scaling::FairAccept)?),
                );
                Ok(Verdict {
                    figures: format!(
                        "1 → {cores} workers on 200 µs of CPU: a loop per core {per_core:.2} ×, work stealing {steal:.2} ×, \
                         a process per core {processes:.2} × on a shared socket and {fair:.2} × with fair accept; {tails}"
                    ),
                    rule: "a loop per core, work stealing and fair accept each gain at least half the ideal (1 + (workers − 1) ÷ 2)",
                    holds: rules::cores(cores, &[per_core, steal, fair]),
                })
            })()),
            judgment: "",
            chapter: 11,
        },
        Row {
            situation: "A downstream of fixed capacity (a pool of database connections)",
            choose: "either: the downstream sets the rate; the loop queues fairly, while chapter 2's pool (each worker accepts more connections than it has threads) leaves some clients out",
            verdict: Some((|| {
                let slots = twelve(Read::Downstream("loop_slots"));
                let threads = twelve(Read::Downstream("threads"));
                let (loop_rps, pool_rps) = (slots.rps(records)?, threads.rps(records)?);
                let (loop_p99, pool_p99) = (slots.p99_ms(records)?, threads.p99_ms(records)?);
                Ok(Verdict {
                    figures: format!(
                        "{SLOTS} slots × {CALL_MS} ms: one loop {} req/s (p99 {}), {SLOTS} threads {} req/s (p99 {}, slowest {})",
                        rps(loop_rps),
                        ms(loop_p99),
                        rps(pool_rps),
                        ms(pool_p99),
                        ms(threads.max_ms(records)?),
                    ),
                    rule: "the two rates within 15 %; the pool's p99 over 5 × the loop's",
                    holds: rules::downstream(loop_rps, pool_rps, loop_p99, pool_p99),
                })
            })()),
            judgment: "",
            chapter: 12,
        },
        Row {
            situation: "More load than capacity",
            choose: "a limit that answers 503 at once, or a queue timeout (measured on the loop): both keep the goodput, and the wait each allows sets the answers' p99",
            verdict: Some((|| {
                let p99 = |name| twelve(Read::Overload(name, 20)).p99_ms(records);
                let (none, limit, timeout, threads) = (
                    good("loop")?,
                    good("shed")?,
                    good("timeout")?,
                    good("threads")?,
                );
                let (limit_p99, timeout_p99) = (p99("shed")?, p99("timeout")?);
                Ok(Verdict {
                    figures: format!(
                        "goodput (200 within {} s) at twice capacity: no limit {} /s, a limit {} /s (p99 {}), a queue timeout {} /s (p99 {}), {SLOTS} threads {} /s",
                        DEADLINE.as_secs(),
                        rps(none),
                        rps(limit),
                        ms(limit_p99),
                        rps(timeout),
                        ms(timeout_p99),
                        rps(threads),
                    ),
                    rule: "a limit and a queue timeout each ≥ 2 × no limit",
                    holds: rules::overload(none, limit, timeout),
                })
            })()),
            judgment: "",
            chapter: 12,
        },
        Row {
            situation: "Clients that give up (a timeout, a closed tab)",
            choose: "a loop, for work that waits: a task waiting when its connection closes is dropped at that await, while a thread finishes its wait for nobody (CPU work runs on in both)",
            verdict: Some((|| {
                let finished = |name| -> Result<f64, Missing> {
                    twelve(Read::Cancel(name))
                        .value(records, |e| super::cancel::finished(e).map(|n| n as f64))
                };
                let given_up = twelve(Read::Cancel("loop"))
                    .value(records, |e| super::cancel::given_up(e).map(|n| n as f64))?;
                let (one_loop, threads) = (finished("loop")?, finished("threads")?);
                Ok(Verdict {
                    figures: format!(
                        "{} clients give up on a {} ms wait after {} ms: handlers that ran to the end anyway, one loop {}, a thread per connection {}",
                        rps(given_up),
                        super::cancel::WAIT_MS,
                        super::cancel::GIVE_UP_MS,
                        rps(one_loop),
                        rps(threads),
                    ),
                    rule: "the loop finishes under half as many abandoned handlers as the threads",
                    holds: rules::cancel(one_loop, threads),
                })
            })()),
            judgment: "",
            chapter: 12,
        },
        Row {
            situation: "Switching between many waiting things",
            choose: "tasks: a switch costs less",
            verdict: Some((|| {
                let (free, pinned) = (switch_us(records, false)?, switch_us(records, true)?);
                Ok(Verdict {
                    figures: format!(
                        "one hop along 500 waiting workers, less the baseline: a thread {:.1} µs, a task {:.1} µs; pinned to one CPU, {:.1} µs and {:.1} µs",
                        free.0, free.1, pinned.0, pinned.1
                    ),
                    rule: "a thread's hop above a task's, free and pinned",
                    holds: rules::switching(&[free, pinned]),
                })
            })()),
            judgment: "",
            chapter: 9,
        },
        Row {
            situation: "Small requests on Linux: readiness (epoll) or completion (io_uring)",
            choose: "either, for the CPU: the kernel's TCP work dwarfs the system calls io_uring saves; with io_uring, keep its task work from interrupting the loop (cooperative or deferred), and lend a ring of buffers where many connections wait",
            verdict: Some((|| {
                let cpu = |name| -> Result<f64, Missing> {
                    let rounds = chapter13::hello_rounds(name)
                        .iter()
                        .map(|figure| figure.value(records, cpu_us))
                        .collect::<Result<Vec<f64>, Missing>>()?;
                    Ok(median(rounds).unwrap_or(f64::NAN))
                };
                let idle = |name| {
                    chapter13::idle_at_ten_thousand(name)
                        .value(records, chapter8::memory_per_connection_kib)
                };
                let (epoll, ring, interrupted) =
                    (cpu("epoll")?, cpu("uring")?, cpu("uring_interrupt")?);
                let (ring_kib, per_read_kib) = (idle("uring")?, idle("uring_per_read")?);
                Ok(Verdict {
                    figures: format!(
                        "CPU per hello request (medians of rounds): the epoll loop {epoll:.1} µs, the io_uring loop {ring:.1} µs, interrupted by the kernel (its default) {interrupted:.1} µs; resident memory, kernel stacks and page tables per idle connection at 10,000: a ring of buffers {ring_kib:.1} KiB, a buffer per read {per_read_kib:.1} KiB (the sockets' kernel slab, about the same for both, beside them)"
                    ),
                    rule: "the io_uring loop within a fifth of epoll's CPU, the default setting above both, the ring under a buffer per read",
                    holds: rules::completion(epoll, ring, interrupted, ring_kib, per_read_kib),
                })
            })()),
            judgment: "",
            chapter: 13,
        },
        Row {
            situation: "Blocking code, many connections",
            choose: "stackful coroutines (may here, goroutines in Go): blocking-style code at a fraction of a thread's memory and close to a task's switch, as long as every blocking call is the runtime's own",
            verdict: Some((|| {
                let idle = |name| {
                    chapter14::idle_at_ten_thousand(name)
                        .value(records, chapter8::memory_per_connection_kib)
                };
                let (thread_kib, coroutine_kib) = (idle("threads")?, idle("may")?);
                let (coroutines, threads_tasks) = chapter14::switch_programs();
                let hop = coroutines
                    .runs(records)?
                    .first()
                    .and_then(|p| p.output::<CoroutineCosts>())
                    .map(|c| c.hop_ns)
                    .ok_or(Missing::NoValue {
                        chapter: 14,
                        slug: "switch_32".into(),
                    })?;
                let task = threads_tasks
                    .runs(records)?
                    .first()
                    .and_then(|p| p.output::<SwitchCosts>())
                    .map(|c| c.task_hop_ns)
                    .ok_or(Missing::NoValue {
                        chapter: 14,
                        slug: "switch_threads_tasks".into(),
                    })?;
                Ok(Verdict {
                    figures: format!(
                        "resident memory, kernel stacks and page tables per idle connection at 10,000: a thread {thread_kib:.1} KiB, a coroutine {coroutine_kib:.1} KiB; a hop along 500: a coroutine {:.2} µs, a tokio task {:.2} µs (same session)",
                        hop / 1000.0,
                        task / 1000.0
                    ),
                    rule: "a coroutine's idle connection under half a thread's, its hop within twice a task's",
                    holds: rules::coroutines(thread_kib, coroutine_kib, hop, task),
                })
            })()),
            judgment: "",
            chapter: 14,
        },
        Row {
            situation: "Simple code, readable stack traces, blocking libraries",
            choose: "threads",
            verdict: None,
            judgment: "no figure: a blocked thread's stack shows where it waits, a task's shows the runtime; chapter 4 measured what one blocking call does to a loop",
            chapter: 4,
        },
    ]
}

/// Each row's verdict on `records` (None for the judgment), in order.
pub fn verdicts(records: &[ChapterRecord]) -> Vec<Option<Result<Verdict, Missing>>> {
    rows(records).into_iter().map(|row| row.verdict).collect()
}

/// Every figure the table reads that is missing from `records`: empty when
/// the table is whole.
pub fn missing(records: &[ChapterRecord]) -> Vec<Missing> {
    rows(records)
        .into_iter()
        .filter_map(|row| row.verdict?.err())
        .collect()
}

/// The decision table, or None when no chapter this needs has a record.
pub fn decision_table(records: &[ChapterRecord]) -> Option<View> {
    let rows = rows(records);
    if rows.iter().all(|row| !matches!(row.verdict, Some(Ok(_)))) {
        return None;
    }
    let mut out = String::from(
        "| situation | choose | holds when | measured on this machine | chapter |\n|---|---|---|---|--:|\n",
    );
    for row in &rows {
        let (choose, rule, measured) = match &row.verdict {
            Some(Ok(verdict)) => (
                match verdict.holds {
                    true => row.choose.to_string(),
                    false => format!(
                        "{} **(this machine disagrees: the rule does not hold here)**",
                        row.choose
                    ),
                },
                verdict.rule.to_string(),
                verdict.figures.clone(),
            ),
            Some(Err(missing)) => (row.choose.to_string(), "—".to_string(), missing.to_string()),
            None => (
                row.choose.to_string(),
                "a judgment".to_string(),
                row.judgment.to_string(),
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {choose} | {rule} | {measured} | {} |",
            row.situation, row.chapter
        );
    }
    out.push_str(
        "\n\"Holds when\" is the rule the table checks on the figures beside it: where a machine's \
         figures break it, the choice is marked as this machine's disagreement, not printed as if it held.\n",
    );
    out.push_str("\nEach chapter's figures, as measured:\n\n");
    let mut chapters: Vec<u32> = rows.iter().map(|row| row.chapter).collect();
    chapters.sort_unstable();
    chapters.dedup();
    for chapter in chapters {
        if let Some(record) = records.iter().find(|r| r.chapter == chapter) {
            let _ = write!(out, "- chapter {chapter}: {}", stamp(record));
        }
    }
    Some(View::new(FILE.to_string(), out))
}

#[cfg(test)]
mod tests {
    use super::rules;

    #[test]
    fn every_rule_can_hold_and_can_fail() {
        assert!(rules::waiting(4_800.0, 800.0, 5_000.0));
        assert!(!rules::waiting(2_000.0, 800.0, 5_000.0));
        assert!(rules::held(30.0, &[11.0, 0.1]));
        assert!(!rules::held(30.0, &[20.0, 0.1]));
        assert!(rules::slow(6_000.0, &[5.0, 3.0]));
        assert!(!rules::slow(6_000.0, &[5.0, 900.0]));
        assert!(rules::cpu(&[18.0, 21.0], &[2.0, 4.0]));
        assert!(!rules::cpu(&[18.0, 6.0], &[2.0, 4.0]));
        assert!(rules::bounded(348.0, 234.0));
        assert!(!rules::bounded(234.0, 348.0));
        assert!(rules::cores(2, &[1.8, 1.9, 1.97]));
        assert!(!rules::cores(2, &[1.8, 1.2]));
        assert!(rules::downstream(740.0, 785.0, 150.0, 5_000.0));
        assert!(!rules::downstream(740.0, 400.0, 150.0, 5_000.0));
        assert!(!rules::downstream(740.0, 785.0, 150.0, 300.0));
        assert!(rules::overload(276.0, 760.0, 777.0));
        assert!(!rules::overload(276.0, 400.0, 777.0));
        assert!(rules::busy(31.0, &[16.1, 0.2]));
        assert!(!rules::busy(31.0, &[16.1, 5.0]));
        assert!(!rules::busy(31.0, &[32.0, 0.2]));
        assert!(rules::cancel(0.0, 50.0));
        assert!(!rules::cancel(50.0, 50.0));
        assert!(rules::coroutines(32.7, 12.7, 2.5, 2.2));
        assert!(!rules::coroutines(32.7, 20.0, 2.5, 2.2));
        assert!(!rules::coroutines(32.7, 12.7, 5.0, 2.2));
        assert!(rules::completion(4.2, 4.0, 6.0, 0.6, 4.2));
        assert!(!rules::completion(4.2, 3.0, 6.0, 0.6, 4.2));
        assert!(!rules::completion(4.2, 4.0, 4.1, 0.6, 4.2));
        assert!(!rules::completion(4.2, 4.0, 6.0, 5.0, 4.2));
        assert!(rules::switching(&[(20.0, 4.0), (10.0, 4.0)]));
        assert!(!rules::switching(&[(20.0, 4.0), (3.0, 4.0)]));
    }
}
