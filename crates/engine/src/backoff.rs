//! How long to wait before trying a failed action again: doubling from a first delay
//! up to a ceiling, so a fault that lasts is not hammered and one that passes is
//! noticed quickly.

use std::time::Duration;

/// The first retry after this long.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Never more than this long between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: FIRST_RETRY,
            failures: 0,
        }
    }
}

impl Backoff {
    /// One more failure: how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(MAX_RETRY);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Failures in a row since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// It worked: the next failure waits the first delay again.
    pub fn succeeded(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_ceiling_and_reset_on_success() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..8)
            .map(|_| backoff.failed().as_millis() as u64)
            .collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(backoff.failures(), 8);
        backoff.succeeded();
        assert_eq!(backoff.failed(), FIRST_RETRY);
    }
}
