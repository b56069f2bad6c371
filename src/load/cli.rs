//! The `load` command line: flags, checks with one-line errors, a progress bar,
//! Ctrl-C that still prints the report.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use tokio::signal::unix::{SignalKind, signal};

use super::engine::{LoadConfig, LoadRun, Stop, check_open_files, default_threads};
use super::record::{ErrorKind, Results};
use super::report::{self, Summary};
use super::schedule::Arrivals;
use super::target::Target;

/// An HTTP load client: C connections, each sending its next request as
/// soon as the previous response has arrived (closed model), or when it is
/// due at a fixed rate (open model, `--rate`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "load",
    about = "An HTTP/1.1 load client (like hey or oha; open model like wrk2 with --rate) for the book's servers.",
    after_help = "Examples:\n  \
        cargo run --release --example load -- -n 5 -c 5 http://127.0.0.1:8001/sleep?ms=2000\n  \
        cargo run --release --example load -- -z 10s -c 100 --json http://127.0.0.1:8003/\n  \
        cargo run --release --example load -- -z 10s -c 50 --rate 1000 http://127.0.0.1:8003/\n\n\
        Latencies are of completed requests (a whole response of any status), from the moment \
        a request starts (connecting included, when it needs a new connection) to its last byte; \
        with --rate, from the moment it was due, and also from its actual send."
)]
pub struct LoadArgs {
    /// Requests to send in all (ignored with -z).
    #[arg(short = 'n', long = "requests", default_value_t = 200)]
    pub requests: u64,
    /// Connections open at once: how many requests are in flight at most.
    #[arg(short = 'c', long = "connections", default_value_t = 50)]
    pub connections: usize,
    /// Run for this long instead of -n requests (10s, 500ms, 2m). Requests in
    /// flight at the end still finish and count.
    #[arg(short = 'z', long = "duration", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Give up on a request after this long (connecting included) and count it as a timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Open a new connection for every request (sends `Connection: close`).
    #[arg(long)]
    pub no_keepalive: bool,
    /// Give every connection its own n / c requests, as hey does; by default
    /// each connection takes the next request from one shared count, as oha
    /// and wrk do.
    #[arg(long)]
    pub fixed_share: bool,
    /// Open every connection first, at most this many per second, and start
    /// the requests when all are open; connecting is then reported apart
    /// from the latencies (for thousands of connections: chapter 8).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_rate: Option<u32>,
    /// After the last answer, keep every connection open and idle this long
    /// (e.g. 5s), then report how many the server still had open: what idle
    /// kept-alive connections cost a server (chapter 8). Not in the run's time.
    #[arg(long, value_parser = parse_duration)]
    pub hold: Option<Duration>,
    /// The open model: send this many requests per second in all (as wrk2's
    /// -R and oha's -q), request i due at i / rate whether or not earlier ones
    /// were answered; latencies count from when each was due. -c caps the
    /// requests in flight: when all are busy, due requests wait (and are
    /// reported late).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// With --rate: `even` (request i due at i / rate, as wrk2 and oha pace
    /// them) or `poisson` (random arrivals at that mean rate, as independent
    /// users arrive; exponential gaps from --seed).
    #[arg(long, value_enum, default_value_t = Spacing::Even)]
    pub arrivals: Spacing,
    /// With --arrivals poisson: the seed of the arrival times, so a run can
    /// be repeated exactly [default: one from the clock, printed in the
    /// report].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Count the goodput: answers with a 2xx status within this time (e.g.
    /// 1s), from when each request was due with --rate, else from its send.
    #[arg(long, value_parser = parse_duration)]
    pub deadline: Option<Duration>,
    /// OS threads driving the connections [default: one per two cores, at most -c;
    /// the other cores are left to the server on the same machine].
    #[arg(long)]
    pub threads: Option<usize>,
    /// The URL to load, http:// only.
    pub url: String,
}

/// `--arrivals`: how an open run's requests are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Spacing {
    Even,
    Poisson,
}

/// Parses `--rate`: a number of requests per second, above zero.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.trim().parse().map_err(|_| {
        format!("'{text}' is not a number; write requests per second, e.g. --rate 1000")
    })?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!(
            "must be above zero (got {text}); write requests per second, e.g. --rate 1000"
        ));
    }
    if rate > 10_000_000.0 {
        return Err(format!(
            "{text} requests per second is beyond any one client; write at most 10000000"
        ));
    }
    Ok(rate)
}

/// A seed from the clock, for Poisson arrivals without `--seed`.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| since.as_nanos() as u64)
}

/// Parses `10s`, `500ms`, `2m`, `1h 30m`; the error says what a duration looks like.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("{error}; write a duration like 10s, 500ms or 2m"))?;
    if duration.is_zero() {
        return Err("must be longer than zero; write a duration like 10s, 500ms or 2m".into());
    }
    Ok(duration)
}

