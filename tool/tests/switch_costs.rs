//! Chapter 9's measuring programs (the brigade, the budget demo) at a
//! smoke size: each runs, measures what it says, and prints it as JSON. (The real sizes run in the
//! reproduce run, not in `cargo test`.)

use std::process::Command;

use evt::report::{BudgetReport, SwitchCosts};

mod common;

#[test]
fn the_brigade_measures_every_cost_at_a_small_size() {
    common::examples_built();
    for pin in [false, true] {
        let mut command = Command::new(common::example("chapter9_switch"));
        command.args(["--workers", "8", "--rounds", "20", "--json"]);
        if pin {
            command.arg("--pin");
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let costs: SwitchCosts = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(costs.pinned, pin);
        for (field, value) in [
            ("baseline", costs.baseline_hop_ns),
            ("thread hop", costs.thread_hop_ns),
            ("task hop", costs.task_hop_ns),
            ("our hop", costs.ours_hop_ns),
            ("thread start", costs.thread_spawn_ns),
            ("task start", costs.task_spawn_ns),
            ("thread start, batched", costs.thread_batch_spawn_ns),
            ("task spawn alone", costs.task_spawn_only_ns),
        ] {
            assert!(value.is_finite() && value > 0.0, "{field}: {costs:?}");
        }
        // Counts, not time (a run this small is a couple of milliseconds,
        // which one preemption of a busy machine can swamp): every hop
        // between threads wakes a thread blocked in `read`, a context
        // switch at least most of the time; tasks on one thread need none.
        assert!(costs.thread_switches_per_hop >= 0.5, "{costs:?}");
        assert!(
            costs.task_switches_per_hop < costs.thread_switches_per_hop,
            "{costs:?}"
        );
        // Memory, not time: a waiting thread touches pages of its own stack
        // (a few KiB at least); a task is a small allocation. The slopes run
        // over thousands of each, far above the allocator's noise.
        assert!(costs.thread_bytes > 2048.0, "{costs:?}");
        assert!(costs.task_bytes > 0.0, "{costs:?}");
        assert!(costs.thread_bytes > costs.task_bytes, "{costs:?}");
        // Each thread has a kernel stack (16 KiB on x86-64 and arm64): other
        // processes on a shared machine move the machine-wide counter, but
        // not by half of that on every one of hundreds of threads.
        assert!(costs.thread_kernel_stack_bytes > 8192.0, "{costs:?}");
        // Page tables are this process's own: a thread's stack mapping adds
        // some; a task, whose memory is a few heap bytes, far less.
        assert!(
            costs.thread_page_table_bytes > costs.task_page_table_bytes,
            "{costs:?}"
        );
    }
}

#[test]
fn a_bad_flag_is_one_line() {
    common::examples_built();
    let output = Command::new(common::example("chapter9_switch"))
        .args(["--workers", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_budget_makes_a_greedy_task_yield_on_tokio_and_on_ours_given_one() {
    common::examples_built();
    let output = Command::new(common::example("chapter9_budget"))
        .args(["--mib", "1", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: BudgetReport = serde_json::from_slice(&output.stdout).unwrap();
    let run = |name: &str| {
        report
            .runtimes
            .iter()
            .find(|r| r.runtime == name)
            .unwrap_or_else(|| panic!("no {name} run in {report:?}"))
            .clone()
    };
    let reads = report.bytes / 64;
    // tokio's budget (128 operations per poll) makes the task yield at
    // least once per 128 ready reads, however fast the machine.
    assert!(run("tokio").greedy_yields >= reads / 128, "{report:?}");
    // Ours, given the same budget, the same.
    assert!(
        run("ours, budget 128").greedy_yields >= reads / 128,
        "{report:?}"
    );
    // Ours yields only when the reader has emptied the socket, which can
    // happen at most once per piece the writer's kernel queues (tens of
    // KiB each): fewer than the budget's.
    assert!(run("ours").greedy_yields < reads / 128, "{report:?}");
}

#[test]
fn the_budget_demo_refuses_a_bad_flag_in_one_line() {
    common::examples_built();
    let output = Command::new(common::example("chapter9_budget"))
        .args(["--mib", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error:"), "{stderr}");
}
