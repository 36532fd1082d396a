//! The router's per-request randomness (the split's canary slots, the balancer's two
//! candidates): xorshift64* seeded per thread from the OS. It only needs spread, not
//! unpredictability — clients never see its output — and must be cheap enough for
//! every request.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
}

/// A uniform draw from `0..bound` (`bound` ≥ 1): the high 32 bits scaled to the bound
/// (Lemire), with a bias below `bound / 2^32` (2^-24 for the split's blocks of 100).
pub(crate) fn below(bound: u64) -> u64 {
    STATE.with(|cell| {
        let mut x = cell.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        cell.set(x);
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) * bound) >> 32
    })
}