impl LoadArgs {
    /// Checks the flags and the URL; the error is one line naming the problem and the fix.
    pub fn to_config(&self) -> Result<LoadConfig, String> {
        if self.connections == 0 {
            return Err("-c must be at least 1: it is how many connections send requests".into());
        }
        let stop = match self.duration {
            Some(duration) => Stop::AfterDuration(duration),
            None if self.requests == 0 => {
                return Err("-n must be at least 1 (or give a duration with -z)".into());
            }
            None if self.rate.is_none() && self.requests < self.connections as u64 => {
                return Err(format!(
                    "-n {} is smaller than -c {}: every connection needs at least one request; \
                     lower -c or raise -n",
                    self.requests, self.connections
                ));
            }
            None => Stop::AfterRequests(self.requests),
        };
        if self.hold.is_some() && self.no_keepalive {
            return Err(
                "--hold keeps kept-alive connections open; it cannot go with --no-keepalive".into(),
            );
        }
        if self.rate.is_some() && self.fixed_share {
            return Err(
                "--rate sends each request when it is due, on whichever connection is free; \
                 it cannot go with --fixed-share"
                    .into(),
            );
        }
        if self.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        if self.rate.is_none() && (self.arrivals != Spacing::Even || self.seed.is_some()) {
            return Err(
                "--arrivals and --seed space the requests of an open run; give --rate too".into(),
            );
        }
        if self.arrivals == Spacing::Even && self.seed.is_some() {
            return Err(
                "--seed draws random arrival times; evenly spaced ones have none: add --arrivals poisson"
                    .into(),
            );
        }
        let arrivals = match self.arrivals {
            Spacing::Even => Arrivals::Even,
            Spacing::Poisson => Arrivals::Poisson {
                seed: self.seed.unwrap_or_else(clock_seed),
            },
        };
        let target = Target::parse(&self.url)?;
        // The engine checks this too; checking here makes it a usage error (exit 2).
        check_open_files(self.connections)
            .map_err(|message| format!("-c {}: {message}", self.connections))?;
        Ok(LoadConfig {
            stop,
            timeout: self.timeout,
            keepalive: !self.no_keepalive,
            threads: self
                .threads
                .unwrap_or_else(|| default_threads(self.connections)),
            fixed_share: self.fixed_share,
            connect_rate: self.connect_rate,
            hold: self.hold,
            rate: self.rate,
            arrivals,
            deadline: self.deadline,
            ..LoadConfig::new(target, self.requests, self.connections)
        })
    }
}

/// The whole `load` command; returns the process exit code.
pub fn main() -> i32 {
    let args = LoadArgs::parse();
    let config = match args.to_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return 2;
        }
    };
    let results = match run_with_progress(config) {
        Ok(results) => results,
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
    if args.json {
        println!("{}", Summary::of(&results).to_json());
    } else {
        print!("{}", report::text(&results));
    }
    match nothing_completed(&results) {
        Some(message) => {
            eprintln!("error: {message}");
            1
        }
        None => 0,
    }
}

/// When not one request completed, a line that says why and what to try.
pub fn nothing_completed(results: &Results) -> Option<String> {
    if results.completed() > 0 || results.interrupted {
        return None;
    }
    let (kind, seen) = results
        .record
        .failures
        .iter()
        .max_by_key(|(_, seen)| seen.count)?;
    let hint = match kind {
        ErrorKind::Refused => "is a server listening there? start one, e.g. \
             `cargo run --release --example chapter3_async`"
            .to_string(),
        ErrorKind::Timeout => "the server never answered in time; raise --timeout".to_string(),
        ErrorKind::TooManyOpenFiles => "raise `ulimit -n` or lower -c".to_string(),
        _ => format!("first error: {}", seen.first_message),
    };
    Some(format!(
        "no request to {} completed ({} {}); {hint}",
        results.url,
        seen.count,
        kind.name()
    ))
}

/// How long a run goes before the progress bar appears.
const QUIET_START: Duration = Duration::from_secs(1);

/// Runs the load, drawing a progress bar on stderr (when it is a terminal and
/// the run lasts over a second) and stopping cleanly on Ctrl-C.
/// The line `load` starts with, on stderr (as wrk's "Running 10s test @"):
/// what it is about to do.
pub fn announcement(config: &LoadConfig) -> String {
    let how_much = match config.stop {
        Stop::AfterRequests(requests) => format!("{requests} requests"),
        Stop::AfterDuration(duration) => {
            format!("requests for {}", humantime::format_duration(duration))
        }
    };
    let pace = config.rate.map_or(String::new(), |rate| {
        format!(
            " at {rate} requests/s (open model, {})",
            config.arrivals.describe()
        )
    });
    format!(
        "load: {how_much}{pace} over {} connections to {} (Ctrl-C stops early and still reports)",
        config.connections, config.target.url
    )
}

