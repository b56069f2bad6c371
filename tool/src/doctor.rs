//! `cargo run --release -- doctor`: is this machine ready for the book? Each
//! line is a fact of the machine, ok or not, and the command that fixes it.
//! The book cannot run where a limit is below what its largest experiment
//! needs (ten thousand connections, each a thread on the blocking servers);
//! everything else is a warning.

use std::fmt::Write;
use std::path::Path;

/// Connections the largest experiment holds at once.
pub const MOST_CONNECTIONS: u64 = 10_000;
/// Descriptors and threads beyond one per connection (the runtime, the
/// listener, a connection being replaced, the sampler).
const SPARE: u64 = 100;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warn,
    /// The book cannot run here until it is fixed.
    Fail,
}

/// One fact of the machine, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub verdict: Verdict,
    pub name: &'static str,
    /// What was read, and what it means for the book.
    pub detail: String,
    /// The command that fixes it (for a warning or a failure).
    pub fix: Option<String>,
}

fn check(verdict: Verdict, name: &'static str, detail: String, fix: Option<&str>) -> Check {
    Check {
        verdict,
        name,
        detail,
        fix: fix.map(str::to_string),
    }
}

/// Reads a number (or the first of several) from a `/proc` file.
fn proc_numbers(path: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().map(|n| n.parse().ok()).collect()
}

#[allow(clippy::unnecessary_cast)]
fn show(value: u64) -> String {
    if value == libc::RLIM_INFINITY as u64 {
        "unlimited".to_string()
    } else {
        value.to_string()
    }
}

/// A lower bound a machine limit must meet: fail below it.
fn at_least(name: &'static str, read: Option<u64>, need: u64, why: &str, fix: &str) -> Check {
    match read {
        Some(value) if value >= need => check(
            Verdict::Ok,
            name,
            format!("{} (the book needs {need}: {why})", show(value)),
            None,
        ),
        Some(value) => check(
            Verdict::Fail,
            name,
            format!("{} is below the {need} the book needs: {why}", show(value)),
            Some(fix),
        ),
        None => check(
            Verdict::Warn,
            name,
            format!("cannot be read here (the book needs {need}: {why})"),
            Some(fix),
        ),
    }
}

