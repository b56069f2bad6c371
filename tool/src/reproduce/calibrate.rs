//! A few seconds' probe of this machine at the start of a run: what a
//! hello request costs in CPU (both ends, over loopback), how long `/work`
//! takes per µs of CPU asked, and how long one thread takes to wake another
//! and hear back. A figure the book marks as set by the CPU is predicted for
//! this machine from the book's figure and the two machines' probes
//! ([`super::judge`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::judge::Probe;
use evt::blocking::Connection;
use evt::sys::Machine;

/// The file beside the records that keeps each machine's probe.
pub const FILE: &str = "calibration.json";
/// Hello requests per round of the probe, over [`CONNECTIONS`].
const HELLO_REQUESTS: u64 = 20_000;
const CONNECTIONS: usize = 8;
/// Round trips between two threads per round.
const SWITCH_ROUNDS: u32 = 20_000;
/// Each probe runs this many rounds; the median is kept.
const ROUNDS: usize = 3;

/// One machine's probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// As [`Machine::describe`] says it.
    pub machine: String,
    pub measured_at: String,
    /// CPU per hello request, the server's and the client's together, µs.
    pub hello_us: f64,
    /// Wall time per µs of `/work`'s CPU, alone on a core.
    pub work_wall_per_us: f64,
    /// One round trip between two threads (a wake-up each way), µs.
    pub switch_us: f64,
}

impl Calibration {
    /// What `probe` measured.
    pub fn probe(&self, probe: Probe) -> f64 {
        match probe {
            Probe::Hello => self.hello_us,
            Probe::Work => self.work_wall_per_us,
            Probe::Switch => self.switch_us,
        }
    }
}

