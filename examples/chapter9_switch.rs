//! Chapter 9: what a switch costs, threads against tasks, on this machine.
//!
//!     cargo run --release --example chapter9_switch
//!     cargo run --release --example chapter9_switch -- --pin --json
//!
//! A brigade, after the method of jimblandy/context-switch: N workers in a
//! line, each joined to the next by a socket pair; a byte goes in at one end
//! and each worker waits for it, then passes it on. Every hop is one write,
//! one wake-up of the next worker and one read. As OS threads, the wake-up is
//! the kernel switching threads; as tokio tasks on one thread, it is the
//! runtime polling the next task after epoll says its socket is readable.
//! One thread doing the same writes and reads with nobody to wake is the
//! baseline: what a hop costs in system calls alone.
//!
//! Then the cost of starting a thread and a task, and the memory each holds
//! while it waits, as a slope over several counts.

// Chapter 9's own runtime, beside tokio in the brigade. Only its futures
// for sockets are used here, not its TCP server parts.
#[path = "chapter9_runtime/runtime.rs"]
#[allow(dead_code)]
mod runtime;

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use evt::report::SwitchCosts;

#[derive(Debug, Parser)]
#[command(
    name = "chapter9_switch",
    about = "Chapter 9: the cost of a switch, a start and a waiting worker, threads against tokio tasks."
)]
struct Flags {
    /// Workers in the brigade.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    workers: u32,
    /// Times the byte goes down the whole brigade.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rounds: u32,
    /// Run everything on one core (sched_setaffinity to the first CPU).
    #[arg(long)]
    pin: bool,
    /// Print the results as JSON (for the reproduce run).
    #[arg(long)]
    json: bool,
}

fn main() {
    let flags = Flags::parse();
    // Two descriptors per worker: as many as the hard limit allows.
    evt::sys::raise_open_file_limit();
    if flags.pin {
        if let Err(error) = pin_to_first_cpu() {
            eprintln!("error: cannot pin to one CPU: {error}");
            std::process::exit(1);
        }
    }
    let costs = measure(&flags).unwrap_or_else(|error| {
        eprintln!("error: {error}");
        std::process::exit(1);
    });
    if flags.json {
        println!("{}", serde_json::to_string(&costs).unwrap_or_default());
        return;
    }
    println!(
        "{} workers × {} rounds{}",
        costs.workers,
        costs.rounds,
        if costs.pinned {
            ", pinned to one CPU"
        } else {
            ""
        }
    );
    println!(
        "  hop, system calls only (one thread): {:>9.0} ns",
        costs.baseline_hop_ns
    );
    println!(
        "  hop between threads:                 {:>9.0} ns",
        costs.thread_hop_ns
    );
    println!(
        "  hop between tokio tasks:             {:>9.0} ns",
        costs.task_hop_ns
    );
    println!(
        "  hop between our runtime's tasks:     {:>9.0} ns",
        costs.ours_hop_ns
    );
    println!(
        "  context switches per hop, threads:   {:>9.2}",
        costs.thread_switches_per_hop
    );
    println!(
        "  context switches per hop, tasks:     {:>9.2}",
        costs.task_switches_per_hop
    );
    println!(
        "  start a thread:                      {:>9.0} ns",
        costs.thread_spawn_ns
    );
    println!(
        "  start a task:                        {:>9.0} ns",
        costs.task_spawn_ns
    );
    println!(
        "  resident memory per waiting thread:  {:>9.0} bytes",
        costs.thread_bytes
    );
    println!(
        "  resident memory per waiting task:    {:>9.0} bytes",
        costs.task_bytes
    );
    println!(
        "  start a thread, 20 then join them:   {:>9.0} ns",
        costs.thread_batch_spawn_ns
    );
    println!(
        "  spawn a task, before it runs:        {:>9.0} ns",
        costs.task_spawn_only_ns
    );
    println!(
        "  kernel stacks per waiting thread:    {:>9.0} bytes (machine-wide counter)",
        costs.thread_kernel_stack_bytes
    );
    println!(
        "  kernel stacks per waiting task:      {:>9.0} bytes (machine-wide counter)",
        costs.task_kernel_stack_bytes
    );
    println!(
        "  page tables per waiting thread:      {:>9.0} bytes",
        costs.thread_page_table_bytes
    );
    println!(
        "  page tables per waiting task:        {:>9.0} bytes",
        costs.task_page_table_bytes
    );
}

/// How many waiting threads, and tasks, the memory slopes are drawn
/// through: tasks four times as many, as each costs far less (two
/// descriptors each: 8,000 at most open at once).
const WAITING_THREADS: [usize; 3] = [250, 500, 1000];
const WAITING_TASKS: [usize; 3] = [1000, 2000, 4000];

