//! When the requests of an open run fall due: evenly spaced (request i at
//! i / rate, as wrk2 and oha send them), or at random as independent
//! arrivals do (a Poisson process: the gaps between arrivals are
//! exponential, with mean 1 / rate), from a seed, so a run and the model
//! that predicts it see the same arrival times.

use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// How arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Request i due at i / rate.
    Even,
    /// A Poisson process: exponential gaps with mean 1 / rate, drawn from
    /// this seed (ChaCha8, the same sequence on every machine).
    Poisson { seed: u64 },
}

impl Arrivals {
    /// `even`, or `poisson (seed N)`.
    pub fn describe(self) -> String {
        match self {
            Arrivals::Even => "evenly spaced".into(),
            Arrivals::Poisson { seed } => format!("Poisson arrivals, seed {seed}"),
        }
    }
}

/// The due times of one open run, in order.
#[derive(Debug, Clone)]
pub struct Schedule {
    rate: f64,
    arrivals: Arrivals,
    rng: ChaCha8Rng,
    /// The next request's number, and (Poisson) its offset in seconds.
    next: u64,
    at_s: f64,
}

impl Schedule {
    pub fn new(rate: f64, arrivals: Arrivals) -> Schedule {
        let seed = match arrivals {
            Arrivals::Even => 0,
            Arrivals::Poisson { seed } => seed,
        };
        let mut schedule = Schedule {
            rate,
            arrivals,
            rng: ChaCha8Rng::seed_from_u64(seed),
            next: 0,
            at_s: 0.0,
        };
        // A Poisson process's first arrival comes one gap after the start.
        if let Arrivals::Poisson { .. } = arrivals {
            schedule.at_s = schedule.gap_s();
        }
        schedule
    }

    /// The next request: its number (from 0) and when it is due, after the
    /// start of the schedule.
    pub fn next_due(&mut self) -> (u64, Duration) {
        let number = self.next;
        self.next += 1;
        let offset = match self.arrivals {
            // From the number, not a running sum: no rounding creeps in.
            Arrivals::Even => number as f64 / self.rate,
            Arrivals::Poisson { .. } => {
                let at = self.at_s;
                self.at_s += self.gap_s();
                at
            }
        };
        (number, Duration::from_secs_f64(offset))
    }

    // ANCHOR: gap
    /// One exponential gap, mean 1 / rate: −ln(1 − U) / rate, U uniform
    /// in [0, 1) with 53 random bits.
    fn gap_s(&mut self) -> f64 {
        let uniform = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        -(1.0 - uniform).ln() / self.rate
    }
    // ANCHOR_END: gap
}

/// How many requests of a schedule fall due within `length` of its start:
/// what an open run of that length (`-z`) sends.
pub fn due_within(rate: f64, arrivals: Arrivals, length: Duration) -> u64 {
    let mut schedule = Schedule::new(rate, arrivals);
    let mut count = 0;
    while schedule.next_due().1 < length {
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(rate: f64, arrivals: Arrivals, count: usize) -> Vec<f64> {
        let mut schedule = Schedule::new(rate, arrivals);
        (0..count)
            .map(|_| schedule.next_due().1.as_secs_f64())
            .collect()
    }

    #[test]
    fn even_arrivals_are_i_over_the_rate() {
        let due = offsets(200.0, Arrivals::Even, 5);
        assert_eq!(due, [0.0, 0.005, 0.01, 0.015, 0.02]);
    }

    #[test]
    fn poisson_arrivals_keep_the_rate_and_vary_as_a_poisson_process_does() {
        let rate = 1000.0;
        let count = 100_000;
        let due = offsets(rate, Arrivals::Poisson { seed: 7 }, count);
        let gaps: Vec<f64> = due.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&gap| gap >= 0.0));
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        // The mean gap is 1 / rate within 2 % (its standard error over
        // 100,000 gaps is 0.3 %).
        assert!((mean * rate - 1.0).abs() < 0.02, "mean gap {mean}");
        // An exponential's standard deviation equals its mean; evenly
        // spaced gaps have none.
        let variance = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = variance.sqrt() / mean;
        assert!((cv - 1.0).abs() < 0.05, "coefficient of variation {cv}");
        // P(gap > mean) = e^-1 for an exponential.
        let above = gaps.iter().filter(|&&g| g > mean).count() as f64 / gaps.len() as f64;
        assert!((above - (-1.0f64).exp()).abs() < 0.01, "{above}");
    }

    #[test]
    fn a_run_sends_what_falls_due_within_its_length() {
        let second = Duration::from_secs(1);
        assert_eq!(due_within(200.0, Arrivals::Even, second), 200);
        let poisson = due_within(200.0, Arrivals::Poisson { seed: 1 }, second);
        // 200 on average; a Poisson count's standard deviation is √200 ≈ 14.
        assert!((130..=270).contains(&poisson), "{poisson}");
    }

    #[test]
    fn the_same_seed_gives_the_same_arrivals_and_another_seed_others() {
        let seven = offsets(100.0, Arrivals::Poisson { seed: 7 }, 50);
        assert_eq!(seven, offsets(100.0, Arrivals::Poisson { seed: 7 }, 50));
        assert_ne!(seven, offsets(100.0, Arrivals::Poisson { seed: 8 }, 50));
    }
}