/// Probes this machine (about three seconds).
pub fn probe() -> Result<Calibration, String> {
    let hello = median((0..ROUNDS).map(|_| hello_us()).collect::<Result<_, _>>()?);
    let work = median((0..ROUNDS).map(|_| work_wall_per_us()).collect());
    let switch = median((0..ROUNDS).map(|_| switch_us()).collect());
    Ok(Calibration {
        machine: Machine::this().describe(),
        measured_at: evt::sys::now_utc(),
        hello_us: hello,
        work_wall_per_us: work,
        switch_us: switch,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// This process's CPU time, user and system, all threads.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes only into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let of = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    of(usage.ru_utime) + of(usage.ru_stime)
}

/// Hello over loopback: a thread per connection on the server side (the
/// book's blocking connection code), one client thread per connection
/// sending a request and reading the answer, in turn. The process's CPU over
/// the requests, per request.
fn hello_us() -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("the calibration cannot listen on loopback: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let server = std::thread::Builder::new()
        .name("calibrate-accept".into())
        .spawn(move || {
            let mut served = Vec::new();
            for stream in listener.incoming().take(CONNECTIONS).flatten() {
                served.push(std::thread::spawn(move || {
                    let mut connection = Connection::new(stream);
                    while let Some(request) = connection.next_request() {
                        if connection
                            .respond(&request.route.reply(), request.keep_alive)
                            .is_err()
                        {
                            break;
                        }
                    }
                }));
            }
            for thread in served {
                let _ = thread.join();
            }
        })
        .map_err(|error| format!("the calibration cannot start a thread: {error}"))?;
    let per_connection = HELLO_REQUESTS / CONNECTIONS as u64;
    let started = process_cpu();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            std::thread::spawn(move || -> Result<(), String> {
                let mut stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let request = b"GET / HTTP/1.1\r\nHost: calibrate\r\n\r\n";
                let mut buffer = [0u8; 512];
                for _ in 0..per_connection {
                    stream.write_all(request).map_err(|e| e.to_string())?;
                    read_one_answer(&mut stream, &mut buffer)?;
                }
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client
            .join()
            .map_err(|_| "a calibration client panicked".to_string())?
            .map_err(|error| format!("the calibration's hello failed: {error}"))?;
    }
    let spent = process_cpu().saturating_sub(started);
    let _ = server.join();
    Ok(spent.as_secs_f64() * 1e6 / (per_connection * CONNECTIONS as u64) as f64)
}

/// Reads one answer to hello: its head, then its `Content-Length` bytes.
fn read_one_answer(stream: &mut TcpStream, buffer: &mut [u8]) -> Result<(), String> {
    let mut filled = 0;
    loop {
        let read = stream
            .read(&mut buffer[filled..])
            .map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the server closed the connection".to_string());
        }
        filled += read;
        let text = &buffer[..filled];
        if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&text[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .ok_or("an answer without Content-Length")?;
            if filled >= end + 4 + length {
                return Ok(());
            }
        }
        if filled == buffer.len() {
            return Err("an answer longer than hello's".to_string());
        }
    }
}

/// `/work`'s own loop, 20 × 1 ms of CPU, timed by the wall clock.
fn work_wall_per_us() -> f64 {
    let asked = Duration::from_millis(1);
    let started = Instant::now();
    for _ in 0..20 {
        std::hint::black_box(evt::routes::spend_cpu(asked));
    }
    started.elapsed().as_secs_f64() / (20.0 * asked.as_secs_f64())
}

/// Two threads passing a token back and forth through channels.
fn switch_us() -> f64 {
    let (to_other, other_gets) = mpsc::sync_channel::<u32>(0);
    let (to_main, main_gets) = mpsc::sync_channel::<u32>(0);
    let other = std::thread::spawn(move || {
        while let Ok(token) = other_gets.recv() {
            if to_main.send(token).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    for round in 0..SWITCH_ROUNDS {
        let _ = to_other.send(round);
        let _ = main_gets.recv();
    }
    let elapsed = started.elapsed();
    drop(to_other);
    let _ = other.join();
    elapsed.as_secs_f64() * 1e6 / f64::from(SWITCH_ROUNDS)
}

/// Every machine's probe kept in `dir` (none if there is no file).
pub fn read_all(dir: &Path) -> Result<Vec<Calibration>, String> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|error| format!("cannot read {}: {error}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

/// Keeps `calibration` in `dir`, replacing an earlier one of its machine.
pub fn write(dir: &Path, calibration: &Calibration) -> Result<(), String> {
    let mut all = read_all(dir)?;
    all.retain(|c| c.machine != calibration.machine);
    all.push(calibration.clone());
    all.sort_by(|a, b| a.machine.cmp(&b.machine));
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let json = serde_json::to_string_pretty(&all).map_err(|error| error.to_string())?;
    let path = dir.join(FILE);
    std::fs::write(&path, json + "\n")
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// The probe of the machine described as `machine`, among `all`.
pub fn of<'a>(all: &'a [Calibration], machine: &str) -> Option<&'a Calibration> {
    all.iter().find(|c| c.machine == machine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_measures_something_of_each_kind() {
        let c = probe().unwrap();
        // A hello over loopback costs CPU at both ends: more than a
        // microsecond, less than a second, on any machine.
        assert!(c.hello_us > 1.0 && c.hello_us < 1e6, "{c:?}");
        // /work spends at least the CPU it asks for.
        assert!(c.work_wall_per_us >= 1.0, "{c:?}");
        assert!(c.switch_us > 0.0, "{c:?}");
    }

    #[test]
    fn a_machine_keeps_one_calibration_and_others_stay() {
        let dir = std::env::temp_dir().join(format!("evt-calibration-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = |machine: &str, hello_us| Calibration {
            machine: machine.into(),
            measured_at: String::new(),
            hello_us,
            work_wall_per_us: 1.0,
            switch_us: 5.0,
        };
        assert_eq!(read_all(&dir).unwrap(), []);
        write(&dir, &c("book", 30.0)).unwrap();
        write(&dir, &c("mine", 10.0)).unwrap();
        write(&dir, &c("mine", 12.0)).unwrap();
        let all = read_all(&dir).unwrap();
        assert_eq!(all, [c("book", 30.0), c("mine", 12.0)]);
        assert_eq!(of(&all, "book").map(|c| c.hello_us), Some(30.0));
        std::fs::write(dir.join(FILE), "not json").unwrap();
        assert!(read_all(&dir).unwrap_err().starts_with("cannot read"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
