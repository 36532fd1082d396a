//! Cumulative counters of one (set, version), the source of the Prometheus series.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (seconds) of the exported duration histogram: coarse on purpose; the
/// exact per-second histograms are in the windows.
pub(crate) const DURATION_BOUNDS_SECS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
pub(crate) struct SetCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) classes: [AtomicU64; 5],
    pub(crate) errors: AtomicU64,
    /// Failed attempts retried on another instance (counted as errors here; the
    /// retry's answer went to the client uncounted).
    pub(crate) retries: AtomicU64,
    pub(crate) in_flight: AtomicI64,
    /// Non-cumulative counts per bound, plus one for "above the last bound".
    duration_buckets: [AtomicU64; DURATION_BOUNDS_SECS.len() + 1],
    duration_sum_us: AtomicU64,
}

impl SetCounters {
    pub(crate) fn record(&self, class: usize, error: bool, latency_us: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.classes[class].fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = latency_us as f64 / 1e6;
        let bucket = DURATION_BOUNDS_SECS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(DURATION_BOUNDS_SECS.len());
        self.duration_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us
            .fetch_add(latency_us, Ordering::Relaxed);
    }

    /// (sum in seconds, count, per-bucket (upper bound, count) pairs ending in +Inf).
    /// Counts are per bucket: the text encoder makes them cumulative.
    pub(crate) fn duration_histogram(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(DURATION_BOUNDS_SECS.len() + 1);
        for (i, counter) in self.duration_buckets.iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            total += count;
            let bound = DURATION_BOUNDS_SECS.get(i).copied().unwrap_or(f64::MAX);
            buckets.push((bound, count));
        }
        let sum = self.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, total, buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_add_up_to_the_count() {
        let c = SetCounters::default();
        c.record(1, false, 800); // 0.8 ms
        c.record(1, false, 40_000); // 40 ms
        c.record(4, true, 20_000_000); // 20 s
        let (sum, count, buckets) = c.duration_histogram();
        assert_eq!(count, 3);
        assert!((sum - 20.0408).abs() < 1e-9);
        assert_eq!(buckets[0], (0.001, 1));
        assert_eq!(buckets[5], (0.05, 1));
        assert_eq!(buckets.last(), Some(&(f64::MAX, 1)));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        assert_eq!(c.errors.load(Ordering::Relaxed), 1);
    }
}
