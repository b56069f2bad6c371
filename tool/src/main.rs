//! `cargo run --release`: the reproduce run, and the book's other commands.
//! This file only reads the command line and hands it on.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use evt_book::reproduce::progress::Sink;
use evt_book::reproduce::runner::{self, finish};
use evt_book::reproduce::{self, harness, room};

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
    /// (only the quick run's own times go to book/generated/run_times_quick.*,
    /// and only without --out).
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
    /// Measure nothing: put several machines' figures side by side, each
    /// judged against the first (files written by --export, chapter records,
    /// or directories of them; with one, the book's own records come first),
    /// in compare.md and compare.svg in --out (default target/compare).
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "views_only")]
    compare: Vec<PathBuf>,
    /// Measure only the machine: the few seconds' probe a run begins with,
    /// kept in the output directory's calibration.json.
    #[arg(long, conflicts_with_all = ["compare", "views_only", "export"])]
    probe: bool,
    /// Measure nothing: calibrate the machine that measured the records in
    /// the output directory (records from before the probe) from DIR, this
    /// machine's run of the same chapters with its probe.
    #[arg(long, value_name = "DIR", hide = true)]
    derive_calibration: Option<PathBuf>,
    /// Write the run's progress as one JSON event a line (what the served
    /// book's lab reads) instead of lines for a reader.
    #[arg(long, hide = true)]
    events: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Is this machine ready for the book? Each limit, ok or not, and the
    /// command that fixes it; exit 0 when the book can run, 1 when not.
    Doctor,
    /// Serves the book on http://127.0.0.1:3000 (no mdbook needed), rebuilt
    /// when book/ changes; each chapter page can run its chapter here.
    Serve(evt_book::serve::ServeArgs),
    /// Rewrites book/SUMMARY.md and README.md's table of examples from the
    /// list of chapters (after adding a chapter or an example).
    Contents,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let root = evt_book::root();
    match args.command {
        Some(Command::Doctor) => {
            let names: Vec<&str> = reproduce::examples().map(|(_, e)| e.name).collect();
            let checks = evt_book::doctor::checks(&harness::examples_dir(), &names);
            let (text, code) = evt_book::doctor::report(&checks);
            print!("{text}");
            return ExitCode::from(code);
        }
        Some(Command::Serve(serve)) => {
            return finish(evt_book::serve::run(serve, root).map(|()| "stopped serving".into()));
        }
        Some(Command::Contents) => return finish(reproduce::write_contents(&root)),
        None => {}
    }
    let chapters = match runner::chosen_chapters(args.chapter) {
        Ok(chapters) => chapters,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    if !args.compare.is_empty() {
        let out = args.out.unwrap_or_else(|| root.join("target/compare"));
        return finish(room::compare_files(
            &args.compare,
            &room::book_records(&root),
            &out,
        ));
    }
    let default_out = if args.quick {
        root.join("target/reproduce-quick")
    } else {
        root.join("book/generated")
    };
    // Only a quick run that writes to its default place touches the book.
    let quick_times_to = (args.quick && args.out.is_none()).then(|| root.join("book/generated"));
    let out = args.out.unwrap_or(default_out);
    let sink = if args.events {
        Sink::Lines
    } else {
        Sink::Terminal
    };
    if let Some(file) = &args.export {
        return finish(room::export_from(&out, file));
    }
    if args.probe {
        return finish(reproduce::calibrate::probe().and_then(|c| {
            reproduce::calibrate::write(&out, &c)?;
            Ok(format!(
                "{}: {:.1} µs of the machine per hello request ({:.1} µs of CPU), {:.2} µs per µs of /work on every core, {:.1} µs a thread's round trip; kept in {}",
                c.machine,
                c.hello_wall_us,
                c.hello_us,
                c.work_wall_per_us,
                c.switch_us,
                out.join(reproduce::calibrate::FILE).display()
            ))
        }));
    }
    if let Some(here) = &args.derive_calibration {
        return finish(reproduce::calibrate::derive_into(&out, here));
    }
    if args.views_only {
        return finish(runner::views_only(&out, quick_times_to.as_deref(), sink));
    }
    let options = runner::Options {
        chapters,
        quick: args.quick,
        out,
        build: !args.no_build,
        quick_times_to,
        sink,
    };
    if runner::run(&options) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
