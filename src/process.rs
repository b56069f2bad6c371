//! Child processes and their groups, in one place: a server the book starts
//! runs in a process group of its own and dies with its parent, and is
//! stopped (or paused) by its group, so every process it forked goes with
//! it. Signals go through rustix, so only the code run between fork and exec
//! needs `unsafe`.

use std::io;
use std::process::Command;

use rustix::process::{Pid, Signal};

/// SIGKILL, SIGTERM, SIGSTOP, SIGCONT: the signals the book sends.
pub use rustix::process::Signal as Sig;

fn pid(raw: u32) -> io::Result<Pid> {
    i32::try_from(raw)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no process {raw}")))
}

/// Starts `command` in a process group of its own (so a signal to the group
/// reaches everything it forks) that is killed when this process dies
/// (Linux; elsewhere the parent's own stop is all there is), pinned to
/// `cpus` when there are any.
pub fn own_group(command: &mut Command, cpus: Vec<usize>) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    // SAFETY: the closure runs between fork and exec; it makes two system
    // calls (prctl, sched_setaffinity), both async-signal-safe, and only
    // reads the CPU list made before the fork.
    unsafe {
        command.pre_exec(move || {
            die_with_parent(Signal::KILL)?;
            if !cpus.is_empty() {
                crate::sys::pin_to(&cpus)?;
            }
            Ok(())
        });
    }
}

/// Asks the kernel to send `signal` to this process when its parent dies
/// (Linux's PR_SET_PDEATHSIG); elsewhere, does nothing.
pub fn die_with_parent(signal: Signal) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rustix::process::set_parent_process_death_signal(Some(signal))?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = signal;
    Ok(())
}

/// Sends `signal` to the process group led by `leader`.
pub fn signal_group(leader: u32, signal: Signal) -> io::Result<()> {
    rustix::process::kill_process_group(pid(leader)?, signal).map_err(io::Error::from)
}

/// Sends `signal` to one process.
pub fn signal_process(process: u32, signal: Signal) -> io::Result<()> {
    rustix::process::kill_process(pid(process)?, signal).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `process` still runs (a zombie waiting to be reaped does not).
    fn runs(process: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{process}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().to_string())
            })
            .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
    }

    #[test]
    fn a_group_stops_with_every_process_in_it() {
        use std::io::BufRead;
        // A shell in its own group that starts a grandchild, both sleeping.
        let mut command = Command::new("sh");
        command
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped());
        own_group(&mut command, Vec::new());
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        assert!(runs(grandchild));
        signal_group(child.id(), Signal::KILL).unwrap();
        assert!(!child.wait().unwrap().success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while runs(grandchild) {
            assert!(
                std::time::Instant::now() < deadline,
                "the grandchild lived on"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn no_such_process_is_an_error_not_a_panic() {
        assert!(signal_process(u32::MAX, Signal::CONT).is_err());
        assert!(signal_group(0x7fff_fff0, Signal::CONT).is_err());
    }
}
