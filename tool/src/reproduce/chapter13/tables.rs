//! Chapter 13's tables of what the loops counted of themselves at 10,000
//! connections, and of what a system call costs here.

use std::fmt::Write;

use super::super::held;
use super::super::record::{ChapterRecord, ExperimentRecord};
use super::super::views::{self, stamp, thousands};
use super::counted;
use evt::report::{SyscallCosts, SyscallReport};

pub(super) fn held_calls_table(record: &ChapterRecord, members: &[&ExperimentRecord]) -> String {
    let mut out = String::from(
        "| loop | connections | system calls per request | waits per request | events per wait | \
         reads that found the ring empty |\n|---|---|--:|--:|--:|--:|\n",
    );
    for experiment in members {
        let Some(report) = experiment.report::<SyscallReport>() else {
            continue;
        };
        let Some(c) = counted(&report) else {
            continue;
        };
        let held = experiment.load().map_or("", |l| {
            if held::held_idle(l) {
                "idle after one request"
            } else {
                "busy"
            }
        });
        let _ = writeln!(
            out,
            "| {} | {held} | {:.2} | {:.3} | {:.1} | {} |",
            views::row_label(experiment),
            c.calls,
            c.waits,
            c.per_wait,
            if report.loop_kind.contains("ring") {
                thousands(report.ring_empty)
            } else {
                "—".into()
            },
        );
    }
    out.push_str(
        "\nFrom each loop's `/report` after the load: its own count of its system calls (the \
         setsockopt that turns Nagle off is one per connection) and what each wait brought back.\n\n",
    );
    out.push_str(&stamp(record));
    out
}

pub(super) fn cost_table(record: &ChapterRecord, costs: &SyscallCosts) -> String {
    let rows = [
        ("an empty system call (`getppid`)", costs.empty_call_ns),
        (
            "a read that finds nothing (`recv`, EAGAIN)",
            costs.empty_read_ns,
        ),
        (
            "100 bytes sent and read back over loopback TCP",
            costs.send_recv_ns,
        ),
        (
            "an io_uring no-op, one per `io_uring_enter`",
            costs.uring_nop_ns,
        ),
        (
            "an io_uring no-op, 32 per `io_uring_enter` (each)",
            costs.uring_batched_nop_ns,
        ),
    ];
    let mut out = String::from("| what | **cost** |\n|---|--:|\n");
    for (what, ns) in rows {
        let _ = writeln!(out, "| {what} | **{ns:.0} ns** |");
    }
    let _ = writeln!(
        out,
        "\nMedians of {} rounds; `cargo run --release --example chapter13_syscall_cost`.\n",
        costs.rounds
    );
    out.push_str(&stamp(record));
    out
}
