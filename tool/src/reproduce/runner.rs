//! The reproduce run as a whole: build the examples, run each chosen
//! chapter's experiments and programs, write each chapter's record, then
//! every view. What it has to say goes out as [`Event`]s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::format::format_ms;
use super::progress::{Event, LoadLine, Sink};
use super::record::{self, ChapterRecord};
use super::spec::{Experiment, Plan, Program};
use super::{harness, views};
use evt::sys::{Machine, now_utc};

/// What to measure and where to write it.
#[derive(Debug, Clone)]
pub struct Options {
    /// The chapters to run, in order.
    pub chapters: Vec<u32>,
    /// Every delay scaled down tenfold.
    pub quick: bool,
    /// Where the records and views go.
    pub out: PathBuf,
    /// Build the examples first.
    pub build: bool,
    /// Also keep the quick run's times in the book (`book/generated`): only
    /// when the run writes to its default place.
    pub quick_times_to: Option<PathBuf>,
    pub sink: Sink,
}

/// The chapters to measure: the one asked for, or every measured one.
pub fn chosen_chapters(asked: Option<u32>) -> Result<Vec<u32>, String> {
    let measured = super::measured();
    match asked {
        Some(chapter) if measured.contains(&chapter) => Ok(vec![chapter]),
        Some(chapter) => {
            let known: Vec<String> = measured.iter().map(u32::to_string).collect();
            let planned = super::ALL.iter().any(|c| c.number == Some(chapter));
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

/// The whole run; true when everything ran and was written.
pub fn run(options: &Options) -> bool {
    let say = |event| options.sink.say(event);
    if !harness::is_release_build() {
        say(Event::Warning {
            message: "this is a debug build; run `cargo run --release` for the book's numbers"
                .into(),
        });
    }
    if options.build {
        say(Event::Building);
        if let Err(message) = harness::build_examples() {
            say(Event::Failed { message });
            return false;
        }
    }
    if let Err(message) = write_load_help(&options.out) {
        say(Event::Warning { message });
    }
    let mut ok = measure(options);
    match rewrite_views(&options.out) {
        Ok(_) => say(Event::Views {
            dir: options.out.display().to_string(),
        }),
        Err(message) => {
            say(Event::Failed { message });
            ok = false;
        }
    }
    if let Some(generated) = &options.quick_times_to {
        if let Err(message) = write_quick_times(&options.out, generated, options.sink) {
            say(Event::Failed { message });
            ok = false;
        }
    }
    ok
}

/// Runs every experiment of the chosen chapters and writes each chapter's
/// record whose experiments all ran; true if all did.
fn measure(options: &Options) -> bool {
    let say = |event| options.sink.say(event);
    let scale = if options.quick { 0.1 } else { 1.0 };
    let machine = Machine::this();
    say(Event::Machine {
        describe: machine.describe(),
    });
    let root = crate::root();
    let generated = root.join("book/generated");
    if options.out == generated {
        super::room::keep_reference(&generated, &super::room::reference_dir(&root));
    }
    let reference = Reference::at(&super::room::book_records(&root));
    let calibration = match super::calibrate::probe() {
        Ok(calibration) => {
            say(Event::Calibrated {
                hello_us: calibration.hello_us,
                hello_wall_us: calibration.hello_wall_us,
                work_wall_per_us: calibration.work_wall_per_us,
                switch_us: calibration.switch_us,
                book_hello_wall_us: reference.book_hello_wall_us(),
            });
            if let Err(message) = super::calibrate::write(&options.out, &calibration) {
                say(Event::Warning { message });
            }
            Some(calibration)
        }
        Err(message) => {
            say(Event::Warning {
                message: format!("{message}; the CPU-set figures will not be judged"),
            });
            None
        }
    };
    // A chapter this machine cannot run (a kernel feature it lacks) is
    // skipped with one line; the others go on.
    let mut chapters = Vec::new();
    for &chapter in &options.chapters {
        match super::find(chapter).and_then(|c| (c.unavailable)()) {
            Some(why) => say(Event::Warning {
                message: format!("chapter {chapter} skipped: {why}"),
            }),
            None => chapters.push(chapter),
        }
    }
    let planned: Vec<Experiment> = chapters
        .iter()
        .flat_map(|&chapter| super::experiments(chapter, Plan::here(scale)))
        .collect();
    let programs: Vec<Program> = chapters
        .iter()
        .flat_map(|&chapter| super::programs(chapter, scale))
        .collect();
    let steps = planned.len() + programs.len();
    let mut all_ran = true;
    for &chapter in &chapters {
        let measured_at = now_utc();
        let started = std::time::Instant::now();
        let mut records = Vec::new();
        for (position, experiment) in planned.iter().enumerate() {
            if experiment.chapter != chapter {
                continue;
            }
            say(Event::Step {
                step: position + 1,
                steps,
                chapter,
                seed: (!experiment.seed.is_empty()).then(|| experiment.seed.to_string()),
                title: experiment.title.clone(),
                runs: format!(
                    "server: {} ({})",
                    experiment.server.example, experiment.server.model
                ),
            });
            let expected = format!(
                "running; the model expects about {}",
                format_ms(experiment.expected_s() * 1000.0)
            );
            match with_spinner(options.sink, expected, || experiment.run()) {
                Ok(record) => {
                    for load in &record.loads {
                        say(Event::Load(LoadLine::of(&record, load)));
                    }
                    records.push(record);
                }
                Err(message) => {
                    say(Event::Failed { message });
                    all_ran = false;
                }
            }
        }
        let mut ran = Vec::new();
        for (position, program) in programs.iter().enumerate() {
            if program.chapter != chapter {
                continue;
            }
            say(Event::Step {
                step: planned.len() + position + 1,
                steps,
                chapter,
                seed: None,
                title: program.title.clone(),
                runs: format!("program: {} {}", program.example, program.args.join(" ")),
            });
            let expected = format!(
                "running; expected to take about {}",
                format_ms(program.expected_s * 1000.0)
            );
            match with_spinner(options.sink, expected, || program.run()) {
                Ok(record) => {
                    say(Event::Took {
                        ms: record.duration_s * 1000.0,
                    });
                    ran.push(record);
                }
                Err(message) => {
                    say(Event::Failed { message });
                    all_ran = false;
                }
            }
        }
        if ran.len() != programs.iter().filter(|p| p.chapter == chapter).count()
            || records.len() != planned.iter().filter(|e| e.chapter == chapter).count()
        {
            say(Event::Incomplete { chapter });
            continue;
        }
        let record = ChapterRecord {
            chapter,
            machine: machine.clone(),
            measured_at,
            command: if options.quick {
                format!("{} --quick", views::command_for(chapter))
            } else {
                views::command_for(chapter)
            },
            quick: options.quick,
            experiments: records,
            limits: super::find(chapter).map_or_else(Vec::new, |c| (c.facts)()),
            programs: ran,
            wall_s: Some(started.elapsed().as_secs_f64().round()),
        };
        match record::write(&options.out, &record) {
            Ok(path) => {
                say(Event::Wrote {
                    path: path.display().to_string(),
                });
                if let Some(judged) = reference.judge(&record, calibration.as_ref()) {
                    say(judged);
                }
            }
            Err(message) => {
                say(Event::Failed { message });
                all_ran = false;
            }
        }
    }
    all_ran
}

/// The book's records a run is judged against, and their calibrations.
struct Reference {
    records: Vec<ChapterRecord>,
    calibrations: Vec<super::calibrate::Calibration>,
}

impl Reference {
    /// The records in `dir`; none where they cannot be read (a run does
    /// not need them, and the judging says so).
    fn at(dir: &Path) -> Reference {
        Reference {
            records: record::read_all(dir).unwrap_or_default(),
            calibrations: super::calibrate::read_all(dir).unwrap_or_default(),
        }
    }

    /// The book's machine's time per hello, from its first record's machine.
    fn book_hello_wall_us(&self) -> Option<f64> {
        let machine = self.records.first()?.machine.describe();
        super::calibrate::of(&self.calibrations, &machine)
            .map(|c| c.hello_wall_us)
            .filter(|us| *us > 0.0)
    }

    /// `record`'s figures judged against the book's record of its chapter:
    /// None where the book has none or it is this very run.
    fn judge(
        &self,
        record: &ChapterRecord,
        calibration: Option<&super::calibrate::Calibration>,
    ) -> Option<Event> {
        let book = self.records.iter().find(|r| r.chapter == record.chapter)?;
        if book.measured_at == record.measured_at {
            return None;
        }
        let against = format!(
            "the book's records ({}, {})",
            book.machine.describe(),
            book.measured_at
        );
        if book.quick != record.quick {
            return Some(Event::Judged {
                chapter: record.chapter,
                against,
                tally: "not judged: a quick run's delays are a tenth of a full run's".into(),
                outside: Vec::new(),
            });
        }
        let side = |records: &[ChapterRecord], calibrations: Vec<_>| super::room::Side {
            name: String::new(),
            calibrations,
            headlines: super::room::headlines(records),
        };
        let judged = super::room::judge_side(
            &side(std::slice::from_ref(book), self.calibrations.clone()),
            &side(
                std::slice::from_ref(record),
                calibration.into_iter().cloned().collect(),
            ),
        );
        Some(Event::Judged {
            chapter: record.chapter,
            against,
            tally: super::room::tally(&judged),
            outside: judged
                .iter()
                .filter_map(super::room::outside_line)
                .collect(),
        })
    }
}

/// Runs `work` with a spinner on stderr (drawn only on a terminal, and only
/// for a reader: the lab has its own) that says how long it should take.
fn with_spinner<T>(sink: Sink, message: String, work: impl FnOnce() -> T) -> T {
    if sink != Sink::Terminal {
        return work();
    }
    let spinner = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("      {spinner} {elapsed} {msg}") {
        spinner.set_style(style);
    }
    spinner.set_message(message);
    spinner.enable_steady_tick(Duration::from_millis(120));
    let result = work();
    spinner.finish_and_clear();
    result
}

/// The load client's `--help`, for the chapter on measuring.
fn write_load_help(out: &Path) -> Result<(), String> {
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

/// Writes the quick run's times, from its records in `quick`, into the
/// book's `generated` directory: a small record of the times and its table,
/// the two files a quick run leaves there, so the workshop appendix shows
/// how long a quick run takes.
pub fn write_quick_times(quick: &Path, generated: &Path, sink: Sink) -> Result<(), String> {
    let records = record::read_all(quick)?;
    let Some((json, view)) = super::run_times::quick_files(&records, generated) else {
        return Ok(());
    };
    for (name, text) in [
        (super::run_times::QUICK_RECORD, json.as_str()),
        (view.name.as_str(), view.text.as_str()),
    ] {
        let path = generated.join(name);
        std::fs::write(&path, text)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        sink.say(Event::Wrote {
            path: path.display().to_string(),
        });
    }
    Ok(())
}

/// Rewrites every view from the records in `out`; returns how many records
/// there were. A record that cannot be read stops it before anything is
/// written or removed.
pub fn rewrite_views(out: &Path) -> Result<usize, String> {
    let records = record::read_all(out)?;
    if records.is_empty() {
        return Err(format!(
            "no chapter records in {}: run the measurements first",
            out.display()
        ));
    }
    let mut all = super::all_views(&records);
    all.extend(super::reproducing::views(&records, out)?);
    views::write_all(out, &all)?;
    Ok(records.len())
}

/// `--views-only`: rewrites the views from the records in `out` (and the
/// quick run's times into `quick_times_to`, when given).
pub fn views_only(out: &Path, quick_times_to: Option<&Path>, sink: Sink) -> Result<String, String> {
    let count = rewrite_views(out)?;
    if let Some(generated) = quick_times_to {
        write_quick_times(out, generated, sink)?;
    }
    Ok(format!(
        "rewrote the views of {count} chapter records in {}",
        out.display()
    ))
}

/// Prints what was done, or the error in one line; the exit code says which.
pub fn finish(done: Result<String, String>) -> std::process::ExitCode {
    match done {
        Ok(message) => {
            println!("{message}");
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
