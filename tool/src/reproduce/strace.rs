//! Counting a server's system calls from outside: `strace -f -c` attached
//! to it while the loads run, for servers that cannot count their own (a
//! runtime's). strace stops the server at every call, so the server runs
//! slower while counted, and more work arrives at each wait: the waits are
//! fewer per request than without it, the reads and writes as many.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What strace counted, or why nothing was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyscallCount {
    /// Calls by system call, every thread of the server summed.
    #[serde(default)]
    pub calls: BTreeMap<String, u64>,
    /// Why there is no count (strace missing, not allowed to attach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl SyscallCount {
    fn skipped(why: impl Into<String>) -> SyscallCount {
        SyscallCount {
            calls: BTreeMap::new(),
            skipped: Some(why.into()),
        }
    }

    /// Every call, whatever its name.
    pub fn total(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// strace, attached to a running server.
pub struct Tracer {
    child: Child,
    summary: PathBuf,
}

impl Tracer {
    /// Attaches to `pid` and every thread it has or starts. `Err` is the
    /// count to record instead (why there is none).
    pub fn attach(pid: u32) -> Result<Tracer, SyscallCount> {
        let summary = std::env::temp_dir().join(format!("evt-strace-{pid}.txt"));
        let child = Command::new("strace")
            .args(["-f", "-c", "-q", "-o"])
            .arg(&summary)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::NotFound => SyscallCount::skipped(
                    "strace is not installed (apt-get install strace, dnf install strace)",
                ),
                _ => SyscallCount::skipped(format!("cannot start strace: {error}")),
            })?;
        let mut tracer = Tracer { child, summary };
        // Attaching takes a moment; one that fails exits at once.
        std::thread::sleep(Duration::from_millis(300));
        if let Ok(Some(status)) = tracer.child.try_wait() {
            let mut said = String::new();
            if let Some(mut pipe) = tracer.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut said);
            }
            return Err(SyscallCount::skipped(format!(
                "strace could not attach ({status}): {} (kernel.yama.ptrace_scope 1 allows it \
                 only to root or an ancestor)",
                said.lines().next().unwrap_or("no reason given").trim()
            )));
        }
        Ok(tracer)
    }

    /// Detaches (SIGINT, as Ctrl-C would) and reads strace's table.
    pub fn finish(mut self) -> SyscallCount {
        let _ = evt::process::signal_process(self.child.id(), evt::process::Sig::INT);
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.summary).unwrap_or_default();
        let _ = std::fs::remove_file(&self.summary);
        let calls = parse_summary(&text);
        if calls.is_empty() {
            return SyscallCount::skipped("strace wrote no table");
        }
        SyscallCount {
            calls,
            skipped: None,
        }
    }
}

/// The calls column of `strace -c`'s table, by system call.
pub fn parse_summary(text: &str) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
            continue;
        }
        let (Some(name), Ok(count)) = (fields.last(), fields[3].parse::<u64>()) else {
            continue;
        };
        if *name != "total" {
            calls.insert(name.to_string(), count);
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_tables_are_read_with_and_without_errors() {
        let table = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 61.31    0.246228          12     20000           sendto
 36.38    0.146106           7     20100           recvfrom
  0.00    0.000000           0        51         1 accept4
------ ----------- ----------- --------- --------- ----------------
100.00    0.401625           9     40151         1 total
";
        let calls = parse_summary(table);
        assert_eq!(calls.len(), 3);
        assert_eq!(calls["sendto"], 20_000);
        assert_eq!(calls["accept4"], 51);
        assert!(!calls.contains_key("total"));
        assert!(
            parse_summary("strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted")
                .is_empty()
        );
    }
}
