//! The per-service concurrency limit: requests above it are shed with 503 rather than
//! queued, so an overloaded upstream is not pushed further.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const UNLIMITED: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct ConcurrencyLimit {
    in_flight: AtomicU64,
    limit: AtomicU64,
}

impl ConcurrencyLimit {
    pub(crate) fn new(limit: Option<u32>) -> Arc<Self> {
        let this = Arc::new(Self {
            in_flight: AtomicU64::new(0),
            limit: AtomicU64::new(UNLIMITED),
        });
        this.set(limit);
        this
    }

    pub(crate) fn set(&self, limit: Option<u32>) {
        self.limit
            .store(limit.map_or(UNLIMITED, u64::from), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Option<u32> {
        let limit = self.limit.load(Ordering::Relaxed);
        (limit != UNLIMITED).then_some(limit as u32)
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A permit, or `None` when the service is at its limit.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(Arc::clone(self));
        (before < self.limit.load(Ordering::Relaxed)).then_some(permit)
    }
}

/// One admitted request; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Permit(Arc<ConcurrencyLimit>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let limit = ConcurrencyLimit::new(Some(2));
        let a = limit.try_acquire().unwrap();
        let _b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert!(limit.try_acquire().is_some());
        limit.set(None);
        let many: Vec<_> = (0..100).filter_map(|_| limit.try_acquire()).collect();
        assert_eq!(many.len(), 100);
    }
}
