//! The stable/canary split: a deterministic credit accumulator, so the canary gets
//! its exact share over any run of requests rather than a random approximation.
//!
//! The weight is a 32.32 fixed-point fraction added to a shared `AtomicU64` on every
//! request; a request goes to the canary when the addition crosses a whole unit. Over
//! `n` requests the canary receives `floor(n × fraction)` or one more, lock-free.

use std::sync::atomic::{AtomicU64, Ordering};

const ONE: u64 = 1 << 32;

/// The canary share as a 32.32 fixed-point fraction of one.
pub(crate) fn canary_step(weight_percent: f64) -> u64 {
    let fraction = (weight_percent / 100.0).clamp(0.0, 1.0);
    (fraction * ONE as f64).round() as u64
}

#[derive(Debug)]
pub(crate) struct Splitter {
    credit: AtomicU64,
}

impl Default for Splitter {
    /// Starting half a unit in rounds the canary's count to the nearest whole request
    /// instead of down, so a weight whose fraction is not exact in 32.32 still hits it.
    fn default() -> Self {
        Self {
            credit: AtomicU64::new(ONE / 2),
        }
    }
}

impl Splitter {
    /// Decides the next request; `step` comes from [`canary_step`].
    pub(crate) fn next_is_canary(&self, step: u64) -> bool {
        if step == 0 {
            return false;
        }
        if step >= ONE {
            return true;
        }
        let before = self.credit.fetch_add(step, Ordering::Relaxed);
        // Wrapping at 2^64 is a whole number of units, so the crossing test holds.
        (before >> 32) != (before.wrapping_add(step) >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary_count(weight: f64, requests: usize) -> usize {
        let splitter = Splitter::default();
        let step = canary_step(weight);
        (0..requests)
            .filter(|_| splitter.next_is_canary(step))
            .count()
    }

    #[test]
    fn shares_are_exact() {
        assert_eq!(canary_count(10.0, 10_000), 1_000);
        assert_eq!(canary_count(0.0, 10_000), 0);
        assert_eq!(canary_count(100.0, 10_000), 10_000);
        assert_eq!(canary_count(33.3, 1_000), 333);
        assert_eq!(canary_count(0.5, 10_000), 50);
    }

    #[test]
    fn every_window_is_within_one_request() {
        let splitter = Splitter::default();
        let step = canary_step(25.0);
        let picks: Vec<bool> = (0..400).map(|_| splitter.next_is_canary(step)).collect();
        for window in picks.chunks(4) {
            assert_eq!(window.iter().filter(|&&c| c).count(), 1);
        }
    }

    #[test]
    fn survives_wrap_around() {
        let splitter = Splitter {
            credit: AtomicU64::new(u64::MAX - ONE * 3),
        };
        let step = canary_step(50.0);
        let count = (0..100).filter(|_| splitter.next_is_canary(step)).count();
        assert_eq!(count, 50);
    }
}
