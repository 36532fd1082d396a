//! Per-client-address limit on failed authentication attempts.
//!
//! A client that fails authentication too often in a window is refused (429) before
//! its token is even looked at, so guessing tokens cannot go faster than the limit.
//! A purpose-built window counter rather than a generic rate limiter because the check
//! must *peek* (is this address blocked?) before spending an attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_core::{Clock, Timestamp};

pub struct AuthFailureLimiter {
    clock: Arc<dyn Clock>,
    max_failures: u32,
    window: Duration,
    by_address: Mutex<HashMap<IpAddr, FailureWindow>>,
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
            by_address: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds until unblocked)` when the address has used up its failures.
    pub fn blocked_for(&self, addr: IpAddr) -> Option<u64> {
        let now = self.clock.now();
        let map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        let w = map.get(&addr)?;
        let elapsed = now.since(w.started);
        if elapsed >= self.window || w.failures < self.max_failures {
            return None;
        }
        Some((self.window - elapsed).as_secs().max(1))
    }

    pub fn record_failure(&self, addr: IpAddr) {
        let now = self.clock.now();
        let mut map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        // Keep memory bounded under address churn: drop windows that have ended.
        if map.len() > 10_000 {
            let window = self.window;
            map.retain(|_, w| now.since(w.started) < window);
        }
        let entry = map.entry(addr).or_insert(FailureWindow {
            started: now,
            failures: 0,
        });
        if now.since(entry.started) >= self.window {
            *entry = FailureWindow {
                started: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
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
}
