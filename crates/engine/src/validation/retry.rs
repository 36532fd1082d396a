//! Retrying a failed check with exponential backoff.

use std::future::Future;
use std::time::Duration;

use super::attempt::Attempt;

/// Runs `attempt` until it passes, fails in a way no retry can fix, or `retries` extra
/// attempts have failed. The wait before the n-th retry is `backoff * 2^(n-1)`.
/// Returns the last attempt and how many attempts ran.
pub(crate) async fn run_with_retries<F, Fut>(
    retries: u32,
    backoff: Duration,
    mut attempt: F,
) -> (Attempt, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    let mut attempts: u32 = 0;
    let mut delay = backoff;
    loop {
        attempts = attempts.saturating_add(1);
        let outcome = attempt().await;
        if outcome.passed || !outcome.retryable || attempts > retries || attempts == u32::MAX {
            return (outcome, attempts);
        }
        tracing::debug!(
            attempts,
            ?delay,
            "check attempt failed, retrying: {}",
            outcome.message
        );
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    /// Records when each attempt started (as offsets from the start) and fails until
    /// the `pass_on`-th attempt.
    async fn run_recording(
        retries: u32,
        backoff: Duration,
        pass_on: usize,
    ) -> (Attempt, u32, Vec<Duration>) {
        let start = Instant::now();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let (last, attempts) = run_with_retries(retries, backoff, || {
            let starts = Arc::clone(&starts);
            async move {
                let mut starts = starts.lock().unwrap();
                starts.push(start.elapsed());
                if starts.len() == pass_on {
                    Attempt::pass("ok")
                } else {
                    Attempt::fail(format!("attempt {} failed", starts.len()))
                }
            }
        })
        .await;
        let starts = starts.lock().unwrap().clone();
        (last, attempts, starts)
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_between_attempts() {
        let (last, attempts, starts) = run_recording(3, Duration::from_secs(1), usize::MAX).await;
        assert!(!last.passed);
        assert_eq!(last.message, "attempt 4 failed");
        assert_eq!(attempts, 4);
        let secs: Vec<u64> = starts.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 1, 3, 7]);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_retrying_once_an_attempt_passes() {
        let (last, attempts, starts) = run_recording(5, Duration::from_millis(100), 2).await;
        assert!(last.passed);
        assert_eq!(attempts, 2);
        assert_eq!(starts, [Duration::ZERO, Duration::from_millis(100)]);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_retries_means_one_attempt() {
        let (last, attempts, _) = run_recording(0, Duration::from_secs(1), usize::MAX).await;
        assert!(!last.passed);
        assert_eq!(attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_misconfigured_check_is_not_retried() {
        let start = Instant::now();
        let (last, attempts) = run_with_retries(3, Duration::from_secs(1), || async {
            Attempt::misconfigured("invalid URL")
        })
        .await;
        assert_eq!(attempts, 1);
        assert_eq!(last.message, "invalid URL");
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
