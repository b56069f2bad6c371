//! The live lab: one chapter's reproduce run at a time, started from its
//! page, as a child process (this program with `--chapter N --events`), its
//! progress read from the typed events it writes, and every process it started stopped on
//! cancel.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::stage::{self, Paths, Site};
use crate::reproduce::harness;
use crate::reproduce::progress::Event;
use evt::process::Sig;

/// How long a run goes on with no page asking after it: the page went away.
pub const UNWATCHED: Duration = Duration::from_secs(90);
/// Lines of the run's output kept for the page.
const LOG_LINES: usize = 12;

/// What the page shows of the current or last run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunView {
    /// Counts runs since `serve` started; the page tells runs apart by it.
    pub id: u64,
    pub chapter: u32,
    /// `quick` or `full`.
    pub mode: String,
    /// `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// Experiment k of n, from the run's step events.
    pub step: usize,
    pub steps: usize,
    /// What is being measured now.
    pub measuring: String,
    pub elapsed_s: f64,
    /// The last lines it printed.
    pub log: Vec<String>,
    /// Why it failed or was cancelled, in one line.
    pub error: Option<String>,
    /// The run's process id: every process it starts is its descendant.
    pub pid: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    run: Option<RunView>,
    started: Option<Instant>,
    last_seen: Option<Instant>,
    cancel: Option<String>,
}

/// The lab of one `serve`.
pub struct Lab {
    paths: Paths,
    site: Arc<Site>,
    state: Mutex<State>,
}

