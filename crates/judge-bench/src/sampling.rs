//! Random draws the simulation needs, kept cheap: a binomial by chunked inversion and
//! log-normal latencies drawn straight into histogram buckets through an alias table.

use rampart_core::LatencyHistogram;
use rampart_core::histogram::{
    BUCKET_COUNT, bucket_lower_bound, bucket_midpoint, bucket_upper_bound,
};
use rand::Rng;
use rand::rngs::SmallRng;

/// Binomial(n, p) by inversion, in chunks whose mean stays ≤ 200 so that `(1−p)^m`
/// does not underflow. Exact, and fast for the small means a second of traffic has.
pub fn binomial(rng: &mut SmallRng, n: u64, p: f64) -> u64 {
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
    let (q, s) = (1.0 - p, p / (1.0 - p));
    let (mut left, mut total) = (n, 0);
    while left > 0 {
        let m = left.min(chunk);
        left -= m;
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

/// Standard normal CDF via the complementary error function (Numerical Recipes'
/// Chebyshev fit, relative error < 1.2e-7: far below one histogram bucket).
fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

/// A log-normal latency distribution over the histogram's buckets, sampled in O(1)
/// per request (Vose's alias method).
#[derive(Debug, Clone)]
pub struct LatencySampler {
    first_bucket: usize,
    threshold: Vec<u32>,
    alias: Vec<u32>,
    dense: Vec<u64>,
}

impl LatencySampler {
    /// `median_ms` and `sigma` of the log-normal.
    pub fn log_normal(median_ms: f64, sigma: f64) -> Self {
        let ln_median = (median_ms * 1_000.0).ln();
        let cdf = |us: f64| normal_cdf((us.max(1e-9).ln() - ln_median) / sigma);
        let probs: Vec<f64> = (0..BUCKET_COUNT)
            .map(|i| {
                let lo = bucket_lower_bound(i) as f64;
                let hi = (bucket_upper_bound(i) + 1) as f64;
                (cdf(hi) - cdf(lo)).max(0.0)
            })
            .collect();
        let first = probs.iter().position(|&p| p > 1e-12).unwrap_or(0);
        let last = probs.iter().rposition(|&p| p > 1e-12).unwrap_or(0);
        let support = &probs[first..=last];
        let total: f64 = support.iter().sum();
        let n = support.len();
        let mut scaled: Vec<f64> = support.iter().map(|p| p / total * n as f64).collect();
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        let threshold = scaled
            .iter()
            .map(|&p| (p.min(1.0) * u32::MAX as f64) as u32)
            .collect();
        Self {
            first_bucket: first,
            threshold,
            alias,
            dense: vec![0; BUCKET_COUNT],
        }
    }

    /// The latencies of `n` requests as one histogram.
    pub fn histogram(&mut self, rng: &mut SmallRng, n: u64) -> LatencyHistogram {
        let len = self.threshold.len() as u64;
        let mut sum_us = 0u64;
        for _ in 0..n {
            let r: u64 = rng.random();
            let slot = (((r >> 32) * len) >> 32) as usize;
            let bucket = if (r as u32) < self.threshold[slot] {
                slot
            } else {
                self.alias[slot] as usize
            } + self.first_bucket;
            self.dense[bucket] += 1;
            sum_us += bucket_midpoint(bucket);
        }
        let h = LatencyHistogram::from_dense(&self.dense, sum_us);
        let end = self.first_bucket + self.threshold.len();
        self.dense[self.first_bucket..end].fill(0);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn binomial_mean_is_right_for_small_and_large_rates() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mean = |rng: &mut SmallRng, n, p| {
            (0..4_000).map(|_| binomial(rng, n, p)).sum::<u64>() as f64 / 4_000.0
        };
        assert!((mean(&mut rng, 1_000, 0.1) - 100.0).abs() < 1.0);
        assert!((mean(&mut rng, 100, 0.9) - 90.0).abs() < 0.3);
        assert!((mean(&mut rng, 100_000, 0.01) - 1_000.0).abs() < 3.0);
    }

    #[test]
    fn log_normal_histogram_has_the_right_quantiles() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut s = LatencySampler::log_normal(100.0, 0.5);
        let h = s.histogram(&mut rng, 200_000);
        assert_eq!(h.count(), 200_000);
        let ms = |q| h.quantile_us(q).unwrap() as f64 / 1_000.0;
        assert!((ms(0.5) / 100.0 - 1.0).abs() < 0.04, "p50 {}", ms(0.5));
        // exp(1.645 * 0.5) = 2.277
        assert!((ms(0.95) / 227.7 - 1.0).abs() < 0.04, "p95 {}", ms(0.95));
        // Reuse leaves no counts behind.
        assert_eq!(s.histogram(&mut rng, 10).count(), 10);
    }
}