pub fn run_with_progress(config: LoadConfig) -> Result<Results, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start a tokio runtime: {error}"))?;
    let run = LoadRun::start(config)?;
    let show_progress = std::io::stderr().is_terminal();
    let watched = runtime.block_on(async {
        let mut bar: Option<ProgressBar> = None;
        // Listening for Ctrl-C from here on: only then is the run announced,
        // so a Ctrl-C after the announcement always gets a report.
        let mut ctrl_c = signal(SignalKind::interrupt())
            .map_err(|error| format!("cannot listen for Ctrl-C: {error}"))?;
        eprintln!("{}", announcement(run.config()));
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !run.is_finished() {
            tokio::select! {
                _ = ctrl_c.recv() => {
                    run.cancel();
                    if let Some(bar) = bar.take() {
                        bar.finish_and_clear();
                    }
                    eprintln!("stopping: Ctrl-C (requests in flight end as 'interrupted')");
                    break;
                }
                _ = tick.tick() => {
                    if show_progress && bar.is_none() && run.elapsed() >= QUIET_START {
                        bar = Some(new_bar(run.config()).with_elapsed(run.elapsed()));
                    }
                    if let Some(bar) = &bar {
                        update_bar(bar, &run);
                    }
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(())
    });
    if let Err(message) = watched {
        run.cancel();
        let _ = run.wait();
        return Err(message);
    }
    Ok(run.wait())
}

fn new_bar(config: &LoadConfig) -> ProgressBar {
    let (length, template) = match config.stop {
        Stop::AfterRequests(total) => (
            total,
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} requests {msg}",
        ),
        Stop::AfterDuration(duration) => (
            duration.as_millis() as u64,
            "{spinner} [{elapsed_precise}] {wide_bar} {msg}",
        ),
    };
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn update_bar(bar: &ProgressBar, run: &LoadRun) {
    let (completed, failed) = run.progress();
    match run.config().stop {
        Stop::AfterRequests(_) => bar.set_position(completed + failed),
        Stop::AfterDuration(_) => bar.set_position(run.elapsed().as_millis() as u64),
    }
    let elapsed = run.elapsed().as_secs_f64().max(1e-3);
    bar.set_message(format!(
        "{completed} done, {failed} failed, {:.1} req/s",
        completed as f64 / elapsed
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Result<LoadConfig, String> {
        let mut argv = vec!["load"];
        argv.extend_from_slice(line);
        LoadArgs::try_parse_from(argv)
            .map_err(|error| error.to_string())?
            .to_config()
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = args(&["http://127.0.0.1:9/"]).unwrap();
        assert_eq!(config.stop, Stop::AfterRequests(200));
        assert_eq!(config.connections, 50);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert!(config.keepalive);
        let timed = args(&["-z", "500ms", "--no-keepalive", "http://127.0.0.1:9/"]).unwrap();
        assert_eq!(timed.stop, Stop::AfterDuration(Duration::from_millis(500)));
        assert!(!timed.keepalive);
    }

    #[test]
    fn bad_input_is_one_line_naming_the_fix() {
        // More connections than this process may open files, whatever its limit.
        let too_many = crate::sys::raise_open_file_limit()
            .saturating_add(1)
            .to_string();
        for (line, says) in [
            (
                &["-c", "0", "http://127.0.0.1:9/"][..],
                "-c must be at least 1",
            ),
            (
                &["-n", "5", "-c", "10", "http://127.0.0.1:9/"][..],
                "lower -c or raise -n",
            ),
            (
                &["-n", "0", "http://127.0.0.1:9/"][..],
                "-n must be at least 1",
            ),
            (
                &["-c", &too_many, "-n", &too_many, "http://127.0.0.1:9/"][..],
                "ulimit -n",
            ),
            (&["http//127.0.0.1/"][..], "needs a scheme"),
            (
                &["--arrivals", "poisson", "http://127.0.0.1:9/"][..],
                "give --rate too",
            ),
            (
                &["--rate", "10", "--seed", "3", "http://127.0.0.1:9/"][..],
                "add --arrivals poisson",
            ),
        ] {
            let error = args(line).unwrap_err();
            assert!(error.contains(says), "{line:?}: {error}");
            assert!(!error.trim().contains('\n'), "{line:?}: {error}");
        }
        let seeded = args(&[
            "--rate",
            "10",
            "--arrivals",
            "poisson",
            "--seed",
            "3",
            "http://127.0.0.1:9/",
        ])
        .unwrap();
        assert_eq!(seeded.arrivals, Arrivals::Poisson { seed: 3 });
        let error = args(&["-z", "soon", "http://127.0.0.1:9/"]).unwrap_err();
        assert!(error.contains("like 10s, 500ms or 2m"), "{error}");
    }
}
