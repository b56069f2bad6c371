//! What a run says while it runs, as typed events. The terminal prints each
//! as its lines ([`Event`]'s `Display`); with `--events` the run writes one
//! JSON object a line instead, and the lab reads them back with
//! [`Event::parse`], so the page shows the same lines the terminal does and
//! never has to pick a failure out of free text.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::format::format_ms;
use super::record::{ExperimentRecord, LoadOutcome};

/// One thing the run has to say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The examples are being built before anything is measured.
    Building,
    /// The machine the run measures.
    Machine { describe: String },
    /// The machine's probe, taken before anything else.
    Calibrated {
        hello_us: f64,
        hello_wall_us: f64,
        work_wall_per_us: f64,
        switch_us: f64,
        /// The book's machine's time per hello, where the book's records
        /// have a calibration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        book_hello_wall_us: Option<f64>,
    },
    /// Step `step` of `steps` begins: an experiment (a server under load) or
    /// a measuring program.
    Step {
        step: usize,
        steps: usize,
        chapter: u32,
        /// The seed write-up the experiment redoes, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<String>,
        title: String,
        /// `server: NAME (model)` or `program: NAME ARGS`.
        runs: String,
    },
    /// What one load of an experiment measured, beside what was predicted.
    Load(LoadLine),
    /// A measuring program finished.
    Took { ms: f64 },
    /// A chapter's record was written.
    Wrote { path: String },
    /// Not every experiment of a chapter ran, so its record was not written.
    Incomplete { chapter: u32 },
    /// A chapter's figures, judged against the book's records.
    Judged {
        chapter: u32,
        /// Whose records: the book's machine and date.
        against: String,
        /// As expected, outside, not judged: one line.
        tally: String,
        /// One line for each figure outside its range.
        outside: Vec<String>,
    },
    /// The views were rewritten.
    Views { dir: String },
    /// Something the reader should know that did not stop the run.
    Warning { message: String },
    /// Something failed: the run goes on, and exits 1 at the end.
    Failed { message: String },
}

/// One load's outcome, as the run's progress shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadLine {
    pub path: String,
    pub requests: u64,
    pub connections: usize,
    /// What the model predicted; None where it has no prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Figures>,
    pub measured: Figures,
    /// Requests never answered, and whether the experiment shows a stall
    /// that leaves them so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unanswered: Option<Unanswered>,
}

/// The figures a progress line shows (ms, req/s); None where not measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub total_ms: f64,
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unanswered {
    pub count: u64,
    /// The experiment shows this stall (chapter 1's keep-alive, say).
    pub expected: bool,
    pub errors: String,
}

impl LoadLine {
    /// The progress line of `load`, one of `experiment`'s.
    pub fn of(experiment: &ExperimentRecord, load: &LoadOutcome) -> LoadLine {
        let (predicted, measured) = (&load.predicted, &load.measured);
        LoadLine {
            path: load.path.clone(),
            requests: load.requests,
            connections: load.connections,
            predicted: (!predicted.is_empty()).then_some(Figures {
                total_ms: predicted.total_s * 1000.0,
                rps: predicted.rps,
                p50_ms: Some(predicted.p50_ms),
                max_ms: Some(predicted.max_ms),
            }),
            measured: Figures {
                total_ms: measured.duration_s * 1000.0,
                rps: measured.rps,
                p50_ms: measured.latency_ms.p50,
                max_ms: measured.latency_ms.max,
            },
            unanswered: (measured.requests.failed > 0).then(|| Unanswered {
                count: measured.requests.failed,
                expected: experiment.failures_expected,
                errors: format!("{:?}", measured.errors),
            }),
        }
    }
}

impl Event {
    /// Whether the terminal prints this on stderr.
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Event::Failed { .. } | Event::Warning { .. } | Event::Incomplete { .. }
        )
    }

    /// The event as one JSON line (for `--events`).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|error| {
            format!(r#"{{"event":"failed","message":"cannot write an event: {error}"}}"#)
        })
    }

    /// An event read back from one line the run wrote with `--events`; None
    /// for any other line (a build's own output, say).
    pub fn parse(line: &str) -> Option<Event> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str(line).ok()
    }
}

fn or_dash(ms: Option<f64>) -> String {
    ms.map_or_else(|| "—".to_string(), format_ms)
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Building => write!(f, "building the examples…"),
            Event::Machine { describe } => write!(f, "Machine: {describe}"),
            Event::Calibrated {
                hello_us,
                hello_wall_us,
                work_wall_per_us,
                switch_us,
                book_hello_wall_us,
            } => {
                write!(
                    f,
                    "Calibrated: {hello_wall_us:.1} µs of the machine per hello request ({hello_us:.1} µs of CPU), {work_wall_per_us:.2} µs per µs of /work on every core, {switch_us:.1} µs for a thread's round trip"
                )?;
                match book_hello_wall_us {
                    Some(book) => write!(
                        f,
                        "\n      (the book's machine: {book:.1} µs per hello; figures the CPU sets should come out about {:.2} × as fast here)",
                        book / hello_wall_us
                    ),
                    None => Ok(()),
                }
            }
            Event::Step {
                step,
                steps,
                chapter,
                seed,
                title,
                runs,
            } => {
                let seed = seed
                    .as_ref()
                    .map_or_else(String::new, |seed| format!(" · seed {seed}"));
                write!(
                    f,
                    "\n[{step}/{steps}] Chapter {chapter}{seed} · {title}\n      {runs}"
                )
            }
            Event::Load(line) => write!(f, "{line}"),
            Event::Took { ms } => write!(f, "      took {}", format_ms(*ms)),
            Event::Wrote { path } => write!(f, "\nwrote {path}"),
            Event::Incomplete { chapter } => write!(
                f,
                "chapter {chapter}: not every experiment ran, so its record was not written"
            ),
            Event::Judged {
                chapter,
                against,
                tally,
                outside,
            } => {
                write!(f, "chapter {chapter} beside {against}: {tally}")?;
                for line in outside {
                    write!(f, "\n  {line}")?;
                }
                Ok(())
            }
            Event::Views { dir } => write!(f, "wrote the views in {dir}"),
            Event::Warning { message } => write!(f, "warning: {message}"),
            Event::Failed { message } => write!(f, "error: {message}"),
        }
    }
}

