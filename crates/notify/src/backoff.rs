//! When to try a failed delivery again.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The first retry waits about this long; each further one twice as long.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// No retry waits longer than this (unless the receiver's `Retry-After` says so).
pub const RETRY_CAP: Duration = Duration::from_secs(300);
/// A `Retry-After` longer than this is taken as this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// The wait before attempt `attempts + 1`, after `attempts` failed ones:
/// exponential from [`RETRY_BASE`] to [`RETRY_CAP`], with "equal jitter" (half
/// fixed, half random, `jitter` in 0..1) so receivers that come back are not hit by
/// every sender at once; never shorter than the receiver's `Retry-After`.
pub fn retry_delay(attempts: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(20);
    let full = RETRY_BASE.saturating_mul(1u32 << exponent).min(RETRY_CAP);
    let jitter = jitter.clamp(0.0, 1.0);
    let delay = full.mul_f64(0.5 + 0.5 * jitter);
    match retry_after {
        Some(after) => delay.max(after.min(RETRY_AFTER_MAX)),
        None => delay,
    }
}

/// A `Retry-After` header value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn doubles_from_one_second_up_to_five_minutes() {
        let fixed: Vec<u64> = (1..=12)
            .map(|n| retry_delay(n, None, 1.0).as_secs())
            .collect();
        assert_eq!(fixed, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(retry_delay(u32::MAX, None, 1.0), RETRY_CAP);
    }

    #[test]
    fn jitter_keeps_at_least_half() {
        assert_eq!(retry_delay(4, None, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(4, None, 0.5), Duration::from_secs(6));
    }

    #[test]
    fn retry_after_is_a_floor() {
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(30)), 0.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(86_400)), 0.0),
            RETRY_AFTER_MAX
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
