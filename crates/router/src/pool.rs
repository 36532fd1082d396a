//! Keep-alive HTTP/1.1 connections to upstream instances.
//!
//! Each [`crate::upstream::Upstream`] keeps its idle connections in one slot per
//! worker thread, and a connection is only ever used by the worker whose runtime
//! drives it, so a proxied request never wakes another thread. A connection goes back
//! to its slot when the response it carried has been read to its end and both sides
//! allow another request ([`crate::exchange`]); anything else — a body cut short, an
//! error, `Connection: close` — closes it. Idle connections are dropped (closed)
//! after [`IDLE_TIMEOUT`], when the upstream closes them, and when the instance's
//! drain ends. Upgrade requests (WebSocket) get a connection of their own on hyper's
//! client, which hands the socket over to the tunnel; it is never pooled.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::body::ForwardBody;
use crate::exchange::Connection;
use crate::upstream::Upstream;

/// hyper's client, for an upgrade request only.
pub(crate) type UpgradeSender = SendRequest<ForwardBody>;

/// How long an unused connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// More idle connections than this per instance and worker are closed instead of
/// kept: a burst must not leave thousands of sockets open.
const MAX_IDLE_PER_WORKER: usize = 512;

struct Idle {
    connection: Connection,
    since: Instant,
}

/// An instance's idle connections, one slot per worker. Each slot's lock is only
/// ever taken by its own worker, so it is never contended.
pub(crate) struct IdleConnections(Box<[Mutex<Vec<Idle>>]>);

impl std::fmt::Debug for IdleConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleConnections")
            .field("workers", &self.0.len())
            .finish_non_exhaustive()
    }
}

impl IdleConnections {
    pub(crate) fn new(workers: usize) -> Self {
        Self(
            (0..workers.max(1))
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        )
    }

    fn slot(&self, worker: usize) -> Option<MutexGuard<'_, Vec<Idle>>> {
        // A panic while holding the lock leaves at worst a stale connection, which
        // `take` discards.
        self.0
            .get(worker)
            .map(|slot| slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The most recently used live connection of `worker`, if any.
    pub(crate) fn take(&self, worker: usize) -> Option<Connection> {
        let mut idle = self.slot(worker)?;
        while let Some(Idle { connection, since }) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT && connection.is_usable() {
                return Some(connection);
            }
        }
        None
    }

    pub(crate) fn put(&self, worker: usize, connection: Connection) {
        let Some(mut idle) = self.slot(worker) else {
            return;
        };
        let now = Instant::now();
        // The oldest entry is first: sweep only when it has expired.
        if idle
            .first()
            .is_some_and(|oldest| now.duration_since(oldest.since) >= IDLE_TIMEOUT)
        {
            idle.retain(|i| now.duration_since(i.since) < IDLE_TIMEOUT && i.connection.is_usable());
        }
        if idle.len() < MAX_IDLE_PER_WORKER {
            idle.push(Idle {
                connection,
                since: now,
            });
        }
    }

    /// Closes every idle connection (the instance left the table for good).
    pub(crate) fn clear(&self) {
        for worker in 0..self.0.len() {
            if let Some(mut idle) = self.slot(worker) {
                idle.clear();
            }
        }
    }
}

/// Connections opened per worker to an instance that joins the table while the router
/// runs, so its first requests do not pay the connection setup that requests to
/// instances already in use do not pay either.
pub(crate) const WARM_CONNECTIONS: usize = 2;

/// Opens [`WARM_CONNECTIONS`] connections to `upstream` from this worker and parks
/// them in its pool. Failures are left to the first real request to find.
pub(crate) async fn warm(upstream: Arc<Upstream>, worker: usize, timeout: Duration) {
    for _ in 0..WARM_CONNECTIONS {
        if !upstream.is_active() {
            return;
        }
        match Connection::open(upstream.addr, timeout).await {
            Ok(connection) => upstream.connections.put(worker, connection),
            Err(error) => {
                tracing::debug!(instance = %upstream.addr, %error, "warming a connection failed");
                return;
            }
        }
    }
}

/// Opens a new connection to `addr` within `timeout` for an upgrade request, on
/// hyper's client: driven by a task on the calling worker's runtime, it hands the
/// socket over to the tunnel once the upstream switches protocols.
pub(crate) async fn connect_for_upgrade(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<UpgradeSender, String> {
    let stream = crate::exchange::connect(addr, timeout).await?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake with {addr} failed: {error}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%addr, %error, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}
