//! Tests of [`super`].

use super::*;

fn headline(machine: &str, figure: &str, value: f64, timer_bound: bool) -> Headline {
    Headline {
        chapter: 3,
        experiment: "five_sleeps".into(),
        figure: figure.into(),
        value,
        unit: if figure == "req/s" { "req/s" } else { "ms" }.into(),
        machine: machine.into(),
        timer_bound,
        quick: false,
        set_by: None,
        trials: Vec::new(),
        predicted: None,
        varies_because: None,
        model_range: None,
        family: None,
    }
}

fn side(name: &str, headlines: Vec<Headline>) -> Side {
    Side {
        name: name.into(),
        calibrations: Vec::new(),
        headlines,
    }
}

#[test]
fn two_machines_side_by_side() {
    let a = vec![
        headline("a", "p50", 2000.0, true),
        headline("a", "req/s", 12.4, true),
    ];
    let b = vec![headline("b", "p50", 2100.0, true)];
    let (table, chart) = compare(&[side("laptop", a), side("desktop", b)]);
    assert!(
        table.contains("| laptop | desktop | desktop: judged |"),
        "{table}"
    );
    assert!(
        table.contains(
            "| 3 | five_sleeps | p50 | timers | 2000.0 ms | 2100.0 ms | outside, +1.9 % (range 1940.0 ms–2060.0 ms) |"
        ),
        "{table}"
    );
    // A figure one machine lacks is a dash, not a zero.
    assert!(
        table.contains("| 3 | five_sleeps | req/s | timers | 12 | — | — |"),
        "{table}"
    );
    assert!(table.starts_with("desktop against laptop: 0 as expected, 1 outside"));
    assert!(chart.is_some_and(|svg| svg.starts_with("<svg")));
}

#[test]
fn a_figure_of_the_same_run_is_not_judged_against_itself() {
    let book = side("book", vec![headline("a", "p50", 2000.0, true)]);
    let mine = side(
        "mine",
        vec![
            headline("a", "p50", 2000.0, true),
            headline("b", "p99", 1.0, true),
        ],
    );
    assert_eq!(judge_side(&book, &mine), []);
}

#[test]
fn a_chance_figure_is_judged_against_the_trials_and_a_cpu_one_by_calibration() {
    let calibration = super::super::calibrate::for_tests;
    let mut spread = headline("book (2 cores), 2026-12-01", "p50", 150.0, false);
    spread.set_by = Some(SetBy::Chance);
    spread.trials = vec![150.0, 260.0, 110.0];
    let mut hello = headline("book (2 cores), 2026-12-01", "req/s", 50_000.0, false);
    hello.experiment = "hello".into();
    let book = Side {
        name: "book".into(),
        calibrations: vec![calibration("book (2 cores)", 20.0)],
        headlines: vec![spread.clone(), hello.clone()],
    };
    let mine = |p50, rate| Side {
        name: "mine".into(),
        calibrations: vec![calibration("mine (2 cores)", 10.0)],
        headlines: vec![
            Headline {
                machine: "mine (2 cores), 2026-12-04".into(),
                value: p50,
                ..spread.clone()
            },
            Headline {
                machine: "mine (2 cores), 2026-12-04".into(),
                value: rate,
                ..hello.clone()
            },
        ],
    };
    let verdicts = |side: &Side| -> Vec<Verdict> {
        judge_side(&book, side)
            .into_iter()
            .map(|j| j.verdict)
            .collect()
    };
    // Half the CPU per request here: about twice the book's rate.
    assert_eq!(
        verdicts(&mine(250.0, 95_000.0)),
        [Verdict::AsExpected, Verdict::AsExpected]
    );
    let judged = judge_side(&book, &mine(400.0, 50_000.0));
    assert!(matches!(judged[0].verdict, Verdict::Outside { off_pct, .. } if off_pct > 0.0));
    assert!(matches!(judged[1].verdict, Verdict::Outside { off_pct, .. } if off_pct < 0.0));
    let line = outside_line(&judged[1]).unwrap();
    assert!(
        line.starts_with("chapter 3 hello req/s: 50000 req/s is -33 % outside 75000 req/s–125000 req/s (CPU (hello))"),
        "{line}"
    );
    assert!(tally(&judged).starts_with(
        "0 as expected, 2 outside, 0 not judged (as expected by kind: chance 0/1, CPU 0/1)"
    ));
}

#[test]
fn a_quick_run_is_not_put_beside_a_full_one() {
    let full = vec![headline("a", "p50", 2000.0, true)];
    let mut quick = vec![headline("b", "p50", 200.0, true)];
    assert_eq!(
        mixed_kinds(&[side("a", full.clone()), side("c", full.clone())]),
        None
    );
    quick[0].quick = true;
    let reason = mixed_kinds(&[side("a", full), side("b", quick)]).unwrap();
    assert!(
        reason.starts_with("b is from a quick run and a from a full one"),
        "{reason}"
    );
}

#[test]
fn only_this_machines_records_are_exported() {
    let machine = |cpu: &str| Machine {
        cpu: cpu.into(),
        cores: 2,
        os: "linux".into(),
        rustc: "rustc".into(),
    };
    let record = |chapter, cpu: &str| ChapterRecord {
        chapter,
        machine: machine(cpu),
        measured_at: String::new(),
        command: String::new(),
        quick: false,
        experiments: vec![],
        limits: vec![],
        programs: vec![],
        wall_s: None,
    };
    let mut here = machine("mine");
    here.rustc = "a newer rustc".into();
    let (mine, others) = measured_on(
        vec![record(1, "book"), record(3, "mine"), record(4, "book")],
        &here,
    );
    assert_eq!(mine.iter().map(|r| r.chapter).collect::<Vec<_>>(), [3]);
    assert_eq!(others, [1, 4]);
}
