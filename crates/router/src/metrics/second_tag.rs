//! The tag that says which second a slot of counters holds, and the claim that moves
//! it to a new second: one thread zeroes (or moves out) the counts while the others
//! wait, so no request is counted in a second it did not happen in.

use std::sync::atomic::{AtomicU64, Ordering};

/// Set while a slot's counts are being zeroed or moved for a new second.
pub(crate) const BUSY: u64 = 1 << 63;
/// Tag of a slot that never held a second.
pub(crate) const EMPTY: u64 = BUSY - 1;

/// What [`claim`] found.
pub(crate) enum Claim {
    /// The slot holds the second already.
    Current,
    /// The slot holds a later second (the clock went back by more than the slot
    /// covers): nothing may be recorded in it.
    Later,
    /// This thread took the slot, which held `previous` ([`EMPTY`] if none). Its
    /// counts are this thread's to reset or move; [`release`] then opens the slot
    /// for `second`.
    Taken { previous: u64 },
}

/// Makes `tag` hold `second`, or says why not; waits while another thread holds it.
pub(crate) fn claim(tag: &AtomicU64, second: u64) -> Claim {
    let mut spins = 0u32;
    loop {
        let held = tag.load(Ordering::Acquire);
        if held == second {
            return Claim::Current;
        }
        if held & BUSY != 0 {
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        if held != EMPTY && held > second {
            return Claim::Later;
        }
        if tag
            .compare_exchange(held, second | BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Claim::Taken { previous: held };
        }
    }
}

/// Ends a [`Claim::Taken`]: the slot now holds `second`.
pub(crate) fn release(tag: &AtomicU64, second: u64) {
    tag.store(second, Ordering::Release);
}
