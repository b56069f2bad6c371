//! The reproduce run end to end, with every delay scaled down (`--quick`),
//! writing into a scratch directory instead of the book.

use std::process::Command;

use evt_book::reproduce::progress::Event;
use evt_book::reproduce::record::read_all as read_chapters;

mod common;

fn reproduce(args: &[&str]) -> std::process::Output {
    common::examples_built();
    Command::new(env!("CARGO_BIN_EXE_event-loops-vs-threads"))
        .args(args)
        .output()
        .expect("the reproduce binary runs")
}

#[test]
fn a_quick_run_measures_predicts_and_writes_the_views() {
    let out = std::env::temp_dir().join(format!("evt-reproduce-{}", std::process::id()));
    let quick_times = evt_book::root().join("book/generated/run_times_quick.json");
    let before = std::fs::read(&quick_times).ok();
    let output = reproduce(&[
        "--quick",
        "--no-build",
        "--chapter",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("predicted:") && printed.contains("measured:"),
        "{printed}"
    );

    // A run with --out elsewhere leaves the book alone, the quick run's
    // times included.
    assert_eq!(std::fs::read(&quick_times).ok(), before);
    assert!(!printed.contains("seed  ·") && !printed.contains("0.00 ms, slowest 0.00 ms"));

    let records = read_chapters(&out).unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert!(record.quick, "a --quick run says so in its record");
    assert_eq!(
        record.experiments.len(),
        evt_book::reproduce::experiments(3, evt_book::reproduce::spec::Plan::here(0.1)).len()
    );
    for experiment in &record.experiments {
        for load in &experiment.loads {
            if !experiment.failures_expected {
                assert_eq!(
                    load.measured.requests.failed, 0,
                    "{}: {:?}",
                    load.path, load.measured.errors
                );
                assert_eq!(load.measured.requests.completed, load.requests);
            }
        }
        let view = out.join(format!("chapter3_{}.md", experiment.slug));
        assert!(std::fs::read_to_string(view).unwrap().contains("--quick"));
    }
    assert!(out.join("seed000.md").is_file() && out.join("load_help.txt").is_file());
    // Small experiments get a timeline; the server was sampled while it ran.
    let chart = std::fs::read_to_string(out.join("chapter3_five_sleeps_timeline.svg")).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("request 5"));
    let samples = record.experiments[0].samples.as_ref().expect("sampled");
    assert!(samples.peak_threads >= 1 && samples.peak_rss_kib > 0);

    // With --events the same run's progress is one typed event a line.
    let output = reproduce(&[
        "--quick",
        "--no-build",
        "--chapter",
        "3",
        "--events",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let lines = String::from_utf8_lossy(&output.stdout);
    let events: Vec<Event> = lines.lines().filter_map(Event::parse).collect();
    assert_eq!(events.len(), lines.lines().count(), "{lines}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Step { chapter: 3, .. }))
    );
    assert!(events.iter().any(|e| matches!(e, Event::Load(_))));

    // A record that cannot be read is one line naming it, exit 1, and every
    // view stays where it was (none swept as stale).
    std::fs::write(out.join("chapter3.json"), "{ not a record").unwrap();
    let views_before = std::fs::read_dir(&out).unwrap().count();
    let output = reproduce(&["--views-only", "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("chapter3.json"), "{stderr}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), views_before);
    assert!(out.join("chapter3_five_sleeps_timeline.svg").is_file());
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn an_unknown_chapter_is_one_line() {
    let measured_now = evt_book::reproduce::measured();
    // A chapter still planned, if any; else one the book does not have.
    let (asked, why) = match evt_book::reproduce::ALL
        .iter()
        .filter_map(|chapter| chapter.number)
        .find(|number| !measured_now.contains(number))
    {
        Some(planned) => (planned, format!("chapter {planned} has no experiments yet")),
        None => (99, "there is no chapter 99".to_string()),
    };
    let output = reproduce(&["--chapter", &asked.to_string(), "--no-build"]);
    let measured: Vec<String> = evt_book::reproduce::measured()
        .iter()
        .map(u32::to_string)
        .collect();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{why}; choose one of {}", measured.join(", "))),
        "{stderr}"
    );
}

#[test]
fn a_stall_stops_the_server_for_its_length_and_lets_it_go_on() {
    use std::time::Duration;

    use evt_book::reproduce::chapter3;
    use evt_book::reproduce::spec::{Experiment, LoadSpec, ServerUnderTest};

    common::examples_built();
    let mut load = LoadSpec::sleeps(1, 2, Duration::from_millis(20));
    load.duration = Some(Duration::from_millis(900));
    load.keep_over_time = true;
    let experiment = Experiment::new(
        "stalled",
        "a stalled run".into(),
        ServerUnderTest::of(&chapter3::ASYNC),
        vec![load],
    )
    .with_pause(Duration::from_millis(300), Duration::from_millis(300));
    let record = experiment.run().unwrap_or_else(|error| panic!("{error}"));
    let pause = record.pause.expect("the stall is recorded");
    assert!(pause.length_s >= 0.3, "{pause:?}");
    let load = record.load().unwrap();
    // A request in flight when the server stopped waited for it to go on:
    // at least the part of the 300 ms left after it was sent.
    let slowest = load.measured.latency_ms.max.unwrap();
    assert!(slowest >= 250.0, "slowest {slowest} ms");
    // And the server answered again afterwards: requests due after the stall.
    let last_slice = *load.over_time.keys().max().unwrap();
    assert!(last_slice as f64 * 0.1 >= pause.at_s + pause.length_s - 0.1);
    assert_eq!(
        load.measured.requests.failed, 0,
        "{:?}",
        load.measured.errors
    );
}

#[test]
fn the_doctor_finds_this_machine_ready_and_names_every_limit() {
    let output = reproduce(&["doctor"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    for limit in [
        "cores",
        "memory",
        "open files (hard limit)",
        "threads per user",
        "kernel.threads-max",
        "kernel.pid_max",
        "vm.max_map_count",
        "local ports",
        "net.core.somaxconn",
        "peer tool: wrk",
        "peer tool: hey",
        "peer tool: ab",
        "peer tool: oha",
        "examples",
    ] {
        assert!(
            text.lines()
                .any(|line| line.contains(limit)
                    && (line.starts_with("ok") || line.starts_with("warn"))),
            "{limit}: {text}"
        );
    }
    assert!(text.contains("The book can run here"), "{text}");
}

#[test]
fn the_rooms_files_export_and_compare() {
    let dir = std::env::temp_dir().join(format!("evt-room-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The book's records of chapters 1 and 3, as if chapter 3 had been run
    // here and chapter 1 not: only chapter 3 is this machine's to export.
    let records = dir.join("records");
    std::fs::create_dir_all(&records).unwrap();
    let this = serde_json::to_value(evt::sys::Machine::this()).unwrap();
    for (chapter, machine) in [
        (
            1,
            serde_json::json!({"cpu": "another CPU", "cores": 64, "os": "another OS", "rustc": "rustc"}),
        ),
        (3, this),
    ] {
        let name = format!("chapter{chapter}.json");
        let text =
            std::fs::read_to_string(evt_book::root().join("book/generated").join(&name)).unwrap();
        let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
        record["machine"] = machine;
        std::fs::write(records.join(&name), record.to_string()).unwrap();
    }
    let (laptop, desktop) = (dir.join("laptop.json"), dir.join("desktop.json"));
    let output = reproduce(&[
        "--export",
        laptop.to_str().unwrap(),
        "--out",
        records.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("left out chapter 1:"), "{stderr}");
    let exported = std::fs::read_to_string(&laptop).unwrap();
    assert!(exported.contains("\"chapter\": 3") && !exported.contains("\"chapter\": 1,"));
    std::fs::copy(&laptop, &desktop).unwrap();
    // Nothing measured here: one line, exit 1.
    std::fs::remove_file(records.join("chapter3.json")).unwrap();
    let output = reproduce(&[
        "--export",
        dir.join("none.json").to_str().unwrap(),
        "--out",
        records.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stderr).lines().count(), 1);
    let out = dir.join("compare");
    let output = reproduce(&[
        "--compare",
        laptop.to_str().unwrap(),
        desktop.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let table = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(
        table.contains(
            "| chapter | experiment | figure | set by | laptop | desktop | desktop: judged |"
        ),
        "{table}"
    );
    // The same run twice is not judged against itself.
    assert!(table.contains("| same run |"), "{table}");
    // Chapter 3's five sleeps are set by timers, and both machines have them.
    let row = table
        .lines()
        .find(|line| line.starts_with("| 3 | five_sleeps | p50 | timers |"))
        .expect("chapter 3's headline");
    assert_eq!(row.matches(" ms |").count(), 2, "{row}");
    assert!(
        std::fs::read_to_string(out.join("compare.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    // A quick run's file beside a full run's: refused, in one line.
    let quick = dir.join("quick.json");
    std::fs::write(
        &quick,
        exported.replace("\"quick\": false", "\"quick\": true"),
    )
    .unwrap();
    let output = reproduce(&[
        "--compare",
        laptop.to_str().unwrap(),
        quick.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("quick run") && stderr.lines().count() == 1,
        "{stderr}"
    );
    // A record from another machine, judged against the book's record as
    // it is: its five sleeps' median 10 % slower, the rest as the book's.
    let book = evt_book::root().join("book/generated/chapter3.json");
    let mut other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&book).unwrap()).unwrap();
    other["machine"] =
        serde_json::json!({"cpu": "another CPU", "cores": 2, "os": "another OS", "rustc": "rustc"});
    let five = other["experiments"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["slug"] == "five_sleeps")
        .unwrap();
    let p50 = &mut five["loads"][0]["measured"]["latency_ms"]["p50"];
    *p50 = serde_json::json!(p50.as_f64().unwrap() * 1.10);
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("chapter3.json"), other.to_string()).unwrap();
    let output = reproduce(&[
        "--compare",
        book.to_str().unwrap(),
        elsewhere.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("1 outside") && said.contains("chapter 3 five_sleeps p50:"),
        "{said}"
    );
    let table = std::fs::read_to_string(out.join("compare.md")).unwrap();
    let row = |figure: &str| {
        table
            .lines()
            .find(|line| line.starts_with(&format!("| 3 | five_sleeps | {figure} | timers |")))
            .unwrap_or_else(|| panic!("no five_sleeps {figure} in {table}"))
            .to_string()
    };
    assert!(
        row("p50").contains("| outside, +6.8 % (range "),
        "{}",
        row("p50")
    );
    assert!(
        row("req/s").contains("| as expected (range "),
        "{}",
        row("req/s")
    );
    // One path: the book's own records come first.
    let output = reproduce(&[
        "--compare",
        elsewhere.join("chapter3.json").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("chapter3 against the book:"));
    // The word `book` is the book's records, wherever it stands.
    let output = reproduce(&[
        "--compare",
        "book",
        elsewhere.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("against the book: "));
    // A file that is not an export is one line.
    let output = reproduce(&["--compare", out.join("compare.md").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&output.stderr).lines().count(), 1);
    let _ = std::fs::remove_dir_all(dir);
}
