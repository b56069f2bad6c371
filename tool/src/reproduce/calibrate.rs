//! A few seconds' probe of this machine at the start of a run: how much of
//! the machine's time a hello request takes over loopback with every core
//! busy (and how much CPU), how long `/work` takes per µs of CPU asked when
//! every core runs it, and how long one thread takes to wake another and
//! hear back. A figure the book marks as set by the CPU is predicted for
//! this machine from the book's figure and the two machines' probes
//! ([`super::judge`]): the probes measure the machine as a whole, the speed
//! of its cores and how many there are, as a saturated experiment uses it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::judge::Probe;
use super::record::ChapterRecord;
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
    /// Wall time per hello request with every core busy (the inverse of
    /// the probe's rate), µs.
    #[serde(default)]
    pub hello_wall_us: f64,
    /// Wall time per µs of `/work`'s CPU with every core running it.
    pub work_wall_per_us: f64,
    /// One round trip between two threads (a wake-up each way), µs.
    pub switch_us: f64,
    /// Not probed but derived, and from what: a machine whose records
    /// predate the probe is calibrated by the figures both machines recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<String>,
}

impl Calibration {
    /// What `probe` measured.
    pub fn probe(&self, probe: Probe) -> f64 {
        match probe {
            Probe::Hello => self.hello_wall_us,
            Probe::Work => self.work_wall_per_us,
            Probe::Switch => self.switch_us,
        }
    }
}

/// A calibration of `machine` with every probe but hello's at a round
/// value: what the judging's tests scale by.
#[cfg(test)]
pub fn for_tests(machine: &str, hello_us: f64) -> Calibration {
    Calibration {
        machine: machine.into(),
        measured_at: String::new(),
        hello_us,
        hello_wall_us: hello_us,
        work_wall_per_us: 1.0,
        switch_us: 10.0,
        derived_from: None,
    }
}

/// Probes this machine (about three seconds).
pub fn probe() -> Result<Calibration, String> {
    let hellos = (0..ROUNDS)
        .map(|_| hello())
        .collect::<Result<Vec<_>, _>>()?;
    let hello = median(hellos.iter().map(|h| h.0).collect());
    let hello_wall = median(hellos.iter().map(|h| h.1).collect());
    let work = median((0..ROUNDS).map(|_| work_wall_per_us()).collect());
    let switch = median((0..ROUNDS).map(|_| switch_us()).collect());
    Ok(Calibration {
        machine: Machine::this().describe(),
        measured_at: evt::sys::now_utc(),
        hello_us: hello,
        hello_wall_us: hello_wall,
        work_wall_per_us: work,
        switch_us: switch,
        derived_from: None,
    })
}

/// What a record measured that tracks each probe, by experiment or
/// program: the wall time per request (the inverse of the rate) of every
/// hello load and of every `/work` load, and every thread hop a program
/// timed.
fn tracked(records: &[ChapterRecord]) -> [BTreeMap<String, f64>; 3] {
    let mut out: [BTreeMap<String, f64>; 3] = Default::default();
    for record in records {
        for experiment in &record.experiments {
            let Some(load) = experiment.load() else {
                continue;
            };
            if load.measured.rps <= 0.0 {
                continue;
            }
            let per_request = 1e6 / load.measured.rps;
            let slot = if load.path == "/" {
                0
            } else if load.path.starts_with("/work") {
                1
            } else {
                continue;
            };
            out[slot].insert(
                format!("{}/{}", record.chapter, experiment.slug),
                per_request,
            );
        }
        for program in &record.programs {
            if let Some(hop) = program
                .output
                .get("baseline_hop_ns")
                .and_then(|v| v.as_f64())
            {
                out[2].insert(format!("{}/{}", record.chapter, program.slug), hop);
            }
        }
    }
    out
}

