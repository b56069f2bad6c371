//! The few operating-system facts the book needs: the open-file limit, CPU time
//! used, and what machine this is (for stamping measurements).

use std::time::Duration;

/// Raises this process's soft open-file limit to its hard limit and returns
/// the limit now in force.
// rlim_t is u64 on 64-bit Linux but narrower elsewhere: keep the casts.
#[allow(clippy::unnecessary_cast)]
pub fn raise_open_file_limit() -> u64 {
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur as u64;
            }
            // macOS reports an unlimited hard limit but refuses a soft one
            // above kern.maxfilesperproc.
            if let Some(most) = sysctl_number("kern.maxfilesperproc") {
                let raised = libc::rlimit {
                    rlim_cur: (most as libc::rlim_t).min(limit.rlim_max),
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    return raised.rlim_cur as u64;
                }
            }
        }
        limit.rlim_cur as u64
    }
}

/// A number from macOS's `sysctl` (`kern.ipc.somaxconn`, `hw.memsize`);
/// `None` where it cannot be read, and on other systems (Linux's are files
/// under `/proc/sys`).
#[cfg(target_os = "macos")]
pub fn sysctl_number(name: &str) -> Option<u64> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut buffer = [0u8; 8];
    let mut length: libc::size_t = buffer.len();
    // SAFETY: sysctlbyname writes at most `length` bytes into the buffer and
    // the length it wrote into `length`; the name is NUL-terminated.
    let status = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            buffer.as_mut_ptr().cast(),
            &mut length,
            std::ptr::null_mut(),
            0,
        )
    };
    if status != 0 {
        return None;
    }
    match length {
        4 => Some(u64::from(u32::from_ne_bytes(buffer[..4].try_into().ok()?))),
        8 => Some(u64::from_ne_bytes(buffer)),
        _ => None,
    }
}

/// A number from macOS's `sysctl`: none here (see the macOS version).
#[cfg(not(target_os = "macos"))]
pub fn sysctl_number(_name: &str) -> Option<u64> {
    None
}

/// CPU time (user + system) used so far by the children this process has waited for.
pub fn children_cpu_time() -> Duration {
    rusage(libc::RUSAGE_CHILDREN)
}

/// CPU time (user + system) used so far by this process.
pub fn own_cpu_time() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: getrusage fills the zeroed struct we pass and touches nothing else.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut usage) != 0 {
            return Duration::ZERO;
        }
        let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
    }
}

/// The machine a measurement was made on, as the book stamps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub os: String,
    pub rustc: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, name)| name.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let distribution = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|release| {
                release
                    .lines()
                    .find_map(|line| line.strip_prefix("PRETTY_NAME="))
                    .map(|name| name.trim_matches('"').to_string())
            });
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|release| format!("Linux {}", release.trim()))
            .ok();
        let os = match (distribution, kernel) {
            (Some(distribution), Some(kernel)) => format!("{distribution}, {kernel}"),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => std::env::consts::OS.to_string(),
        };
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|version| version.trim().to_string())
            .unwrap_or_else(|| "rustc (unknown version)".to_string());
        Machine {
            cpu,
            cores,
            os,
            rustc,
        }
    }

    /// One line: `Intel(R) Xeon(R) … (2 cores), Debian GNU/Linux 12, Linux 6.1.0`.
    pub fn describe(&self) -> String {
        format!("{} ({} cores), {}", self.cpu, self.cores, self.os)
    }
}

/// One of the machine's limits that many connections meet, as read.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Limit {
    /// Where it is read or set: `net.core.somaxconn`, `ulimit -n`.
    pub name: String,
    /// Its value here (`none` where it could not be read).
    pub value: String,
    /// What it caps, and how to raise it.
    pub meaning: String,
}

