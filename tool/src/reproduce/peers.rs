//! Other load tools, run the way their users run them, and their text (or
//! JSON) read into the book's [`Summary`], so a table can set them beside
//! the book's own client. A tool that is not installed gives a row that
//! says how to install it; the run goes on.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use evt::load::report::{LatencyMs, RequestCounts, Summary};

/// A peer tool, and how it is asked to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Peer {
    /// `ab -t`: closed, a new connection per request (HTTP/1.0).
    Ab,
    /// `hey -z`: closed.
    Hey,
    /// `hey -z -q`: each worker paced to `-q` requests per second.
    HeyRate,
    /// `wrk -d --latency`: closed, two threads.
    Wrk,
    /// `oha -z`: closed.
    Oha,
    /// `oha -z -q`: paced to `-q` requests per second in all.
    OhaRate,
    /// `oha -z -q --latency-correction`: latencies from when each was due.
    OhaCorrected,
}

impl Peer {
    /// The program.
    pub fn program(self) -> &'static str {
        match self {
            Peer::Ab => "ab",
            Peer::Hey | Peer::HeyRate => "hey",
            Peer::Wrk => "wrk",
            Peer::Oha | Peer::OhaRate | Peer::OhaCorrected => "oha",
        }
    }

    /// How to get it, for the row of a machine that lacks it.
    pub fn install(self) -> &'static str {
        match self {
            Peer::Ab => "apt-get install -y apache2-utils",
            Peer::Hey | Peer::HeyRate => "apt-get install -y hey",
            Peer::Wrk => "apt-get install -y wrk",
            Peer::Oha | Peer::OhaRate | Peer::OhaCorrected => "cargo install oha --locked",
        }
    }

    /// The flags that print its version.
    fn version_args(self) -> &'static [&'static str] {
        match self {
            Peer::Ab => &["-V"],
            Peer::Hey | Peer::HeyRate => &[],
            Peer::Wrk => &["-v"],
            Peer::Oha | Peer::OhaRate | Peer::OhaCorrected => &["--version"],
        }
    }

    /// Its arguments for `connections` connections against `url`, for
    /// `how_long`, at `rate` requests per second in all where it takes one.
    pub fn args(self, url: &str, connections: usize, how_long: Length, rate: f64) -> Vec<String> {
        let c = connections.to_string();
        let seconds = match how_long {
            Length::Requests(requests) => {
                // A count: ab and hey take -n (the rest have no count here).
                let mut args = vec!["-n".to_string(), requests.to_string(), "-c".into(), c];
                args.push(url.to_string());
                return args;
            }
            Length::Time(duration) => duration.as_secs().max(1).to_string(),
        };
        let mut args: Vec<String> = match self {
            Peer::Ab => vec!["-t".into(), seconds, "-c".into(), c],
            Peer::Hey => vec!["-z".into(), format!("{seconds}s"), "-c".into(), c],
            Peer::HeyRate => vec![
                "-z".into(),
                format!("{seconds}s"),
                "-c".into(),
                c,
                "-q".into(),
                // hey's -q is per worker.
                format!("{}", (rate / connections.max(1) as f64).round()),
            ],
            Peer::Wrk => vec![
                "-c".into(),
                c,
                "-d".into(),
                format!("{seconds}s"),
                "--latency".into(),
            ],
            Peer::Oha | Peer::OhaRate | Peer::OhaCorrected => {
                let mut oha = vec![
                    "-z".into(),
                    format!("{seconds}s"),
                    "-c".into(),
                    c,
                    "--no-tui".into(),
                    "--output-format".into(),
                    "json".into(),
                ];
                if self != Peer::Oha {
                    oha.extend(["-q".into(), format!("{}", rate.round())]);
                }
                if self == Peer::OhaCorrected {
                    oha.push("--latency-correction".into());
                }
                oha
            }
        };
        args.push(url.to_string());
        args
    }

    /// Reads its report into a summary.
    pub fn parse(self, url: &str, connections: usize, out: &str) -> Result<Summary, String> {
        let parsed = match self {
            Peer::Ab => parse_ab(out),
            Peer::Hey | Peer::HeyRate => parse_hey(out),
            Peer::Wrk => parse_wrk(out),
            Peer::Oha | Peer::OhaRate | Peer::OhaCorrected => parse_oha(out),
        };
        let mut read = parsed.ok_or_else(|| {
            format!(
                "cannot read {}'s report: {}",
                self.program(),
                out.chars().take(300).collect::<String>()
            )
        })?;
        // To the microsecond, as the book's own reports are.
        let l = &mut read.latency;
        for value in [
            &mut l.min,
            &mut l.mean,
            &mut l.p50,
            &mut l.p75,
            &mut l.p90,
            &mut l.p95,
            &mut l.p99,
            &mut l.p999,
            &mut l.max,
        ] {
            *value = value.map(|ms| (ms * 1000.0).round() / 1000.0);
        }
        Ok(Summary {
            url: url.to_string(),
            connections,
            duration_s: read.duration_s,
            requests: RequestCounts {
                sent: read.completed + read.failed,
                completed: read.completed,
                failed: read.failed,
            },
            retries: 0,
            rps: read.rps,
            steady_rps: None,
            latency_ms: read.latency,
            // What a peer tool leaves out of its percentiles: every failure.
            timed_out_in_latency: 0,
            left_out_of_latency: read.failed,
            overran_s: None,
            planned_s: None,
            status_codes: BTreeMap::new(),
            errors: if read.failed > 0 {
                BTreeMap::from([("failed".to_string(), read.failed)])
            } else {
                BTreeMap::new()
            },
            connect: None,
            hold: None,
            open: None,
            good: None,
        })
    }

    /// What it says its version is (first line), if it runs at all.
    pub fn version(self) -> Option<String> {
        // The version the package manager installed, where there is one.
        let package = |name: &str| {
            std::process::Command::new("dpkg-query")
                .args(["-W", "-f", "${Version}", name])
                .output()
                .ok()
                .filter(|output| output.status.success())
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
                .filter(|version| !version.is_empty())
        };
        if matches!(self, Peer::Hey | Peer::HeyRate) {
            // hey prints no version; the package that installed it may know.
            return Some(
                package("hey").map_or("hey (prints no version)".to_string(), |version| {
                    format!("hey {version}")
                }),
            );
        }
        if self == Peer::Ab {
            // ab's own version (2.3) has not changed in years while its
            // code has: the httpd release it came with says which.
            let own = self.own_version()?;
            return Some(match package("apache2-utils") {
                Some(httpd) => format!("{own} (httpd {httpd})"),
                None => own,
            });
        }
        self.own_version()
    }

    /// The first line of what the tool says its version is.
    fn own_version(self) -> Option<String> {
        let output = std::process::Command::new(self.program())
            .args(self.version_args())
            .output()
            .ok()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // The first line, without its copyright or revision tags.
        text.lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(|line| {
                line.split([' ', '<', '['])
                    .take_while(|word| !word.is_empty() && *word != "Copyright")
                    .collect::<Vec<_>>()
                    .join(" ")
            })
    }
}

