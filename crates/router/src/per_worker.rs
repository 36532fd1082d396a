//! State kept once per data-plane worker, so a request only writes cache lines of the
//! thread that serves it; readers (the judge, `/metrics`, status) add the copies up.
//!
//! Each worker thread says which it is once, when it starts ([`enter_worker`]); the
//! hot path then finds its copy with a thread-local read instead of carrying the index
//! through every call. Any other thread (tests, the control plane) gets a copy too,
//! picked round-robin. Every copy stays safe to share — updates are atomic
//! read-modify-writes, not plain stores — so a thread that lands on another's copy
//! costs speed, never a count.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

/// Index of the next thread that is not a worker.
static NEXT_OTHER: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks the calling thread as data-plane worker `index`.
pub(crate) fn enter_worker(index: usize) {
    CURRENT.with(|current| current.set(Some(index)));
}

/// The calling thread's worker index (stable for the thread's life).
pub(crate) fn current() -> usize {
    CURRENT.with(|current| match current.get() {
        Some(index) => index,
        None => {
            let index = NEXT_OTHER.fetch_add(1, Ordering::Relaxed);
            current.set(Some(index));
            index
        }
    })
}

/// One `T` per worker, each on cache lines of its own.
pub(crate) struct PerWorker<T>(Box<[CachePadded<T>]>);

impl<T> PerWorker<T> {
    pub(crate) fn new(workers: usize, mut make: impl FnMut() -> T) -> Self {
        Self(
            (0..workers.max(1))
                .map(|_| CachePadded::new(make()))
                .collect(),
        )
    }

    /// The calling thread's copy.
    pub(crate) fn mine(&self) -> &T {
        self.of(current())
    }

    /// Worker `index`'s copy (indices beyond the count wrap around).
    pub(crate) fn of(&self, index: usize) -> &T {
        &self.0[index % self.0.len()]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|padded| &**padded)
    }

    /// The sum of `value` over every copy.
    pub(crate) fn sum(&self, value: impl Fn(&T) -> u64) -> u64 {
        self.iter().map(value).fold(0, u64::wrapping_add)
    }
}

impl<T> std::fmt::Debug for PerWorker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerWorker")
            .field("workers", &self.0.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_thread_uses_its_own_copy() {
        let copies = PerWorker::new(3, || AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for index in 0..3 {
                let copies = &copies;
                scope.spawn(move || {
                    enter_worker(index);
                    copies.mine().fetch_add(index + 1, Ordering::Relaxed);
                });
            }
        });
        let values: Vec<usize> = copies.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(values, [1, 2, 3]);
        assert_eq!(copies.sum(|c| c.load(Ordering::Relaxed) as u64), 6);
        // Padded: neighbours never share a cache line.
        let a = copies.of(0) as *const AtomicUsize as usize;
        let b = copies.of(1) as *const AtomicUsize as usize;
        assert!(b - a >= 64);
        assert!(std::ptr::eq(copies.of(4), copies.of(1)), "indices wrap");
    }
}