fn measure(flags: &Flags) -> Result<SwitchCosts, String> {
    let (workers, rounds) = (flags.workers as usize, flags.rounds as usize);
    let hops = (rounds * (workers + 1)) as f64;
    let (thread_took, thread_switches) = thread_brigade(workers, rounds)?;
    let (task_took, task_switches) = task_brigade(workers, rounds)?;
    let threads = slopes(&WAITING_THREADS, waiting_threads)?;
    let tasks = slopes(&WAITING_TASKS, waiting_tasks)?;
    Ok(SwitchCosts {
        workers: flags.workers,
        rounds: flags.rounds,
        pinned: flags.pin,
        baseline_hop_ns: nanos(baseline(workers + 1, rounds)?) / hops,
        thread_hop_ns: nanos(thread_took) / hops,
        task_hop_ns: nanos(task_took) / hops,
        thread_switches_per_hop: thread_switches as f64 / hops,
        task_switches_per_hop: task_switches as f64 / hops,
        ours_hop_ns: nanos(ours_brigade(workers, rounds)?) / hops,
        thread_spawn_ns: nanos(thread_spawns(1_000)?) / 1_000.0,
        task_spawn_ns: nanos(task_spawns(10_000)?) / 10_000.0,
        thread_batch_spawn_ns: nanos(thread_batches(50)?) / (50 * BATCH) as f64,
        task_spawn_only_ns: nanos(task_spawns_only(10_000)?) / 10_000.0,
        thread_bytes: threads.resident,
        task_bytes: tasks.resident,
        thread_kernel_stack_bytes: threads.kernel_stacks,
        task_kernel_stack_bytes: tasks.kernel_stacks,
        thread_page_table_bytes: threads.page_tables,
        task_page_table_bytes: tasks.page_tables,
        waiting_threads: WAITING_THREADS.to_vec(),
        waiting_tasks: WAITING_TASKS.to_vec(),
    })
}

/// Rounds of each brigade run before the timing starts (the anchor ran
/// some too): the first pass down a line faults in stacks and wakes cold
/// threads.
const WARM_UP: usize = 10;

/// The context switches this process has made so far, voluntary and not,
/// all its threads together (`getrusage`).
fn context_switches() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a valid pointer are all it needs.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    (usage.ru_nvcsw + usage.ru_nivcsw) as u64
}

fn nanos(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e9
}

// ANCHOR: brigade
/// One thread and as many socket pairs as the brigade has links: down the
/// line, write the byte into each pair and read it back out, `rounds` times.
/// The same system calls on the same number of sockets as a hop, with no one
/// to wake.
fn baseline(links: usize, rounds: usize) -> Result<Duration, String> {
    let mut pairs = (0..links).map(|_| pair()).collect::<Result<Vec<_>, _>>()?;
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

/// `workers` OS threads in a line: each blocks reading its socket, then
/// writes to the next. The byte goes down the line `rounds` times, after
/// `WARM_UP` rounds untimed; with it, the context switches the process
/// made meanwhile.
fn thread_brigade(workers: usize, rounds: usize) -> Result<(Duration, u64), String> {
    let (mut first, mut from_previous) = pair()?;
    let mut threads = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (mut to_next, next_reads) = pair()?;
        let mut reads = std::mem::replace(&mut from_previous, next_reads);
        let thread = std::thread::Builder::new().spawn(move || {
            let mut byte = [0u8; 1];
            while reads.read_exact(&mut byte).is_ok() && to_next.write_all(&byte).is_ok() {}
        });
        threads.push(thread.map_err(|e| format!("cannot start thread {}: {e}", threads.len()))?);
    }
    let mut last = from_previous;
    let mut byte = [0u8; 1];
    let (mut started, mut switched) = (Instant::now(), context_switches());
    for round in 0..WARM_UP + rounds {
        if round == WARM_UP {
            (started, switched) = (Instant::now(), context_switches());
        }
        first.write_all(&byte).map_err(|e| e.to_string())?;
        last.read_exact(&mut byte).map_err(|e| e.to_string())?;
    }
    let took = (started.elapsed(), context_switches() - switched);
    drop(first); // Each thread sees its input close and ends.
    for thread in threads {
        let _ = thread.join();
    }
    Ok(took)
}

