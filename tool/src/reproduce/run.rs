//! Running an experiment: start its servers as processes, drive every load
//! on its own schedule while the server is sampled, and keep what was
//! measured.

use std::collections::BTreeMap;

use clap::Parser;

use super::harness::{self, ServerProcess};
use super::model::Prediction;
use super::record::{ExperimentRecord, LoadOutcome, PauseRecord, Pinning, ProgramRecord, Trial};
use super::sample::{self, Sampler, ServerSamples};
use super::spec::{Driver, Experiment, LoadSpec, Program, ServerUnderTest, command_line};
use evt::load::cli::LoadArgs;
use evt::load::record::{Bucket, Span};
use evt::load::{self, Summary};

impl Experiment {
    /// Runs the experiment, and again for each further trial it asks for:
    /// the record is the first run's, with the later runs' headline figures
    /// kept in `trials`.
    pub fn run(&self) -> Result<ExperimentRecord, String> {
        let mut record = self.run_once()?;
        for _ in 1..self.trials {
            let again = self.run_once()?;
            if let Some(load) = again.load() {
                record.trials.push(Trial::of(load));
            }
        }
        Ok(record)
    }

    /// Starts the upstreams and the server, runs every load (each on its
    /// own schedule) while sampling the server, and stops them all.
    fn run_once(&self) -> Result<ExperimentRecord, String> {
        let mut upstreams = Vec::new();
        for upstream in &self.upstreams {
            upstreams.push(start_server(upstream, &[], &[])?);
        }
        let upstream_urls: Vec<String> = upstreams.iter().map(|u| u.base_url.clone()).collect();
        let pinned = self.pin_server_cpus.and_then(|n| {
            let allowed = evt::sys::allowed_cpus();
            (allowed.len() > n).then(|| Pinning {
                client: allowed[..1].to_vec(),
                server: allowed[1..=n].to_vec(),
            })
        });
        let server_cpus = pinned.as_ref().map_or(&[][..], |p| &p.server[..]);
        let mut server = start_server(&self.server, &upstream_urls, server_cpus)?;
        let fillers = match self.fill_idle_cores {
            Some(spinner) => Some(Fillers::start(spinner)?),
            None => None,
        };
        let tracer = self
            .count_syscalls
            .then(|| super::strace::Tracer::attach(server.pid()));
        let overflows_before = sample::listen_overflows();
        let sampler = Sampler::start(server.pid());
        let started = std::time::Instant::now();
        let clock = sample::CpuClock::start();
        let runs: Vec<_> = self
            .loads
            .iter()
            .map(|spec| {
                let args = spec.load_args(&server.url(&spec.path));
                let spec = spec.clone();
                let client_cpus = pinned.as_ref().map(|p| p.client.clone());
                std::thread::spawn(move || {
                    if let Some(cpus) = client_cpus {
                        // The client's threads start from this one, so keep it there.
                        evt::sys::pin_to(&cpus)
                            .map_err(|error| format!("cannot pin the load client: {error}"))?;
                    }
                    std::thread::sleep(spec.start_after);
                    drive(&spec, &args).map(|driven| (driven, args))
                })
            })
            .collect();
        let slow = match self.slow_clients {
            Some(slow) => {
                let addr = server_addr(&server.base_url)?;
                Some(std::thread::spawn(move || slow.run(addr, started)))
            }
            None => None,
        };
        let pause = self.pause.map(|pause| {
            let group = server.pid();
            std::thread::spawn(move || stall(group, started, pause))
        });
        let mut loads = Vec::with_capacity(runs.len());
        for ((run, spec), predicted) in runs.into_iter().zip(&self.loads).zip(self.predict()) {
            let (driven, args) = run
                .join()
                .map_err(|_| "a load thread panicked".to_string())??;
            let mut outcome = outcome(spec, predicted, driven, &args);
            if let Some(pinning) = &pinned {
                outcome.command = format!(
                    "taskset -c {} {}",
                    evt::sys::cpu_list(&pinning.client),
                    outcome.command
                );
            }
            loads.push(outcome);
        }
        let cpu = clock.and_then(sample::CpuClock::finish);
        // Detached before `/report` is asked for, so that request is not counted.
        let syscalls = tracer.map(|tracer| match tracer {
            Ok(tracer) => tracer.finish(),
            Err(skipped) => skipped,
        });
        let fillers = fillers.map(Fillers::stop);
        let slow_clients = match slow.map(|slow| slow.join()) {
            None => None,
            Some(Ok(record)) => Some(record),
            Some(Err(_)) => return Err("the slow clients' thread panicked".into()),
        };
        let pause = match pause.map(|stalling| stalling.join()) {
            None => None,
            Some(Ok(Ok(pause))) => Some(pause),
            Some(Ok(Err(error))) => return Err(error),
            Some(Err(_)) => return Err("the thread that stalls the server panicked".into()),
        };
        let (server_report, report_at_s) = if self.fetch_report {
            let at = started.elapsed().as_secs_f64();
            (Some(self.fetch_report_from(&server)?), Some(at))
        } else {
            (None, None)
        };
        let samples = sampler.map(Sampler::finish).map(|mut samples| {
            if !self.keep_samples {
                samples.samples.clear();
            }
            samples
        });
        let listen_overflows = match (overflows_before, sample::listen_overflows()) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        if !server.is_running() {
            return Err(format!(
                "{} died during the run; its stderr: {}",
                self.server.example,
                server.stderr_text().trim()
            ));
        }
        Ok(ExperimentRecord {
            chapter: self.chapter,
            slug: self.slug.clone(),
            seed: self.seed.to_string(),
            title: self.title.clone(),
            example: self.server.example.to_string(),
            server_args: self.server.args.clone(),
            default_port: self.server.default_port,
            model: self.server.model.clone(),
            failures_expected: self.failures_expected,
            samples,
            listen_overflows,
            server_report,
            report_at_s,
            group: self.group.clone(),
            loads,
            pause,
            cpu,
            pinned,
            slow_clients,
            fillers,
            trials: Vec::new(),
            syscalls,
        })
    }
}

