//! Chapter 14, threads that are a loop: chapter 8's blocking code on
//! stackful coroutines (may). Seed 000's five sleeps, and what one call
//! that truly blocks does to them; CPU per hello request beside a thread
//! each and tokio; 10,000 connections busy and idle with three stack sizes;
//! and chapter 9's brigade with coroutines, beside chapter 9's own program
//! run in the same session (a thread's hop and a tokio task's).

use std::fmt::Write;
use std::time::Duration;

use super::chapter::{Chapter, Example};
use super::chapter8;
use super::chapter9;
use super::figure::Figure;
use super::held::{self, HeldServer};
use super::model::Capacity;
use super::record::{ChapterRecord, ExperimentRecord, Group, ProgramRecord};
use super::rounds::{by_series, cpu_us, median, median_cpu};
use super::seeds::{five_sleeps, sleeper_then_activer};
use super::spec::{Experiment, LoadSpec, Plan, Program, ServerUnderTest, scaled};
use super::views::{self, View, kib, stamp, thousands};
use evt::defaults;
use evt::report::{CoroutineCosts, CoroutineReport, SwitchCosts};

pub const COROUTINES: Example = Example::server(
    "chapter14_coroutines",
    "chapter 8's blocking thread-per-connection code on a coroutine per connection (may, M:N over epoll)",
    defaults::CHAPTER14_COROUTINES_PORT,
    Capacity::Unlimited,
);

pub const GO: Example = Example::server(
    "chapter14_go",
    "Go's net/http with the book's routes, a goroutine per connection (where go is installed)",
    defaults::CHAPTER14_GO_PORT,
    Capacity::Unlimited,
)
.as_peer()
.needing(go_missing);

/// Why Go's peer cannot run here, or `None` when `go` is installed.
pub fn go_missing() -> Option<String> {
    match std::process::Command::new("go").arg("version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some(
            "go is not installed here: apt-get install golang-go, dnf install golang, \
             brew install go, or https://go.dev/dl"
                .into(),
        ),
    }
}

