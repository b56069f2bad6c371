//! Pre-fork, as gunicorn does it: one parent opens the listening socket(s),
//! then forks worker processes that inherit them. What chapter 2's example
//! needs around that and would only clutter the lesson lives here: forking a
//! worker that dies with its parent, waiting for workers, and a small board
//! of counters in memory shared by every worker, so that whichever worker
//! answers `/report` can say how the connections spread over all of them.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::report::{WorkerCounts, WorkersReport};

/// What the board keeps for one worker.
const FIELDS: usize = 8;
const PID: usize = 0;
const ACCEPTED: usize = 1;
const OPEN: usize = 2;
const REQUESTS: usize = 3;
const THREADS: usize = 4;
const MOST_OPEN: usize = 5;
const SHARE_CHECKS: usize = 6;
const MOST_OVER: usize = 7;

/// Counters every worker process can read and write: anonymous shared
/// memory mapped before the fork, so the children share the same pages.
#[derive(Clone, Copy)]
pub struct Board {
    cells: &'static [AtomicU64],
}

impl Board {
    /// Maps a board for `workers` workers. Call it before forking.
    pub fn shared(workers: usize) -> std::io::Result<Board> {
        let length = workers.max(1) * FIELDS * std::mem::size_of::<AtomicU64>();
        // SAFETY: an anonymous mapping owned by nobody else; it is never
        // unmapped, so the 'static slice stays valid. Zeroed pages are valid
        // AtomicU64s.
        let cells = unsafe {
            let address = libc::mmap(
                std::ptr::null_mut(),
                length,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if address == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            std::slice::from_raw_parts(address as *const AtomicU64, workers.max(1) * FIELDS)
        };
        Ok(Board { cells })
    }

    /// How many workers the board has room for.
    pub fn workers(&self) -> usize {
        self.cells.len() / FIELDS
    }

    /// Worker `index`'s own counters.
    pub fn slot(&self, index: usize) -> WorkerSlot {
        WorkerSlot {
            board: *self,
            index,
        }
    }

    fn get(&self, worker: usize, field: usize) -> u64 {
        self.cells[worker * FIELDS + field].load(Ordering::Relaxed)
    }

    /// The board as `/report` answers it: per worker its pid, the
    /// connections it accepted, holds open now, and the requests it
    /// answered; not counting the one connection that asks, which worker
    /// `asking` holds.
    pub fn report(&self, asking: usize) -> WorkersReport {
        let workers = (0..self.workers())
            .map(|worker| {
                let this_one = u64::from(worker == asking);
                WorkerCounts {
                    worker,
                    pid: self.get(worker, PID),
                    accepted: self.get(worker, ACCEPTED).saturating_sub(this_one),
                    open: self.get(worker, OPEN).saturating_sub(this_one),
                    requests: self.get(worker, REQUESTS),
                    most_open: self.get(worker, MOST_OPEN),
                    share_checks: self.get(worker, SHARE_CHECKS),
                    most_over_share: self.get(worker, MOST_OVER),
                }
            })
            .collect();
        let threads = (0..self.workers())
            .map(|worker| self.get(worker, THREADS))
            .max()
            .unwrap_or(0);
        WorkersReport {
            threads_per_worker: threads as usize,
            workers,
            steals: Vec::new(),
        }
    }
}

/// One worker's counters on the board.
#[derive(Clone, Copy)]
pub struct WorkerSlot {
    board: Board,
    pub index: usize,
}

impl WorkerSlot {
    fn add(&self, field: usize, delta: u64) {
        self.board.cells[self.index * FIELDS + field].fetch_add(delta, Ordering::Relaxed);
    }

    /// The worker says which process it is.
    pub fn started(&self) {
        self.board.cells[self.index * FIELDS + PID]
            .store(u64::from(std::process::id()), Ordering::Relaxed);
    }

    /// The worker says how many threads serve its requests.
    pub fn serving_on(&self, threads: usize) {
        self.board.cells[self.index * FIELDS + THREADS].store(threads as u64, Ordering::Relaxed);
    }

    pub fn accepted(&self) {
        self.add(ACCEPTED, 1);
        let open = self.board.cells[self.index * FIELDS + OPEN].fetch_add(1, Ordering::Relaxed) + 1;
        self.board.cells[self.index * FIELDS + MOST_OPEN].fetch_max(open, Ordering::Relaxed);
        // How far over its fair share of the connections open now this
        // accept left the worker.
        let board = &self.board;
        let workers = board.workers() as u64;
        let total: u64 = (0..board.workers()).map(|w| board.get(w, OPEN)).sum();
        let over = open.saturating_sub(total.div_ceil(workers));
        self.board.cells[self.index * FIELDS + MOST_OVER].fetch_max(over, Ordering::Relaxed);
    }

    /// A worker over its fair share looked again (see [`Self::should_accept`]).
    pub fn checked_share(&self) {
        self.add(SHARE_CHECKS, 1);
    }

    pub fn closed(&self) {
        self.board.cells[self.index * FIELDS + OPEN].fetch_sub(1, Ordering::Relaxed);
    }

    pub fn answered(&self) {
        self.add(REQUESTS, 1);
    }

