//! Looking at a server while it runs: its resident memory, thread count and
//! CPU time, sampled from `/proc` every few milliseconds, summed over the
//! server process and every process it started (chapter 2's workers).
//!
//! Linux only: elsewhere [`Sampler::start`] returns `None` and the tables say
//! that nothing was sampled, rather than showing a zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often the sampler looks.
pub const EVERY: Duration = Duration::from_millis(20);

/// One look at a process tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since sampling began.
    pub at_ms: u64,
    pub rss_kib: u64,
    /// Address space reserved (VmSize): what threads' stacks reserve, touched or not.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub vm_kib: u64,
    /// Machine-wide kernel memory that grows with threads and mappings
    /// (`KernelStack` + `PageTables` in `/proc/meminfo`): in no process's RSS.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kernel_kib: u64,
    /// Machine-wide kernel slab (`Slab` in `/proc/meminfo`): where a
    /// socket, its file and its epoll entry live, for both ends of a
    /// loopback connection.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slab_kib: u64,
    pub threads: u64,
    pub processes: u64,
    /// User + system CPU time used so far, in milliseconds.
    pub cpu_ms: u64,
}

/// What the sampler saw over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSamples {
    /// Before the load started.
    pub before: Sample,
    pub peak_rss_kib: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub peak_vm_kib: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub peak_kernel_kib: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub peak_slab_kib: u64,
    pub peak_threads: u64,
    pub peak_processes: u64,
    /// CPU time the server used during the run, in milliseconds.
    pub cpu_ms: u64,
    /// Context switches of the threads alive at the end, during the run
    /// (threads that ended before are not counted; a pool's are all there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_switches: Option<ContextSwitches>,
    /// Interrupts one core sent another during the run, machine-wide
    /// (`/proc/interrupts`' rescheduling and function-call rows): mostly a
    /// thread waking a thread that waits on another core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_core_interrupts: Option<u64>,
    /// Every sample, thinned to at most [`KEPT_SAMPLES`]; kept in a record
    /// only where a view draws them over time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
}

/// Context switches, summed over threads: voluntary (the thread waited:
/// I/O, a lock, a sleep) and involuntary (the scheduler took the core away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContextSwitches {
    pub voluntary: u64,
    pub involuntary: u64,
}

/// Fields added to the record later are left out when zero, so records made
/// before them read back and write out unchanged.
fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The most samples a record keeps (evenly thinned beyond that).
pub const KEPT_SAMPLES: usize = 500;

impl ServerSamples {
    /// Resident memory the run added, per connection: (peak − before) / connections.
    pub fn rss_per_connection_kib(&self, connections: usize) -> f64 {
        self.peak_rss_kib.saturating_sub(self.before.rss_kib) as f64 / connections.max(1) as f64
    }

    /// Kernel stacks and page tables the run added (machine-wide), per connection.
    pub fn kernel_per_connection_kib(&self, connections: usize) -> f64 {
        self.peak_kernel_kib.saturating_sub(self.before.kernel_kib) as f64
            / connections.max(1) as f64
    }

    /// Kernel slab the run added (machine-wide), per connection; `None`
    /// where it was not sampled.
    pub fn slab_per_connection_kib(&self, connections: usize) -> Option<f64> {
        (self.before.slab_kib > 0).then(|| {
            self.peak_slab_kib.saturating_sub(self.before.slab_kib) as f64
                / connections.max(1) as f64
        })
    }

    /// Address space the run added, per connection: (peak − before) / connections.
    pub fn vm_per_connection_kib(&self, connections: usize) -> f64 {
        self.peak_vm_kib.saturating_sub(self.before.vm_kib) as f64 / connections.max(1) as f64
    }
}

/// Samples a process tree on a thread of its own until stopped.
pub struct Sampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
    before: Sample,
    switches_before: Option<ContextSwitches>,
    interrupts_before: Option<u64>,
}

