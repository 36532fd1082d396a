//! Simulated traffic with known truth, for the judges' statistical tests.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock::Timestamp;
use crate::histogram::LatencyHistogram;
use crate::sample::{SetSample, WindowSample};

/// Binomial(n, p) by inversion, in chunks small enough that `(1−p)^m` stays finite.
pub fn binomial(rng: &mut StdRng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if p > 0.5 {
        return n - binomial(rng, n, 1.0 - p);
    }
    let chunk = ((200.0 / p) as u64).max(1);
    let (mut left, mut total) = (n, 0);
    while left > 0 {
        let m = left.min(chunk);
        left -= m;
        let (q, s) = (1.0 - p, p / (1.0 - p));
        let a = (m + 1) as f64 * s;
        let mut r = q.powf(m as f64);
        let mut u: f64 = rng.random();
        let mut x = 0;
        while u > r && x < m {
            u -= r;
            x += 1;
            r *= a / x as f64 - s;
        }
        total += x;
    }
    total
}

/// One set's behaviour: error probability and log-normal latency.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    pub error_rate: f64,
    /// Median latency in milliseconds; 0 records no latencies (error-only tests).
    pub median_ms: f64,
    pub sigma: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Stream {
    pub rps: u64,
    pub canary_share: f64,
    pub stable: Behaviour,
    pub canary: Behaviour,
}

impl Stream {
    pub fn healthy(rps: u64, canary_share: f64, error_rate: f64) -> Self {
        let b = Behaviour {
            error_rate,
            median_ms: 100.0,
            sigma: 0.5,
        };
        Self {
            rps,
            canary_share,
            stable: b,
            canary: b,
        }
    }

    pub fn without_latency(mut self) -> Self {
        self.stable.median_ms = 0.0;
        self.canary.median_ms = 0.0;
        self
    }

    pub fn second(&self, rng: &mut StdRng, t: u64) -> WindowSample {
        let canary_n = binomial(rng, self.rps, self.canary_share);
        WindowSample {
            start: Timestamp(t * 1_000),
            end: Timestamp((t + 1) * 1_000),
            stable: set(rng, self.rps - canary_n, self.stable),
            canary: set(rng, canary_n, self.canary),
        }
    }
}

fn set(rng: &mut StdRng, requests: u64, b: Behaviour) -> SetSample {
    let mut latency = LatencyHistogram::new();
    if b.median_ms > 0.0 {
        for _ in 0..requests {
            // Box–Muller: one standard normal per request.
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            latency.record((b.median_ms * 1_000.0 * (b.sigma * z).exp()) as u64);
        }
    }
    SetSample {
        requests,
        errors: binomial(rng, requests, b.error_rate),
        latency,
    }
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

#[test]
fn binomial_has_the_right_mean() {
    let mut r = rng(1);
    let total: u64 = (0..2_000).map(|_| binomial(&mut r, 1_000, 0.3)).sum();
    let mean = total as f64 / 2_000.0;
    assert!((mean - 300.0).abs() < 2.0, "{mean}");
    let small: u64 = (0..2_000).map(|_| binomial(&mut r, 100_000, 0.004)).sum();
    assert!((small as f64 / 2_000.0 - 400.0).abs() < 3.0);
}
