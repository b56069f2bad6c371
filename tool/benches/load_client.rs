//! Is the load client ever the bottleneck? `cargo bench --bench load_client`
//!
//! Starts chapter 3's server, then loads its `/` (hello) endpoint with 50
//! connections for a few seconds with our client and with wrk, oha and hey
//! where they are installed, in alternating rounds, each client given one
//! thread of work (as the server has one). For each it prints the
//! median requests per second and the CPU time (user + system) the client
//! spent per request: what it takes away from a server sharing the machine.
//! The medians also go to `book/generated/load_client_bench.md` for the book.
//!
//! Options (after `--`): `--seconds N` per run (default 5), `--rounds N`
//! (default 3), `--connections N` (default 50).

use std::process::{Command, Stdio};
use std::time::Duration;

use evt::sys::{Machine, children_cpu_time, now_utc};
use evt_book::reproduce::harness::{self, ServerProcess};

struct Options {
    seconds: u64,
    rounds: usize,
    connections: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        seconds: 5,
        rounds: 3,
        connections: 50,
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number: u64 = value
            .parse()
            .map_err(|_| format!("{flag} takes a whole number, got {value:?}"))?;
        match flag.as_str() {
            "--seconds" => options.seconds = number.max(1),
            "--rounds" => options.rounds = number.max(1) as usize,
            "--connections" => options.connections = number.max(1) as usize,
            _ => {
                return Err(format!(
                    "unknown option {flag}; use --seconds, --rounds or --connections"
                ));
            }
        }
    }
    Ok(options)
}

