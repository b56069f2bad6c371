//! The book's experiments as data: which server, which load, what the model
//! predicts, and running them to get what was measured.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::generated::format_ms;
use crate::harness::ServerProcess;
use crate::load::{self, LoadConfig, Summary, Target};
use crate::model::{self, Capacity, ClientStream, Prediction};

/// An example server and the model of it the predictions use.
#[derive(Debug, Clone)]
pub struct ServerUnderTest {
    /// The example's name: `cargo run --example NAME`.
    pub example: &'static str,
    /// In a few words, what it is.
    pub model: &'static str,
    /// The example's default `--port`, for commands the book shows.
    pub default_port: u16,
    pub capacity: Capacity,
}

/// One closed-model load within an experiment.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Path and query, e.g. `/sleep?ms=2000`.
    pub path: String,
    /// When it starts, counted from the experiment's start.
    pub start_after: Duration,
    pub requests: u64,
    pub connections: usize,
    /// What the server spends on each request (the model's service time).
    pub service: Duration,
}

/// A server, one or more loads against it, and a name.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub chapter: u32,
    /// File-name part: `five_sleeps` gives `chapter1_five_sleeps.md`.
    pub slug: &'static str,
    /// Which seed write-up it redoes.
    pub seed: &'static str,
    pub title: String,
    pub server: ServerUnderTest,
    pub loads: Vec<LoadSpec>,
}

/// The chapters the reproduce run knows so far.
pub const CHAPTERS: &[u32] = &[1, 3];

/// Chapter 1: one blocking thread (tiny_http).
pub fn chapter1_server() -> ServerUnderTest {
    ServerUnderTest {
        example: "chapter1_blocking",
        model: "one thread handling one connection at a time (std::net, hand-written)",
        default_port: 8001,
        capacity: Capacity::Limited(1),
    }
}

/// Chapter 3: one thread, one event loop (tokio current-thread + axum).
pub fn chapter3_server() -> ServerUnderTest {
    ServerUnderTest {
        example: "chapter3_async",
        model: "axum on a tokio current-thread runtime: one thread, one event loop",
        default_port: 8003,
        capacity: Capacity::Unlimited,
    }
}

/// Scales a delay for `--quick` runs (`scale` 1.0 for the real thing).
fn scaled(ms: u64, scale: f64) -> Duration {
    Duration::from_millis(((ms as f64) * scale).round() as u64)
}

