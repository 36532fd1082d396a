//! Per-notifier pacing: a token bucket at the notifier's rate (burst of one
//! second's worth), plus a pause the receiver asked for with `429 Retry-After`.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
    paused_until: Option<Instant>,
}

impl RateLimiter {
    /// `per_second` messages a second, at most `max(1, per_second)` at once.
    pub fn new(per_second: f64) -> RateLimiter {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1.0
        };
        let burst = per_second.max(1.0).floor();
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / per_second),
            burst,
            tokens: burst,
            refilled_at: Instant::now(),
            paused_until: None,
        }
    }

    /// Stops sending until `until` (the receiver said `Retry-After`).
    pub fn pause_until(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }

    /// Waits for the next send slot and takes it.
    pub async fn acquire(&mut self) {
        loop {
            let now = Instant::now();
            if let Some(until) = self.paused_until {
                if now < until {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                self.paused_until = None;
            }
            let elapsed = now.saturating_duration_since(self.refilled_at);
            self.tokens =
                (self.tokens + elapsed.as_secs_f64() / self.interval.as_secs_f64()).min(self.burst);
            self.refilled_at = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            let missing = (1.0 - self.tokens) * self.interval.as_secs_f64();
            tokio::time::sleep(Duration::from_secs_f64(missing)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_a_second_after_the_burst() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(1.0);
        let mut at = Vec::new();
        for _ in 0..4 {
            limiter.acquire().await;
            at.push(start.elapsed().as_millis());
        }
        assert_eq!(at, [0, 1000, 2000, 3000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_one_seconds_worth_then_the_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(4.0);
        let mut at = Vec::new();
        for _ in 0..6 {
            limiter.acquire().await;
            at.push(start.elapsed().as_millis());
        }
        assert_eq!(at, [0, 0, 0, 0, 250, 500]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_the_notifier() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10.0);
        limiter.pause_until(start + Duration::from_secs(5));
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
