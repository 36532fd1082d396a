//! The sequential latency comparison: is the canary's q-quantile more than
//! `(1 + tolerance)` times stable's, for q in a few quantiles that matter?
//!
//! `H0_q: P(canary latency > (1+tol)·Q_stable(q)) ≤ 1 − q`. Each second, the stable
//! set's recent latencies (a sliding window that includes this second: the canary's
//! requests of the second are independent of the stable requests that set the bar)
//! give a bar `τ_t`, taken from a conservative upper bound of stable's q-quantile
//! and rounded up to whole histogram buckets. The canary requests of the second
//! above `τ_t` are then Binomial(n_t, ≤ 1−q) under H0 and feed an
//! [`OddsRatioMixture`]. The window tracks drift that hits both sets (load, a slow
//! dependency) so that it does not read as a canary regression.

use std::collections::VecDeque;

use super::mixture::OddsRatioMixture;
use crate::histogram::{BUCKET_COUNT, LatencyHistogram, bucket_upper_bound};

/// How many standard errors above the empirical quantile the stable bar sits, so that
/// sampling noise in stable's quantile rarely makes the bar too low.
const QUANTILE_UPPER_Z: f64 = 3.0;
/// Stable requests expected above the quantile before the bar is trusted, e.g. p99
/// needs 2 000 stable requests in the window.
const MIN_STABLE_TAIL: f64 = 20.0;

#[derive(Debug, Clone, PartialEq)]
pub struct QuantileTest {
    pub quantile: f64,
    mixture: OddsRatioMixture,
    /// Canary requests above the bar, and canary requests judged, over all seconds.
    pub exceeding: u64,
    pub judged: u64,
    /// The most recent bar in microseconds, for evidence.
    pub last_bar_us: Option<u64>,
}

impl QuantileTest {
    fn new(quantile: f64) -> Self {
        Self {
            quantile,
            mixture: OddsRatioMixture::new(),
            exceeding: 0,
            judged: 0,
            last_bar_us: None,
        }
    }

    /// The share of canary requests allowed above the bar under H0.
    pub fn allowed_share(&self) -> f64 {
        1.0 - self.quantile
    }

    #[cfg(test)]
    pub fn e_value(&self) -> f64 {
        self.mixture.e_value()
    }

