//! One upstream instance: its in-flight count, outlier state and drain state.
//!
//! The same `Arc<Upstream>` is kept across routing-table swaps for as long as the
//! address stays in a set, so in-flight counts and outlier history survive weight
//! changes and scale-ups.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use http::uri::Authority;
use rampart_core::Timestamp;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::pool::IdleConnections;

/// Lifecycle of an instance as seen by the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Receives new requests.
    Active,
    /// Removed from the table; in-flight requests are finishing.
    Draining,
    /// Removed, and every in-flight request finished (or the grace ran out).
    Drained,
    /// Active but temporarily skipped by outlier detection.
    Ejected,
}

const ACTIVE: u8 = 0;
const DRAINING: u8 = 1;
const DRAINED: u8 = 2;

/// How the drain of one removed instance ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    pub addr: SocketAddr,
    /// True when every in-flight request finished within the drain grace.
    pub completed: bool,
    /// Requests still in flight when the grace ran out (0 when `completed`).
    pub abandoned_in_flight: u64,
    /// How long the drain took, in milliseconds.
    pub waited_ms: u64,
}

#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    /// `addr` as a URI authority, built once rather than per request.
    pub(crate) authority: Authority,
    in_flight: AtomicU64,
    state: AtomicU8,
    consecutive_failures: AtomicU32,
    /// Epoch milliseconds until which the instance is ejected; 0 when not ejected.
    ejected_until_ms: AtomicU64,
    ejections: AtomicU32,
    idle: Notify,
    /// Keep-alive connections to this instance, per worker thread.
    pub(crate) connections: IdleConnections,
    drained: watch::Sender<Option<DrainReport>>,
}

impl Upstream {
    #[cfg(test)]
    pub(crate) fn new(addr: SocketAddr) -> Arc<Self> {
        Self::with_workers(addr, 1)
    }

    /// `workers` is the number of data-plane threads, each with its own idle pool.
    pub(crate) fn with_workers(addr: SocketAddr, workers: usize) -> Arc<Self> {
        Arc::new(Self {
            addr,
            authority: authority_of(addr),
            in_flight: AtomicU64::new(0),
            state: AtomicU8::new(ACTIVE),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            idle: Notify::new(),
            connections: IdleConnections::new(workers),
            drained: watch::channel(None).0,
        })
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.state.load(Ordering::SeqCst) == ACTIVE
    }

    pub(crate) fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// Active and not ejected: a candidate for new requests.
    pub(crate) fn is_available(&self, now_ms: u64) -> bool {
        self.is_active() && !self.is_ejected(now_ms)
    }

    pub(crate) fn state(&self, now_ms: u64) -> InstanceState {
        match self.state.load(Ordering::SeqCst) {
            DRAINING => InstanceState::Draining,
            DRAINED => InstanceState::Drained,
            _ if self.is_ejected(now_ms) => InstanceState::Ejected,
            _ => InstanceState::Active,
        }
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn ejected_until(&self, now_ms: u64) -> Option<Timestamp> {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        (until > now_ms).then_some(Timestamp(until))
    }

    /// Counts a request as in flight. Returns `None` when the instance stopped being
    /// active meanwhile (a table swap raced with the pick), so the caller picks again;
    /// checking after the increment closes the race with [`Upstream::drain`].
    pub(crate) fn begin(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(Arc::clone(self));
        self.is_active().then_some(guard)
    }

    pub(crate) fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Returns the number of failures in a row, this one included.
    pub(crate) fn record_failure(&self) -> u32 {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Ejects for `base` times 2^(earlier ejections), capped at 64 × base, so an
    /// instance that keeps failing is tried less and less often.
    pub(crate) fn eject(&self, now_ms: u64, base: Duration) {
        let earlier = self.ejections.fetch_add(1, Ordering::Relaxed).min(6);
        let length = base.as_millis() as u64 * (1u64 << earlier);
        self.ejected_until_ms
            .store(now_ms.saturating_add(length), Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Marks the instance as removed: no new requests from now on.
    pub(crate) fn start_draining(&self) {
        self.state.store(DRAINING, Ordering::SeqCst);
    }

    /// Waits until in-flight requests finish or `grace` runs out, then reports.
    pub(crate) async fn drain(self: Arc<Self>, grace: Duration) -> DrainReport {
        let started = tokio::time::Instant::now();
        let deadline = started + grace;
        let completed = loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                break true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break self.in_flight() == 0;
            }
        };
        let report = DrainReport {
            addr: self.addr,
            completed,
            abandoned_in_flight: if completed { 0 } else { self.in_flight() },
            waited_ms: started.elapsed().as_millis() as u64,
        };
        self.state.store(DRAINED, Ordering::SeqCst);
        self.connections.clear();
        self.drained.send_replace(Some(report.clone()));
        report
    }

    /// Resolves with the drain report once the drain has ended.
    pub(crate) async fn drained(&self) -> DrainReport {
        let mut rx = self.drained.subscribe();
        loop {
            if let Some(report) = rx.borrow_and_update().clone() {
                return report;
            }
            if rx.changed().await.is_err() {
                // The sender lives inside `self`, so this cannot happen while we hold
                // `&self`; report what we know rather than hang.
                return DrainReport {
                    addr: self.addr,
                    completed: self.in_flight() == 0,
                    abandoned_in_flight: self.in_flight(),
                    waited_ms: 0,
                };
            }
        }
    }

    pub(crate) fn drain_report(&self) -> Option<DrainReport> {
        self.drained.borrow().clone()
    }
}

fn authority_of(addr: SocketAddr) -> Authority {
    // A socket address always prints as a valid authority ("1.2.3.4:80", "[::1]:80").
    Authority::try_from(addr.to_string().as_str())
        .unwrap_or_else(|_| Authority::from_static("invalid.upstream"))
}

/// One request in flight on an instance; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Upstream>);

impl InFlight {
    pub(crate) fn upstream(&self) -> &Arc<Upstream> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let before = self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if before == 1 && !self.0.is_active() {
            self.0.idle.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[test]
    fn ejection_grows_with_each_ejection_and_resets_failures() {
        let up = Upstream::new(addr());
        assert_eq!(up.record_failure(), 1);
        assert_eq!(up.record_failure(), 2);
        up.eject(1_000, Duration::from_secs(1));
        assert_eq!(up.consecutive_failures(), 0);
        assert_eq!(up.ejected_until(1_000), Some(Timestamp(2_000)));
        assert!(!up.is_available(1_999));
        assert!(up.is_available(2_000));
        up.eject(2_000, Duration::from_secs(1));
        assert_eq!(up.ejected_until(2_000), Some(Timestamp(4_000)));
        assert_eq!(up.state(3_000), InstanceState::Ejected);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_in_flight_requests() {
        let up = Upstream::new(addr());
        let guard = up.begin().unwrap();
        up.start_draining();
        assert!(
            up.begin().is_none(),
            "a draining instance takes no new request"
        );
        let drain = tokio::spawn(Arc::clone(&up).drain(Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!drain.is_finished());
        drop(guard);
        let report = drain.await.unwrap();
        assert!(report.completed);
        assert_eq!(report.waited_ms, 5_000);
        assert_eq!(up.state(0), InstanceState::Drained);
        assert_eq!(up.drained().await, report);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_the_grace() {
        let up = Upstream::new(addr());
        let _guard = up.begin().unwrap();
        up.start_draining();
        let report = Arc::clone(&up).drain(Duration::from_secs(30)).await;
        assert!(!report.completed);
        assert_eq!(report.abandoned_in_flight, 1);
        assert_eq!(report.waited_ms, 30_000);
    }
}