/// The calibration of the machine that measured `theirs`, derived from
/// `mine` (this machine's records, of the same chapters) and this machine's
/// probe: each probe scaled by the median ratio, theirs over mine, of what
/// both records measured that tracks it.
pub fn derive(
    theirs: &[ChapterRecord],
    mine: &[ChapterRecord],
    probe: &Calibration,
) -> Result<Calibration, String> {
    let machine = theirs
        .first()
        .map(|r| r.machine.describe())
        .ok_or("no records to calibrate from")?;
    let (their, my) = (tracked(theirs), tracked(mine));
    let mut ratios = [0.0; 3];
    let mut used = Vec::new();
    for (index, name) in ["hello loads", "/work loads", "thread hops"]
        .iter()
        .enumerate()
    {
        let pairs: Vec<f64> = their[index]
            .iter()
            .filter_map(|(key, t)| Some(t / my[index].get(key)?))
            .filter(|r| r.is_finite() && *r > 0.0)
            .collect();
        if pairs.is_empty() {
            return Err(format!("no {name} that both machines measured"));
        }
        used.push(format!("{} {name}", pairs.len()));
        ratios[index] = median(pairs);
    }
    Ok(Calibration {
        machine,
        measured_at: probe.measured_at.clone(),
        hello_us: probe.hello_us * ratios[0],
        hello_wall_us: probe.hello_wall_us * ratios[0],
        work_wall_per_us: probe.work_wall_per_us * ratios[1],
        switch_us: probe.switch_us * ratios[2],
        derived_from: Some(format!(
            "{}'s probe, times the median ratio of what both recorded ({})",
            probe.machine,
            used.join(", ")
        )),
    })
}