/// The same line as tokio tasks on one current-thread runtime.
fn task_brigade(workers: usize, rounds: usize) -> Result<(Duration, u64), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    current_thread()?.block_on(async move {
        let (mut first, mut from_previous) = tokio_pair()?;
        for _ in 0..workers {
            let (mut to_next, next_reads) = tokio_pair()?;
            let mut reads = std::mem::replace(&mut from_previous, next_reads);
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                while reads.read_exact(&mut byte).await.is_ok()
                    && to_next.write_all(&byte).await.is_ok()
                {}
            });
        }
        let mut last = from_previous;
        let mut byte = [0u8; 1];
        let (mut started, mut switched) = (Instant::now(), context_switches());
        for round in 0..WARM_UP + rounds {
            if round == WARM_UP {
                (started, switched) = (Instant::now(), context_switches());
            }
            first.write_all(&byte).await.map_err(|e| e.to_string())?;
            last.read_exact(&mut byte)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok((started.elapsed(), context_switches() - switched))
    })
}
/// The same line as tasks of chapter 9's own runtime.
fn ours_brigade(workers: usize, rounds: usize) -> Result<Duration, String> {
    let runtime = runtime::Runtime::new().map_err(|e| format!("cannot create epoll: {e}"))?;
    let outcome: Rc<Cell<Result<Duration, String>>> = Rc::new(Cell::new(Ok(Duration::ZERO)));
    let result = Rc::clone(&outcome);
    runtime.block_on(async move {
        let run = async {
            let (first, mut from_previous) = ours_pair()?;
            for _ in 0..workers {
                let (to_next, next_reads) = ours_pair()?;
                let reads = std::mem::replace(&mut from_previous, next_reads);
                runtime::spawn(async move {
                    let mut byte = [0u8; 1];
                    while matches!(reads.read(&mut byte).await, Ok(1))
                        && to_next.write_all(&byte).await.is_ok()
                    {}
                });
            }
            let last = from_previous;
            let mut byte = [0u8; 1];
            let mut started = Instant::now();
            for round in 0..WARM_UP + rounds {
                if round == WARM_UP {
                    started = Instant::now();
                }
                first.write_all(&byte).await.map_err(|e| e.to_string())?;
                if !matches!(last.read(&mut byte).await, Ok(1)) {
                    return Err("the brigade broke".to_string());
                }
            }
            Ok(started.elapsed())
        };
        result.set(run.await);
    });
    outcome.replace(Ok(Duration::ZERO))
}
// ANCHOR_END: brigade

// ANCHOR: spawn
/// Starts `count` threads that return at once, joining each.
fn thread_spawns(count: usize) -> Result<Duration, String> {
    let started = Instant::now();
    for _ in 0..count {
        std::thread::Builder::new()
            .spawn(|| ())
            .map_err(|e| format!("cannot start a thread: {e}"))?
            .join()
            .map_err(|_| "a thread panicked".to_string())?;
    }
    Ok(started.elapsed())
}

/// Spawns `count` tasks that return at once on a current-thread runtime,
/// awaiting each.
fn task_spawns(count: usize) -> Result<Duration, String> {
    current_thread()?.block_on(async move {
        let started = Instant::now();
        for _ in 0..count {
            tokio::spawn(async {})
                .await
                .map_err(|e| format!("a task failed: {e}"))?;
        }
        Ok(started.elapsed())
    })
}
/// Threads per batch in the anchor's way of starting them.
const BATCH: usize = 20;

/// The published anchor's way: `batches` times, start `BATCH` threads that
/// return at once, then join them all; after one batch that is not timed,
/// so glibc has stacks to reuse.
fn thread_batches(batches: usize) -> Result<Duration, String> {
    let batch = || -> Result<(), String> {
        let threads = (0..BATCH)
            .map(|_| std::thread::Builder::new().spawn(|| ()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        for thread in threads {
            thread.join().map_err(|_| "a thread panicked".to_string())?;
        }
        Ok(())
    };
    batch()?;
    let started = Instant::now();
    for _ in 0..batches {
        batch()?;
    }
    Ok(started.elapsed())
}

/// Spawns `count` tasks on a current-thread runtime and times the spawn
/// calls alone: none has run yet (the anchor timed async-std's spawn the
/// same way). They run after, untimed.
fn task_spawns_only(count: usize) -> Result<Duration, String> {
    current_thread()?.block_on(async move {
        let started = Instant::now();
        let tasks: Vec<_> = (0..count).map(|_| tokio::spawn(async {})).collect();
        let took = started.elapsed();
        for task in tasks {
            task.await.map_err(|e| format!("a task failed: {e}"))?;
        }
        Ok(took)
    })
}
// ANCHOR_END: spawn

/// Memory in bytes: this process's resident set, the kernel's stacks
/// (machine-wide: the kernel counts them for no process) and this
/// process's page tables.
#[derive(Debug, Clone, Copy)]
struct Memory {
    resident: f64,
    kernel_stacks: f64,
    page_tables: f64,
}

impl Memory {
    fn now() -> Result<Memory, String> {
        Ok(Memory {
            resident: resident_bytes()?,
            kernel_stacks: kernel_stack_bytes()?,
            page_tables: page_table_bytes()?,
        })
    }

    fn since(self, before: Memory) -> Memory {
        Memory {
            resident: self.resident - before.resident,
            kernel_stacks: self.kernel_stacks - before.kernel_stacks,
            page_tables: self.page_tables - before.page_tables,
        }
    }
}

/// Memory added by `count` threads, each blocked reading a socket that
/// never gets a byte, measured while they wait.
fn waiting_threads(count: usize) -> Result<Memory, String> {
    let mut keep = Vec::with_capacity(count);
    let before = Memory::now()?;
    let mut threads = Vec::with_capacity(count);
    for _ in 0..count {
        let (writer, mut reader) = pair()?;
        let thread = std::thread::Builder::new().spawn(move || {
            let mut byte = [0u8; 1];
            let _ = reader.read(&mut byte);
        });
        threads.push(thread.map_err(|e| format!("cannot start a thread: {e}"))?);
        keep.push(writer);
    }
    // Let every thread reach its read.
    std::thread::sleep(Duration::from_millis(100));
    let after = Memory::now()?;
    drop(keep); // Closing the writers ends the reads.
    for thread in threads {
        let _ = thread.join();
    }
    Ok(after.since(before))
}

/// Memory added by `count` tokio tasks, each waiting to read a socket that
/// never gets a byte, measured while they wait.
fn waiting_tasks(count: usize) -> Result<Memory, String> {
    use tokio::io::AsyncReadExt;
    current_thread()?.block_on(async move {
        let before = Memory::now()?;
        let mut keep = Vec::with_capacity(count);
        for _ in 0..count {
            let (writer, mut reader) = tokio_pair()?;
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                let _ = reader.read(&mut byte).await;
            });
            keep.push(writer);
        }
        // Let every task reach its read.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = Memory::now()?;
        drop(keep);
        Ok(after.since(before))
    })
}