impl Sampler {
    /// Starts sampling `pid` and its descendants; `None` where `/proc` is missing.
    pub fn start(pid: u32) -> Option<Sampler> {
        let started = Instant::now();
        let before = look(pid, started)?;
        let switches_before = context_switches(pid);
        let interrupts_before = cross_core_interrupts();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                let mut samples = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    match look(pid, started) {
                        Some(sample) => samples.push(sample),
                        None => break,
                    }
                    std::thread::sleep(EVERY);
                }
                samples
            })
            .ok()?;
        Some(Sampler {
            pid,
            stop,
            thread,
            before,
            switches_before,
            interrupts_before,
        })
    }

    /// Stops sampling and sums up.
    pub fn finish(self) -> ServerSamples {
        self.stop.store(true, Ordering::Relaxed);
        let switches = match (self.switches_before, context_switches(self.pid)) {
            (Some(before), Some(after)) => Some(ContextSwitches {
                voluntary: after.voluntary.saturating_sub(before.voluntary),
                involuntary: after.involuntary.saturating_sub(before.involuntary),
            }),
            _ => None,
        };
        let interrupts = self
            .interrupts_before
            .zip(cross_core_interrupts())
            .map(|(before, after)| after.saturating_sub(before));
        let mut samples = self.thread.join().unwrap_or_default();
        samples.insert(0, self.before);
        let peak = |field: fn(&Sample) -> u64| samples.iter().map(field).max().unwrap_or(0);
        let last_cpu = samples.last().map_or(0, |sample| sample.cpu_ms);
        let (peak_rss_kib, peak_vm_kib, peak_kernel_kib, peak_threads, peak_processes) = (
            peak(|s| s.rss_kib),
            peak(|s| s.vm_kib),
            peak(|s| s.kernel_kib),
            peak(|s| s.threads),
            peak(|s| s.processes),
        );
        ServerSamples {
            before: self.before,
            peak_rss_kib,
            peak_vm_kib,
            peak_kernel_kib,
            peak_slab_kib: peak(|s| s.slab_kib),
            peak_threads,
            peak_processes,
            cpu_ms: last_cpu.saturating_sub(self.before.cpu_ms),
            context_switches: switches,
            cross_core_interrupts: interrupts,
            samples: thin(samples, KEPT_SAMPLES),
        }
    }
}

fn thin(samples: Vec<Sample>, most: usize) -> Vec<Sample> {
    if samples.len() <= most {
        return samples;
    }
    let step = samples.len().div_ceil(most);
    samples.into_iter().step_by(step).collect()
}

/// One look at `pid` and its descendants; `None` if it is gone or there is no `/proc`.
fn look(pid: u32, started: Instant) -> Option<Sample> {
    let mut sample = Sample {
        at_ms: started.elapsed().as_millis() as u64,
        rss_kib: 0,
        vm_kib: 0,
        kernel_kib: kernel_memory_kib(),
        slab_kib: meminfo_kib(&["Slab:"]),
        threads: 0,
        processes: 0,
        cpu_ms: 0,
    };
    let mut pending = vec![pid];
    let mut first = true;
    while let Some(pid) = pending.pop() {
        let Some(one) = read_process(pid) else {
            if first {
                return None;
            }
            continue;
        };
        first = false;
        sample.rss_kib += one.rss_kib;
        sample.vm_kib += one.vm_kib;
        sample.threads += one.threads;
        sample.cpu_ms += one.cpu_ms;
        sample.processes += 1;
        pending.extend(children(pid, one.threads));
    }
    Some(sample)
}

struct ProcessLook {
    rss_kib: u64,
    vm_kib: u64,
    threads: u64,
    cpu_ms: u64,
}

/// Rescheduling and function-call interrupts so far, summed over the
/// cores (`RES` and `CAL` in `/proc/interrupts`); `None` where missing.
pub fn cross_core_interrupts() -> Option<u64> {
    interrupts_between_cores(&std::fs::read_to_string("/proc/interrupts").ok()?)
}

fn interrupts_between_cores(text: &str) -> Option<u64> {
    let mut total = None;
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line
            .strip_prefix("RES:")
            .or_else(|| line.strip_prefix("CAL:"))
        else {
            continue;
        };
        let counts = rest
            .split_whitespace()
            .map_while(|field| field.parse::<u64>().ok());
        *total.get_or_insert(0) += counts.sum::<u64>();
    }
    total
}

/// `KernelStack` + `PageTables` from `/proc/meminfo` (0 where missing).
fn kernel_memory_kib() -> u64 {
    meminfo_kib(&["KernelStack:", "PageTables:"])
}

/// The sum of `fields` of `/proc/meminfo`, in KiB (0 where missing).
fn meminfo_kib(fields: &[&str]) -> u64 {
    let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    meminfo
        .lines()
        .filter(|line| fields.iter().any(|field| line.starts_with(field)))
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// RSS and threads from `/proc/PID/status`, CPU time from `/proc/PID/stat`.
fn read_process(pid: u32) -> Option<ProcessLook> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, so split after its ')').
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, so 11 and 12 after the name.
    let ticks = |index: usize| fields.get(index)?.parse::<u64>().ok();
    let clock_ticks = clock_ticks_per_second();
    let cpu_ms = (ticks(11)? + ticks(12)?) * 1000 / clock_ticks;
    Some(ProcessLook {
        rss_kib: field("VmRSS:").unwrap_or(0),
        vm_kib: field("VmSize:").unwrap_or(0),
        threads: field("Threads:").unwrap_or(0),
        cpu_ms,
    })
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// Context switches so far of every thread of `pid` and its descendants,
/// from each thread's `/proc/P/task/T/status`; `None` without `/proc`.
pub fn context_switches(pid: u32) -> Option<ContextSwitches> {
    let mut total = ContextSwitches::default();
    let mut any = false;
    for process in std::iter::once(pid).chain(descendants(pid)) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{process}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue;
            };
            any = true;
            let task = switches_in(&status);
            total.voluntary += task.voluntary;
            total.involuntary += task.involuntary;
        }
    }
    any.then_some(total)
}