impl fmt::Display for LoadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (predicted, measured) = (&self.predicted, &self.measured);
        let slowest = or_dash(measured.max_ms);
        let failures = match &self.unanswered {
            Some(u) if u.expected => {
                format!(", {} never answered (the stall this shows)", u.count)
            }
            Some(u) => format!(", {} FAILED: {}", u.count, u.errors),
            None => String::new(),
        };
        if self.requests == 1 {
            writeln!(f, "      {} (one request)", self.path)?;
            match predicted {
                Some(p) => writeln!(f, "        predicted: latency {:>9}", or_dash(p.max_ms))?,
                None => writeln!(f, "        predicted: no prediction")?,
            }
            return write!(f, "        measured:  latency {slowest:>9}{failures}");
        }
        writeln!(
            f,
            "      {} × {} over {} connections",
            self.path, self.requests, self.connections
        )?;
        let off = match predicted {
            Some(p) if p.total_ms > 0.0 => {
                format!(" ({:+.1}%)", (measured.total_ms / p.total_ms - 1.0) * 100.0)
            }
            _ => String::new(),
        };
        match predicted {
            Some(p) => writeln!(
                f,
                "        predicted: total {:>9}, {:>8.2} req/s, median {:>9}, slowest {:>9}",
                format_ms(p.total_ms),
                p.rps,
                or_dash(p.p50_ms),
                or_dash(p.max_ms)
            )?,
            None => writeln!(f, "        predicted: no prediction")?,
        }
        write!(
            f,
            "        measured:  total {:>9}, {:>8.2} req/s, median {:>9}, slowest {slowest:>9}{off}{failures}",
            format_ms(measured.total_ms),
            measured.rps,
            or_dash(measured.p50_ms),
        )
    }
}

/// Where a run's events go: printed for a reader, or written one JSON
/// object a line for the lab.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sink {
    Terminal,
    Lines,
}

impl Sink {
    pub fn say(self, event: Event) {
        match self {
            Sink::Lines => println!("{}", event.to_line()),
            Sink::Terminal if event.is_error() => eprintln!("{event}"),
            Sink::Terminal => println!("{event}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Event> {
        let figures = Figures {
            total_ms: 2000.0,
            rps: 2.5,
            p50_ms: Some(2000.0),
            max_ms: None,
        };
        vec![
            Event::Building,
            Event::Machine {
                describe: "2 cores".into(),
            },
            Event::Step {
                step: 3,
                steps: 18,
                chapter: 7,
                seed: Some("004".into()),
                title: "a proxy".into(),
                runs: "server: chapter7_proxy (pool)".into(),
            },
            Event::Load(LoadLine {
                path: "/sleep?ms=2000".into(),
                requests: 5,
                connections: 5,
                predicted: None,
                measured: figures.clone(),
                unanswered: Some(Unanswered {
                    count: 1,
                    expected: true,
                    errors: String::new(),
                }),
            }),
            Event::Took { ms: 12.5 },
            Event::Wrote {
                path: "book/generated/chapter7.json".into(),
            },
            Event::Incomplete { chapter: 7 },
            Event::Calibrated {
                hello_us: 20.0,
                hello_wall_us: 11.0,
                work_wall_per_us: 0.51,
                switch_us: 12.0,
                book_hello_wall_us: Some(30.0),
            },
            Event::Judged {
                chapter: 3,
                against: "the book's".into(),
                tally: "3 as expected".into(),
                outside: vec!["chapter 3 x p50: …".into()],
            },
            Event::Views { dir: "x".into() },
            Event::Warning {
                message: "w".into(),
            },
            Event::Failed {
                message: "the server died".into(),
            },
        ]
    }

    #[test]
    fn every_event_reads_back_as_it_was_written() {
        for event in every_kind() {
            assert_eq!(Event::parse(&event.to_line()), Some(event.clone()));
            assert!(!event.to_line().contains('\n'));
        }
        assert_eq!(Event::parse("   Compiling evt v0.1.0"), None);
        assert_eq!(Event::parse("{not json"), None);
    }

    #[test]
    fn a_step_without_a_seed_names_none_and_a_load_without_a_model_says_so() {
        let events = every_kind();
        let step = Event::Step {
            step: 1,
            steps: 2,
            chapter: 12,
            seed: None,
            title: "slow clients".into(),
            runs: "server: x".into(),
        };
        assert_eq!(
            step.to_string(),
            "\n[1/2] Chapter 12 · slow clients\n      server: x"
        );
        assert!(
            events[2]
                .to_string()
                .contains("Chapter 7 · seed 004 · a proxy")
        );
        let load = events[3].to_string();
        assert!(load.contains("predicted: no prediction"), "{load}");
        assert!(!load.contains("0.00 ms"), "{load}");
        assert!(load.contains("1 never answered"), "{load}");
    }
}
