//! Per-client-address limit on failed authentication attempts.
//!
//! A client that fails authentication too often in a window is refused (429) before
//! its token is even looked at, so guessing tokens cannot go faster than the limit.
//! A purpose-built window counter rather than a generic rate limiter because the check
//! must *peek* (is this address blocked?) before spending an attempt.
//!
//! Memory is bounded whatever the number of client addresses: at most
//! [`MAX_TRACKED`] windows are kept; when that many are live, the oldest is dropped
//! for a new one. IPv6 clients are counted per /64, the block one host usually
//! controls, so walking through its addresses gains nothing.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_core::{Clock, Timestamp};

/// Most client addresses (or IPv6 /64 blocks) whose failures are remembered at once.
pub const MAX_TRACKED: usize = 10_000;

pub struct AuthFailureLimiter {
    clock: Arc<dyn Clock>,
    max_failures: u32,
    window: Duration,
    windows: Mutex<Windows>,
    failures: AtomicU64,
    refused: AtomicU64,
}

/// The live windows, and the order they started in (for dropping the oldest in
/// constant time). A window that restarted leaves a stale entry in `order`, skipped
/// when it comes up.
#[derive(Default)]
struct Windows {
    by_client: HashMap<IpAddr, FailureWindow>,
    order: VecDeque<(IpAddr, Timestamp)>,
}

impl Windows {
    /// Drops the oldest window; with `expired_before`, only if it started before.
    fn drop_oldest(&mut self, expired_before: Option<Timestamp>) -> bool {
        while let Some(&(key, started)) = self.order.front() {
            let current = self.by_client.get(&key).map(|w| w.started);
            if current != Some(started) {
                self.order.pop_front();
                continue;
            }
            if expired_before.is_some_and(|limit| started >= limit) {
                return false;
            }
            self.order.pop_front();
            self.by_client.remove(&key);
            return true;
        }
        false
    }

    fn start(&mut self, key: IpAddr, now: Timestamp) -> &mut FailureWindow {
        self.order.push_back((key, now));
        if self.order.len() > 2 * MAX_TRACKED {
            // Too many stale entries: rebuild from the live windows, oldest first.
            let mut live: Vec<_> = self
                .by_client
                .iter()
                .map(|(k, w)| (*k, w.started))
                .collect();
            live.sort_by_key(|(_, started)| *started);
            self.order = live.into();
            self.order.push_back((key, now));
        }
        let window = self.by_client.entry(key).or_insert(FailureWindow {
            started: now,
            failures: 0,
        });
        *window = FailureWindow {
            started: now,
            failures: 0,
        };
        window
    }
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64.
fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[derive(Clone, Copy)]
struct FailureWindow {
    started: Timestamp,
    failures: u32,
}

impl AuthFailureLimiter {
    pub fn new(clock: Arc<dyn Clock>, max_failures: u32, window: Duration) -> Self {
        Self {
            clock,
            max_failures,
            window,
            windows: Mutex::new(Windows::default()),
            failures: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// `Some(seconds until unblocked)` when the address has used up its failures
    /// (the caller refuses the request; counted in [`Self::refused_total`]).
    pub fn blocked_for(&self, addr: IpAddr) -> Option<u64> {
        let now = self.clock.now();
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.by_client.get(&client_key(addr))?;
        let elapsed = now.since(w.started);
        if elapsed >= self.window || w.failures < self.max_failures {
            return None;
        }
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some((self.window - elapsed).as_secs().max(1))
    }

    /// Failed authentications since start (incident rules read the rate).
    pub fn failures_total(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests refused because their address failed too often, since start.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn record_failure(&self, addr: IpAddr) {
        self.failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = self.clock.now();
        let key = client_key(addr);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        // Windows that started at or before `now - window` have ended.
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        if let Some(last_ended_start) = now.as_millis().checked_sub(window_ms) {
            let limit = Timestamp(last_ended_start.saturating_add(1));
            while windows.drop_oldest(Some(limit)) {}
        }
        let live = windows
            .by_client
            .get(&key)
            .is_some_and(|w| now.since(w.started) < self.window);
        if !live {
            if !windows.by_client.contains_key(&key) && windows.by_client.len() >= MAX_TRACKED {
                // Every window is live: the oldest is the closest to ending anyway.
                windows.drop_oldest(None);
            }
            windows.start(key, now);
        }
        if let Some(window) = windows.by_client.get_mut(&key) {
            window.failures = window.failures.saturating_add(1);
        }
    }
}

#[cfg(test)]
impl AuthFailureLimiter {
    fn tracked(&self) -> usize {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.by_client.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::ManualClock;

    #[test]
    fn blocks_after_max_failures_until_the_window_ends() {
        let clock = Arc::new(ManualClock::new(Timestamp(0)));
        let limiter = AuthFailureLimiter::new(clock.clone(), 3, Duration::from_secs(60));
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..3 {
            assert_eq!(limiter.blocked_for(a), None);
            limiter.record_failure(a);
        }
        assert_eq!(limiter.blocked_for(a), Some(60));
        assert_eq!(
            limiter.blocked_for(b),
            None,
            "other addresses are not affected"
        );
        clock.advance(Duration::from_secs(59));
        assert_eq!(limiter.blocked_for(a), Some(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(limiter.blocked_for(a), None);
    }

    #[test]
    fn memory_stays_bounded_for_any_number_of_client_addresses() {
        let clock = Arc::new(ManualClock::new(Timestamp(0)));
        let limiter = AuthFailureLimiter::new(clock.clone(), 3, Duration::from_secs(60));
        // 200 000 distinct IPv4 addresses failing within one window.
        for n in 0..200_000u32 {
            limiter.record_failure(IpAddr::from((0x0a00_0000 + n).to_be_bytes()));
        }
        assert_eq!(limiter.tracked(), MAX_TRACKED);
        // The newest addresses are still counted.
        let newest = IpAddr::from((0x0a00_0000u32 + 199_999).to_be_bytes());
        limiter.record_failure(newest);
        limiter.record_failure(newest);
        assert!(limiter.blocked_for(newest).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_block() {
        let clock = Arc::new(ManualClock::new(Timestamp(0)));
        let limiter = AuthFailureLimiter::new(clock, 3, Duration::from_secs(60));
        for host in 1..=3u16 {
            let addr: IpAddr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, host).into();
            limiter.record_failure(addr);
        }
        let same_block: IpAddr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9).into();
        let other_block: IpAddr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1).into();
        assert!(limiter.blocked_for(same_block).is_some());
        assert_eq!(limiter.blocked_for(other_block), None);
        for _ in 0..100_000u32 {
            // Random interface ids inside one /64 take one slot.
            limiter.record_failure(same_block);
        }
        assert_eq!(limiter.tracked(), 1);
    }
}