/// Spinners, one per core but one; stopped (and reaped) on `stop` or drop.
struct Fillers(Vec<std::process::Child>);

impl Fillers {
    fn start(spinner: super::spec::Spinner) -> Result<Fillers, String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let line = spinner.command();
        let mut fillers = Fillers(Vec::new());
        for _ in 1..cores {
            let mut command = std::process::Command::new(line[0]);
            command.args(&line[1..]).stdin(std::process::Stdio::null());
            evt::process::own_group(&mut command, Vec::new());
            let child = command.spawn().map_err(|error| {
                format!("cannot start a spinner (`{}`): {error}", spinner.shell())
            })?;
            fillers.0.push(child);
        }
        // A spinner that cannot run (no `chrt`, a policy refused) exits at
        // once: say so rather than measure an idle core as a busy one.
        std::thread::sleep(std::time::Duration::from_millis(50));
        for child in &mut fillers.0 {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the spinner `{}` exited at once ({status})",
                    spinner.shell()
                ));
            }
        }
        Ok(fillers)
    }

    fn stop(self) -> usize {
        self.0.len()
    }
}

impl Drop for Fillers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The address in a server's `http://HOST:PORT` base URL.
fn server_addr(base_url: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let authority = base_url.trim_start_matches("http://");
    authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("cannot read an address from {base_url}"))
}

/// Stops the server's process group (SIGSTOP) `pause.after` after
/// `started`, for `pause.length`, then lets it go on (SIGCONT); says when
/// it really did.
fn stall(
    group: u32,
    started: std::time::Instant,
    pause: super::spec::Pause,
) -> Result<PauseRecord, String> {
    std::thread::sleep(pause.after.saturating_sub(started.elapsed()));
    // The harness put the server in a process group of its own.
    let signal = |signal, name: &str| {
        evt::process::signal_group(group, signal)
            .map_err(|error| format!("cannot send {name} to the server: {error}"))
    };
    signal(evt::process::Sig::STOP, "SIGSTOP")?;
    let stopped = started.elapsed();
    std::thread::sleep(pause.length);
    // Let it go on whatever happens: a server left stopped would hang the run.
    signal(evt::process::Sig::CONT, "SIGCONT")?;
    Ok(PauseRecord {
        at_s: stopped.as_secs_f64(),
        length_s: (started.elapsed() - stopped).as_secs_f64(),
    })
}