/// One task's context switches, from its `/proc/.../status`.
fn switches_in(status: &str) -> ContextSwitches {
    let mut out = ContextSwitches::default();
    for line in status.lines() {
        let count = |prefix: &str| {
            line.strip_prefix(prefix)
                .and_then(|rest| rest.trim().parse::<u64>().ok())
        };
        if let Some(n) = count("voluntary_ctxt_switches:") {
            out.voluntary += n;
        } else if let Some(n) = count("nonvoluntary_ctxt_switches:") {
            out.involuntary += n;
        }
    }
    out
}

/// Whether any process of the process group `group` still runs (zombies
/// waiting to be reaped do not count: they hold no port and no memory).
pub fn group_is_alive(group: u32) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .any(|stat| {
            // After the command name, in parentheses: state, ppid, pgrp.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let pgrp = fields.nth(1).and_then(|f| f.parse::<u32>().ok());
            pgrp == Some(group) && state != "Z" && state != "X"
        })
}
/// Whether process `pid` exists and is not a zombie waiting to be reaped.
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}

/// Every process below `pid`: its children, their children, and so on.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut next = vec![pid];
    while let Some(parent) = next.pop() {
        for child in children(parent, 0) {
            found.push(child);
            next.push(child);
        }
    }
    found
}

/// Above this many threads, a look reads only the main thread's children:
/// reading ten thousand threads' lists every few milliseconds would cost the
/// machine more than the server being watched (chapter 8). The book's servers
/// start their worker processes from the main thread.
const THREADS_LOOKED_THROUGH: u64 = 64;

/// The children of every thread of `pid` (of its main thread only, if it has
/// more than [`THREADS_LOOKED_THROUGH`]; `threads` 0: not known, look through all).
fn children(pid: u32, threads: u64) -> Vec<u32> {
    let lists: Vec<std::path::PathBuf> = if threads > THREADS_LOOKED_THROUGH {
        vec![format!("/proc/{pid}/task/{pid}/children").into()]
    } else {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .map(|task| task.path().join("children"))
            .collect()
    };
    lists
        .into_iter()
        .filter_map(|list| std::fs::read_to_string(list).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Where the machine's CPU went during a run, in milliseconds of core time:
/// busy, idle and stolen by the hypervisor, over every core (`/proc/stat`),
/// and how much of the busy time was this process's (the load client, with
/// the sampler). The server's own share is in [`ServerSamples::cpu_ms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuSplit {
    pub wall_ms: u64,
    pub busy_ms: u64,
    pub idle_ms: u64,
    pub steal_ms: u64,
    pub client_ms: u64,
}

impl CpuSplit {
    /// Cores' worth of `ms` over the run.
    pub fn cores(&self, ms: u64) -> f64 {
        ms as f64 / self.wall_ms.max(1) as f64
    }
}

/// Reads the machine's and this process's CPU time at the start of a run.
pub struct CpuClock {
    started: Instant,
    machine: [u64; 3],
    client_ms: u64,
}

impl CpuClock {
    /// None where `/proc/stat` cannot be read (not Linux).
    pub fn start() -> Option<Self> {
        Some(Self {
            started: Instant::now(),
            machine: machine_cpu_ms()?,
            client_ms: own_cpu_ms()?,
        })
    }

    pub fn finish(self) -> Option<CpuSplit> {
        let machine = machine_cpu_ms()?;
        let client_ms = own_cpu_ms()?;
        Some(CpuSplit {
            wall_ms: self.started.elapsed().as_millis() as u64,
            busy_ms: machine[0].saturating_sub(self.machine[0]),
            idle_ms: machine[1].saturating_sub(self.machine[1]),
            steal_ms: machine[2].saturating_sub(self.machine[2]),
            client_ms: client_ms.saturating_sub(self.client_ms),
        })
    }
}

/// The machine's busy (user, nice, system, irq, softirq), idle (idle,
/// iowait) and stolen time so far, over every core, from `/proc/stat`.
fn machine_cpu_ms() -> Option<[u64; 3]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let ms = |t: u64| t * 1000 / clock_ticks_per_second();
    Some([
        ms(at(0) + at(1) + at(2) + at(5) + at(6)),
        ms(at(3) + at(4)),
        ms(at(7)),
    ])
}

/// This process's user + system CPU time so far (`getrusage`).
fn own_cpu_ms() -> Option<u64> {
    // SAFETY: getrusage writes only into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    Some(ms(usage.ru_utime) + ms(usage.ru_stime))
}

/// The kernel's count of connections dropped because a listen backlog was
/// full (`TcpExt: ListenOverflows` in `/proc/net/netstat`), machine-wide.
pub fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let index = names
            .split_whitespace()
            .position(|n| n == "ListenOverflows")?;
        return values.split_whitespace().nth(index)?.parse().ok();
    }
    None
}

#[cfg(test)]
#[path = "sample_tests.rs"]
mod tests;
