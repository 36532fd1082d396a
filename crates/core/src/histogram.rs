//! A log-linear latency histogram shared by the router (which records) and the judges
//! (which read quantiles and tail shares).
//!
//! Values are microseconds. Below 64 µs every value has its own bucket; above, each
//! power of two is split into 32 sub-buckets, so any value is known to within 1/32
//! (≈3 %) — finer than any latency regression worth judging. Values above
//! [`MAX_TRACKABLE_US`] (≈134 s) land in the last bucket.
//!
//! The layout is a pure function of the value, so the router can keep the same buckets
//! in atomics and hand out plain [`LatencyHistogram`]s per window.

use serde::{Deserialize, Serialize};

const LINEAR_LIMIT: u64 = 64;
const SUB_BUCKET_BITS: u32 = 5;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
const MAX_EXPONENT: u32 = 27;
/// The largest value with its own bucket.
pub const MAX_TRACKABLE_US: u64 = (1 << (MAX_EXPONENT + 1)) - 1;
/// How many buckets the layout has.
pub const BUCKET_COUNT: usize = LINEAR_LIMIT as usize + (MAX_EXPONENT as usize - 5) * SUB_BUCKETS;

/// The bucket a value in microseconds falls into.
pub fn bucket_index(value_us: u64) -> usize {
    let v = value_us.min(MAX_TRACKABLE_US);
    if v < LINEAR_LIMIT {
        return v as usize;
    }
    let exponent = 63 - v.leading_zeros(); // >= 6
    let sub = ((v >> (exponent - SUB_BUCKET_BITS)) as usize) & (SUB_BUCKETS - 1);
    LINEAR_LIMIT as usize + (exponent as usize - 6) * SUB_BUCKETS + sub
}

/// The smallest value (µs) that falls into bucket `index`.
pub fn bucket_lower_bound(index: usize) -> u64 {
    if index < LINEAR_LIMIT as usize {
        return index as u64;
    }
    let rel = index - LINEAR_LIMIT as usize;
    let exponent = (rel / SUB_BUCKETS) as u32 + 6;
    let sub = (rel % SUB_BUCKETS) as u64;
    (1u64 << exponent) + (sub << (exponent - SUB_BUCKET_BITS))
}

/// The largest value (µs) that falls into bucket `index`.
pub fn bucket_upper_bound(index: usize) -> u64 {
    if index + 1 >= BUCKET_COUNT {
        MAX_TRACKABLE_US
    } else {
        bucket_lower_bound(index + 1) - 1
    }
}

/// A representative value for a bucket: its midpoint.
pub fn bucket_midpoint(index: usize) -> u64 {
    let lo = bucket_lower_bound(index);
    let hi = bucket_upper_bound(index);
    lo + (hi - lo) / 2
}

/// Counts per bucket. Stored sparsely so that per-second windows stay small.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// (bucket index, count), sorted by bucket index, no zero counts.
    buckets: Vec<(u16, u64)>,
    count: u64,
    sum_us: u64,
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a histogram from dense per-bucket counts (as the router keeps them).
    pub fn from_dense(counts: &[u64], sum_us: u64) -> Self {
        let mut buckets = Vec::new();
        let mut count = 0;
        for (i, &c) in counts.iter().enumerate().take(BUCKET_COUNT) {
            if c > 0 {
                buckets.push((i as u16, c));
                count += c;
            }
        }
        Self {
            buckets,
            count,
            sum_us,
        }
    }

    pub fn record(&mut self, value_us: u64) {
        self.record_n(value_us, 1);
    }

    pub fn record_n(&mut self, value_us: u64, n: u64) {
        if n == 0 {
            return;
        }
        let idx = bucket_index(value_us) as u16;
        match self.buckets.binary_search_by_key(&idx, |&(i, _)| i) {
            Ok(pos) => self.buckets[pos].1 += n,
            Err(pos) => self.buckets.insert(pos, (idx, n)),
        }
        self.count += n;
        self.sum_us = self.sum_us.saturating_add(value_us.saturating_mul(n));
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.count == 0 {
            return;
        }
        let mut merged = Vec::with_capacity(self.buckets.len().max(other.buckets.len()));
        let (mut a, mut b) = (
            self.buckets.iter().peekable(),
            other.buckets.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(ia, ca)), Some(&&(ib, cb))) => {
                    if ia == ib {
                        merged.push((ia, ca + cb));
                        a.next();
                        b.next();
                    } else if ia < ib {
                        merged.push((ia, ca));
                        a.next();
                    } else {
                        merged.push((ib, cb));
                        b.next();
                    }
                }
                (Some(&&x), None) => {
                    merged.push(x);
                    a.next();
                }
                (None, Some(&&y)) => {
                    merged.push(y);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.buckets = merged;
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn mean_us(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_us as f64 / self.count as f64)
    }

    /// The value at quantile `q` (0.0..=1.0), as the midpoint of the bucket holding the
    /// rank `ceil(q * count)`. `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(idx, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(bucket_midpoint(idx as usize));
            }
        }
        self.buckets
            .last()
            .map(|&(idx, _)| bucket_midpoint(idx as usize))
    }

    /// How many recorded values are strictly above `threshold_us`, counting a bucket as
    /// above when its lower bound is above the threshold's bucket.
    pub fn count_above(&self, threshold_us: u64) -> u64 {
        let t = bucket_index(threshold_us) as u16;
        self.buckets
            .iter()
            .filter(|&&(idx, _)| idx > t)
            .map(|&(_, c)| c)
            .sum()
    }

    /// (bucket index, count) pairs in ascending order.
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.buckets.iter().map(|&(i, c)| (i as usize, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_contiguous_and_monotone() {
        for i in 0..BUCKET_COUNT - 1 {
            assert_eq!(
                bucket_upper_bound(i) + 1,
                bucket_lower_bound(i + 1),
                "bucket {i}"
            );
            assert_eq!(bucket_index(bucket_lower_bound(i)), i);
            assert_eq!(bucket_index(bucket_upper_bound(i)), i);
        }
        assert_eq!(bucket_index(u64::MAX), BUCKET_COUNT - 1);
    }

    #[test]
    fn relative_error_is_within_one_thirty_second() {
        for v in [70u64, 1_000, 12_345, 250_000, 3_000_000, 90_000_000] {
            let mid = bucket_midpoint(bucket_index(v));
            let err = (mid as f64 - v as f64).abs() / v as f64;
            assert!(err <= 1.0 / 32.0, "{v} -> {mid}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let mut h = LatencyHistogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 100); // 100 µs .. 1 s
        }
        let p50 = h.quantile_us(0.5).unwrap() as f64;
        let p99 = h.quantile_us(0.99).unwrap() as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.04, "p50 {p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.04, "p99 {p99}");
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        let mut all = LatencyHistogram::new();
        for v in 0..500u64 {
            let x = v * 37 % 9_000;
            if v % 2 == 0 {
                a.record(x)
            } else {
                b.record(x)
            }
            all.record(x);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }

    #[test]
    fn dense_round_trip() {
        let mut dense = vec![0u64; BUCKET_COUNT];
        dense[bucket_index(5_000)] = 3;
        dense[bucket_index(100)] = 2;
        let h = LatencyHistogram::from_dense(&dense, 15_200);
        assert_eq!(h.count(), 5);
        assert_eq!(h.count_above(1_000), 3);
        assert_eq!(h.quantile_us(0.0), Some(bucket_midpoint(bucket_index(100))));
    }
}
