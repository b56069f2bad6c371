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
        }
        limit.rlim_cur as u64
    }
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

/// Now, as an RFC 3339 UTC timestamp to the second.
pub fn now_utc() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