/// How long a tool runs: a count of requests, or a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    Requests(u64),
    Time(Duration),
}

/// What every parser finds.
struct Read {
    duration_s: f64,
    completed: u64,
    failed: u64,
    rps: f64,
    latency: LatencyMs,
}

fn empty_latency() -> LatencyMs {
    LatencyMs {
        min: None,
        mean: None,
        p50: None,
        p75: None,
        p90: None,
        p95: None,
        p99: None,
        p999: None,
        max: None,
    }
}

/// The first number after `label` on its line.
fn after(text: &str, label: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with(label))?;
    let rest = &line[line.find(label)? + label.len()..];
    rest.split_whitespace()
        .find_map(|word| word.trim_end_matches(',').parse::<f64>().ok())
}

/// `12.5ms`, `1.01s`, `317.71us`, `2.00m` → milliseconds.
fn wrk_ms(word: &str) -> Option<f64> {
    let split = word.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = word.split_at(split);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        "h" => value * 3_600_000.0,
        _ => return None,
    })
}

fn parse_ab(out: &str) -> Option<Read> {
    let completed = after(out, "Complete requests:")? as u64;
    let failed = after(out, "Failed requests:").unwrap_or(0.0) as u64;
    let percent = |p: &str| {
        out.lines()
            .map(str::trim)
            .find(|line| line.starts_with(&format!("{p}%")))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
    };
    let mut latency = empty_latency();
    latency.p50 = percent("50");
    latency.p75 = percent("75");
    latency.p90 = percent("90");
    latency.p95 = percent("95");
    latency.p99 = percent("99");
    latency.max = percent("100");
    Some(Read {
        duration_s: after(out, "Time taken for tests:")?,
        completed,
        failed,
        rps: after(out, "Requests per second:")?,
        latency,
    })
}

