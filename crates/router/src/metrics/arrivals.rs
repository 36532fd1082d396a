//! Requests per set counted in the second they arrived, for sizing.
//!
//! The judge's windows ([`super::window`]) file a request under the second it
//! finished, which is right for comparing outcomes but wrong for demand: when every
//! instance stalls for a few seconds, nothing finishes (the rate reads 0) and then
//! the whole backlog finishes within one second (the rate reads several times the
//! real one), although users sent exactly as much as before. The autoscaler sized on
//! that backlog. Counting arrivals, the rate stays what users send through a stall.

use std::sync::atomic::{AtomicU64, Ordering};

use super::second_tag::{self, Claim, EMPTY};
use super::window::RING_SECONDS;
use crate::per_worker::PerWorker;

/// One set's arrivals: a ring per worker (10 KiB each), added up when read.
#[derive(Debug)]
pub(crate) struct Arrivals(PerWorker<ArrivalRing>);

impl Arrivals {
    pub(crate) fn new(workers: usize) -> Self {
        Self(PerWorker::new(workers, ArrivalRing::new))
    }

    /// Counts one arrival in `second` on the calling worker's ring.
    pub(crate) fn record(&self, second: u64) {
        self.0.mine().record(second);
    }

    /// Arrivals in the whole seconds `first..=last` (those still on the rings).
    pub(crate) fn sum(&self, first: u64, last: u64) -> u64 {
        self.0.sum(|ring| ring.sum(first, last))
    }
}

struct Slot {
    tag: AtomicU64,
    count: AtomicU64,
}

/// The last [`RING_SECONDS`] seconds of one set's arrivals; lock-free like the
/// window ring, 16 bytes a second.
pub(crate) struct ArrivalRing {
    slots: Vec<Slot>,
}

impl std::fmt::Debug for ArrivalRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrivalRing").finish_non_exhaustive()
    }
}

impl ArrivalRing {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..RING_SECONDS)
                .map(|_| Slot {
                    tag: AtomicU64::new(EMPTY),
                    count: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// Counts one arrival in `second`; dropped if the ring has moved past it.
    pub(crate) fn record(&self, second: u64) {
        let slot = &self.slots[(second % RING_SECONDS) as usize];
        loop {
            match second_tag::claim(&slot.tag, second) {
                Claim::Current => {
                    slot.count.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Claim::Later => return,
                Claim::Taken { .. } => {
                    slot.count.store(0, Ordering::Relaxed);
                    second_tag::release(&slot.tag, second);
                }
            }
        }
    }

    /// Arrivals in the whole seconds `first..=last` (those still on the ring).
    pub(crate) fn sum(&self, first: u64, last: u64) -> u64 {
        let first = first.max(last.saturating_sub(RING_SECONDS - 1));
        (first..=last)
            .map(|second| {
                let slot = &self.slots[(second % RING_SECONDS) as usize];
                if slot.tag.load(Ordering::Acquire) == second {
                    slot.count.load(Ordering::Relaxed)
                } else {
                    0
                }
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_seconds_asked_for() {
        let ring = ArrivalRing::new();
        for second in 100..110u64 {
            for _ in 0..(second - 99) {
                ring.record(second);
            }
        }
        assert_eq!(ring.sum(100, 109), 55);
        assert_eq!(ring.sum(108, 109), 19);
        assert_eq!(ring.sum(200, 210), 0);
    }

    #[test]
    fn a_reused_slot_starts_from_zero_and_late_arrivals_are_dropped() {
        let ring = ArrivalRing::new();
        ring.record(5);
        ring.record(5 + RING_SECONDS);
        assert_eq!(ring.sum(5, 5), 0, "the old second fell off");
        assert_eq!(ring.sum(5 + RING_SECONDS, 5 + RING_SECONDS), 1);
        ring.record(5);
        assert_eq!(
            ring.sum(5 + RING_SECONDS, 5 + RING_SECONDS),
            1,
            "not misfiled"
        );
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let ring = std::sync::Arc::new(ArrivalRing::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    (0..10_000u64).for_each(|i| ring.record(100 + i / 1_000))
                })
            })
            .collect();
        threads
            .into_iter()
            .for_each(|t| t.join().expect("recorder"));
        assert_eq!(ring.sum(100, 109), 40_000);
    }

    #[test]
    fn workers_count_apart_and_readers_add_up() {
        // Four threads on two copies: workers 0 and 1, and two that share them.
        let arrivals = Arrivals::new(2);
        std::thread::scope(|scope| {
            for worker in 0..4 {
                let arrivals = &arrivals;
                scope.spawn(move || {
                    crate::per_worker::enter_worker(worker);
                    (0..10_000u64).for_each(|i| arrivals.record(100 + i / 1_000));
                });
            }
        });
        assert_eq!(arrivals.sum(100, 109), 40_000);
        assert_eq!(arrivals.sum(105, 105), 4_000);
        assert_eq!(arrivals.0.of(0).sum(100, 109), 20_000);
    }
}
