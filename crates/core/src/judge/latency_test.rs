//! The sequential latency comparison: within each second, are the canary's requests
//! over-represented among the slowest requests of that second?
//!
//! For a quantile `q`, take one second's requests of both sets, with every stable
//! latency `s` raised to the bar `b(s) = max((1+tol)·s, s + slack)`: the largest
//! latency the canary may have for "no regression". Pool them and look at the
//! `k = ⌊(1−q)·N⌋` slowest of the `N` pooled values. Under `H0: canary ≤_st b(stable)`
//! for requests served in the same second (the split assigns requests at random, so
//! both sets see the same moment), the number `X` of canary requests among those `k`
//! is stochastically no larger than a Hypergeometric(N, n_c, k) draw, whatever the
//! latency of that second was. `ω^X` is convex, so by Hoeffding (1963, Thm. 4)
//! `E[ω^X] ≤ (1 + θ0(ω−1))^m` with `m = min(k, n_c)` draws and `θ0 = max(k, n_c)/N`
//! (the hypergeometric is symmetric in the two roles; the smaller `m` is the tighter
//! bound). That is exactly the batch factor of [`OddsRatioMixture`], so the product
//! over seconds is a test supermartingale and Ville's inequality bounds the chance of
//! ever crossing `1/α`. Anything that hits both sets in the same second (a load ramp,
//! a stall, a noisy neighbour, a slow dependency) moves both sides of the comparison
//! and cancels.
//!
//! The router keeps latencies in buckets, so the exact order inside a bucket is
//! unknown. The test for a regression counts every canary value at its bucket's lower
//! bound and every stable bar at its bucket's upper bound, and ranks a tie in stable's
//! favour: `X` can only come out smaller than the true count, never larger, so the
//! rounding is conservative (it widens the tolerance by at most one bucket, ≤ 1/32).
//! The opposite test (`within`, "a regression larger than the tolerance is ruled
//! out", for `require_confidence`) rounds the other way and uses the downward
//! mixture.
//!
//! Each second's evidence is capped ([`MAX_EVIDENCE_PER_SECOND`]): requests are
//! exchangeable across the sets within a second only up to how the host schedules
//! each instance, and a single canary instance can be starved for a moment where
//! stable's several average out. The cap keeps the test valid (a capped likelihood
//! ratio is still an e-value) and makes a regression prove itself over time.

use super::mixture::OddsRatioMixture;

/// The most evidence one second can carry (nats). A real regression shows in second
/// after second; a canary process starved of CPU for a moment (its single instance
/// against stable's several, on a busy host) shows in a few. At 0.4 a regression
/// needs about half a minute of consistently slow seconds to cross the bar.
const MAX_EVIDENCE_PER_SECOND: f64 = 0.4;
use crate::histogram::{LatencyHistogram, bucket_lower_bound, bucket_upper_bound};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuantileTest {
    pub quantile: f64,
    /// Evidence that the canary is slower than allowed.
    worse: OddsRatioMixture,
    /// Evidence that the canary is not slower than allowed.
    within: OddsRatioMixture,
    /// Canary requests among each second's slowest `1 − q` (counted in "no
    /// regression"'s favour), summed over the judged seconds.
    pub slow_canary: u64,
    /// The number of those expected under H0 at the boundary (`k·n_c/N` summed).
    pub slow_expected: f64,
    /// The slowest requests looked at (`k` summed).
    pub slowest: u64,
}

impl QuantileTest {
    fn new(quantile: f64) -> Self {
        Self {
            quantile,
            worse: OddsRatioMixture::new().capped(MAX_EVIDENCE_PER_SECOND),
            within: OddsRatioMixture::downward().capped(MAX_EVIDENCE_PER_SECOND),
            slow_canary: 0,
            slow_expected: 0.0,
            slowest: 0,
        }
    }

    #[cfg(test)]
    pub fn e_value(&self) -> f64 {
        self.worse.e_value()
    }

    /// The largest evidence of a regression seen so far.
    pub fn max_e_value(&self) -> f64 {
        self.worse.max_e_value()
    }

