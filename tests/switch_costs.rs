//! Chapter 9's switch-cost program, at a smoke size: it runs, measures every
//! cost, and says what it measured in JSON. (The real sizes run in the
//! reproduce run, not in `cargo test`.)

use std::process::Command;

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
        let costs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(costs["pinned"], pin);
        for field in [
            "baseline_hop_ns",
            "thread_hop_ns",
            "task_hop_ns",
            "ours_hop_ns",
            "thread_spawn_ns",
            "task_spawn_ns",
        ] {
            let value = costs[field].as_f64().unwrap();
            assert!(value.is_finite() && value > 0.0, "{field}: {costs}");
        }
        // A hop between threads makes the same system calls as the baseline,
        // plus a wake-up: never free.
        assert!(
            costs["thread_hop_ns"].as_f64() > costs["baseline_hop_ns"].as_f64().map(|b| b * 0.5)
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