/// Every check, in the order they print.
// rlim_t is u64 on 64-bit Linux but narrower elsewhere: keep the casts.
#[allow(clippy::unnecessary_cast)]
pub fn checks(examples_dir: &Path, examples: &[&str]) -> Vec<Check> {
    let need = MOST_CONNECTIONS + SPARE;
    // The resource's type differs between C libraries: a closure infers it.
    let rlimit = |resource| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct we pass.
        if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
            return None;
        }
        Some((limit.rlim_cur as u64, limit.rlim_max as u64))
    };
    let linux = cfg!(target_os = "linux");
    let mut out = vec![if linux {
        check(
            Verdict::Ok,
            "system",
            "Linux: every sampler reads /proc".into(),
            None,
        )
    } else {
        check(
            Verdict::Warn,
            "system",
            format!(
                "{}: the samplers read Linux's /proc, so memory, thread and CPU columns stay empty, \
                 and the rows pinned to CPUs fail (pinning needs Linux)",
                std::env::consts::OS
            ),
            Some("run the book in a Linux VM or container (on Windows, WSL2)"),
        )
    }];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    out.push(if cores >= 2 {
        check(
            Verdict::Ok,
            "cores",
            format!("{cores} (the load client and the server each get one)"),
            None,
        )
    } else {
        check(
            Verdict::Warn,
            "cores",
            "1: the load client and the server take turns on it, and a server cannot use a second core"
                .into(),
            Some("give the VM two or more CPUs"),
        )
    });
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        })
        .or_else(|| evt::sys::sysctl_number("hw.memsize").map(|bytes| bytes / 1024));
    out.push(match memory_kib {
        Some(kib) if kib >= 2 * 1024 * 1024 => check(
            Verdict::Ok,
            "memory",
            format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0),
            None,
        ),
        Some(kib) => check(
            Verdict::Warn,
            "memory",
            format!(
                "{:.1} GiB: ten thousand threads reserve more than that in stacks",
                kib as f64 / 1024.0 / 1024.0
            ),
            Some("give the VM 2 GiB or more"),
        ),
        None => check(Verdict::Warn, "memory", "cannot be read here".into(), None),
    });
    // macOS says its hard limit is unlimited, but no soft limit goes past
    // kern.maxfilesperproc: that is the real ceiling there.
    let files = rlimit(libc::RLIMIT_NOFILE).map(|(soft, hard)| {
        (
            soft,
            evt::sys::sysctl_number("kern.maxfilesperproc").map_or(hard, |most| hard.min(most)),
        )
    });
    out.push(at_least(
        "open files (hard limit)",
        files.map(|(_, hard)| hard),
        need,
        "a descriptor per connection in the client and in the server; the book raises the soft limit itself",
        "raise the hard limit: `ulimit -Hn 20000` as root, or `nofile` in /etc/security/limits.conf \
         (macOS: `sudo launchctl limit maxfiles 20000 20000`)",
    ));
    if let Some((soft, hard)) = files
        && soft < need
        && hard >= need
    {
        out.push(check(
            Verdict::Ok,
            "open files (soft limit)",
            format!("{soft}: below the need, but the book's programs raise it to the hard limit"),
            None,
        ));
    }
    out.push(at_least(
        "threads per user (ulimit -u)",
        rlimit(libc::RLIMIT_NPROC).map(|(soft, _)| soft),
        need,
        "a blocking server that starts a thread per connection holds that many",
        "`ulimit -u 20000` (or `nproc` in /etc/security/limits.conf)",
    ));
    out.push(at_least(
        "kernel.threads-max",
        proc_numbers("/proc/sys/kernel/threads-max").and_then(|n| n.first().copied()),
        need,
        "threads on the whole machine",
        "`sudo sysctl -w kernel.threads-max=40000`",
    ));
    out.push(at_least(
        "kernel.pid_max",
        proc_numbers("/proc/sys/kernel/pid_max").and_then(|n| n.first().copied()),
        need,
        "every thread takes an id",
        "`sudo sysctl -w kernel.pid_max=40000`",
    ));
    out.push(at_least(
        "vm.max_map_count",
        proc_numbers("/proc/sys/vm/max_map_count").and_then(|n| n.first().copied()),
        2 * need,
        "each thread's stack is a mapping and its guard page another",
        "`sudo sysctl -w vm.max_map_count=65530`",
    ));
    let ports = proc_numbers("/proc/sys/net/ipv4/ip_local_port_range")
        .and_then(|n| Some(n.get(1)?.saturating_sub(*n.first()?) + 1));
    out.push(at_least(
        "local ports (net.ipv4.ip_local_port_range)",
        ports,
        need,
        "the load client's connections to one server each take one",
        "`sudo sysctl -w net.ipv4.ip_local_port_range=\"15000 64000\"`",
    ));
    let somaxconn = proc_numbers("/proc/sys/net/core/somaxconn")
        .and_then(|n| n.first().copied())
        .or_else(|| evt::sys::sysctl_number("kern.ipc.somaxconn"));
    out.push(match somaxconn {
        Some(value) if value >= 1024 => check(
            Verdict::Ok,
            "net.core.somaxconn",
            format!("{value} (the servers ask for a backlog of 1024)"),
            None,
        ),
        Some(value) => check(
            Verdict::Warn,
            "net.core.somaxconn",
            format!(
                "{value}: every listen backlog is cut to it, and a burst of connections past it is \
                 dropped and retried a second later (macOS: 128)"
            ),
            Some("`sudo sysctl -w net.core.somaxconn=4096` (macOS: `sudo sysctl kern.ipc.somaxconn=4096`)"),
        ),
        None => check(
            Verdict::Warn,
            "net.core.somaxconn",
            "cannot be read here".into(),
            None,
        ),
    });
    if let Some(reuse) =
        proc_numbers("/proc/sys/net/ipv4/tcp_tw_reuse").and_then(|n| n.first().copied())
    {
        out.push(if reuse == 0 {
            check(
                Verdict::Warn,
                "net.ipv4.tcp_tw_reuse",
                "0: ports in TIME_WAIT from one run are not reused by the next, so back-to-back runs \
                 of ten thousand connections can run out"
                    .into(),
                Some("`sudo sysctl -w net.ipv4.tcp_tw_reuse=2`"),
            )
        } else {
            check(
                Verdict::Ok,
                "net.ipv4.tcp_tw_reuse",
                format!("{reuse}: ports in TIME_WAIT are reused on loopback"),
                None,
            )
        });
    }
    // SAFETY: sysconf only reads a system value.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
    if online > 0 && usable > 0 {
        out.push(cores_check(usable, online as usize));
    }
    out.push(uring_check(evt::uring::refusal()));
    if on_battery() {
        out.push(check(
            Verdict::Warn,
            "power",
            "on battery: the CPU may be slowed, and CPU figures will differ from a plugged-in run"
                .into(),
            Some("plug the laptop in"),
        ));
    }
    for (tool, install) in [
        (
            "wrk",
            "`sudo apt-get install -y wrk` (macOS: `brew install wrk`)",
        ),
        (
            "hey",
            "`sudo apt-get install -y hey` (macOS: `brew install hey`)",
        ),
        (
            "ab",
            "`sudo apt-get install -y apache2-utils` (macOS: ships with the system)",
        ),
        ("oha", "`cargo install oha --locked` (about 5 minutes)"),
    ] {
        out.push(match which(tool) {
            Some(path) => check(Verdict::Ok, "peer tool", format!("{tool}: {path}"), None),
            None => check(
                Verdict::Warn,
                "peer tool",
                format!("{tool} is not installed: the rows it would measure will say so"),
                Some(install),
            ),
        });
    }
    let missing: Vec<&str> = examples
        .iter()
        .copied()
        .filter(|name| !examples_dir.join(name).is_file())
        .collect();
    out.push(if missing.is_empty() {
        check(
            Verdict::Ok,
            "examples",
            format!("all {} built in {}", examples.len(), examples_dir.display()),
            None,
        )
    } else {
        check(
            Verdict::Warn,
            "examples",
            format!(
                "{} of {} not built yet ({}…); the reproduce run builds them first",
                missing.len(),
                examples.len(),
                missing[0]
            ),
            Some("`cargo build --release --examples` (about 3 minutes on 2 cores)"),
        )
    });
    out
}

