//! Cumulative counters of one (set, version), the source of the Prometheus series.
//! Each worker counts in its own copy ([`PerWorker`]); readers add them up.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::per_worker::PerWorker;

/// Upper bounds (seconds) of the exported duration histogram: coarse on purpose; the
/// exact per-second histograms are in the windows.
pub(crate) const DURATION_BOUNDS_SECS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One worker's counts. A request holds its worker's (an `Arc` of its own, padded, so
/// taking and dropping that reference also stays on the worker's cache lines).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    requests: AtomicU64,
    classes: [AtomicU64; 5],
    errors: AtomicU64,
    retries: AtomicU64,
    /// Can go negative in one copy (a request that ended on another thread than it
    /// started); the sum is right.
    in_flight: AtomicI64,
    /// Non-cumulative counts per bound, plus one for "above the last bound".
    duration_buckets: [AtomicU64; DURATION_BOUNDS_SECS.len() + 1],
    duration_sum_us: AtomicU64,
}

pub(crate) type WorkerCounts = Arc<CachePadded<Counts>>;

impl Counts {
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

    /// A failed attempt is about to be retried on another instance (counted as an
    /// error here; the retry's answer goes to the client uncounted).
    pub(crate) fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request_ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(crate) struct SetCounters(PerWorker<WorkerCounts>);

impl SetCounters {
    pub(crate) fn new(workers: usize) -> Self {
        Self(PerWorker::new(workers, WorkerCounts::default))
    }

    /// The calling worker's counts.
    pub(crate) fn mine(&self) -> &WorkerCounts {
        self.0.mine()
    }

    pub(crate) fn requests(&self) -> u64 {
        self.0.sum(|c| c.requests.load(Ordering::Relaxed))
    }

    pub(crate) fn errors(&self) -> u64 {
        self.0.sum(|c| c.errors.load(Ordering::Relaxed))
    }

    pub(crate) fn retries(&self) -> u64 {
        self.0.sum(|c| c.retries.load(Ordering::Relaxed))
    }

    /// Responses by status class: index 0 is 1xx … index 4 is 5xx.
    pub(crate) fn classes(&self) -> [u64; 5] {
        std::array::from_fn(|class| self.0.sum(|c| c.classes[class].load(Ordering::Relaxed)))
    }

    pub(crate) fn in_flight(&self) -> u64 {
        let total: i64 = self
            .0
            .iter()
            .map(|c| c.in_flight.load(Ordering::Relaxed))
            .sum();
        total.max(0) as u64
    }

    /// (sum in seconds, count, per-bucket (upper bound, count) pairs ending in +Inf).
    /// Counts are per bucket: the text encoder makes them cumulative.
    pub(crate) fn duration_histogram(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(DURATION_BOUNDS_SECS.len() + 1);
        for i in 0..DURATION_BOUNDS_SECS.len() + 1 {
            let count = self
                .0
                .sum(|c| c.duration_buckets[i].load(Ordering::Relaxed));
            total += count;
            let bound = DURATION_BOUNDS_SECS.get(i).copied().unwrap_or(f64::MAX);
            buckets.push((bound, count));
        }
        let sum = self.0.sum(|c| c.duration_sum_us.load(Ordering::Relaxed)) as f64 / 1e6;
        (sum, total, buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_add_up_to_the_count() {
        let c = SetCounters::new(1);
        c.mine().record(1, false, 800); // 0.8 ms
        c.mine().record(1, false, 40_000); // 40 ms
        c.mine().record(4, true, 20_000_000); // 20 s
        let (sum, count, buckets) = c.duration_histogram();
        assert_eq!(count, 3);
        assert!((sum - 20.0408).abs() < 1e-9);
        assert_eq!(buckets[0], (0.001, 1));
        assert_eq!(buckets[5], (0.05, 1));
        assert_eq!(buckets.last(), Some(&(f64::MAX, 1)));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        assert_eq!(c.errors(), 1);
    }

    #[test]
    fn readers_add_up_every_workers_counts() {
        let c = SetCounters::new(2);
        std::thread::scope(|scope| {
            for worker in 0..2 {
                let c = &c;
                scope.spawn(move || {
                    crate::per_worker::enter_worker(worker);
                    let mine = c.mine();
                    for _ in 0..1_000 {
                        mine.request_started();
                        mine.record(1, worker == 1, 2_000);
                    }
                    mine.count_retry();
                });
            }
        });
        // A request that ends on another thread than it started on.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                crate::per_worker::enter_worker(0);
                c.mine().request_ended();
            });
        });
        assert_eq!(c.requests(), 2_000);
        assert_eq!(c.errors(), 1_000);
        assert_eq!(c.retries(), 2);
        assert_eq!(c.classes(), [0, 2_000, 0, 0, 0]);
        assert_eq!(c.in_flight(), 1_999);
        let (sum, count, _) = c.duration_histogram();
        assert_eq!(count, 2_000);
        assert!((sum - 4.0).abs() < 1e-9);
    }
}