impl Program {
    /// Runs the program with `--json`, sampling it, and keeps what it printed.
    pub fn run(&self) -> Result<ProgramRecord, String> {
        let started = std::time::Instant::now();
        let (output, samples) = run_json_example(self.example, &self.args)?;
        let duration_s = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!(
                "{} failed ({}): {}",
                self.example,
                output.status,
                stderr.trim()
            ));
        }
        let printed = serde_json::from_slice(&output.stdout).map_err(|error| {
            format!(
                "{} printed no JSON ({error}); its stderr: {}",
                self.example,
                stderr.trim()
            )
        })?;
        let mut shown = self.args.clone();
        shown.push("--json".into());
        Ok(ProgramRecord {
            slug: self.slug.clone(),
            title: self.title.clone(),
            example: self.example.to_string(),
            command: command_line(self.example, &shown),
            output: printed,
            samples,
            duration_s,
        })
    }
}

impl Experiment {
    /// The server's `GET /report`, as JSON.
    fn fetch_report_from(&self, server: &ServerProcess) -> Result<serde_json::Value, String> {
        let body = harness::http_get(&server.base_url, "/report")?;
        serde_json::from_str(&body).map_err(|error| {
            format!(
                "{}'s /report is not JSON ({error}): {body}",
                self.server.example
            )
        })
    }
}

/// What one load predicted and measured, as the record keeps it.
fn outcome(spec: &LoadSpec, predicted: Prediction, driven: Driven, args: &[String]) -> LoadOutcome {
    let command = match spec.driver {
        Driver::Engine => command_line("load", args),
        Driver::Command { example } => command_line(example, args),
        Driver::Peer { tool } => super::peers::command(tool.program(), args),
    };
    LoadOutcome {
        path: spec.path.clone(),
        start_after_s: spec.start_after.as_secs_f64(),
        // A timed run sends what it sends.
        requests: match spec.duration {
            Some(_) => driven.summary.requests.sent,
            None => spec.requests,
        },
        connections: spec.connections,
        command,
        fixed_share: spec.fixed_share,
        predicted,
        measured: driven.summary,
        report: driven.report,
        timeline: if spec.keep_timeline {
            driven.timeline
        } else {
            Vec::new()
        },
        answers_per_connection: if spec.keep_answers_per_connection {
            driven.answers_per_connection
        } else {
            BTreeMap::new()
        },
        client_samples: driven.client_samples,
        over_time: if spec.keep_over_time {
            driven.over_time
        } else {
            BTreeMap::new()
        },
    }
}

/// Starts `server` on its default port, so the commands the book shows are
/// the ones that ran; on a free one if the reader has that port in use.
fn start_server(
    server: &ServerUnderTest,
    upstreams: &[String],
    cpus: &[usize],
) -> Result<ServerProcess, String> {
    let args: Vec<String> = server
        .args
        .iter()
        .map(|arg| match upstreams.first() {
            Some(url) => arg.replace("{upstream}", url),
            None => arg.clone(),
        })
        .collect();
    let with_port = |port: String| {
        let mut all = vec!["--port".to_string(), port];
        all.extend(args.iter().cloned());
        all
    };
    match ServerProcess::start_on(
        server.example,
        &with_port(server.default_port.to_string()),
        cpus,
    ) {
        Err(error) if error.contains("already in use") => {
            ServerProcess::start_on(server.example, &with_port("0".into()), cpus)
        }
        started => started,
    }
}

/// What a driver hands back for one load.
struct Driven {
    summary: Summary,
    report: String,
    timeline: Vec<Span>,
    answers_per_connection: BTreeMap<u64, u64>,
    client_samples: Option<ServerSamples>,
    over_time: BTreeMap<u64, Bucket>,
}