/// The limits a server and a client holding thousands of connections meet
/// (chapter 8), read from this machine.
pub fn connection_limits() -> Vec<Limit> {
    let proc_value = |path: &str| {
        std::fs::read_to_string(path).map_or_else(
            |_| "none".to_string(),
            |text| text.split_whitespace().collect::<Vec<_>>().join(" – "),
        )
    };
    let rlimit = |resource| {
        // SAFETY: getrlimit only writes the struct we pass.
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
            return "none".to_string();
        }
        let show = |value: libc::rlim_t| {
            if value == libc::RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                value.to_string()
            }
        };
        format!(
            "{} soft, {} hard",
            show(limit.rlim_cur),
            show(limit.rlim_max)
        )
    };
    let limit = |name: &str, value: String, meaning: &str| Limit {
        name: name.to_string(),
        value,
        meaning: meaning.to_string(),
    };
    vec![
        limit(
            "`ulimit -n` (open files per process)",
            rlimit(libc::RLIMIT_NOFILE),
            "one descriptor per connection, in the client and in the server; the book's programs \
             raise the soft limit to the hard one; the hard one is raised in \
             /etc/security/limits.conf or with `ulimit -Hn` as root",
        ),
        limit(
            "`ulimit -u` (processes and threads per user)",
            rlimit(libc::RLIMIT_NPROC),
            "a thread per connection counts here; `ulimit -u`",
        ),
        limit(
            "`kernel.threads-max`",
            proc_value("/proc/sys/kernel/threads-max"),
            "threads on the whole machine; `sysctl -w kernel.threads-max=N`",
        ),
        limit(
            "`kernel.pid_max`",
            proc_value("/proc/sys/kernel/pid_max"),
            "every thread takes an id; `sysctl -w kernel.pid_max=N`",
        ),
        limit(
            "`vm.max_map_count`",
            proc_value("/proc/sys/vm/max_map_count"),
            "memory mappings per process: each thread's stack is a mapping and its guard page \
             another, so about half this many threads; `sysctl -w vm.max_map_count=N`",
        ),
        limit(
            "`vm.overcommit_memory`",
            proc_value("/proc/sys/vm/overcommit_memory"),
            "0 lets a process reserve address space (thread stacks) beyond the memory it uses; \
             2 would count every reserved stack in full",
        ),
        limit(
            "`net.core.somaxconn`",
            proc_value("/proc/sys/net/core/somaxconn"),
            "caps every listen backlog; a full backlog drops SYNs, retried after 1 s and 3 s; \
             `sysctl -w net.core.somaxconn=N`, or open connections at a bounded rate",
        ),
        limit(
            "`net.ipv4.tcp_max_syn_backlog`",
            proc_value("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
            "half-open connections queued per listener",
        ),
        limit(
            "`net.ipv4.ip_local_port_range`",
            proc_value("/proc/sys/net/ipv4/ip_local_port_range"),
            "local ports for a client's connections to one address and port: the most one \
             client address can hold open; widen it, or connect from more loopback addresses",
        ),
        limit(
            "`net.ipv4.tcp_tw_reuse`",
            proc_value("/proc/sys/net/ipv4/tcp_tw_reuse"),
            "2 (loopback only) or 1 lets a new connection reuse a port still in TIME_WAIT from \
             the last run; with 0, back-to-back runs of 10,000 connections run out of ports",
        ),
    ]
}

/// Now, as an RFC 3339 UTC timestamp to the second.
pub fn now_utc() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The CPU time the calling thread has used.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The CPUs this thread may run on (`sched_getaffinity`), lowest first;
/// empty where it cannot be read (and on systems other than Linux).
#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Keeping threads on chosen CPUs needs Linux's `sched_setaffinity`
/// (macOS has no way to pin a thread).
#[cfg(not(target_os = "linux"))]
pub fn pin_to(_cpus: &[usize]) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "pinning to CPUs needs Linux (sched_setaffinity)",
    ))
}

/// The CPUs this thread may run on (`sched_getaffinity`), lowest first;
/// empty where it cannot be read.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is empty; the call only writes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// Keeps the calling thread, and every thread or process it starts from
/// now on, on `cpus` (`sched_setaffinity`, as `taskset -c` does).
#[cfg(target_os = "linux")]
pub fn pin_to(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is empty; the calls only read and write it,
    // and sched_setaffinity is async-signal-safe (so fit for pre_exec).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A list of CPUs as `taskset -c` takes it: `1`, `1,2`.
pub fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|cpu| cpu.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thread_and_the_threads_it_starts_stay_on_its_cpu() {
        let allowed = allowed_cpus();
        assert!(
            !allowed.is_empty(),
            "Linux says which CPUs a thread may use"
        );
        let last = *allowed.last().unwrap();
        let seen = std::thread::spawn(move || {
            pin_to(&[last]).expect("a CPU we may use");
            let child = std::thread::spawn(allowed_cpus).join().unwrap();
            (allowed_cpus(), child)
        })
        .join()
        .unwrap();
        assert_eq!(seen, (vec![last], vec![last]));
        // The test's own thread was not moved.
        assert_eq!(allowed_cpus(), allowed);
        assert_eq!(cpu_list(&[1, 2]), "1,2");
    }
}