    pub fn max_e_value(&self) -> f64 {
        self.mixture.max_e_value()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LatencyTest {
    tolerance: f64,
    window_len: usize,
    window: VecDeque<LatencyHistogram>,
    /// Dense bucket counts of the stable window.
    window_counts: Vec<u64>,
    window_total: u64,
    pub quantiles: Vec<QuantileTest>,
    /// Everything since the start, for the quantile estimates in evidence.
    pub canary_total: LatencyHistogram,
    pub stable_total: LatencyHistogram,
}

impl LatencyTest {
    /// `quantiles` in (0, 1); `tolerance` as a fraction (0.1 = 10 %);
    /// `window_len` in observations (seconds).
    pub fn new(quantiles: &[f64], tolerance: f64, window_len: usize) -> Self {
        let mut qs: Vec<f64> = quantiles
            .iter()
            .copied()
            .filter(|q| *q > 0.0 && *q < 1.0)
            .collect();
        qs.sort_by(f64::total_cmp);
        qs.dedup();
        Self {
            tolerance: tolerance.max(0.0),
            window_len: window_len.max(1),
            window: VecDeque::new(),
            window_counts: vec![0; BUCKET_COUNT],
            window_total: 0,
            quantiles: qs.into_iter().map(QuantileTest::new).collect(),
            canary_total: LatencyHistogram::new(),
            stable_total: LatencyHistogram::new(),
        }
    }

    pub fn observe(&mut self, stable: &LatencyHistogram, canary: &LatencyHistogram) {
        self.slide_window(stable);
        self.stable_total.merge(stable);
        self.canary_total.merge(canary);
        if canary.is_empty() || self.window_total == 0 {
            return;
        }
        let bars = self.stable_bars();
        let n = canary.count();
        for (test, bar) in self.quantiles.iter_mut().zip(bars) {
            let Some(stable_bar_us) = bar else {
                continue;
            };
            let bar_us = (stable_bar_us as f64 * (1.0 + self.tolerance)).ceil() as u64;
            // count_above counts only buckets entirely above the bar's bucket: every
            // counted request is certainly slower than the bar.
            let above = canary.count_above(bar_us);
            test.mixture.observe(above, n, test.allowed_share());
            test.exceeding += above;
            test.judged += n;
            test.last_bar_us = Some(bar_us);
        }
    }

    fn slide_window(&mut self, stable: &LatencyHistogram) {
        for (idx, c) in stable.buckets() {
            self.window_counts[idx] += c;
        }
        self.window_total += stable.count();
        self.window.push_back(stable.clone());
        while self.window.len() > self.window_len {
            if let Some(old) = self.window.pop_front() {
                for (idx, c) in old.buckets() {
                    self.window_counts[idx] -= c;
                }
                self.window_total -= old.count();
            }
        }
    }

    /// For each quantile (ascending), the upper bound of the bucket holding stable's
    /// upper-confidence rank, or `None` when the window is too thin for that quantile.
    fn stable_bars(&self) -> Vec<Option<u64>> {
        let n = self.window_total as f64;
        let ranks: Vec<Option<u64>> = self
            .quantiles
            .iter()
            .map(|t| {
                let q = t.quantile;
                if n * (1.0 - q) < MIN_STABLE_TAIL {
                    return None;
                }
                let rank = (n * q + QUANTILE_UPPER_Z * (n * q * (1.0 - q)).sqrt()).ceil() + 1.0;
                (rank <= n).then_some(rank as u64)
            })
            .collect();
        let mut bars = vec![None; ranks.len()];
        let mut seen = 0u64;
        let mut next = 0usize;
        for (idx, &c) in self.window_counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            seen += c;
            while next < ranks.len() {
                match ranks[next] {
                    None => next += 1,
                    Some(r) if r <= seen => {
                        bars[next] = Some(bucket_upper_bound(idx));
                        next += 1;
                    }
                    Some(_) => break,
                }
            }
            if next == ranks.len() {
                break;
            }
        }
        bars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(from_us: u64, count: u64, step_us: u64) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for i in 0..count {
            h.record(from_us + i * step_us);
        }
        h
    }

    #[test]
    fn slower_canary_builds_evidence_same_canary_does_not() {
        let mut slow = LatencyTest::new(&[0.5, 0.95], 0.1, 30);
        let mut same = LatencyTest::new(&[0.5, 0.95], 0.1, 30);
        let stable = spread(50_000, 900, 100); // 50..140 ms
        let same_canary = spread(50_000, 100, 900);
        let slow_canary = spread(65_000, 100, 1_170); // everything 30 % slower
        for _ in 0..60 {
            slow.observe(&stable, &slow_canary);
            same.observe(&stable, &same_canary);
        }
        assert!(slow.quantiles.iter().all(|t| t.e_value() > 1e4));
        assert!(same.quantiles.iter().all(|t| t.e_value() < 1.0));
    }

    #[test]
    fn thin_stable_traffic_sets_no_bar_for_high_quantiles() {
        let mut t = LatencyTest::new(&[0.5, 0.99], 0.1, 30);
        // 100 stable requests: 50 above p50 (enough), 1 above p99 (not enough).
        let stable = spread(50_000, 100, 1_000);
        let canary = spread(500_000, 20, 1_000);
        t.observe(&stable, &canary);
        assert!(t.quantiles[0].last_bar_us.is_some());
        assert_eq!(t.quantiles[1].last_bar_us, None);
        assert_eq!(t.quantiles[1].judged, 0);
    }

    #[test]
    fn window_forgets_old_stable_seconds() {
        let mut t = LatencyTest::new(&[0.5], 0.0, 2);
        t.observe(&spread(1_000_000, 100, 0), &LatencyHistogram::new());
        t.observe(&spread(10_000, 100, 0), &LatencyHistogram::new());
        t.observe(&spread(10_000, 100, 0), &spread(20_000, 10, 0));
        // The 1 s second has left the window: the bar sits near 10 ms.
        let bar = t.quantiles[0].last_bar_us.unwrap();
        assert!(bar < 11_000, "{bar}");
        assert_eq!(t.quantiles[0].exceeding, 10);
    }
}