/// Runs one load with its driver, from exactly the flags the book prints.
fn drive(spec: &LoadSpec, args: &[String]) -> Result<Driven, String> {
    match spec.driver {
        Driver::Engine => {
            let argv = std::iter::once("load".to_string()).chain(args.iter().cloned());
            let parsed = LoadArgs::try_parse_from(argv).map_err(|error| error.to_string())?;
            let results = load::run(parsed.to_config()?)?;
            Ok(Driven {
                summary: Summary::of(&results),
                report: load::report::text(&results),
                timeline: results.record.timeline.clone(),
                answers_per_connection: results.record.answers_per_connection.clone(),
                client_samples: None,
                over_time: results.record.over_time.clone(),
            })
        }
        Driver::Peer { tool } => Ok(drive_peer(tool, spec, args)),
        Driver::Command { example } => {
            // The client is what is studied here: sample its threads and memory.
            let (output, client_samples) = run_json_example(example, args)?;
            let summary: Summary = serde_json::from_slice(&output.stdout).map_err(|error| {
                format!(
                    "{example} did not print a load report ({error}); its stderr: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )
            })?;
            Ok(Driven {
                report: summary.to_json(),
                summary,
                timeline: Vec::new(),
                answers_per_connection: BTreeMap::new(),
                client_samples,
                over_time: BTreeMap::new(),
            })
        }
    }
}

/// Runs a peer tool. A tool that is missing or fails gives a row that says
/// so (an empty summary, the reason as its report), not a failed chapter.
fn drive_peer(tool: super::peers::Peer, spec: &LoadSpec, args: &[String]) -> Driven {
    let url = args.last().cloned().unwrap_or_default();
    let nothing = |why: String| {
        let mut summary = evt::load::Summary::of(&evt::load::record::Results {
            url: url.clone(),
            connections: spec.connections,
            duration: std::time::Duration::ZERO,
            record: evt::load::record::Recorder::default(),
            interrupted: false,
            connect: None,
            hold: None,
            timed: true,
            rate: None,
            arrivals: evt::load::schedule::Arrivals::Even,
            planned: None,
            deadline: None,
        });
        summary.errors.insert("not_run".into(), 1);
        Driven {
            summary,
            report: why,
            timeline: Vec::new(),
            answers_per_connection: BTreeMap::new(),
            client_samples: None,
            over_time: BTreeMap::new(),
        }
    };
    let output = match std::process::Command::new(tool.program())
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return nothing(format!(
                "{} is not installed here: {}",
                tool.program(),
                tool.install()
            ));
        }
        Err(error) => return nothing(format!("cannot run {}: {error}", tool.program())),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match tool.parse(&url, spec.connections, &stdout) {
        Ok(summary) => Driven {
            summary,
            report: format!(
                "{}\n{}",
                tool.version().unwrap_or_else(|| tool.program().to_string()),
                stdout.chars().take(4000).collect::<String>()
            ),
            timeline: Vec::new(),
            answers_per_connection: BTreeMap::new(),
            client_samples: None,
            over_time: BTreeMap::new(),
        },
        Err(error) => nothing(format!(
            "{error}; its stderr: {}",
            String::from_utf8_lossy(&output.stderr)
                .chars()
                .take(300)
                .collect::<String>()
        )),
    }
}

/// Runs example `example` with `args` and `--json`, sampling its threads,
/// memory and CPU while it runs (kept by their peaks, as a server's are);
/// what it printed and the samples.
fn run_json_example(
    example: &str,
    args: &[String],
) -> Result<(std::process::Output, Option<ServerSamples>), String> {
    let program = harness::examples_dir().join(example);
    let child = std::process::Command::new(&program)
        .args(args)
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", program.display()))?;
    let sampler = Sampler::start(child.id());
    let output = child
        .wait_with_output()
        .map_err(|error| format!("{example} did not finish: {error}"))?;
    let samples = sampler.map(Sampler::finish).map(|mut samples| {
        samples.samples.clear();
        samples
    });
    Ok((output, samples))
}