/// How many of the machine's cores this process may use: fewer than are
/// online means `taskset`, a cpuset or a CPU quota (a container's, a VM's)
/// holds it back, and the CPU's figures will follow the cores it may use.
fn cores_check(usable: usize, online: usize) -> Check {
    if usable < online {
        check(
            Verdict::Warn,
            "cores",
            format!(
                "this process may use {usable} of the machine's {online} cores (taskset, a cpuset or a CPU quota): \
                 figures the CPU sets will follow the {usable}, and the run's probe measures the same"
            ),
            Some("run without taskset, or give the container or VM its whole CPU"),
        )
    } else {
        check(
            Verdict::Ok,
            "cores",
            format!("all {online} cores usable"),
            None,
        )
    }
}

/// Whether io_uring can be used (chapter 13): without it that chapter's
/// examples exit with one line and the reproduce run skips the chapter.
fn uring_check(refusal: Option<String>) -> Check {
    match refusal {
        None => check(
            Verdict::Ok,
            "io_uring",
            "a ring can be set up: chapter 13 runs".to_string(),
            None,
        ),
        Some(why) => check(
            Verdict::Warn,
            "io_uring",
            format!("{why}: chapter 13's examples cannot run, and the reproduce run skips it"),
            Some(
                "on Linux 6.6+ `sudo sysctl kernel.io_uring_disabled=0`; in Docker, a seccomp \
                 profile that allows io_uring_setup, io_uring_enter and io_uring_register",
            ),
        ),
    }
}

/// Whether a laptop is running on its battery (Linux's power-supply class).
fn on_battery() -> bool {
    let Ok(entries) = std::fs::read_dir("/sys/class/power_supply") else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::read_to_string(entry.path().join("status"))
            .is_ok_and(|status| status.trim() == "Discharging")
    })
}

/// Where a program is on the PATH.
fn which(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .map(|found| found.display().to_string())
}

/// The checks as the reader sees them, and the exit code: 0 when the book
/// can run, 1 when a check failed (the last line says which).
pub fn report(checks: &[Check]) -> (String, u8) {
    let mut out = String::new();
    for check in checks {
        let mark = match check.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        let _ = writeln!(out, "{mark}  {}: {}", check.name, check.detail);
        if let Some(fix) = &check.fix {
            let _ = writeln!(out, "      fix: {fix}");
        }
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.name)
        .collect();
    if failed.is_empty() {
        let warnings = checks.iter().filter(|c| c.verdict == Verdict::Warn).count();
        let _ = writeln!(
            out,
            "\nThe book can run here ({warnings} warning{}).",
            if warnings == 1 { "" } else { "s" }
        );
        (out, 0)
    } else {
        let _ = writeln!(
            out,
            "\nThe book cannot run here until these are fixed: {}.",
            failed.join(", ")
        );
        (out, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_below_the_need_fails_with_its_fix() {
        let low = at_least("x", Some(5), 10, "why", "fix it");
        assert_eq!(low.verdict, Verdict::Fail);
        assert_eq!(low.fix.as_deref(), Some("fix it"));
        assert_eq!(
            at_least("x", Some(10), 10, "why", "fix").verdict,
            Verdict::Ok
        );
        assert_eq!(at_least("x", None, 10, "why", "fix").verdict, Verdict::Warn);
        let (text, code) = report(&[low]);
        assert_eq!(code, 1);
        assert!(text.contains("FAIL  x: 5 is below the 10") && text.contains("fix: fix it"));
        assert!(text.trim_end().ends_with("fixed: x."), "{text}");
    }

    #[test]
    fn a_process_held_to_fewer_cores_is_warned() {
        let held = cores_check(1, 2);
        assert_eq!(held.verdict, Verdict::Warn);
        assert!(
            held.detail
                .starts_with("this process may use 1 of the machine's 2 cores")
        );
        assert_eq!(cores_check(2, 2).verdict, Verdict::Ok);
        let refused = uring_check(Some("io_uring is refused here".into()));
        assert_eq!(refused.verdict, Verdict::Warn);
        assert!(refused.detail.contains("skips"), "{}", refused.detail);
        assert!(refused.fix.is_some());
        assert_eq!(uring_check(None).verdict, Verdict::Ok);
    }
}