/// `--derive-calibration DIR`: the calibration of the machine that measured
/// the records in `book` (which predate the probe), from DIR's records and
/// probe (this machine's run of the same chapters), kept in `book`.
pub fn derive_into(book: &Path, here: &Path) -> Result<String, String> {
    let theirs = super::record::read_all(book)?;
    let mine = super::record::read_all(here)?;
    let machine = Machine::this().describe();
    let all = read_all(here)?;
    let probe = of(&all, &machine).ok_or_else(|| {
        format!(
            "no probe of this machine in {}: run the chapters there first",
            here.display()
        )
    })?;
    let derived = derive(&theirs, &mine, probe)?;
    write(book, &derived)?;
    Ok(format!(
        "calibrated {} from {}: {:.1} µs of the machine per hello, {:.2} µs per µs of /work, {:.1} µs a round trip",
        derived.machine,
        derived.derived_from.as_deref().unwrap_or(""),
        derived.hello_wall_us,
        derived.work_wall_per_us,
        derived.switch_us
    ))
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
/// the requests, per request, and the wall time per request.
fn hello() -> Result<(f64, f64), String> {
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
    let wall = Instant::now();
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
    let took = wall.elapsed();
    let _ = server.join();
    let requests = (per_connection * CONNECTIONS as u64) as f64;
    Ok((
        spent.as_secs_f64() * 1e6 / requests,
        took.as_secs_f64() * 1e6 / requests,
    ))
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

/// `/work`'s own loop, 20 × 1 ms of CPU on a thread per core this process
/// may use, timed by the wall clock: per µs asked of all of them.
fn work_wall_per_us() -> f64 {
    let asked = Duration::from_millis(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..20 {
                    std::hint::black_box(evt::routes::spend_cpu(asked));
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    started.elapsed().as_secs_f64() / (20.0 * threads as f64 * asked.as_secs_f64())
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
/// The probe measures the hardware: a machine is found by its CPU and
/// cores (`AMD EPYC (2 cores)`), whatever kernel build it ran that day.
pub fn of<'a>(all: &'a [Calibration], machine: &str) -> Option<&'a Calibration> {
    all.iter().find(|c| c.machine == machine).or_else(|| {
        all.iter()
            .find(|c| hardware(&c.machine) == hardware(machine))
    })
}

/// The CPU and cores of a machine as [`Machine::describe`] says it: the
/// text up to the cores' closing parenthesis.
pub fn hardware(describe: &str) -> &str {
    describe
        .find(" cores)")
        .map_or(describe, |at| &describe[..at + " cores)".len()])
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
        // The machine's time per hello is less than a second, and all its
        // cores together spend /work's CPU no faster than one core per core.
        assert!(c.hello_wall_us > 0.0 && c.hello_wall_us < 1e6, "{c:?}");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(c.work_wall_per_us >= 0.99 / cores, "{c:?}");
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
            hello_wall_us: hello_us,
            work_wall_per_us: 1.0,
            switch_us: 5.0,
            derived_from: None,
        };
        assert_eq!(read_all(&dir).unwrap(), []);
        write(&dir, &c("book", 30.0)).unwrap();
        write(&dir, &c("mine", 10.0)).unwrap();
        write(&dir, &c("mine", 12.0)).unwrap();
        let all = read_all(&dir).unwrap();
        assert_eq!(all, [c("book", 30.0), c("mine", 12.0)]);
        assert_eq!(of(&all, "book").map(|c| c.hello_us), Some(30.0));
        // Another kernel build of the same hardware is the same machine.
        assert_eq!(
            hardware("AMD EPYC (2 cores), Debian 12, Linux 6.18.44-fc-v657"),
            "AMD EPYC (2 cores)"
        );
        let epyc = |os: &str| Calibration {
            machine: format!("AMD EPYC (2 cores), {os}"),
            ..c("x", 6.0)
        };
        let kept = [epyc("Linux 6.18.44-fc-v1147")];
        assert!(of(&kept, "AMD EPYC (2 cores), Linux 6.18.44-fc-v657").is_some());
        assert!(of(&kept, "AMD EPYC (4 cores), Linux 6.18.44-fc-v1147").is_none());
        std::fs::write(dir.join(FILE), "not json").unwrap();
        assert!(read_all(&dir).unwrap_err().starts_with("cannot read"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_machine_without_a_probe_is_calibrated_from_what_both_recorded() {
        let dir = crate::root().join("book/generated");
        let theirs: Vec<ChapterRecord> = super::super::record::read_all(&dir)
            .unwrap()
            .into_iter()
            .filter(|r| r.chapter == 9 || r.chapter == 11)
            .collect();
        // This machine did everything twice as fast.
        let mut mine = theirs.clone();
        for record in &mut mine {
            for experiment in &mut record.experiments {
                for load in &mut experiment.loads {
                    load.measured.rps *= 2.0;
                }
            }
            for program in &mut record.programs {
                if let Some(hop) = program
                    .output
                    .get("baseline_hop_ns")
                    .and_then(|v| v.as_f64())
                {
                    program.output["baseline_hop_ns"] = serde_json::json!(hop / 2.0);
                }
            }
        }
        let probe = Calibration {
            machine: "mine".into(),
            measured_at: String::new(),
            hello_us: 10.0,
            hello_wall_us: 10.0,
            work_wall_per_us: 1.0,
            switch_us: 40.0,
            derived_from: None,
        };
        let derived = derive(&theirs, &mine, &probe).unwrap();
        assert_eq!(derived.machine, theirs[0].machine.describe());
        assert!(
            (derived.hello_wall_us / 20.0 - 1.0).abs() < 1e-9,
            "{derived:?}"
        );
        assert!(
            (derived.work_wall_per_us / 2.0 - 1.0).abs() < 1e-9,
            "{derived:?}"
        );
        assert!((derived.switch_us / 80.0 - 1.0).abs() < 1e-9, "{derived:?}");
        assert!(derived.derived_from.unwrap().starts_with("mine's probe"));
        // Nothing in common: no calibration, and it says why.
        assert_eq!(
            derive(&theirs[..1], &[], &probe).unwrap_err(),
            "no hello loads that both machines measured"
        );
    }
}