    /// The largest evidence that no regression beyond the tolerance exists.
    pub fn max_within_e_value(&self) -> f64 {
        self.within.max_e_value()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencyTest {
    tolerance: f64,
    /// Absolute slack in µs: the bar is at least this far above a stable latency.
    min_delta_us: f64,
    pub quantiles: Vec<QuantileTest>,
    /// Both sets over the judged seconds (those where both took traffic), for the
    /// quantile estimates in evidence.
    pub canary_total: LatencyHistogram,
    pub stable_total: LatencyHistogram,
    /// Canary requests in the judged seconds.
    pub judged: u64,
}

/// One side of a second's pooled comparison: (value in µs, count), slowest first.
type Ranked = Vec<(f64, u64)>;

impl LatencyTest {
    /// `quantiles` in (0, 1); `tolerance` as a fraction (0.1 = 10 %); `min_delta_us`
    /// the absolute slack.
    pub fn new(quantiles: &[f64], tolerance: f64, min_delta_us: f64) -> Self {
        let mut qs: Vec<f64> = quantiles
            .iter()
            .copied()
            .filter(|q| *q > 0.0 && *q < 1.0)
            .collect();
        qs.sort_by(f64::total_cmp);
        qs.dedup();
        Self {
            tolerance: if tolerance.is_finite() {
                tolerance.max(0.0)
            } else {
                0.0
            },
            min_delta_us: if min_delta_us.is_finite() {
                min_delta_us.max(0.0)
            } else {
                0.0
            },
            quantiles: qs.into_iter().map(QuantileTest::new).collect(),
            canary_total: LatencyHistogram::new(),
            stable_total: LatencyHistogram::new(),
            judged: 0,
        }
    }

    /// The latency the canary may have where stable has `stable_us`.
    fn bar(&self, stable_us: f64) -> f64 {
        (stable_us * (1.0 + self.tolerance)).max(stable_us + self.min_delta_us)
    }

    /// One second of both sets.
    pub fn observe(&mut self, stable: &LatencyHistogram, canary: &LatencyHistogram) {
        let (n_s, n_c) = (stable.count(), canary.count());
        if n_s == 0 || n_c == 0 {
            // One set alone says nothing about the comparison.
            return;
        }
        self.stable_total.merge(stable);
        self.canary_total.merge(canary);
        self.judged += n_c;
        let n = n_s + n_c;
        let ks: Vec<u64> = self
            .quantiles
            .iter()
            // The epsilon keeps e.g. 0.1 × 200 at 20 despite 1 − 0.9 < 0.1 in floats.
            .map(|t| ((1.0 - t.quantile) * n as f64 + 1e-9).floor() as u64)
            .collect();

        // In "no regression"'s favour: canary low, stable bars high, ties to stable.
        let canary_low = ranked(canary, |i| bucket_lower_bound(i) as f64);
        let stable_high = ranked(stable, |i| self.bar(bucket_upper_bound(i) as f64));
        let worse_counts = canary_among_slowest(&canary_low, &stable_high, &ks, false);
        // In the regression's favour, for the opposite test.
        let canary_high = ranked(canary, |i| bucket_upper_bound(i) as f64);
        let stable_low = ranked(stable, |i| self.bar(bucket_lower_bound(i) as f64));
        let within_counts = canary_among_slowest(&canary_high, &stable_low, &ks, true);

        for (((test, &k), &worse), &within) in self
            .quantiles
            .iter_mut()
            .zip(&ks)
            .zip(&worse_counts)
            .zip(&within_counts)
        {
            if k == 0 {
                continue;
            }
            // Hoeffding's bound with the two roles of the hypergeometric swapped when
            // that gives fewer draws (see the module docs).
            let draws = k.min(n_c);
            let theta0 = k.max(n_c) as f64 / n as f64;
            test.worse.observe(worse as f64, draws, theta0);
            test.within.observe(within as f64, draws, theta0);
            test.slow_canary += worse;
            test.slow_expected += k as f64 * n_c as f64 / n as f64;
            test.slowest += k;
        }
    }
}

/// A histogram's buckets as (value, count), slowest first, each bucket valued by
/// `value` (a function of its index, increasing with it).
fn ranked(h: &LatencyHistogram, value: impl Fn(usize) -> f64) -> Ranked {
    let mut out: Ranked = h.buckets().map(|(i, c)| (value(i), c)).collect();
    out.reverse();
    out
}

/// For each `k` in `ks` (in any order), how many canary requests are among the `k`
/// slowest of the pooled requests; ties go to the canary only when `canary_first`.
fn canary_among_slowest(
    canary: &Ranked,
    stable: &Ranked,
    ks: &[u64],
    canary_first: bool,
) -> Vec<u64> {
    let mut counts = vec![0; ks.len()];
    // One walk down the pooled order answers every k, smallest first.
    let mut order: Vec<usize> = (0..ks.len()).collect();
    order.sort_by_key(|&i| ks[i]);
    let (mut ci, mut si) = (0, 0);
    // What is left of the current entry on each side.
    let mut c_left = canary.first().map_or(0, |e| e.1);
    let mut s_left = stable.first().map_or(0, |e| e.1);
    let (mut taken, mut canary_taken) = (0u64, 0u64);
    for slot in order {
        let k = ks[slot];
        while taken < k {
            let c = canary.get(ci).map(|e| e.0);
            let s = stable.get(si).map(|e| e.0);
            let take_canary = match (c, s) {
                (Some(c), Some(s)) => c > s || (c == s && canary_first),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let want = k - taken;
            if take_canary {
                let n = c_left.min(want);
                c_left -= n;
                taken += n;
                canary_taken += n;
                if c_left == 0 {
                    ci += 1;
                    c_left = canary.get(ci).map_or(0, |e| e.1);
                }
            } else {
                let n = s_left.min(want);
                s_left -= n;
                taken += n;
                if s_left == 0 {
                    si += 1;
                    s_left = stable.get(si).map_or(0, |e| e.1);
                }
            }
        }
        counts[slot] = canary_taken;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn spread(from_us: u64, count: u64, step_us: u64) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for i in 0..count {
            h.record(from_us + i * step_us);
        }
        h
    }

    #[test]
    fn slower_canary_builds_evidence_same_canary_does_not() {
        let mut slow = LatencyTest::new(&[0.5, 0.95], 0.1, 0.0);
        let mut same = LatencyTest::new(&[0.5, 0.95], 0.1, 0.0);
        let stable = spread(50_000, 900, 100); // 50..140 ms
        let same_canary = spread(50_000, 100, 900);
        let slow_canary = spread(65_000, 100, 1_170); // everything 30 % slower
        for _ in 0..60 {
            slow.observe(&stable, &slow_canary);
            same.observe(&stable, &same_canary);
        }
        assert!(slow.quantiles.iter().all(|t| t.e_value() > 1e4));
        assert!(same.quantiles.iter().all(|t| t.e_value() < 1.0));
        assert!(same.quantiles.iter().all(|t| t.max_within_e_value() > 1e4));
        assert!(slow.quantiles.iter().all(|t| t.max_within_e_value() < 10.0));
    }

    #[test]
    fn latency_that_hits_both_sets_in_the_same_second_cancels() {
        // Latency ramps ×4 and back, and every 20th second stalls by 50 ms, for both
        // sets alike: the canary is never over-represented among the slowest.
        let mut t = LatencyTest::new(&[0.5, 0.9, 0.95, 0.99], 0.1, 1_000.0);
        let mut rng = StdRng::seed_from_u64(7);
        for second in 0..600u64 {
            let phase = (second % 120) as f64 / 120.0;
            let factor = 1.0 + 3.0 * (1.0 - (2.0 * phase - 1.0).abs());
            let stall = if second % 20 == 0 { 50_000.0 } else { 0.0 };
            let mut draw = |n: u64| {
                let mut h = LatencyHistogram::new();
                for _ in 0..n {
                    let base: f64 = 500.0 + rng.random::<f64>() * 1_500.0;
                    h.record((base * factor + stall) as u64);
                }
                h
            };
            let (stable, canary) = (draw(180), draw(20));
            t.observe(&stable, &canary);
        }
        for q in &t.quantiles {
            assert!(
                q.max_e_value() < 10.0,
                "q{} e={}",
                q.quantile,
                q.max_e_value()
            );
        }
    }

    #[test]
    fn buckets_never_count_a_tie_against_the_canary() {
        // Identical values in identical buckets, no tolerance: every tie goes to
        // stable, so no canary request is counted among the slowest.
        let mut t = LatencyTest::new(&[0.5, 0.9], 0.0, 0.0);
        let h = spread(10_000, 100, 0);
        for _ in 0..100 {
            t.observe(&h, &h);
        }
        assert_eq!(t.quantiles[0].slow_canary, 0);
        assert!(t.quantiles.iter().all(|q| q.e_value() < 1.0));
    }

    #[test]
    fn bucket_rounding_is_conservative_against_exact_ranks() {
        // Canary values are within the same buckets as the stable bars: the exact
        // count would be positive, the rounded count never exceeds it.
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let stable: Vec<u64> = (0..50).map(|_| rng.random_range(5_000..6_000)).collect();
            let canary: Vec<u64> = (0..50).map(|_| rng.random_range(5_400..6_600)).collect();
            let tol = 0.1;
            let bar = |s: u64| (s as f64 * (1.0 + tol)).max(s as f64);
            let mut pooled: Vec<(f64, bool)> = stable
                .iter()
                .map(|&s| (bar(s), false))
                .chain(canary.iter().map(|&c| (c as f64, true)))
                .collect();
            pooled.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let k = 25;
            let exact = pooled[..k].iter().filter(|p| p.1).count() as u64;
            let mut t = LatencyTest::new(&[0.75], tol, 0.0);
            let hist = |v: &[u64]| {
                let mut h = LatencyHistogram::new();
                v.iter().for_each(|&x| h.record(x));
                h
            };
            t.observe(&hist(&stable), &hist(&canary));
            assert!(t.quantiles[0].slow_canary <= exact);
        }
    }

    #[test]
    fn one_silent_set_carries_no_evidence() {
        let mut t = LatencyTest::new(&[0.5], 0.1, 0.0);
        t.observe(&LatencyHistogram::new(), &spread(500_000, 20, 1_000));
        t.observe(&spread(1_000, 20, 10), &LatencyHistogram::new());
        assert_eq!(t.quantiles[0].slowest, 0);
        assert_eq!(t.judged, 0);
    }

    #[test]
    fn counts_among_slowest_merge_both_sides() {
        let canary = vec![(30.0, 2), (10.0, 3)];
        let stable = vec![(20.0, 4), (10.0, 1)];
        assert_eq!(
            canary_among_slowest(&canary, &stable, &[1, 3, 6, 9, 20], false),
            vec![1, 2, 2, 4, 5]
        );
        assert_eq!(canary_among_slowest(&canary, &stable, &[7], true), vec![3]);
        assert_eq!(
            canary_among_slowest(&canary, &stable, &[9, 1], false),
            vec![4, 1]
        );
    }
}