fn go_version() -> String {
    std::process::Command::new("go")
        .arg("version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| "not installed".into())
}

fn go_server() -> HeldServer {
    (
        "go",
        "goroutines (Go's net/http)",
        ServerUnderTest::of(&GO).with_args(&[], "Go's net/http, a goroutine per connection"),
    )
}

pub const SWITCH: Example = Example::client(
    "chapter14_switch",
    "what a switch, a start and a waiting coroutine cost (chapter 9's brigade, on may)",
);

pub const CHAPTER: Chapter = Chapter {
    page: Some("chapter14_coroutines.md"),
    examples: &[COROUTINES, SWITCH, GO],
    experiments,
    programs,
    views,
    facts: go_facts,
    ..Chapter::planned(14, "Threads that are a loop: stackful coroutines")
};

const THREADS: &str = "a thread per connection (chapter 8)";
const COROUTINE: &str = "a coroutine per connection";
const HELLO_ROUNDS: usize = 3;
const HELLO_CONNECTIONS: usize = 50;
/// Coroutine stacks, KiB: the least this handler is allowed, may's default,
/// and eight times that.
const STACKS_KIB: [u32; 3] = [8, 32, 256];
/// The brigade's length, as chapter 9 reads its switch table.
const BRIGADE: u32 = 500;

fn coroutines(args: &[&str], model: &str) -> ServerUnderTest {
    ServerUnderTest::of(&COROUTINES).with_args(args, model)
}

/// may's server with its sleeps blocking the carrier thread, on `workers` threads.
fn blocking(workers: usize) -> ServerUnderTest {
    let count = workers.to_string();
    coroutines(
        &["--workers", &count, "--sleep-blocks-thread"],
        &format!("coroutines on {workers} thread(s), sleeping with std::thread::sleep"),
    )
    .with_capacity(Capacity::Limited(workers))
}

fn held_servers() -> Vec<HeldServer> {
    let mut servers: Vec<HeldServer> = STACKS_KIB
        .iter()
        .map(|&stack| {
            let (name, series): (&'static str, &'static str) = match stack {
                8 => ("may_8", "coroutines, 8 KiB stacks"),
                32 => ("may", "coroutines, 32 KiB stacks (may's default)"),
                _ => ("may_256", "coroutines, 256 KiB stacks"),
            };
            let kib_flag = stack.to_string();
            let model = format!("a coroutine per connection, {stack} KiB stacks");
            (
                name,
                series,
                coroutines(&["--stack-kib", &kib_flag], &model),
            )
        })
        .collect();
    servers.push((
        "threads",
        THREADS,
        ServerUnderTest::of(&chapter8::THREADS)
            .with_args(&[], "a thread per connection (2 MiB stacks)"),
    ));
    servers.push((
        "tokio",
        "tokio tasks (chapter 9's handler)",
        ServerUnderTest::of(&chapter9::RUNTIME).with_args(
            &["--runtime", "tokio"],
            "chapter 9's async fn handler on tokio's current-thread runtime",
        ),
    ));
    servers.extend(go_rows());
    servers
}

/// Whether Go was there for the peer's rows when the chapter ran.
fn go_facts() -> Vec<evt::sys::Limit> {
    vec![evt::sys::Limit {
        name: "go".into(),
        value: go_version(),
        meaning: go_missing().unwrap_or_else(|| "Go's peer was measured beside may".into()),
    }]
}

/// The Go peer's rows, where go is installed.
fn go_rows() -> Vec<HeldServer> {
    if go_missing().is_none() {
        vec![go_server()]
    } else {
        Vec::new()
    }
}

fn hello_servers() -> Vec<HeldServer> {
    let mut servers = vec![
        (
            "may_1",
            "coroutines on one thread",
            coroutines(
                &["--workers", "1"],
                "a coroutine per connection on one thread",
            ),
        ),
        (
            "may",
            COROUTINE,
            coroutines(&[], "a coroutine per connection on a thread per core"),
        ),
        (
            "threads",
            THREADS,
            ServerUnderTest::of(&chapter8::THREADS).with_args(&[], "a thread per connection"),
        ),
        (
            "tokio",
            "tokio tasks (chapter 9's handler)",
            ServerUnderTest::of(&chapter9::RUNTIME).with_args(
                &["--runtime", "tokio"],
                "chapter 9's handler on tokio, one thread",
            ),
        ),
    ];
    servers.extend(go_rows());
    servers
}

fn experiments(plan: Plan) -> Vec<Experiment> {
    let scale = plan.scale;
    let mut experiments = vec![
        five_sleeps(coroutines(&[], "a coroutine per connection"), scale)
            .of_seed("000")
            .with_report(),
    ];
    for (_, _, go) in go_rows() {
        let mut on_go = five_sleeps(go, scale);
        on_go.slug = "go_five_sleeps".into();
        on_go.seed = "";
        on_go.title = format!("{}, Go's net/http", on_go.title);
        experiments.push(on_go);
    }
    // The same five sleeps when the sleep blocks the carrier thread.
    for workers in [1, 2] {
        let mut blocked = five_sleeps(blocking(workers), scale);
        blocked.slug = format!("blocked_five_sleeps_{workers}");
        blocked.seed = "";
        blocked.title = format!(
            "{}, std::thread::sleep on {workers} carrier thread(s)",
            blocked.title
        );
        experiments.push(blocked);
    }
    let mut stalled = sleeper_then_activer(blocking(1), scale);
    stalled.slug = "blocked_sleeper_activer".into();
    stalled.seed = "";
    experiments.push(stalled);
    // CPU per hello request, rounds taken in turn.
    let requests = (100_000.0 * scale).round().max(100.0) as u64;
    for round in 1..=HELLO_ROUNDS {
        for (name, series, server) in hello_servers() {
            let load = LoadSpec::new("/".into(), requests, HELLO_CONNECTIONS, Duration::ZERO);
            experiments.push(
                Experiment::new(
                    format!("hello_{name}_{round}"),
                    format!("{series}: hello, round {round}"),
                    server,
                    vec![load],
                )
                .in_group(Group::new("hello", series).on_line(series)),
            );
        }
    }
    // 10,000 connections, busy (a 1 s request always in flight) and idle.
    let delay = scaled(1000, scale);
    let duration = scaled(10_000, scale);
    let hold = scaled(3000, scale);
    for server in held_servers() {
        let reports = server.2.example == COROUTINES.name;
        for idle in [None, Some(hold)] {
            let experiment = held::held_connections(server.clone(), 10_000, delay, duration, idle);
            experiments.push(if reports {
                experiment.with_report()
            } else {
                experiment
            });
        }
    }
    experiments
}

fn programs(scale: f64) -> Vec<Program> {
    let rounds = ((200.0 * scale).round() as u32).max(10).to_string();
    let workers = BRIGADE.to_string();
    let mut programs: Vec<Program> = STACKS_KIB
        .iter()
        .map(|stack| {
            let stack_flag = stack.to_string();
            Program::new(
                format!("switch_{stack}"),
                format!("a brigade of {BRIGADE} coroutines, {stack} KiB stacks"),
                SWITCH.name,
                &[
                    "--workers",
                    &workers,
                    "--rounds",
                    &rounds,
                    "--stack-kib",
                    &stack_flag,
                ],
                3.0,
            )
        })
        .collect();
    // Chapter 9's program in the same run: threads and tokio tasks, measured
    // beside the coroutines on the machine as it is now.
    programs.push(Program::new(
        "switch_threads_tasks",
        format!("chapter 9's brigade of {BRIGADE}: threads and tokio tasks"),
        chapter9::SWITCH.name,
        &["--workers", &workers, "--rounds", &rounds],
        6.0,
    ));
    programs
}

fn views(record: &ChapterRecord) -> Vec<View> {
    let file = |name: &str| format!("chapter{}_{name}", record.chapter);
    let mut out: Vec<View> = [
        "five_sleeps",
        "go_five_sleeps",
        "blocked_five_sleeps_1",
        "blocked_five_sleeps_2",
        "blocked_sleeper_activer",
    ]
    .into_iter()
    .filter_map(|slug| views::experiment(record, slug))
    .collect();
    let hello = views::group(record, "hello");
    if !hello.is_empty() {
        out.push(View::new(file("hello.md"), hello_table(record, &hello)));
    }
    for group in ["held_busy", "held_idle"] {
        let members = views::group(record, group);
        if !members.is_empty() {
            out.push(View::new(
                file(&format!("{group}.md")),
                held::cost_table(record, &members),
            ));
        }
    }
    if let Some(table) = switch_table(record) {
        out.push(View::new(file("switch.md"), table));
    }
    out.push(View::new(file("summary.md"), summary(record)));
    out
}

fn hello_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let threads = median_cpu(members, THREADS);
    let mut out = String::from(
        "| server | **CPU per request** (median) | rounds: each | against a thread per connection | \
         req/s (median) | threads |\n|---|--:|---|--:|--:|--:|\n",
    );
    let mut firsts = Vec::new();
    for (series, rows) in by_series(members) {
        firsts.extend(rows.first().copied());
        let each: Vec<String> = rows
            .iter()
            .map(|e| cpu_us(e).map_or("—".into(), |us| format!("{us:.1}")))
            .collect();
        let cpu = median_cpu(members, &series);
        let rate = median(
            rows.iter()
                .filter_map(|e| e.load().map(|l| l.measured.rps))
                .collect(),
        );
        let peak = rows
            .iter()
            .filter_map(|e| e.samples.as_ref().map(|s| s.peak_threads))
            .max();
        let _ = writeln!(
            out,
            "| {series} | **{}** | {} µs | {} | {} | {} |",
            cpu.map_or("—".into(), |us| format!("{us:.1} µs")),
            each.join(", "),
            match (cpu, threads) {
                (Some(cpu), Some(threads)) => format!("{:.2} ×", cpu / threads),
                _ => "—".into(),
            },
            rate.map_or("—".into(), |r| thousands(r.round() as u64)),
            peak.map_or("—".into(), thousands),
        );
    }
    let _ = writeln!(
        out,
        "\nServer CPU from /proc (10 ms ticks) over completed requests, {HELLO_CONNECTIONS} kept-alive \
         connections. Each round, against each server:\n"
    );
    out.push_str(&views::row_commands(&firsts));
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// The coroutine brigades (one per stack size) and chapter 9's program
/// from the same run.
fn switch_table(record: &ChapterRecord) -> Option<String> {
    let runs: Vec<CoroutineCosts> = record
        .programs
        .iter()
        .filter(|p| p.slug.starts_with("switch_") && p.slug != "switch_threads_tasks")
        .filter_map(ProgramRecord::output)
        .collect();
    if runs.is_empty() {
        return None;
    }
    let chapter9 = chapter9_costs(record);
    let mut out = String::from(
        "| what | a hop (less the baseline) | starting one | resident per waiting one | address space per waiting one |\n\
         |---|--:|--:|--:|--:|\n",
    );
    for run in &runs {
        let _ = writeln!(
            out,
            "| a coroutine, {} KiB stack | **{:.2} µs** ({:.2} µs) | {:.2} µs | **{}** | {} |",
            run.stack_kib,
            run.hop_ns / 1000.0,
            (run.hop_ns - run.baseline_hop_ns) / 1000.0,
            run.spawn_ns / 1000.0,
            kib(run.coroutine_bytes / 1024.0),
            kib(run.coroutine_address_bytes / 1024.0),
        );
    }
    if let Some(nine) = &chapter9 {
        let _ = writeln!(
            out,
            "| a tokio task (chapter 9's program, this run) | **{:.2} µs** ({:.2} µs) | {:.2} µs | **{}** | — |",
            nine.task_hop_ns / 1000.0,
            (nine.task_hop_ns - nine.baseline_hop_ns) / 1000.0,
            nine.task_spawn_ns / 1000.0,
            kib(nine.task_bytes / 1024.0),
        );
        let _ = writeln!(
            out,
            "| an OS thread (chapter 9's program, this run) | **{:.2} µs** ({:.2} µs) | {:.2} µs | **{}** | — |",
            nine.thread_hop_ns / 1000.0,
            (nine.thread_hop_ns - nine.baseline_hop_ns) / 1000.0,
            nine.thread_spawn_ns / 1000.0,
            kib(nine.thread_bytes / 1024.0),
        );
    }
    let _ = writeln!(
        out,
        "\nA brigade of {BRIGADE}, each hop a one-byte write, a wake-up and a read on a socket pair; the \
         baseline is the same calls on one thread with nobody to wake. Coroutines and tasks run on one \
         carrier thread. Starting one: spawned and joined, one at a time. Waiting: the slope of the \
         process's memory over {} coroutines each blocked on a read, its socket pair included. \
         `cargo run --release --example chapter14_switch -- --stack-kib 32`; chapter 9's figures from \
         `cargo run --release --example chapter9_switch -- --workers {BRIGADE}`, run in the same session.\n",
        runs[0]
            .waiting
            .iter()
            .map(|n| thousands(*n as u64))
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push_str(&stamp(record));
    Some(out)
}

fn chapter9_costs(record: &ChapterRecord) -> Option<SwitchCosts> {
    record
        .programs
        .iter()
        .find(|p| p.slug == "switch_threads_tasks")
        .and_then(ProgramRecord::output)
}

/// Resident memory plus kernel stacks and page tables per connection, at
/// 10,000 idle.
fn idle_cost(record: &ChapterRecord, name: &str) -> Option<f64> {
    views::find(record, &held::slug(true, name, 10_000))
        .and_then(chapter8::memory_per_connection_kib)
}

/// The chapter's findings against its goals, in sentences from the records.
fn summary(record: &ChapterRecord) -> String {
    let mut out = String::new();
    if let (Some(thread), Some(coroutine)) =
        (idle_cost(record, "threads"), idle_cost(record, "may"))
    {
        let _ = writeln!(
            out,
            "- An idle connection at 10,000, resident memory with kernel stacks and page tables: a thread \
             {thread:.1} KiB, a coroutine (32 KiB stack) {coroutine:.1} KiB: {:.1} × less (the goal was at \
             least 5 ×).",
            thread / coroutine
        );
    }
    for stack in STACKS_KIB {
        let name = match stack {
            8 => "may_8",
            32 => "may",
            _ => "may_256",
        };
        if let Some(cost) = idle_cost(record, name) {
            let _ = writeln!(
                out,
                "- {stack} KiB stacks: {cost:.1} KiB per idle connection."
            );
        }
    }
    let runs: Vec<CoroutineCosts> = record
        .programs
        .iter()
        .filter(|p| p.slug == "switch_32")
        .filter_map(ProgramRecord::output)
        .collect();
    if let (Some(run), Some(nine)) = (runs.first(), chapter9_costs(record)) {
        let _ = writeln!(
            out,
            "- A hop along {BRIGADE}: a coroutine {:.2} µs, a tokio task {:.2} µs ({:.2} ×; less the \
             baseline, {:.2} ×), a thread {:.2} µs (the goal was within 2 × of a task's).",
            run.hop_ns / 1000.0,
            nine.task_hop_ns / 1000.0,
            run.hop_ns / nine.task_hop_ns,
            (run.hop_ns - run.baseline_hop_ns) / (nine.task_hop_ns - nine.baseline_hop_ns),
            nine.thread_hop_ns / 1000.0,
        );
    }
    if let Some(report) =
        views::find(record, "five_sleeps").and_then(|e| e.report::<CoroutineReport>())
    {
        let _ = writeln!(
            out,
            "- Five sleeps on {} carrier threads: {} of {} requests woke on another thread than they slept on.",
            report.workers, report.moved, report.answered
        );
    }
    if let Some(go) = record.limits.iter().find(|limit| limit.name == "go") {
        let _ = writeln!(out, "- Go's peer: {} ({}).", go.meaning, go.value);
    }
    if out.is_empty() {
        out.push_str("*This record has none of chapter 14's measurements.*\n");
    }
    out.push('\n');
    out.push_str(&stamp(record));
    out
}

/// One of the chapter's servers with 10,000 connections idle (`may`,
/// `threads`): a figure the decision table reads.
pub fn idle_at_ten_thousand(name: &str) -> Figure {
    Figure::experiment(14, held::slug(true, name, 10_000))
}

/// The brigade of coroutines with may's default stack, and chapter 9's
/// program run beside it.
pub fn switch_programs() -> (Figure, Figure) {
    (
        Figure::programs(14, "switch_32"),
        Figure::programs(14, "switch_threads_tasks"),
    )
}

/// Every figure other chapters read from this one.
pub fn figures_read(_plan: Plan) -> Vec<Figure> {
    let (coroutines, threads_tasks) = switch_programs();
    vec![
        idle_at_ten_thousand("may"),
        idle_at_ten_thousand("threads"),
        coroutines,
        threads_tasks,
    ]
}
