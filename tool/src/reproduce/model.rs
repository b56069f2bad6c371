//! Predicting a run from first principles, before measuring it.
//!
//! A server that can work on `capacity` requests at once (one blocking thread:
//! 1; a pool: its threads; an event loop waiting on timers: as many as arrive)
//! and spends a fixed `service` time on each, loaded by closed-model clients,
//! is a first-come-first-served queue with `capacity` servers. Little's law
//! gives its steady throughput, `min(connections, capacity) / service`; the
//! small simulation here gives every request's latency, including the start
//! and the end of a run, which is what a five-request experiment is made of.
//! An open-model client (chapter 10) sends request i at i / rate instead, on
//! whichever of its connections is free; its latencies count from then.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use evt::load::schedule::{Arrivals, Schedule};
use serde::{Deserialize, Serialize};

/// How many requests a server works on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Capacity {
    /// At most this many; the rest wait in line.
    Limited(usize),
    /// As many as arrive: waiting costs the server nothing.
    Unlimited,
}

/// One client: `connections` connections that together send `requests`
/// requests, each taking `service` on the server, starting at `start`;
/// closed (each connection sends again when answered), or open at `rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientStream {
    pub start: Duration,
    pub requests: u64,
    pub connections: usize,
    pub service: Duration,
    /// Open model: request i is due at `start + i / rate`, or at the i-th
    /// arrival of the Poisson process the load client draws from the same
    /// seed (so the model sees the run's own arrival times).
    pub rate: Option<f64>,
    pub arrivals: Arrivals,
}

impl ClientStream {
    /// A closed stream: each connection sends again when answered.
    pub fn closed(requests: u64, connections: usize, service: Duration) -> ClientStream {
        ClientStream {
            start: Duration::ZERO,
            requests,
            connections,
            service,
            rate: None,
            arrivals: Arrivals::Even,
        }
    }
}

/// What the model says one stream will see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// From the stream's start to its last response.
    pub total_s: f64,
    pub rps: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    /// Older records (before the model gave it) read as 0.
    #[serde(default)]
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Every request's latency in milliseconds, sorted (the first 1,000).
    /// Not kept in records: the summary above is what views show.
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
}

impl Prediction {
    /// The model predicted nothing here: no request waits on a timer (hello,
    /// or a load the model does not cover), so every figure would print 0.
    pub fn is_empty(&self) -> bool {
        self.total_s == 0.0 && self.max_ms == 0.0
    }
}

// ANCHOR: littles_law
/// Little's law for a closed loop: requests per second once the run is steady.
pub fn steady_throughput(connections: usize, capacity: Capacity, service: Duration) -> f64 {
    let busy = match capacity {
        Capacity::Limited(slots) => connections.min(slots),
        Capacity::Unlimited => connections,
    };
    busy as f64 / service.as_secs_f64()
}
// ANCHOR_END: littles_law

/// Simulates the streams against one server and predicts what each sees.
pub fn predict(streams: &[ClientStream], capacity: Capacity) -> Vec<Prediction> {
    let total_connections: usize = streams.iter().map(|s| s.connections).sum();
    let slots = match capacity {
        Capacity::Limited(slots) => slots.max(1),
        // Closed-model clients never have more in flight than they have connections.
        Capacity::Unlimited => total_connections.max(1),
    };
    let mut slot_free_at = vec![Duration::ZERO; slots];
    let mut tickets: Vec<u64> = streams.iter().map(|s| s.requests).collect();
    // Open streams: when each request falls due, in order.
    let mut schedules: Vec<Option<Schedule>> = streams
        .iter()
        .map(|s| s.rate.map(|rate| Schedule::new(rate, s.arrivals)))
        .collect();
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); streams.len()];
    let mut last_finish: Vec<Duration> = streams.iter().map(|s| s.start).collect();

    // Pending arrivals (when sent, in which order, which stream, when due),
    // earliest first; ties go in the order they were made. A connection that
    // is free sends the next request at once (closed) or when it is due (open).
    let mut arrivals = BinaryHeap::new();
    let mut order = 0u64;
    let mut take = |index: usize, free: Duration, arrivals: &mut BinaryHeap<_>| {
        if tickets[index] > 0 {
            tickets[index] -= 1;
            let due = match &mut schedules[index] {
                Some(schedule) => streams[index].start + schedule.next_due().1,
                None => free,
            };
            arrivals.push(Reverse((due.max(free), order, index, due)));
            order += 1;
        }
    };
    for (index, stream) in streams.iter().enumerate() {
        for _ in 0..stream.connections {
            take(index, stream.start, &mut arrivals);
        }
    }
    // ANCHOR: queue
    // Take arrivals in time order; each goes to the slot that frees up first.
    while let Some(Reverse((arrival, _, index, due))) = arrivals.pop() {
        let slot = (0..slots)
            .min_by_key(|&slot| slot_free_at[slot])
            .unwrap_or(0);
        let begin = arrival.max(slot_free_at[slot]);
        let finish = begin + streams[index].service;
        slot_free_at[slot] = finish;
        latencies[index].push(finish - due);
        last_finish[index] = last_finish[index].max(finish);
        take(index, finish, &mut arrivals);
    }
    // ANCHOR_END: queue

    streams
        .iter()
        .zip(latencies)
        .zip(last_finish)
        .map(|((stream, mut latencies), finish)| {
            latencies.sort();
            let total = finish - stream.start;
            summarise(&latencies, total)
        })
        .collect()
}

