//! Body types. Both directions stream frame by frame (no buffering), so memory stays
//! flat for any body size; the response body also carries the request's in-flight
//! accounting, which ends only when the last byte has been passed on, and its
//! outcome, recorded when the body ends: latency is measured to the end of the body
//! (an upstream that streams slowly is slow), and a body that fails midway is an
//! error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::connection::UnreadBody;
use crate::exchange::ResponseBody;
use crate::limit::Permit;
use crate::metrics::counters::{SetCounters, WorkerCounts};
use crate::outcome::Outcome;
use crate::upstream::InFlight;

/// One request counted in its set's in-flight gauge (when metrics are on).
#[derive(Debug)]
pub(crate) struct SetGauge(Option<WorkerCounts>);

impl SetGauge {
    pub(crate) fn new(counters: &Arc<SetCounters>, enabled: bool) -> Self {
        if !enabled {
            return Self(None);
        }
        let mine = counters.mine();
        mine.request_started();
        Self(Some(Arc::clone(mine)))
    }
}

impl Drop for SetGauge {
    fn drop(&mut self) {
        if let Some(counters) = &self.0 {
            counters.request_ended();
        }
    }
}

/// Everything that counts one request as in flight: the service's concurrency slot,
/// the instance (for draining and balancing) and the set's in-flight gauge. Lives
/// until the response body has been passed on.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    pub(crate) _permit: Permit,
    pub(crate) _upstream: InFlight,
    pub(crate) _gauge: SetGauge,
}

/// What the router sends back to the client.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    Upstream(UpstreamBody),
    Full(Option<Bytes>),
}

/// A response body as an upstream sends it: read by the router's own exchange (which
/// returns its connection to the pool at the end), or by hyper's client for an
/// upgrade request.
#[derive(Debug)]
pub(crate) enum Received {
    Exchanged(ResponseBody),
    Upgrade(Incoming),
}

impl Body for Received {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Received::Exchanged(body) => Pin::new(body).poll_frame(cx),
            Received::Upgrade(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(BoxError::from))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Received::Exchanged(body) => body.is_end_stream(),
            Received::Upgrade(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Received::Exchanged(body) => body.size_hint(),
            Received::Upgrade(body) => body.size_hint(),
        }
    }
}

/// An upstream response body on its way to the client.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    inner: Received,
    ended: bool,
    /// Recorded when the body ends (or fails, or the client stops reading).
    outcome: Option<PendingOutcome>,
    _guard: RequestGuard,
}

/// A request's outcome waiting for its response body to end.
#[derive(Debug)]
pub(crate) struct PendingOutcome {
    pub(crate) outcome: Outcome,
    pub(crate) status: u16,
    /// The status alone makes it an error (5xx).
    pub(crate) error: bool,
}

impl PendingOutcome {
    fn finish(self, failed_midway: bool) {
        self.outcome
            .finish(self.status, self.error || failed_midway);
    }
}

impl UpstreamBody {
    pub(crate) fn new(
        inner: Received,
        guard: RequestGuard,
        outcome: Option<PendingOutcome>,
    ) -> Self {
        Self {
            inner,
            ended: false,
            outcome,
            _guard: guard,
        }
    }

    fn end(&mut self, failed_midway: bool) {
        self.ended = !failed_midway;
        if let Some(pending) = self.outcome.take() {
            pending.finish(failed_midway);
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // The client stopped reading before the end: not the upstream's failure, but
        // the time it had taken so far still counts.
        if let Some(pending) = self.outcome.take() {
            pending.finish(false);
        }
        // The connection went back to the pool when the body was read to its end; one
        // cut short is closed with the body.
    }
}

impl ProxyBody {
    pub(crate) fn full(bytes: Bytes) -> Self {
        ProxyBody::Full(Some(bytes))
    }

