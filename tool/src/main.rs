//! The reproduce run: `cargo run --release`.
//!
//! Builds the examples, starts each chapter's server as its own process, runs
//! the chapter's experiments with the load engine, prints what the model
//! predicted beside what was measured, and writes the book's tables.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use evt::sys::{Machine, now_utc};
use evt_book::reproduce::record::{self, ChapterRecord, ExperimentRecord, ProgramRecord};
use evt_book::reproduce::spec::{Experiment, Program};
use evt_book::reproduce::views::{self, format_ms};
use evt_book::reproduce::{self, harness};

/// Re-measures every number in the book on this machine.
#[derive(Debug, Parser)]
#[command(
    name = "event-loops-vs-threads",
    about = "The reproduce run: starts each chapter's server, loads it, prints predicted \
             beside measured, and writes the book's tables to book/generated/.",
    after_help = "A full run takes about twenty-five minutes on two cores. Run with --release: a debug build measures \
                  the compiler's work, not the model's."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Run only this chapter's experiments.
    #[arg(long)]
    chapter: Option<u32>,
    /// Scale every delay down tenfold for a fast check. Writes to
    /// target/reproduce-quick/ so the book keeps its full-run numbers
    /// (only the quick run's own times go to book/generated/run_times_quick.*).
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON records and Markdown tables
    /// [default: book/generated, or target/reproduce-quick with --quick].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use the examples as already built instead of building them first.
    #[arg(long)]
    no_build: bool,
    /// Measure nothing: rewrite the Markdown tables from the JSON records
    /// already in the output directory (after changing how tables look).
    #[arg(long)]
    views_only: bool,
    /// Measure nothing: write this machine's headline figures (every
    /// experiment's rate, p50 and p99, from the records in the output
    /// directory) to FILE, for a workshop's room to compare.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["compare", "views_only"])]
    export: Option<PathBuf>,
    /// Measure nothing: put the files several machines exported side by side
    /// (compare.md and compare.svg in --out, default target/compare).
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "views_only")]
    compare: Vec<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Is this machine ready for the book? Each limit, ok or not, and the
    /// command that fixes it; exit 0 when the book can run, 1 when not.
    Doctor,
    /// Serves the book on http://127.0.0.1:3000 (no mdbook needed), rebuilt
    /// when book/ changes; each chapter page can run its chapter here.
    Serve(evt_book::serve::ServeArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Doctor) = &args.command {
        let names: Vec<&str> = reproduce::examples()
            .map(|(_, example)| example.name)
            .collect();
        let (text, code) =
            evt_book::doctor::report(&evt_book::doctor::checks(&harness::examples_dir(), &names));
        print!("{text}");
        return ExitCode::from(code);
    }
    if let Some(Command::Serve(serve)) = args.command {
        let root = evt_book::root();
        return finish(evt_book::serve::run(serve, root).map(|()| "stopped serving".to_string()));
    }
    let chapters = match chosen_chapters(args.chapter) {
        Ok(chapters) => chapters,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let manifest_dir = evt_book::root();
    if !args.compare.is_empty() {
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| manifest_dir.join("target/compare"));
        return finish(compare_machines(&args.compare, &out));
    }
    let out = args.out.clone().unwrap_or_else(|| {
        if args.quick {
            manifest_dir.join("target/reproduce-quick")
        } else {
            manifest_dir.join("book/generated")
        }
    });
    if let Some(file) = &args.export {
        let records = record::read_all(&out);
        if records.is_empty() {
            eprintln!(
                "error: no chapter records in {}: run the measurements first",
                out.display()
            );
            return ExitCode::FAILURE;
        }
        let this = evt::sys::Machine::this();
        let (records, others) = reproduce::room::measured_on(records, &this);
        let chapters = |list: &[u32]| {
            list.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if records.is_empty() {
            eprintln!(
                "error: no chapter record in {} was measured on this machine ({}): run a chapter first (`cargo run --release -- --chapter N`, or its page's button under `serve`)",
                out.display(),
                this.describe()
            );
            return ExitCode::FAILURE;
        }
        if !others.is_empty() {
            eprintln!(
                "note: left out {} {}: measured on another machine (the book's own records)",
                if others.len() == 1 {
                    "chapter"
                } else {
                    "chapters"
                },
                chapters(&others)
            );
        }
        return finish(
            reproduce::room::export(&records, file)
                .map(|rows| format!("wrote {rows} headline figures to {}", file.display())),
        );
    }
    if args.views_only {
        return match rewrite_views(&out) {
            Ok(count) => {
                println!(
                    "rewrote the views of {count} chapter records in {}",
                    out.display()
                );
                if args.quick && args.out.is_none() {
                    if let Err(message) =
                        write_quick_times(&out, &manifest_dir.join("book/generated"))
                    {
                        eprintln!("error: {message}");
                        return ExitCode::FAILURE;
                    }
                }
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        };
    }
    if !harness::is_release_build() {
        eprintln!(
            "warning: this is a debug build; run `cargo run --release` for the book's numbers"
        );
    }
    if !args.no_build {
        eprintln!("building the examples…");
        if let Err(message) = harness::build_examples() {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(message) = write_load_help(&out) {
        eprintln!("warning: {message}");
    }
    let mut failed = !measure(&chapters, &args, &out);
    if let Err(message) = rewrite_views(&out) {
        eprintln!("error: {message}");
        failed = true;
    } else {
        println!("wrote the views in {}", out.display());
    }
    if args.quick && args.out.is_none() {
        if let Err(message) = write_quick_times(&out, &manifest_dir.join("book/generated")) {
            eprintln!("error: {message}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The chapters to measure: the one asked for, or every measured one.
fn chosen_chapters(asked: Option<u32>) -> Result<Vec<u32>, String> {
    let measured = reproduce::measured();
    match asked {
        Some(chapter) if measured.contains(&chapter) => Ok(vec![chapter]),
        Some(chapter) => {
            let known: Vec<String> = measured.iter().map(u32::to_string).collect();
            let planned = reproduce::ALL.iter().any(|c| c.number == Some(chapter));
            Err(format!(
                "{}; choose one of {}",
                if planned {
                    format!("chapter {chapter} has no experiments yet")
                } else {
                    format!("there is no chapter {chapter}")
                },
                known.join(", ")
            ))
        }
        None => Ok(measured),
    }
}

/// Runs every experiment of `chapters` and writes each chapter's record
/// whose experiments all ran; true if all did.
fn measure(chapters: &[u32], args: &Args, out: &std::path::Path) -> bool {
    let scale = if args.quick { 0.1 } else { 1.0 };
    let machine = Machine::this();
    println!("Machine: {}", machine.describe());
    let planned: Vec<Experiment> = chapters
        .iter()
        .flat_map(|&chapter| reproduce::experiments(chapter, reproduce::spec::Plan::here(scale)))
        .collect();
    let programs: Vec<Program> = chapters
        .iter()
        .flat_map(|&chapter| reproduce::programs(chapter, scale))
        .collect();
    let steps = planned.len() + programs.len();
    let mut all_ran = true;
    for &chapter in chapters {
        let measured_at = now_utc();
        let started = std::time::Instant::now();
        let mut records = Vec::new();
        for (position, experiment) in planned.iter().enumerate() {
            if experiment.chapter != chapter {
                continue;
            }
            println!(
                "\n[{}/{}] Chapter {} · seed {} · {}\n      server: {} ({})",
                position + 1,
                steps,
                chapter,
                experiment.seed,
                experiment.title,
                experiment.server.example,
                experiment.server.model
            );
            match run_with_spinner(experiment) {
                Ok(record) => {
                    print_outcome(&record);
                    records.push(record);
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    all_ran = false;
                }
            }
        }
        let mut ran = Vec::new();
        for (position, program) in programs.iter().enumerate() {
            if program.chapter != chapter {
                continue;
            }
            println!(
                "\n[{}/{}] Chapter {} · {}\n      program: {} {}",
                planned.len() + position + 1,
                steps,
                chapter,
                program.title,
                program.example,
                program.args.join(" ")
            );
            match run_program_with_spinner(program) {
                Ok(record) => {
                    println!("      took {}", format_ms(record.duration_s * 1000.0));
                    ran.push(record);
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    all_ran = false;
                }
            }
        }
        if ran.len() != programs.iter().filter(|p| p.chapter == chapter).count()
            || records.len() != planned.iter().filter(|e| e.chapter == chapter).count()
        {
            eprintln!("chapter {chapter}: not every experiment ran, so its record was not written");
            continue;
        }
        let record = ChapterRecord {
            chapter,
            machine: machine.clone(),
            measured_at,
            command: if args.quick {
                format!("{} --quick", views::command_for(chapter))
            } else {
                views::command_for(chapter)
            },
            quick: args.quick,
            experiments: records,
            limits: reproduce::find(chapter).map_or_else(Vec::new, |c| (c.facts)()),
            programs: ran,
            wall_s: Some(started.elapsed().as_secs_f64().round()),
        };
        match record::write(out, &record) {
            Ok(path) => println!("\nwrote {}", path.display()),
            Err(message) => {
                eprintln!("error: {message}");
                all_ran = false;
            }
        }
    }
    all_ran
}

/// Runs one experiment with a spinner on stderr (drawn only on a terminal)
/// that says how long the model expects it to take.
fn run_with_spinner(experiment: &Experiment) -> Result<ExperimentRecord, String> {
    let expected = experiment.expected_s();
    let spinner = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("      {spinner} {elapsed} {msg}") {
        spinner.set_style(style);
    }
    spinner.set_message(format!(
        "running; the model expects about {}",
        format_ms(expected * 1000.0)
    ));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let result = experiment.run();
    spinner.finish_and_clear();
    result
}

/// Runs one measuring program with the same spinner.
fn run_program_with_spinner(program: &Program) -> Result<ProgramRecord, String> {
    let spinner = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("      {spinner} {elapsed} {msg}") {
        spinner.set_style(style);
    }
    spinner.set_message(format!(
        "running; expected to take about {}",
        format_ms(program.expected_s * 1000.0)
    ));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let result = program.run();
    spinner.finish_and_clear();
    result
}

fn print_outcome(record: &ExperimentRecord) {
    for load in &record.loads {
        let (predicted, measured) = (&load.predicted, &load.measured);
        let slowest = measured.latency_ms.max.map_or("—".into(), format_ms);
        let failures = if measured.requests.failed > 0 && record.failures_expected {
            format!(
                ", {} never answered (the stall this shows)",
                measured.requests.failed
            )
        } else if measured.requests.failed > 0 {
            format!(
                ", {} FAILED: {:?}",
                measured.requests.failed, measured.errors
            )
        } else {
            String::new()
        };
        if load.requests == 1 {
            println!("      {} (one request)", load.path);
            println!(
                "        predicted: latency {:>9}",
                format_ms(predicted.max_ms)
            );
            println!("        measured:  latency {slowest:>9}{failures}");
            continue;
        }
        let off = if predicted.total_s > 0.0 {
            format!(
                " ({:+.1}%)",
                (measured.duration_s / predicted.total_s - 1.0) * 100.0
            )
        } else {
            String::new()
        };
        println!(
            "      {} × {} over {} connections",
            load.path, load.requests, load.connections
        );
        println!(
            "        predicted: total {:>9}, {:>8.2} req/s, median {:>9}, slowest {:>9}",
            format_ms(predicted.total_s * 1000.0),
            predicted.rps,
            format_ms(predicted.p50_ms),
            format_ms(predicted.max_ms)
        );
        println!(
            "        measured:  total {:>9}, {:>8.2} req/s, median {:>9}, slowest {slowest:>9}{off}{failures}",
            format_ms(measured.duration_s * 1000.0),
            measured.rps,
            measured.latency_ms.p50.map_or("—".into(), format_ms),
        );
    }
}

/// The load client's `--help`, for the chapter on measuring.
fn write_load_help(out: &std::path::Path) -> Result<(), String> {
    let program = harness::examples_dir().join("load");
    let output = std::process::Command::new(&program)
        .arg("--help")
        .output()
        .map_err(|error| format!("cannot run {}: {error}", program.display()))?;
    std::fs::create_dir_all(out)
        .map_err(|error| format!("cannot create {}: {error}", out.display()))?;
    let help = format!(
        "$ cargo run --release --example load -- --help\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    std::fs::write(out.join("load_help.txt"), help)
        .map_err(|error| format!("cannot write load_help.txt: {error}"))
}

/// Rewrites every view from the records in `out`; returns how many records there were.
/// Prints what was done, or the error; the exit code says which.
fn finish(done: Result<String, String>) -> ExitCode {
    match done {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Several machines' exported headlines, side by side, written to `out`.
fn compare_machines(files: &[PathBuf], out: &std::path::Path) -> Result<String, String> {
    let mut machines = Vec::new();
    for file in files {
        let headlines = reproduce::room::read(file)?;
        let name = file.file_stem().map_or_else(
            || file.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        machines.push((name, headlines));
    }
    if let Some(reason) = reproduce::room::mixed_kinds(&machines) {
        return Err(reason);
    }
    let (table, chart) = reproduce::room::compare(&machines);
    std::fs::create_dir_all(out)
        .map_err(|error| format!("cannot create {}: {error}", out.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(out.join(name), text)
            .map_err(|error| format!("cannot write {}: {error}", out.join(name).display()))
    };
    write("compare.md", &table)?;
    if let Some(svg) = chart {
        write("compare.svg", &svg)?;
    }
    Ok(format!(
        "compared {} machines: {}",
        machines.len(),
        out.join("compare.md").display()
    ))
}

/// Writes the quick run's times, from its records in `quick`, into the
/// book's `generated` directory: a small record of the times and its table,
/// the two files a quick run leaves there, so the workshop appendix shows
/// how long a quick run takes.
fn write_quick_times(quick: &std::path::Path, generated: &std::path::Path) -> Result<(), String> {
    let Some((json, view)) = reproduce::run_times::quick_files(&record::read_all(quick), generated)
    else {
        return Ok(());
    };
    for (name, text) in [
        (reproduce::run_times::QUICK_RECORD, json.as_str()),
        (view.name.as_str(), view.text.as_str()),
    ] {
        let path = generated.join(name);
        std::fs::write(&path, text)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn rewrite_views(out: &std::path::Path) -> Result<usize, String> {
    let records = record::read_all(out);
    if records.is_empty() {
        return Err(format!(
            "no chapter records in {}: run the measurements first",
            out.display()
        ));
    }
    views::write_all(out, &reproduce::all_views(&records))?;
    Ok(records.len())
}