/// One load client: how to run it and how to read its requests/s.
struct Client {
    name: &'static str,
    program: String,
    args: Vec<String>,
    /// Environment that sets its thread count.
    env: &'static [(&'static str, &'static str)],
    /// How it was given one thread, for the table.
    threads: &'static str,
    /// Finds completed requests in the client's output.
    parse_requests: fn(&str, f64) -> Option<f64>,
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The number after `label` on the line that starts with it.
fn number_after(output: &str, label: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

fn clients(url: &str, options: &Options) -> Vec<Client> {
    let seconds = options.seconds.to_string();
    let connections = options.connections.to_string();
    let ours = harness::examples_dir().join("load");
    let mut clients = vec![Client {
        name: "ours (load)",
        program: ours.display().to_string(),
        args: vec![
            "-z".into(),
            format!("{seconds}s"),
            "-c".into(),
            connections.clone(),
            "--threads".into(),
            "1".into(),
            "--json".into(),
            url.into(),
        ],
        env: &[],
        threads: "`--threads 1`",
        parse_requests: |output, _| {
            let json: serde_json::Value = serde_json::from_str(output).ok()?;
            json["requests"]["completed"].as_f64()
        },
    }];
    if installed("wrk") {
        clients.push(Client {
            name: "wrk",
            program: "wrk".into(),
            args: vec![
                "-t1".into(),
                format!("-c{connections}"),
                format!("-d{seconds}s"),
                url.into(),
            ],
            env: &[],
            threads: "`-t1`",
            // wrk prints "N requests in 5.00s": read N.
            parse_requests: |output, _| {
                output
                    .lines()
                    .find(|line| line.contains("requests in"))
                    .and_then(|line| line.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            },
        });
    }
    if installed("oha") {
        clients.push(Client {
            name: "oha",
            program: "oha".into(),
            args: vec![
                "-z".into(),
                format!("{seconds}s"),
                "-c".into(),
                connections.clone(),
                "--no-tui".into(),
                "--output-format".into(),
                "json".into(),
                url.into(),
            ],
            // oha builds a multi-thread tokio runtime, which reads this.
            env: &[("TOKIO_WORKER_THREADS", "1")],
            threads: "`TOKIO_WORKER_THREADS=1`",
            parse_requests: |output, seconds| {
                let json: serde_json::Value = serde_json::from_str(output).ok()?;
                Some(json["summary"]["requestsPerSec"].as_f64()? * seconds)
            },
        });
    }
    if installed("hey") {
        clients.push(Client {
            name: "hey",
            program: "hey".into(),
            args: vec![
                "-z".into(),
                format!("{seconds}s"),
                "-c".into(),
                connections,
                url.into(),
            ],
            env: &[("GOMAXPROCS", "1")],
            threads: "`GOMAXPROCS=1`",
            parse_requests: |output, seconds| {
                Some(number_after(output, "Requests/sec:")? * seconds)
            },
        });
    }
    clients
}

/// One run: (requests/s, CPU per request) for the client, or why it failed.
fn measure(client: &Client, seconds: f64) -> Result<(f64, Duration), String> {
    let cpu_before = children_cpu_time();
    let output = Command::new(&client.program)
        .args(&client.args)
        .envs(client.env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {}: {error}", client.program))?;
    let cpu = children_cpu_time().saturating_sub(cpu_before);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let requests = (client.parse_requests)(&stdout, seconds).ok_or_else(|| {
        format!(
            "could not read {}'s output: {}",
            client.name,
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })?;
    if requests < 1.0 {
        return Err(format!("{} completed no requests", client.name));
    }
    Ok((requests / seconds, cpu.div_f64(requests)))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    };
    if let Err(message) = harness::build_examples() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
    let server = match ServerProcess::start("chapter3_async", &["--port".into(), "0".into()]) {
        Ok(server) => server,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    };
    let url = server.url("/");
    let clients = clients(&url, &options);
    let missing: Vec<&str> = ["wrk", "oha", "hey"]
        .into_iter()
        .filter(|name| !clients.iter().any(|c| c.name == *name))
        .collect();
    println!(
        "Loading {url} (chapter3_async, one thread) with {} connections, {} s a run, {} rounds.",
        options.connections, options.seconds, options.rounds
    );
    if !missing.is_empty() {
        println!(
            "Not installed, so not compared: {} (apt-get install wrk hey; cargo install oha --locked).",
            missing.join(", ")
        );
    }
    let seconds = options.seconds as f64;
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
    let mut cpu_us: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
    for round in 1..=options.rounds {
        for (index, client) in clients.iter().enumerate() {
            match measure(client, seconds) {
                Ok((rate, cpu)) => {
                    println!(
                        "  round {round}: {:<12} {:>9.0} req/s  {:>6.1} µs CPU/request",
                        client.name,
                        rate,
                        cpu.as_secs_f64() * 1e6
                    );
                    rps[index].push(rate);
                    cpu_us[index].push(cpu.as_secs_f64() * 1e6);
                }
                Err(message) => println!("  round {round}: {:<12} failed: {message}", client.name),
            }
        }
    }
    println!("\nMedians over {} rounds:", options.rounds);
    println!(
        "  {:<12} {:>10} {:>18}",
        "client", "req/s", "CPU µs/request"
    );
    let mut table = String::from(
        "| client | one thread of work, by | requests/s | CPU per request |\n|---|---|--:|--:|\n",
    );
    for (index, client) in clients.iter().enumerate() {
        if rps[index].is_empty() {
            continue;
        }
        let (rate, cpu) = (median(&mut rps[index]), median(&mut cpu_us[index]));
        println!("  {:<12} {:>10.0} {:>18.1}", client.name, rate, cpu);
        table.push_str(&format!(
            "| {} | {} | {rate:.0} | {cpu:.1} µs |\n",
            client.name, client.threads
        ));
    }
    let machine = Machine::this();
    table.push_str(&format!(
        "\n*Measured on {} ({}), {}, by `cargo bench --bench load_client`: chapter 3's `/` \
         with {} connections, medians of {} rounds of {} s.*\n",
        machine.describe(),
        machine.rustc,
        now_utc(),
        options.connections,
        options.rounds,
        options.seconds
    ));
    let out = evt_book::root().join("book/generated/load_client_bench.md");
    match std::fs::write(&out, table) {
        Ok(()) => println!("\nwrote {}", out.display()),
        Err(error) => eprintln!("warning: cannot write {}: {error}", out.display()),
    }
    println!(
        "\nEvery client drives its connections from one thread, like the server's one thread. \
         A client that reaches the server's rate is limited by the server; one that falls short \
         is limited by its own CPU per request."
    );
}
