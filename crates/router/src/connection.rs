//! What the router keeps per client connection: the per-client-address connection
//! limit, and the liveness that lets an idle connection be closed.
//!
//! A connection is idle when no request is in flight on it and no byte has moved
//! either way for the service's `idle_timeout`. Requests count as in flight until
//! their response body has been passed on, so a long poll or a slow download is never
//! cut for being quiet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::body::ProxyBody;

/// Open connections per client address, shared by every worker of a service.
#[derive(Debug)]
pub(crate) struct ConnectionLimit {
    per_client: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl ConnectionLimit {
    pub(crate) fn new(per_client: u32) -> Arc<Self> {
        Arc::new(Self {
            per_client: per_client.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        // Each change is a single insert, increment or removal: consistent even after
        // a panic elsewhere.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one more connection from `client`, or `None` at its limit. The map
    /// only holds addresses with open connections, so it is bounded by them.
    pub(crate) fn acquire(self: &Arc<Self>, client: IpAddr) -> Option<ClientSlot> {
        let client = client.to_canonical();
        let mut counts = self.counts();
        let open = counts.entry(client).or_insert(0);
        if *open >= self.per_client {
            return None;
        }
        *open += 1;
        Some(ClientSlot {
            limit: Arc::clone(self),
            client,
        })
    }

    #[cfg(test)]
    fn open(&self, client: IpAddr) -> u32 {
        self.counts().get(&client).copied().unwrap_or(0)
    }
}

/// One open connection of a client; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    limit: Arc<ConnectionLimit>,
    client: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.limit.counts();
        if let Some(open) = counts.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// When a connection last moved a byte, and how many requests are in flight on it.
#[derive(Debug, Clone)]
pub(crate) struct Liveness(Arc<LivenessInner>);

#[derive(Debug)]
struct LivenessInner {
    origin: Instant,
    last_active_ms: AtomicU64,
    in_flight: AtomicU32,
}

impl Liveness {
    pub(crate) fn new() -> Self {
        Self(Arc::new(LivenessInner {
            origin: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
        }))
    }

    fn touch(&self) {
        let now = self.0.origin.elapsed().as_millis() as u64;
        self.0.last_active_ms.store(now, Ordering::Relaxed);
    }

    pub(crate) fn request_started(&self) -> ActiveRequest {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(self.clone())
    }

    /// Resolves once the connection has been idle for `timeout`.
    pub(crate) async fn idle_for(&self, timeout: Duration) {
        let timeout_ms = timeout.as_millis() as u64;
        loop {
            let last = self.0.last_active_ms.load(Ordering::Relaxed);
            let now = self.0.origin.elapsed().as_millis() as u64;
            let quiet = now.saturating_sub(last);
            if quiet >= timeout_ms && self.0.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            let wait = timeout_ms.saturating_sub(quiet).max(timeout_ms / 4).max(1);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// A request in flight on its connection until its response body is done.
#[derive(Debug)]
pub(crate) struct ActiveRequest(Liveness);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.touch();
        self.0.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The client's socket, noting every byte read or written.
#[derive(Debug)]
pub(crate) struct TrackedIo {
    inner: TcpStream,
    liveness: Liveness,
}

impl TrackedIo {
    pub(crate) fn new(inner: TcpStream, liveness: Liveness) -> Self {
        liveness.touch();
        Self { inner, liveness }
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.liveness.touch();
        }
        result
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.liveness.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.liveness.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A response body that keeps its request in flight on the connection.
#[derive(Debug)]
pub(crate) struct ConnectionBody {
    inner: ProxyBody,
    _active: ActiveRequest,
}

impl ConnectionBody {
    pub(crate) fn new(inner: ProxyBody, active: ActiveRequest) -> Self {
        Self {
            inner,
            _active: active,
        }
    }
}

impl Body for ConnectionBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_connections_per_client_and_forgets_closed_ones() {
        let limit = ConnectionLimit::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        let first = limit.acquire(a).unwrap();
        let _second = limit.acquire(a).unwrap();
        assert!(limit.acquire(a).is_none());
        let other = limit.acquire(b).unwrap();
        assert_eq!(
            limit.open("127.0.0.2".parse().unwrap()),
            1,
            "mapped v4 is v4"
        );
        drop(first);
        assert!(limit.acquire(a).is_some());
        drop(other);
        assert!(limit.counts().len() == 1, "closed clients are forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_only_without_requests_in_flight() {
        let liveness = Liveness::new();
        liveness.touch();
        let active = liveness.request_started();
        let idle = liveness.idle_for(Duration::from_secs(10));
        tokio::pin!(idle);
        assert!(
            tokio::time::timeout(Duration::from_secs(30), &mut idle)
                .await
                .is_err(),
            "a request in flight keeps it open"
        );
        drop(active);
        tokio::time::timeout(Duration::from_secs(30), &mut idle)
            .await
            .expect("idle once the request is done");
    }
}
