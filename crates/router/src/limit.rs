//! The per-service concurrency limit: requests above it are shed with 503 rather than
//! queued, so an overloaded upstream is not pushed further.
//!
//! Requests in flight are counted per worker ([`PerWorker`]), so admitting one writes
//! only the serving worker's cache line. Without a limit (the default) nothing else
//! happens; with one, the admitting worker adds up every worker's count after its own
//! increment. Both are sequentially consistent, so of two requests admitted at once on
//! different workers at least one sees the other: the limit is never exceeded (a race
//! can at worst shed a request that a single counter would have admitted).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::per_worker::PerWorker;

const UNLIMITED: u64 = u64::MAX;

/// One worker's requests in flight. Its own allocation, so the permit's reference count
/// is on the worker's cache lines too; it can go negative when a permit is dropped on
/// another thread than the one that admitted it, the sum stays right.
type WorkerCount = Arc<CachePadded<AtomicI64>>;

#[derive(Debug)]
pub(crate) struct ConcurrencyLimit {
    in_flight: PerWorker<WorkerCount>,
    limit: AtomicU64,
}

impl ConcurrencyLimit {
    pub(crate) fn new(limit: Option<u32>, workers: usize) -> Arc<Self> {
        let this = Arc::new(Self {
            in_flight: PerWorker::new(workers, || Arc::new(CachePadded::new(AtomicI64::new(0)))),
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
        let total: i64 = self
            .in_flight
            .iter()
            .map(|count| count.load(Ordering::SeqCst))
            .sum();
        total.max(0) as u64
    }

    /// A permit, or `None` when the service is at its limit.
    pub(crate) fn try_acquire(&self) -> Option<Permit> {
        let mine = self.in_flight.mine();
        mine.fetch_add(1, Ordering::SeqCst);
        let permit = Permit(Arc::clone(mine));
        let limit = self.limit.load(Ordering::Relaxed);
        (limit == UNLIMITED || self.in_flight() <= limit).then_some(permit)
    }
}

/// One admitted request; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Permit(WorkerCount);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let limit = ConcurrencyLimit::new(Some(2), 1);
        let a = limit.try_acquire().unwrap();
        let _b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert!(limit.try_acquire().is_some());
        limit.set(None);
        let many: Vec<_> = (0..100).filter_map(|_| limit.try_acquire()).collect();
        assert_eq!(many.len(), 100);
        assert_eq!(limit.in_flight(), 101);
    }

    #[test]
    fn the_limit_holds_across_workers() {
        let limit = ConcurrencyLimit::new(Some(50), 4);
        let barrier = std::sync::Barrier::new(4);
        let mut held: Vec<Vec<Permit>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|worker| {
                    let (limit, barrier) = (&limit, &barrier);
                    scope.spawn(move || {
                        crate::per_worker::enter_worker(worker);
                        barrier.wait();
                        (0..40).filter_map(|_| limit.try_acquire()).collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let admitted: usize = held.iter().map(Vec::len).sum();
        assert!(admitted <= 50, "{admitted} admitted at a limit of 50");
        assert_eq!(limit.in_flight(), admitted as u64, "refused ones let go");
        // A permit dropped on another worker's thread frees a slot all the same.
        let permit = held.iter_mut().find_map(Vec::pop).unwrap();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                crate::per_worker::enter_worker(3);
                drop(permit);
            });
        });
        assert_eq!(limit.in_flight(), admitted as u64 - 1);
    }
}