impl Lab {
    pub fn new(paths: Paths, site: Arc<Site>) -> Lab {
        Lab {
            paths,
            site,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current or last run, as the page shows it; asking counts as the
    /// page still watching.
    pub fn view(&self) -> Option<RunView> {
        let mut state = self.lock();
        state.last_seen = Some(Instant::now());
        let started = state.started;
        state.run.clone().map(|mut run| {
            if run.state == "running" {
                run.elapsed_s = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
            }
            run
        })
    }

    pub fn is_running(&self) -> bool {
        self.lock()
            .run
            .as_ref()
            .is_some_and(|run| run.state == "running")
    }

    /// Starts chapter `chapter`'s run; refused while another runs.
    pub fn start(self: &Arc<Self>, chapter: u32, quick: bool) -> Result<RunView, String> {
        let mut state = self.lock();
        if state.run.as_ref().is_some_and(|run| run.state == "running") {
            return Err("a run is already going: one at a time".into());
        }
        let id = state.run.as_ref().map_or(1, |run| run.id + 1);
        let run = RunView {
            id,
            chapter,
            mode: if quick { "quick" } else { "full" }.into(),
            state: "running".into(),
            step: 0,
            steps: 0,
            measuring: "starting".into(),
            elapsed_s: 0.0,
            log: Vec::new(),
            error: None,
            pid: None,
        };
        state.run = Some(run.clone());
        state.started = Some(Instant::now());
        state.last_seen = Some(Instant::now());
        state.cancel = None;
        drop(state);
        let lab = Arc::clone(self);
        // The thread that starts the run waits for it: the run's
        // parent-death signal is tied to this thread.
        std::thread::Builder::new()
            .name("lab-run".into())
            .spawn(move || lab.run(chapter, quick))
            .map_err(|error| format!("cannot start a thread for the run: {error}"))?;
        Ok(run)
    }

    /// Stops the run and every process it started; `why` is what the page shows.
    pub fn cancel(&self, why: &str) -> bool {
        let pid = {
            let mut state = self.lock();
            let Some(run) = state.run.as_ref().filter(|run| run.state == "running") else {
                return false;
            };
            let pid = run.pid;
            state.cancel = Some(why.to_string());
            pid
        };
        if let Some(pid) = pid {
            stop_tree(pid);
        }
        true
    }

    /// Cancels a run no page has asked after for [`UNWATCHED`].
    pub fn cancel_if_unwatched(&self) {
        let unwatched = {
            let state = self.lock();
            state.run.as_ref().is_some_and(|run| run.state == "running")
                && state
                    .last_seen
                    .is_some_and(|seen| seen.elapsed() > UNWATCHED)
        };
        if unwatched {
            self.cancel("cancelled: no page was watching the run");
        }
    }

    fn update(&self, change: impl FnOnce(&mut RunView)) {
        if let Some(run) = self.lock().run.as_mut() {
            change(run);
        }
    }

    /// The run itself, on its own thread.
    fn run(&self, chapter: u32, quick: bool) {
        let outcome = self.run_child(chapter, quick);
        let cancelled = self.lock().cancel.clone();
        let outcome = match (cancelled, outcome) {
            (Some(why), _) => Err(("cancelled", why)),
            (None, Ok(())) => self
                .publish(chapter, quick)
                .map_err(|message| ("failed", message)),
            (None, Err(message)) => Err(("failed", message)),
        };
        let elapsed = self
            .lock()
            .started
            .map_or(0.0, |s| s.elapsed().as_secs_f64());
        self.update(|run| {
            run.elapsed_s = elapsed;
            match outcome {
                Ok(()) => run.state = "done".into(),
                Err((state, message)) => {
                    run.state = state.into();
                    run.error = Some(message);
                }
            }
        });
    }

    /// Runs `--chapter N` as a child and follows its output.
    fn run_child(&self, chapter: u32, quick: bool) -> Result<(), String> {
        let exe = std::env::current_exe()
            .map_err(|error| format!("cannot find this program: {error}"))?;
        let out = if quick {
            let _ = std::fs::remove_dir_all(&self.paths.quick_out);
            self.paths.quick_out.clone()
        } else {
            self.paths.generated()
        };
        let mut command = Command::new(exe);
        // A fresh clone has no examples built yet: the run builds them first
        // (once; minutes, said on the page). Once built they are used as they
        // are, as the reproduce run's `--no-build` does.
        let unbuilt = harness::unbuilt_examples();
        if unbuilt.is_empty() {
            command.arg("--no-build");
        } else {
            self.update(|run| {
                run.measuring = format!(
                    "building the examples first ({} not built yet; once, a few minutes on two cores)",
                    unbuilt.len()
                );
            });
        }
        command
            .args(["--chapter", &chapter.to_string(), "--events", "--out"])
            .arg(&out)
            .current_dir(&self.paths.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if quick {
            command.arg("--quick");
        }
        // Its own group, and it dies with serve: the terminal's Ctrl-C comes
        // to serve, which stops the run itself.
        evt::process::own_group(&mut command, Vec::new());
        let mut child = command
            .spawn()
            .map_err(|error| format!("cannot start the run: {error}"))?;
        self.update(|run| run.pid = Some(child.id()));
        // Stderr carries what the build and the servers print, and the
        // run's own note lines: kept for the page's log when it fails.
        let stderr = child.stderr.take().map(|pipe| {
            std::thread::spawn(move || {
                let lines: Vec<String> =
                    BufReader::new(pipe).lines().map_while(Result::ok).collect();
                lines
            })
        });
        let mut failures = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(Event::Failed { message }) = self.follow(&line) {
                    failures.push(message);
                }
            }
        }
        let status = child.wait().map_err(|error| format!("the run: {error}"))?;
        let stderr = stderr
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        Err(if !failures.is_empty() {
            failures.join("; ")
        } else if let Some(last) = stderr.iter().rev().find(|line| !line.trim().is_empty()) {
            format!("the run stopped ({status}): {}", last.trim())
        } else {
            format!("the run stopped ({status})")
        })
    }

    /// One line of the run's output: an event (a step begins, a load was
    /// measured, something failed), shown as the terminal shows it.
    fn follow(&self, line: &str) -> Option<Event> {
        let event = Event::parse(line);
        let text = event
            .as_ref()
            .map_or_else(|| line.to_string(), Event::to_string);
        self.update(|run| {
            if let Some(Event::Step {
                step,
                steps,
                chapter,
                seed,
                title,
                ..
            }) = &event
            {
                run.step = *step;
                run.steps = *steps;
                run.measuring = match seed {
                    Some(seed) => format!("Chapter {chapter} · seed {seed} · {title}"),
                    None => format!("Chapter {chapter} · {title}"),
                };
            }
            for line in text.lines().filter(|line| !line.trim().is_empty()) {
                run.log.push(line.trim_end().to_string());
            }
            while run.log.len() > LOG_LINES {
                run.log.remove(0);
            }
        });
        event
    }

    /// After a run that finished: a quick run's files go to the overlay (a
    /// full run wrote the book's own and replaces any quick ones), then the
    /// book is rebuilt.
    fn publish(&self, chapter: u32, quick: bool) -> Result<(), String> {
        let _ = std::fs::create_dir_all(&self.paths.overlay);
        for entry in std::fs::read_dir(&self.paths.overlay)
            .into_iter()
            .flatten()
            .flatten()
        {
            if stage::belongs_to(&entry.file_name().to_string_lossy(), chapter) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if quick {
            let files = std::fs::read_dir(&self.paths.quick_out)
                .map_err(|error| format!("the run wrote nothing: {error}"))?;
            for entry in files.flatten() {
                if stage::belongs_to(&entry.file_name().to_string_lossy(), chapter) {
                    std::fs::copy(entry.path(), self.paths.overlay.join(entry.file_name()))
                        .map_err(|error| format!("cannot keep the run's files: {error}"))?;
                }
            }
        }
        self.site.rebuild(&self.paths)
    }
}

/// Every process descended from `pid`, children before grandchildren.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_string_lossy().parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let parent = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((child, parent))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Kills `pid`, its process group, and every descendant and its group (the
/// servers a run starts are each in a group of their own).
fn stop_tree(pid: u32) {
    let mut all = descendants(pid);
    all.insert(0, pid);
    for process in all {
        // A process gone already is an error to ignore.
        let _ = evt::process::signal_group(process, Sig::KILL);
        let _ = evt::process::signal_process(process, Sig::KILL);
    }
}