fn summarise(sorted: &[Duration], total: Duration) -> Prediction {
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    // Nearest rank, as the HDR histogram reports percentiles.
    let at = |quantile: f64| {
        let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    };
    if sorted.is_empty() {
        return Prediction {
            total_s: 0.0,
            rps: 0.0,
            min_ms: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
            mean_ms: 0.0,
            latencies_ms: Vec::new(),
        };
    }
    let mean = sorted.iter().sum::<Duration>() / sorted.len() as u32;
    let seconds = total.as_secs_f64();
    Prediction {
        total_s: (seconds * 1e6).round() / 1e6,
        rps: if seconds > 0.0 {
            sorted.len() as f64 / seconds
        } else {
            0.0
        },
        min_ms: ms(sorted[0]),
        p50_ms: ms(at(0.5)),
        p99_ms: ms(at(0.99)),
        max_ms: ms(sorted[sorted.len() - 1]),
        mean_ms: ms(mean),
        latencies_ms: sorted.iter().take(1000).map(|&d| ms(d)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(requests: u64, connections: usize, service_ms: u64) -> ClientStream {
        ClientStream::closed(requests, connections, Duration::from_millis(service_ms))
    }

    #[test]
    fn an_open_client_below_capacity_never_queues_and_above_it_always_does() {
        let open = |rate: f64, requests: u64| ClientStream {
            rate: Some(rate),
            ..stream(requests, 100, 100)
        };
        // Four slots of 100 ms: 40 requests/s. Evenly spaced arrivals at
        // half of it find a slot free every time.
        let half = &predict(&[open(20.0, 100)], Capacity::Limited(4))[0];
        assert_eq!((half.p50_ms, half.max_ms), (100.0, 100.0));
        // At 1.2 × for 5 s, 8 more arrive each second than leave: about 40
        // wait in line by the end, the last about 1 s beyond its own 100 ms.
        let over = &predict(&[open(48.0, 240)], Capacity::Limited(4))[0];
        assert!((1000.0..=1150.0).contains(&over.max_ms), "{}", over.max_ms);
        // The client's own connections cap what is in flight: with one
        // connection, a request waits for the one before it, and its
        // latency still counts from when it was due.
        let one = ClientStream {
            connections: 1,
            ..open(20.0, 10)
        };
        let capped = &predict(&[one], Capacity::Unlimited)[0];
        assert!(capped.max_ms > 100.0, "{}", capped.max_ms);
    }

    #[test]
    fn one_thread_serialises_seed_000() {
        let [one] = &predict(&[stream(5, 5, 2000)], Capacity::Limited(1))[..] else {
            panic!("one stream in, one prediction out");
        };
        assert_eq!(
            one.latencies_ms,
            vec![2000.0, 4000.0, 6000.0, 8000.0, 10000.0]
        );
        assert_eq!(one.total_s, 10.0);
        assert!((one.rps - 0.5).abs() < 1e-9);
        assert_eq!(one.p50_ms, 6000.0);
    }

    #[test]
    fn an_event_loop_overlaps_the_waits() {
        let one = &predict(&[stream(5, 5, 2000)], Capacity::Unlimited)[0];
        assert_eq!(one.latencies_ms, vec![2000.0; 5]);
        assert!((one.rps - 2.5).abs() < 1e-9);
    }

    #[test]
    fn seed_002_gunicorn_capacity() {
        // 50 requests, 10 clients, 250 ms: 1 worker ≈ 4 req/s, 8 slots ≈ 32 req/s.
        let one = &predict(&[stream(50, 10, 250)], Capacity::Limited(1))[0];
        assert_eq!(one.total_s, 12.5);
        let eight = &predict(&[stream(50, 10, 250)], Capacity::Limited(8))[0];
        assert_eq!(eight.total_s, 1.75);
        assert_eq!(
            steady_throughput(10, Capacity::Limited(8), Duration::from_millis(250)),
            32.0
        );
    }

    #[test]
    fn a_slow_request_stalls_a_fast_one_on_one_thread() {
        let sleeper = stream(1, 1, 10_000);
        let activer = ClientStream {
            start: Duration::from_millis(500),
            ..stream(1, 1, 0)
        };
        let blocked = predict(&[sleeper.clone(), activer.clone()], Capacity::Limited(1));
        assert_eq!(blocked[1].max_ms, 9500.0);
        let looped = predict(&[sleeper, activer], Capacity::Unlimited);
        assert_eq!(looped[1].max_ms, 0.0);
    }
}