/// Seed 000's shape: `count` 2 s requests sent at once, over as many connections.
fn sleeps_at_once(
    chapter: u32,
    server: ServerUnderTest,
    scale: f64,
    count: u64,
    (slug, in_words): (&'static str, &str),
) -> Experiment {
    let delay = scaled(2000, scale);
    Experiment {
        chapter,
        slug,
        seed: "000",
        title: format!(
            "{in_words} {} requests sent at once (`-n {count} -c {count}`)",
            format_ms(delay.as_secs_f64() * 1000.0)
        ),
        server,
        loads: vec![LoadSpec {
            path: format!("/sleep?ms={}", delay.as_millis()),
            start_after: Duration::ZERO,
            requests: count,
            connections: count as usize,
            service: delay,
        }],
    }
}

/// Seed 000: five concurrent 2 s requests.
pub fn five_sleeps(chapter: u32, server: ServerUnderTest, scale: f64) -> Experiment {
    sleeps_at_once(chapter, server, scale, 5, ("five_sleeps", "Five"))
}

/// Seed 000 taken further: a thousand 2 s requests at once. Only a server
/// that keeps every request in flight finishes this in seconds (one blocking
/// thread would need over half an hour).
pub fn thousand_sleeps(chapter: u32, server: ServerUnderTest, scale: f64) -> Experiment {
    sleeps_at_once(
        chapter,
        server,
        scale,
        1000,
        ("thousand_sleeps", "A thousand"),
    )
}

/// Seed 001: a slow `/sleeper`, then a fast `/activer` while it sleeps.
pub fn sleeper_then_activer(chapter: u32, server: ServerUnderTest, scale: f64) -> Experiment {
    let sleeper = scaled(10_000, scale);
    let gap = scaled(500, scale);
    Experiment {
        chapter,
        slug: "sleeper_activer",
        seed: "001",
        title: format!(
            "A {} `/sleeper`, then `/activer` {} later",
            format_ms(sleeper.as_secs_f64() * 1000.0),
            format_ms(gap.as_secs_f64() * 1000.0)
        ),
        server,
        loads: vec![
            LoadSpec {
                path: format!("/sleeper?ms={}", sleeper.as_millis()),
                start_after: Duration::ZERO,
                requests: 1,
                connections: 1,
                service: sleeper,
            },
            LoadSpec {
                path: "/activer".to_string(),
                start_after: gap,
                requests: 1,
                connections: 1,
                service: Duration::ZERO,
            },
        ],
    }
}

/// A chapter's experiments; `scale` shrinks every delay (`--quick` uses 0.1).
pub fn chapter(number: u32, scale: f64) -> Vec<Experiment> {
    match number {
        1 => vec![
            five_sleeps(1, chapter1_server(), scale),
            sleeper_then_activer(1, chapter1_server(), scale),
        ],
        3 => vec![
            five_sleeps(3, chapter3_server(), scale),
            sleeper_then_activer(3, chapter3_server(), scale),
            thousand_sleeps(3, chapter3_server(), scale),
        ],
        _ => Vec::new(),
    }
}

impl Experiment {
    /// What the model predicts for each load, in order.
    pub fn predict(&self) -> Vec<Prediction> {
        let streams: Vec<ClientStream> = self
            .loads
            .iter()
            .map(|load| ClientStream {
                start: load.start_after,
                requests: load.requests,
                connections: load.connections,
                service: load.service,
            })
            .collect();
        model::predict(&streams, self.server.capacity)
    }

    /// Starts the server, runs every load (each on its own schedule), stops the server.
    pub fn run(&self) -> Result<ExperimentRecord, String> {
        // On its default port, so the commands the book shows are the ones that ran;
        // on a free one if the reader has that server running already.
        let default_port = ["--port".to_string(), self.server.default_port.to_string()];
        let mut server = match ServerProcess::start(self.server.example, &default_port) {
            Ok(server) => server,
            Err(error) if error.contains("already in use") => {
                ServerProcess::start(self.server.example, &["--port".into(), "0".into()])?
            }
            Err(error) => return Err(error),
        };
        let predictions = self.predict();
        let runs: Vec<_> = self
            .loads
            .iter()
            .map(|spec| {
                let url = server.url(&spec.path);
                let spec = spec.clone();
                std::thread::spawn(move || -> Result<load::Results, String> {
                    std::thread::sleep(spec.start_after);
                    let mut config =
                        LoadConfig::new(Target::parse(&url)?, spec.requests, spec.connections);
                    config.timeout = Duration::from_secs(120);
                    load::run(config)
                })
            })
            .collect();
        let mut loads = Vec::with_capacity(runs.len());
        for ((run, spec), predicted) in runs.into_iter().zip(&self.loads).zip(predictions) {
            let results = run
                .join()
                .map_err(|_| "a load thread panicked".to_string())??;
            loads.push(LoadOutcome {
                path: spec.path.clone(),
                start_after_s: spec.start_after.as_secs_f64(),
                requests: spec.requests,
                connections: spec.connections,
                predicted,
                measured: Summary::of(&results),
                report: load::report::text(&results),
            });
        }
        if !server.is_running() {
            return Err(format!(
                "{} died during the run; its stderr: {}",
                self.server.example,
                server.stderr_text().trim()
            ));
        }
        Ok(ExperimentRecord {
            chapter: self.chapter,
            slug: self.slug.to_string(),
            seed: self.seed.to_string(),
            title: self.title.clone(),
            example: self.server.example.to_string(),
            default_port: self.server.default_port,
            model: self.server.model.to_string(),
            loads,
        })
    }
}

/// What one load predicted and measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadOutcome {
    pub path: String,
    pub start_after_s: f64,
    pub requests: u64,
    pub connections: usize,
    pub predicted: Prediction,
    pub measured: Summary,
    /// The load client's text report of this load, as a reader would see it.
    pub report: String,
}

/// One experiment's record, as `book/generated/chapterN.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExperimentRecord {
    pub chapter: u32,
    pub slug: String,
    pub seed: String,
    pub title: String,
    pub example: String,
    pub default_port: u16,
    pub model: String,
    pub loads: Vec<LoadOutcome>,
}
