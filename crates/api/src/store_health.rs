//! The store's health as the probes read it: pinged by a background task on the
//! store's own health connection, the last result kept in memory.
//!
//! `/health/ready` is polled by load balancers and orchestrators, often many times a
//! second, and must answer at once whatever the store is doing. Pinging per request
//! put a blocking-pool hop and the health connection's mutex on every probe (p99
//! 14.7 ms under load in bench/store.sh); reading the last result costs nothing. A
//! result older than [`STALE_AFTER`] means the pinger itself is stuck (a ping that
//! does not return), which is reported as a failure, so a hung store still fails
//! readiness within seconds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_store::Store;

/// How often the store is pinged.
pub const PING_EVERY: Duration = Duration::from_millis(500);
/// A last ping older than this fails readiness: the pinger has not come back.
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// One ping's result.
#[derive(Debug, Clone)]
pub struct Ping {
    /// When the ping finished.
    pub at: Instant,
    /// How long it took.
    pub took: Duration,
    /// The store's error, if it failed.
    pub error: Option<String>,
}

/// What a probe learns about the store right now.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreHealthView {
    /// The last ping, recent enough to trust.
    Answered {
        took: Duration,
        error: Option<String>,
    },
    /// No ping has finished yet since start.
    NotYetPinged,
    /// The last finished ping is older than [`STALE_AFTER`]: a ping is hanging.
    Stale { since: Duration },
}

/// The last ping result, shared between the pinger and the probes.
#[derive(Clone, Default)]
pub struct StoreHealth {
    last: Arc<Mutex<Option<Ping>>>,
}

impl StoreHealth {
    /// Records a ping's result.
    pub fn record(&self, ping: Ping) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(ping);
    }

    /// The store's health as of `now`.
    pub fn view(&self, now: Instant) -> StoreHealthView {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match last {
            None => StoreHealthView::NotYetPinged,
            Some(ping) => {
                let age = now.saturating_duration_since(ping.at);
                if age > STALE_AFTER {
                    StoreHealthView::Stale { since: age }
                } else {
                    StoreHealthView::Answered {
                        took: ping.took,
                        error: ping.error,
                    }
                }
            }
        }
    }

    /// Pings `store` now and records the result.
    pub async fn ping_once(&self, store: &Store) {
        let started = Instant::now();
        let result = store.ping().await;
        self.record(Ping {
            at: Instant::now(),
            took: started.elapsed(),
            error: result.err().map(|e| e.to_string()),
        });
    }

    /// Pings once, then every [`PING_EVERY`] until the task is aborted. The first
    /// ping has finished when this returns, so readiness is known from the start.
    pub async fn spawn_pinger(&self, store: Store) -> tokio::task::JoinHandle<()> {
        self.ping_once(&store).await;
        let health = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PING_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                health.ping_once(&store).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_result_is_answered_and_an_old_one_is_stale() {
        let health = StoreHealth::default();
        let start = Instant::now();
        assert_eq!(health.view(start), StoreHealthView::NotYetPinged);
        health.record(Ping {
            at: start,
            took: Duration::from_micros(80),
            error: None,
        });
        assert_eq!(
            health.view(start + Duration::from_secs(1)),
            StoreHealthView::Answered {
                took: Duration::from_micros(80),
                error: None
            }
        );
        assert_eq!(
            health.view(start + STALE_AFTER + Duration::from_secs(1)),
            StoreHealthView::Stale {
                since: STALE_AFTER + Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn a_failed_ping_is_reported_with_its_error() {
        let health = StoreHealth::default();
        let at = Instant::now();
        health.record(Ping {
            at,
            took: Duration::from_millis(3),
            error: Some("database is locked".into()),
        });
        assert!(matches!(
            health.view(at),
            StoreHealthView::Answered { error: Some(e), .. } if e == "database is locked"
        ));
    }
}