/// What one more waiting worker adds, resident and in the kernel: the
/// slopes of `measure(n)` against n over `counts`.
fn slopes(
    counts: &[usize],
    measure: impl Fn(usize) -> Result<Memory, String>,
) -> Result<Memory, String> {
    let measured: Vec<(f64, Memory)> = counts
        .iter()
        .map(|&n| Ok((n as f64, measure(n)?)))
        .collect::<Result<_, String>>()?;
    let line = |part: fn(&Memory) -> f64| {
        let points: Vec<(f64, f64)> = measured.iter().map(|(n, m)| (*n, part(m))).collect();
        slope(&points)
    };
    Ok(Memory {
        resident: line(|m| m.resident),
        kernel_stacks: line(|m| m.kernel_stacks),
        page_tables: line(|m| m.page_tables),
    })
}

/// The least-squares slope through `points`: what one more adds, with what
/// the first one costs (a runtime's set-up) left out.
fn slope(points: &[(f64, f64)]) -> f64 {
    let count = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / count;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / count;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if variance > 0.0 {
        covariance / variance
    } else {
        0.0
    }
}

/// This process's resident memory, from /proc/self/statm (pages).
fn resident_bytes() -> Result<f64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|e| format!("cannot read /proc/self/statm: {e}"))?;
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or("/proc/self/statm has no resident size")?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    Ok(pages * page)
}

/// The kernel's stacks, machine-wide, from /proc/meminfo.
fn kernel_stack_bytes() -> Result<f64, String> {
    kib_field("/proc/meminfo", "KernelStack:")
}

/// This process's page tables, from /proc/self/status.
fn page_table_bytes() -> Result<f64, String> {
    kib_field("/proc/self/status", "VmPTE:")
}

/// A `Name:   123 kB` line of a /proc file, in bytes.
fn kib_field(file: &str, name: &str) -> Result<f64, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let kib: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{file} has no {name} line"))?;
    Ok(kib * 1024.0)
}

fn pair() -> Result<(UnixStream, UnixStream), String> {
    UnixStream::pair().map_err(|e| format!("cannot make a socket pair: {e}"))
}

fn tokio_pair() -> Result<(tokio::net::UnixStream, tokio::net::UnixStream), String> {
    tokio::net::UnixStream::pair().map_err(|e| format!("cannot make a socket pair: {e}"))
}

type OursStream = runtime::Async<mio::net::UnixStream>;

fn ours_pair() -> Result<(OursStream, OursStream), String> {
    let (a, b) =
        mio::net::UnixStream::pair().map_err(|e| format!("cannot make a socket pair: {e}"))?;
    let register = |s| runtime::Async::new(s).map_err(|e| format!("cannot register: {e}"));
    Ok((register(a)?, register(b)?))
}

fn current_thread() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

/// Keeps this process (and the threads it starts) on the first CPU it may use
/// (`sched_setaffinity`; Linux only).
fn pin_to_first_cpu() -> std::io::Result<()> {
    let first = evt::sys::allowed_cpus().first().copied().unwrap_or(0);
    evt::sys::pin_to(&[first])
}
