//! The live lab: one chapter's reproduce run at a time, started from its
//! page, as a child process (this program with `--chapter N`), its progress
//! read from the lines it prints, and every process it started stopped on
//! cancel.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::stage::{self, Paths, Site};
use crate::reproduce::harness;

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
    /// Experiment k of n, from the run's `[k/n]` lines.
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
            .args(["--chapter", &chapter.to_string(), "--out"])
            .arg(&out)
            .current_dir(&self.paths.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: the terminal's Ctrl-C comes to serve, which
            // stops the run itself.
            .process_group(0);
        if quick {
            command.arg("--quick");
        }
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // Dies with its parent (Linux only; elsewhere the parent's
                // own stop and its Ctrl-C handling are all there is).
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|error| format!("cannot start the run: {error}"))?;
        self.update(|run| run.pid = Some(child.id()));
        let errors = Arc::new(Mutex::new(Vec::<String>::new()));
        let stderr = child.stderr.take().map(|pipe| {
            let errors = Arc::clone(&errors);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.starts_with("error") || line.starts_with("chapter") {
                        if let Ok(mut errors) = errors.lock() {
                            errors.push(line);
                        }
                    }
                }
            })
        });
        if let Some(pipe) = child.stdout.take() {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                self.follow(&line);
            }
        }
        let status = child.wait().map_err(|error| format!("the run: {error}"))?;
        if let Some(thread) = stderr {
            let _ = thread.join();
        }
        if status.success() {
            return Ok(());
        }
        let errors = errors.lock().map(|e| e.join("; ")).unwrap_or_default();
        Err(if errors.is_empty() {
            format!("the run stopped ({status})")
        } else {
            errors
        })
    }

    /// One line of the run's output: `[k/n] Chapter N · …` starts a step.
    fn follow(&self, line: &str) {
        let line = line.trim_end();
        if line.is_empty() {
            return;
        }
        self.update(|run| {
            if let Some((k, n, what)) = step_line(line) {
                run.step = k;
                run.steps = n;
                run.measuring = what;
            }
            run.log.push(line.to_string());
            if run.log.len() > LOG_LINES {
                run.log.remove(0);
            }
        });
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

/// `[3/18] Chapter 7 · seed 004 · title` → (3, 18, "Chapter 7 · seed 004 · title").
pub fn step_line(line: &str) -> Option<(usize, usize, String)> {
    let rest = line.strip_prefix('[')?;
    let (counts, what) = rest.split_once("] ")?;
    let (k, n) = counts.split_once('/')?;
    Some((k.parse().ok()?, n.parse().ok()?, what.trim().to_string()))
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
        // SAFETY: kill only sends signals; a gone process is ESRCH.
        unsafe {
            libc::kill(-(process as libc::pid_t), libc::SIGKILL);
            libc::kill(process as libc::pid_t, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::step_line;

    #[test]
    fn step_lines_are_read_and_other_lines_are_not() {
        assert_eq!(
            step_line("[3/18] Chapter 7 · seed 004 · a proxy"),
            Some((3, 18, "Chapter 7 · seed 004 · a proxy".into()))
        );
        assert_eq!(step_line("      server: chapter7_proxy"), None);
        assert_eq!(step_line("[x/18] nothing"), None);
    }
}