    pub(crate) fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Upstream(body) => {
                let frame = Pin::new(&mut body.inner).poll_frame(cx);
                match &frame {
                    Poll::Ready(None) => body.end(false),
                    Poll::Ready(Some(Ok(_))) if body.inner.is_end_stream() => body.end(false),
                    Poll::Ready(Some(Err(_))) => body.end(true),
                    _ => {}
                }
                frame
            }
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(body) => body.ended || body.inner.is_end_stream(),
            ProxyBody::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(body) => body.inner.size_hint(),
            ProxyBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// What the router sends to an upstream: the client's body as it arrives, or nothing
/// (for a retried request whose body was empty), or a mirrored copy's whole body.
#[derive(Debug)]
pub(crate) enum ForwardBody {
    Client(ClientBody),
    Empty,
    Buffered(Option<Bytes>),
}

/// The client's request body, abandoned when it delivers nothing for the service's
/// `body_read_timeout` (a slow client must not hold an upstream connection for ever).
#[derive(Debug)]
pub(crate) struct ClientBody {
    inner: Incoming,
    timeout: std::time::Duration,
    silence: Pin<Box<tokio::time::Sleep>>,
    /// Keeps a copy of the frames for a mirrored request.
    tee: Option<BodyTee>,
    /// Told when the body has been read to its end.
    unread: Option<UnreadBody>,
}

/// Collects a request body's frames (shared `Bytes`, no copy) as they pass, and hands
/// the whole body over once it has ended. A body over `limit`, one that fails, or one
/// abandoned midway hands over nothing: the mirror is then dropped.
#[derive(Debug)]
pub(crate) struct BodyTee {
    frames: Vec<Bytes>,
    size: usize,
    limit: usize,
    done: Option<tokio::sync::oneshot::Sender<Bytes>>,
}

impl BodyTee {
    pub(crate) fn new(limit: usize) -> (Self, tokio::sync::oneshot::Receiver<Bytes>) {
        let (done, receiver) = tokio::sync::oneshot::channel();
        let tee = Self {
            frames: Vec::new(),
            size: 0,
            limit,
            done: Some(done),
        };
        (tee, receiver)
    }

    fn keep(&mut self, frame: &Frame<Bytes>) {
        if let Some(data) = frame.data_ref() {
            self.size += data.len();
            if self.size > self.limit {
                self.abandon();
            } else if self.done.is_some() {
                self.frames.push(data.clone());
            }
        }
    }

    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            let frames = std::mem::take(&mut self.frames);
            let body = match frames.len() {
                0 => Bytes::new(),
                1 => frames.into_iter().next().unwrap_or_default(),
                _ => Bytes::from(frames.concat()),
            };
            let _ = done.send(body);
        }
    }

    fn abandon(&mut self) {
        self.done = None;
        self.frames = Vec::new();
    }
}

/// The client's body stalled; the request is the client's failure, not the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body data for {0:?}")]
pub(crate) struct BodyReadTimeout(pub(crate) std::time::Duration);

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl ForwardBody {
    /// The client's body, with a copy kept for a mirrored request when `tee` is set.
    pub(crate) fn client(
        inner: Incoming,
        timeout: std::time::Duration,
        tee: Option<BodyTee>,
        unread: Option<UnreadBody>,
    ) -> Self {
        // Most requests have no body: no read timer for them.
        if tee.is_none() && inner.is_end_stream() {
            return ForwardBody::Empty;
        }
        ForwardBody::Client(ClientBody {
            inner,
            timeout,
            silence: Box::pin(tokio::time::sleep(timeout)),
            tee,
            unread,
        })
    }
}

impl Body for ForwardBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ForwardBody::Client(body) => match Pin::new(&mut body.inner).poll_frame(cx) {
                Poll::Ready(frame) => {
                    let deadline = tokio::time::Instant::now() + body.timeout;
                    body.silence.as_mut().reset(deadline);
                    if (frame.is_none() || body.inner.is_end_stream())
                        && let Some(unread) = body.unread.take()
                    {
                        unread.ended();
                    }
                    if let Some(tee) = body.tee.as_mut() {
                        match &frame {
                            Some(Ok(f)) => {
                                tee.keep(f);
                                if body.inner.is_end_stream() {
                                    tee.finish();
                                }
                            }
                            None => tee.finish(),
                            Some(Err(_)) => tee.abandon(),
                        }
                    }
                    Poll::Ready(frame.map(|f| f.map_err(BoxError::from)))
                }
                Poll::Pending => match body.silence.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(Box::new(BodyReadTimeout(body.timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                },
            },
            ForwardBody::Empty => Poll::Ready(None),
            ForwardBody::Buffered(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ForwardBody::Client(body) => body.inner.is_end_stream(),
            ForwardBody::Empty => true,
            ForwardBody::Buffered(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ForwardBody::Client(body) => body.inner.size_hint(),
            ForwardBody::Empty => SizeHint::with_exact(0),
            ForwardBody::Buffered(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
