//! Keep-alive HTTP/1.1 connections to upstream instances.
//!
//! Each [`crate::upstream::Upstream`] keeps its idle connections in one slot per
//! worker thread, and a connection is only ever used by the worker whose runtime
//! drives it, so a proxied request never wakes another thread. A connection goes back
//! to its slot when the response body it carried has been passed on completely
//! (hyper's dispatcher is then idle again); anything else — an upgrade, a body cut
//! short, an error — closes it. Idle connections are dropped (closed) after
//! [`IDLE_TIMEOUT`], when the upstream closes them, and when the instance's drain ends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::ForwardBody;
use crate::upstream::Upstream;

pub(crate) type Sender = SendRequest<ForwardBody>;

/// How long an unused connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// More idle connections than this per instance and worker are closed instead of
/// kept: a burst must not leave thousands of sockets open.
const MAX_IDLE_PER_WORKER: usize = 512;

struct Idle {
    sender: Sender,
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
    pub(crate) fn take(&self, worker: usize) -> Option<Sender> {
        let mut idle = self.slot(worker)?;
        while let Some(Idle { sender, since }) = idle.pop() {
            if !sender.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    pub(crate) fn put(&self, worker: usize, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let Some(mut idle) = self.slot(worker) else {
            return;
        };
        let now = Instant::now();
        // The oldest entry is first: sweep only when it has expired.
        if idle
            .first()
            .is_some_and(|oldest| now.duration_since(oldest.since) >= IDLE_TIMEOUT)
        {
            idle.retain(|i| now.duration_since(i.since) < IDLE_TIMEOUT && !i.sender.is_closed());
        }
        if idle.len() < MAX_IDLE_PER_WORKER {
            idle.push(Idle { sender, since: now });
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

/// A connection that carried a response whose body is still being passed on; it goes
/// back to the pool only if that body ends.
pub(crate) struct Reusable {
    pub(crate) sender: Sender,
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) worker: usize,
}

impl std::fmt::Debug for Reusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reusable")
            .field("upstream", &self.upstream.addr)
            .field("worker", &self.worker)
            .finish()
    }
}

impl Reusable {
    pub(crate) fn release(self) {
        self.upstream.connections.put(self.worker, self.sender);
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
        match connect(upstream.addr, timeout).await {
            Ok(sender) => upstream.connections.put(worker, sender),
            Err(error) => {
                tracing::debug!(instance = %upstream.addr, %error, "warming a connection failed");
                return;
            }
        }
    }
}

/// Opens a new connection to `addr` within `timeout`. The connection is driven by a
/// task on the calling worker's runtime; it supports upgrades (WebSocket).
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Sender, String> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(format!("connecting to {addr} timed out after {timeout:?}")),
        Ok(Err(error)) => return Err(format!("tcp connect error to {addr}: {error}")),
        Ok(Ok(stream)) => stream,
    };
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%addr, %error, "set_nodelay failed");
    }
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
