//! What the router keeps per client connection: the per-client-address connection
//! limit, and the liveness that lets slow and idle connections be closed.
//!
//! With no request in flight, a connection is either waiting for a request head or
//! idle. It waits for a head from the moment it is accepted, and again from the first
//! byte after a request has finished; that head must be complete (its request
//! started) within `header_read_timeout`, however slowly its bytes trickle in. Without
//! any byte of a new head it is idle, and is closed after `idle_timeout` of silence.
//! Requests count as in flight until their response body has been passed on, so a
//! long poll or a slow download is never cut for being quiet. (hyper's own header
//! timeout also runs while a keep-alive connection waits, which would make every idle
//! keep-alive connection close after the short header timeout and race clients that
//! reuse it; so these timeouts are kept here.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::body::{BoxError, ProxyBody};
use crate::linger::ClientSocket;

/// Open connections per client address, shared by every worker of a service.
#[derive(Debug)]
pub(crate) struct ConnectionLimit {
    /// Changes on a config reload; connections already open are kept.
    per_client: AtomicU32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl ConnectionLimit {
    pub(crate) fn new(per_client: u32) -> Arc<Self> {
        Arc::new(Self {
            per_client: AtomicU32::new(per_client.max(1)),
            open: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn set(&self, per_client: u32) {
        self.per_client.store(per_client.max(1), Ordering::Relaxed);
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
        if *open >= self.per_client.load(Ordering::Relaxed) {
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
    /// When the head now awaited began ([`NO_HEAD`] when none is awaited).
    head_started_ms: AtomicU64,
    in_flight: AtomicU32,
    /// The watchdog cut the connection: it gets no lingering close.
    cut: AtomicBool,
    /// A request body has not been read to its end (see [`UnreadBody`]).
    body_unread: AtomicBool,
}

const NO_HEAD: u64 = u64::MAX;

/// Why a connection was closed by its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// A request head took longer than `header_read_timeout`.
    SlowHead,
    /// Nothing in flight and nothing moving for `idle_timeout`.
    Idle,
}

impl Liveness {
    /// A just-accepted connection: a request head is awaited from now.
    pub(crate) fn new() -> Self {
        Self(Arc::new(LivenessInner {
            origin: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            cut: AtomicBool::new(false),
            body_unread: AtomicBool::new(false),
        }))
    }

    fn now_ms(&self) -> u64 {
        self.0.origin.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.0
            .last_active_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// Bytes arrived: with nothing in flight they begin the next request head.
    fn bytes_read(&self) {
        let now = self.now_ms();
        self.0.last_active_ms.store(now, Ordering::Relaxed);
        if self.0.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.0.head_started_ms.compare_exchange(
                NO_HEAD,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// hyper parsed a whole head: its request is in flight from now.
    pub(crate) fn request_started(&self) -> ActiveRequest {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        self.0.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
        ActiveRequest(self.clone())
    }

    /// A request with a body has started: unread until its [`UnreadBody`] says the
    /// body has ended.
    pub(crate) fn body_started(&self) -> UnreadBody {
        self.0.body_unread.store(true, Ordering::Relaxed);
        UnreadBody(self.clone())
    }

    /// Resolves when the connection has taken too long over a request head, or has
    /// been idle too long.
    pub(crate) async fn expired(&self, header_timeout: Duration, idle_timeout: Duration) -> Expiry {
        let header_ms = header_timeout.as_millis() as u64;
        let idle_ms = idle_timeout.as_millis() as u64;
        let tick = Duration::from_millis((header_ms.min(idle_ms) / 4).clamp(1, 1_000));
        loop {
            if self.0.in_flight.load(Ordering::Relaxed) == 0 {
                let now = self.now_ms();
                let head = self.0.head_started_ms.load(Ordering::Relaxed);
                if head != NO_HEAD && now.saturating_sub(head) >= header_ms {
                    self.0.cut.store(true, Ordering::Relaxed);
                    return Expiry::SlowHead;
                }
                let last = self.0.last_active_ms.load(Ordering::Relaxed);
                if head == NO_HEAD && now.saturating_sub(last) >= idle_ms {
                    self.0.cut.store(true, Ordering::Relaxed);
                    return Expiry::Idle;
                }
            }
            tokio::time::sleep(tick).await;
        }
    }
}

/// Travels with a request whose body the client is sending (handed to
/// `proxy::handle`, then to the body it forwards) until the body has been read to its
/// end. A connection that closes
/// before then may still be receiving it, so it gets a lingering close.
#[derive(Debug)]
pub(crate) struct UnreadBody(Liveness);

impl UnreadBody {
    pub(crate) fn ended(&self) {
        self.0.0.body_unread.store(false, Ordering::Relaxed);
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

/// The client's socket (or the TLS stream over it), noting every byte read or
/// written, and closing with a lingering close ([`crate::linger`]) unless the
/// watchdog cut it. Generic, so a plain connection has no layer in between.
#[derive(Debug)]
pub(crate) struct TrackedIo<S: ClientSocket> {
    inner: S,
    liveness: Liveness,
    /// A read found the end of the client's stream: it sends nothing more, so its
    /// socket closes plainly, without a look for bytes still arriving.
    client_closed: bool,
}

impl<S: ClientSocket> TrackedIo<S> {
    pub(crate) fn new(inner: S, liveness: Liveness) -> Self {
        liveness.touch();
        Self {
            inner,
            liveness,
            client_closed: false,
        }
    }
}

impl<S: ClientSocket> Drop for TrackedIo<S> {
    fn drop(&mut self) {
        // A slow or idle client that was cut gets no more of the router's time.
        let inner = &self.liveness.0;
        if !self.client_closed && !inner.cut.load(Ordering::Relaxed) {
            crate::linger::on_close(self.inner.tcp(), inner.body_unread.load(Ordering::Relaxed));
        }
    }
}

impl<S: ClientSocket + AsyncRead + Unpin> AsyncRead for TrackedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let room = buf.remaining() > 0;
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.liveness.bytes_read();
        } else if room && matches!(result, Poll::Ready(Ok(()))) {
            this.client_closed = true;
        }
        result
    }
}

impl<S: ClientSocket + AsyncWrite + Unpin> AsyncWrite for TrackedIo<S> {
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
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
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

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_must_send_its_head_in_time() {
        let liveness = Liveness::new();
        let start = Instant::now();
        assert_eq!(liveness.expired(HEAD, IDLE).await, Expiry::SlowHead);
        assert!(start.elapsed() < HEAD + Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn between_requests_only_silence_counts_and_never_with_one_in_flight() {
        let liveness = Liveness::new();
        liveness.bytes_read();
        let active = liveness.request_started();
        let expired = liveness.expired(HEAD, IDLE);
        tokio::pin!(expired);
        assert!(
            tokio::time::timeout(Duration::from_secs(300), &mut expired)
                .await
                .is_err(),
            "a request in flight keeps it open"
        );
        drop(active);
        let start = Instant::now();
        assert_eq!(expired.await, Expiry::Idle);
        assert!(
            start.elapsed() >= IDLE - Duration::from_secs(1),
            "idle, not the head timeout"
        );

        // The first byte of the next head starts the head clock.
        let liveness = Liveness::new();
        drop(liveness.request_started());
        let start = Instant::now();
        let reader = liveness.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            reader.bytes_read();
        });
        assert_eq!(liveness.expired(HEAD, IDLE).await, Expiry::SlowHead);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(30) && took < Duration::from_secs(33),
            "{took:?}"
        );
    }
}