fn parse_hey(out: &str) -> Option<Read> {
    let seconds = |label: &str| after(out, label).map(|s| s * 1000.0);
    let in_line = |p: &str| {
        out.lines()
            .map(str::trim)
            .find(|line| line.starts_with(&format!("{p}% in ")))
            .and_then(|line| line.split_whitespace().nth(2)?.parse::<f64>().ok())
            .map(|s| s * 1000.0)
    };
    let completed: u64 = out
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with('[') && line.ends_with("responses"))
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    let failed: u64 = out
        .split("Error distribution:")
        .nth(1)
        .map(|errors| {
            errors
                .lines()
                .map(str::trim)
                .filter_map(|line| {
                    line.strip_prefix('[')?
                        .split(']')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum()
        })
        .unwrap_or(0);
    let mut latency = empty_latency();
    latency.min = seconds("Fastest:");
    latency.mean = seconds("Average:");
    latency.p50 = in_line("50");
    latency.p75 = in_line("75");
    latency.p90 = in_line("90");
    latency.p95 = in_line("95");
    latency.p99 = in_line("99");
    latency.max = seconds("Slowest:");
    Some(Read {
        duration_s: after(out, "Total:")?,
        completed,
        failed,
        rps: after(out, "Requests/sec:")?,
        latency,
    })
}

fn parse_wrk(out: &str) -> Option<Read> {
    let percent = |p: &str| {
        out.lines()
            .map(str::trim)
            .find(|line| line.starts_with(&format!("{p}%")))
            .and_then(|line| wrk_ms(line.split_whitespace().nth(1)?))
    };
    // "    Latency    10.38ms  317.71us  13.50ms   96.75%": avg, stdev, max.
    let stats: Vec<&str> = out
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("Latency ") && !line.contains("Distribution"))?
        .split_whitespace()
        .collect();
    // "  769 requests in 2.00s, 87.11KB read"
    let totals: Vec<&str> = out
        .lines()
        .map(str::trim)
        .find(|line| line.contains(" requests in "))?
        .split_whitespace()
        .collect();
    let completed: u64 = totals.first()?.parse().ok()?;
    let duration_s = wrk_ms(totals.get(3)?.trim_end_matches(','))? / 1000.0;
    // "Socket errors: connect 0, read 0, write 0, timeout 4"
    let failed = out
        .lines()
        .find(|line| line.contains("Socket errors:"))
        .map(|line| {
            line.split([',', ':'])
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let mut latency = empty_latency();
    latency.mean = stats.get(1).and_then(|w| wrk_ms(w));
    latency.max = stats.get(3).and_then(|w| wrk_ms(w));
    latency.p50 = percent("50");
    latency.p75 = percent("75");
    latency.p90 = percent("90");
    latency.p99 = percent("99");
    Some(Read {
        duration_s,
        completed,
        failed,
        rps: after(out, "Requests/sec:")?,
        latency,
    })
}

fn parse_oha(out: &str) -> Option<Read> {
    let json: serde_json::Value = serde_json::from_str(out).ok()?;
    let summary = &json["summary"];
    let seconds = |value: &serde_json::Value| value.as_f64().map(|s| s * 1000.0);
    let percentiles = &json["latencyPercentiles"];
    let completed: u64 = json["statusCodeDistribution"]
        .as_object()
        .map(|codes| codes.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    let failed: u64 = json["errorDistribution"]
        .as_object()
        .map(|errors| errors.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    let mut latency = empty_latency();
    latency.min = seconds(&summary["fastest"]);
    latency.mean = seconds(&summary["average"]);
    latency.p50 = seconds(&percentiles["p50"]);
    latency.p75 = seconds(&percentiles["p75"]);
    latency.p90 = seconds(&percentiles["p90"]);
    latency.p95 = seconds(&percentiles["p95"]);
    latency.p99 = seconds(&percentiles["p99"]);
    latency.p999 = seconds(&percentiles["p99.9"]);
    latency.max = seconds(&summary["slowest"]);
    Some(Read {
        duration_s: summary["total"].as_f64()?,
        completed,
        failed,
        rps: summary["requestsPerSec"].as_f64()?,
        latency,
    })
}

/// A command line as a reader types it (quoted where the shell needs it).
pub fn command(program: &str, args: &[String]) -> String {
    let mut words = vec![program.to_string()];
    words.extend(args.iter().map(|arg| {
        if arg.contains(['?', '&', ' ']) {
            format!("'{arg}'")
        } else {
            arg.clone()
        }
    }));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tools_report_reads_into_a_summary() {
        let hey = "Summary:\n  Total:\t2.0035 secs\n  Slowest:\t1.0127 secs\n  Fastest:\t0.0103 secs\n  \
                   Average:\t0.0107 secs\n  Requests/sec:\t371.3528\n\nLatency distribution:\n  \
                   50% in 0.0107 secs\n  99% in 0.0116 secs\n\nStatus code distribution:\n  \
                   [200]\t743 responses\n\nError distribution:\n  [4]\tGet \"x\": context deadline exceeded\n";
        let read = Peer::Hey.parse("u", 4, hey).unwrap();
        assert_eq!(read.requests.completed, 743);
        assert_eq!(read.requests.failed, 4);
        assert_eq!(read.latency_ms.p99, Some(11.6));
        assert_eq!(read.latency_ms.max, Some(1012.7));

        let ab = "Time taken for tests:   2.003 seconds\nComplete requests:      747\nFailed requests:        0\n\
                  Requests per second:    372.95 [#/sec] (mean)\n  50%     10\n  99%     11\n 100%     25 (longest request)\n";
        let read = Peer::Ab.parse("u", 4, ab).unwrap();
        assert_eq!(read.requests.completed, 747);
        assert_eq!(read.latency_ms.p99, Some(11.0));
        assert_eq!(read.latency_ms.max, Some(25.0));

        let wrk = "  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency    10.38ms  317.71us   1.01s   96.75%\n  \
                   Latency Distribution\n     50%   10.32ms\n     99%   12.69ms\n  769 requests in 2.00s, 87.11KB read\n  \
                   Socket errors: connect 0, read 0, write 0, timeout 4\nRequests/sec:    383.65\n";
        let read = Peer::Wrk.parse("u", 4, wrk).unwrap();
        assert_eq!(read.requests.completed, 769);
        assert_eq!(read.requests.failed, 4);
        assert_eq!(read.latency_ms.max, Some(1010.0));
        assert_eq!(read.latency_ms.p99, Some(12.69));
        assert_eq!(read.duration_s, 2.0);

        let oha = r#"{"summary":{"total":1.0,"slowest":0.5,"fastest":0.01,"average":0.02,"requestsPerSec":300.0},
                     "latencyPercentiles":{"p50":0.011,"p99":0.4},"statusCodeDistribution":{"200":300},
                     "errorDistribution":{"aborted due to deadline":4}}"#;
        let read = Peer::Oha.parse("u", 4, oha).unwrap();
        assert_eq!(read.requests.completed, 300);
        assert_eq!(read.requests.failed, 4);
        assert_eq!(read.latency_ms.p99, Some(400.0));

        assert!(Peer::Wrk.parse("u", 4, "garbage").is_err());
    }

    #[test]
    fn rates_are_given_as_each_tool_means_them() {
        let url = "http://127.0.0.1:1/";
        let ten = Length::Time(Duration::from_secs(10));
        let hey = Peer::HeyRate.args(url, 4, ten, 200.0);
        // hey's -q is per worker: 4 workers × 50 = 200 in all.
        assert!(hey.windows(2).any(|w| w == ["-q", "50"]), "{hey:?}");
        let oha = Peer::OhaCorrected.args(url, 4, ten, 200.0);
        assert!(oha.windows(2).any(|w| w == ["-q", "200"]), "{oha:?}");
        assert!(oha.contains(&"--latency-correction".to_string()));
    }
}