    /// Should this worker, which has a thread free, accept the next
    /// connection on the shared socket? Only if it holds fewer than its fair
    /// share of the open connections, ⌈(open + 1) / workers⌉. Some worker
    /// always does, so the connection is taken as soon as that one has a
    /// thread free: kept-alive connections spread as evenly as they can, at
    /// the price of a new connection waiting for that worker even when a
    /// fuller one is idle.
    pub fn should_accept(&self) -> bool {
        let board = &self.board;
        let workers = board.workers();
        let total: u64 = (0..workers).map(|worker| board.get(worker, OPEN)).sum();
        board.get(self.index, OPEN) < (total + 1).div_ceil(workers as u64)
    }

    /// The whole board, as `/report` answers it (the asking connection,
    /// held by this worker, not counted).
    pub fn report(&self) -> String {
        serde_json::to_string(&self.counts()).unwrap_or_default()
    }

    /// The whole board as a report, for a server that adds to it.
    pub fn counts(&self) -> WorkersReport {
        self.board.report(self.index)
    }
}

// ANCHOR: serve_with_workers
/// The parent's whole job: open the port (`sockets` listening sockets: one
/// that every worker shares, or with SO_REUSEPORT one per worker), fork
/// `workers` workers that each run `work` on their socket, say where it
/// listens, and watch. A worker only ends if something broke it: then the
/// others are stopped and the parent exits with the reason.
pub fn serve_with_workers(
    server: &crate::server::ServerArgs,
    sockets: usize,
    workers: usize,
    work: impl Fn(&std::net::TcpListener, WorkerSlot),
) -> ! {
    let first = server.bind_or_exit();
    let addr = first.local_addr().expect("a bound socket has an address");
    let mut listeners = vec![first];
    let mut same_port = server.clone();
    same_port.port = addr.port();
    while listeners.len() < sockets.max(1) {
        listeners.push(same_port.bind_or_exit());
    }
    let board = Board::shared(workers).unwrap_or_else(|error| {
        eprintln!("error: cannot map memory shared by the workers: {error}");
        std::process::exit(1);
    });
    let mut pids = Vec::new();
    for index in 0..workers {
        let listener = &listeners[index % listeners.len()];
        let slot = board.slot(index);
        match fork_worker(|| {
            slot.started();
            work(listener, slot)
        }) {
            Ok(pid) => pids.push(pid),
            Err(error) => {
                eprintln!("error: cannot start worker {index}: {error}");
                stop_workers(&pids);
                std::process::exit(1);
            }
        }
    }
    crate::server::announce(addr);
    let (pid, how) = wait_for_any_worker();
    stop_workers(&pids);
    eprintln!("error: worker {pid} ended ({how}); stopped the others");
    std::process::exit(1);
}
// ANCHOR_END: serve_with_workers

// ANCHOR: fork_worker
/// Forks a worker process that runs `work` and exits. The parent gets the
/// worker's pid back. The worker dies with its parent, however the parent
/// ends (Ctrl-C, `kill`, even `kill -9`): no orphan keeps the port.
///
/// Call it only while the process has a single thread (before any pool is
/// started): a forked child gets a copy of the calling thread only.
pub fn fork_worker(work: impl FnOnce()) -> std::io::Result<u32> {
    // The precondition is checked, not trusted: a second thread could hold a
    // lock (the allocator's) that the child would then wait on for ever.
    if let Some(threads) = threads_running().filter(|&n| n > 1) {
        return Err(std::io::Error::other(format!(
            "cannot fork a worker from a process with {threads} threads running"
        )));
    }
    let parent = std::process::id();
    // Anything buffered would otherwise be printed twice, by both processes.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: checked above: the process has one thread, so the child's copy
    // of memory holds no lock another thread was holding.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            die_with_parent(parent);
            work();
            let _ = std::io::stdout().flush();
            std::process::exit(0)
        }
        pid => Ok(pid as u32),
    }
}
// ANCHOR_END: fork_worker

/// How many threads this process has (`None` where `/proc` is missing).
fn threads_running() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

/// Waits until any worker exits; its pid and a description of how it ended.
pub fn wait_for_any_worker() -> (u32, String) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid > 0 {
            let how = if libc::WIFSIGNALED(status) {
                format!("killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!("exit status {}", libc::WEXITSTATUS(status))
            };
            return (pid as u32, how);
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return (0, "no workers left".to_string());
        }
    }
}

/// Stops the workers still running.
pub fn stop_workers(pids: &[u32]) {
    for &pid in pids {
        // A worker gone already is nothing to stop.
        let _ = crate::process::signal_process(pid, crate::process::Sig::TERM);
    }
}

/// Makes this (forked) process end when `parent` does.
fn die_with_parent(parent: u32) {
    #[cfg(target_os = "linux")]
    let _ = crate::process::die_with_parent(crate::process::Sig::TERM);
    #[cfg(not(target_os = "linux"))]
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            // SAFETY: getppid has no preconditions.
            if unsafe { libc::getppid() } as u32 != parent {
                std::process::exit(0);
            }
        }
    });
    // The parent may have died before the line above took effect.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } as u32 != parent {
        std::process::exit(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forking_with_other_threads_running_is_refused() {
        // A test runs beside the test harness's main thread (and here one more).
        let sleeper =
            std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        let error = fork_worker(|| unreachable!("no child may be forked")).unwrap_err();
        assert!(error.to_string().contains("threads running"), "{error}");
        sleeper.join().unwrap();
    }
}
