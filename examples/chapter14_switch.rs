//! Chapter 14: what a switch, a start and a waiting coroutine cost (may).
//!
//!     cargo run --release --example chapter14_switch
//!     cargo run --release --example chapter14_switch -- --workers 500 --json
//!
//! Chapter 9's brigade, with coroutines: N coroutines in a line, each
//! joined to the next by a socket pair; a byte goes in at one end, and each
//! coroutine blocks reading it (the coroutine, not the thread: may switches
//! to another) and writes it on. One carrier thread, as chapter 9's tasks
//! had one. One thread writing and reading the same pairs with nobody to
//! wake is the baseline. Then the cost of starting a coroutine, and the
//! memory each holds while it waits, as a slope over several counts.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use clap::Parser;
use evt::report::CoroutineCosts;
use may::os::unix::net::UnixStream;

#[derive(Debug, Parser)]
#[command(
    name = "chapter14_switch",
    about = "Chapter 14: the cost of a switch, a start and a waiting coroutine (may, one carrier thread)."
)]
struct Flags {
    /// Coroutines in the brigade.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    workers: u32,
    /// Times the byte goes down the whole brigade.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rounds: u32,
    /// Each coroutine's stack, in KiB (may's default is 32).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(8..=65536))]
    stack_kib: u32,
    /// Print the results as JSON (for the reproduce run).
    #[arg(long)]
    json: bool,
}

/// Rounds down the brigade before the clock starts.
const WARM_UP: usize = 5;
/// Counts of waiting coroutines the memory slope is drawn through.
const WAITING: [usize; 3] = [2_000, 4_000, 8_000];

fn main() {
    let flags = Flags::parse();
    // Two descriptors per coroutine: as many as the hard limit allows.
    evt::sys::raise_open_file_limit();
    may::config()
        .set_workers(1)
        .set_stack_size(flags.stack_kib as usize * 1024 / size_of::<usize>());
    let costs = measure(&flags).unwrap_or_else(|error| {
        eprintln!("error: {error}");
        std::process::exit(1);
    });
    if flags.json {
        println!("{}", serde_json::to_string(&costs).unwrap_or_default());
        return;
    }
    println!(
        "a hop between coroutines   {:>8.0} ns  (baseline, no one to wake: {:.0} ns)",
        costs.hop_ns, costs.baseline_hop_ns
    );
    println!("starting a coroutine       {:>8.0} ns", costs.spawn_ns);
    println!(
        "a waiting coroutine        {:>8.0} bytes resident, {:.0} bytes of address space",
        costs.coroutine_bytes, costs.coroutine_address_bytes
    );
}

fn measure(flags: &Flags) -> Result<CoroutineCosts, String> {
    let (workers, rounds) = (flags.workers as usize, flags.rounds as usize);
    let hops = (workers * rounds) as f64;
    let baseline = baseline(workers + 1, rounds)?;
    let brigade = brigade(workers, rounds)?;
    let spawns = 10_000;
    let spawn = spawn_and_join(spawns)?;
    let mut resident = Vec::new();
    let mut address = Vec::new();
    for count in WAITING {
        let (rss, vm) = waiting(count)?;
        resident.push((count as f64, rss));
        address.push((count as f64, vm));
    }
    Ok(CoroutineCosts {
        workers: flags.workers,
        rounds: flags.rounds,
        stack_kib: flags.stack_kib,
        baseline_hop_ns: nanos(baseline) / ((workers + 1) * rounds) as f64,
        hop_ns: nanos(brigade) / (hops + rounds as f64),
        spawn_ns: nanos(spawn) / spawns as f64,
        coroutine_bytes: slope(&resident),
        coroutine_address_bytes: slope(&address),
        waiting: WAITING.to_vec(),
    })
}

fn nanos(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e9
}

/// One thread, the brigade's socket pairs: write the byte into each and
/// read it back out, `rounds` times. A hop's system calls, no one to wake.
fn baseline(links: usize, rounds: usize) -> Result<Duration, String> {
    let mut pairs = (0..links)
        .map(|_| std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut byte = [0u8; 1];
    let mut started = Instant::now();
    for round in 0..WARM_UP + rounds {
        if round == WARM_UP {
            started = Instant::now();
        }
        for (write_end, read_end) in &mut pairs {
            write_end.write_all(&byte).map_err(|e| e.to_string())?;
            read_end.read_exact(&mut byte).map_err(|e| e.to_string())?;
        }
    }
    Ok(started.elapsed())
}

// ANCHOR: brigade
/// `workers` coroutines in a line on one carrier thread, each blocking (as
/// a coroutine) on its read and writing to the next; the byte goes down
/// the line `rounds` times after `WARM_UP` untimed.
fn brigade(workers: usize, rounds: usize) -> Result<Duration, String> {
    let pair = || UnixStream::pair().map_err(|e| format!("cannot make a socket pair: {e}"));
    let runner = may::go!(move || -> Result<Duration, String> {
        let (mut first, mut from_previous) = pair()?;
        for _ in 0..workers {
            let (mut to_next, next_reads) = pair()?;
            let mut reads = std::mem::replace(&mut from_previous, next_reads);
            may::go!(move || {
                let mut byte = [0u8; 1];
                while reads.read_exact(&mut byte).is_ok() && to_next.write_all(&byte).is_ok() {}
            });
        }
        let mut last = from_previous;
        let mut byte = [0u8; 1];
        let mut started = Instant::now();
        for round in 0..WARM_UP + rounds {
            if round == WARM_UP {
                started = Instant::now();
            }
            first.write_all(&byte).map_err(|e| e.to_string())?;
            last.read_exact(&mut byte).map_err(|e| e.to_string())?;
        }
        Ok(started.elapsed())
    });
    runner
        .join()
        .map_err(|_| "the brigade panicked".to_string())?
}
// ANCHOR_END: brigade

// ANCHOR: spawn
/// Starts `count` coroutines that return at once, joining each.
fn spawn_and_join(count: usize) -> Result<Duration, String> {
    let runner = may::go!(move || {
        let started = Instant::now();
        for _ in 0..count {
            let _ = may::go!(|| ()).join();
        }
        started.elapsed()
    });
    runner
        .join()
        .map_err(|_| "a coroutine panicked".to_string())
}
// ANCHOR_END: spawn

/// Resident memory and address space this process gains with `count`
/// coroutines each blocked reading a socket (and the sockets), in bytes.
fn waiting(count: usize) -> Result<(f64, f64), String> {
    let before = (kib_field("VmRSS")?, kib_field("VmSize")?);
    let mut writers = Vec::with_capacity(count);
    let mut parked = Vec::with_capacity(count);
    for _ in 0..count {
        let (writer, mut reader) = UnixStream::pair().map_err(|e| e.to_string())?;
        parked.push(may::go!(move || {
            let mut byte = [0u8; 1];
            let _ = reader.read(&mut byte);
        }));
        writers.push(writer);
    }
    // Let every coroutine run to its read and park there.
    may::coroutine::sleep(Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(200));
    let after = (kib_field("VmRSS")?, kib_field("VmSize")?);
    drop(writers);
    for coroutine in parked {
        let _ = coroutine.join();
    }
    Ok(((after.0 - before.0) * 1024.0, (after.1 - before.1) * 1024.0))
}

/// The least-squares slope of `points` (bytes per coroutine).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

/// A `kB` field of this process's `/proc/self/status`, in KiB.
fn kib_field(name: &str) -> Result<f64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {name} in /proc/self/status"))
}
