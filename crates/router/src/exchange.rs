//! The HTTP/1.1 exchange with an upstream, driven inline in the task of the request
//! that needs it.
//!
//! hyper's client runs every connection as a task of its own: a request crossed an
//! mpsc channel to it and its response head came back on a oneshot, two extra task
//! switches per proxied request. Here the request's own task writes the head (and
//! body) on the pooled socket, parses the response head with `httparse`, and the
//! response body reads the socket as the client connection asks for more. The
//! connection goes back to its worker's pool when the response has been read to its
//! end and both sides may keep it open. Upgrades (WebSocket) stay on hyper's client
//! ([`crate::pool::connect_for_upgrade`]), which hands the socket over to a tunnel.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::net::TcpStream;

use crate::body::{BodyReadTimeout, BoxError, ForwardBody};
use crate::upstream::Upstream;

/// The largest response head accepted: hyper's client default (8 KiB + 100 × 4 KiB).
const MAX_HEAD: usize = 8192 + 4096 * 100;
/// Header fields in a response head, as hyper's client allows.
const MAX_HEADERS: usize = 100;
/// A chunk size line or the trailer section longer than this is refused.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;
/// Each read from the upstream asks for at least this much room, and at most
/// [`MAX_READ`] (for a large body with a known length).
const MIN_READ: usize = 8 * 1024;
const MAX_READ: usize = 64 * 1024;

/// A keep-alive connection to an upstream instance, with what has been read from it
/// and not passed on yet.
pub(crate) struct Connection {
    stream: TcpStream,
    buf: BytesMut,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.stream.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Connects to `addr` within `timeout`, with Nagle off (a request head must not wait
/// for an acknowledgement). The one way the router opens an upstream connection.
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(format!("connecting to {addr} timed out after {timeout:?}")),
        Ok(Err(error)) => return Err(format!("tcp connect error to {addr}: {error}")),
        Ok(Ok(stream)) => stream,
    };
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%addr, %error, "set_nodelay failed");
    }
    Ok(stream)
}

impl Connection {
    /// Connects to `addr` within `timeout` ([`connect`]).
    pub(crate) async fn open(addr: SocketAddr, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            stream: connect(addr, timeout).await?,
            buf: BytesMut::new(),
        })
    }

    /// Whether an idle connection can carry another request: the upstream has neither
    /// closed it nor sent anything unasked. Reads only when the runtime has seen the
    /// socket become readable.
    pub(crate) fn is_usable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Reads what the socket has into the buffer, with room for about `want` bytes.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        fill(Pin::new(&mut self.stream), cx, &mut self.buf, want)
    }
}

/// One read into `buf` with room for about `want` bytes. Through tokio's `AsyncRead`,
/// which notes a read that drained the socket, so the next one waits for readiness
/// instead of trying (and failing) first: a syscall per request saved.
fn fill<R: tokio::io::AsyncRead>(
    reader: Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    want: usize,
) -> Poll<io::Result<usize>> {
    let room = want.clamp(MIN_READ, MAX_READ);
    if buf.capacity() - buf.len() < room / 2 {
        buf.reserve(room);
    }
    tokio_util::io::poll_read_buf(reader, cx, buf)
}

/// Where a connection goes back to once its response has been read.
#[derive(Debug, Clone)]
pub(crate) struct Home {
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) worker: usize,
}

/// How an exchange failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// Nothing of the request was written: it may go on another connection as is.
    Unsent,
    /// The connection closed (or was reset) before a response head arrived.
    Closed(String),
    /// A malformed response, or an I/O error other than a close.
    Upstream(String),
    /// The client's request body failed or stalled.
    Client { stalled: bool, detail: String },
}

fn io_failure(what: &str, error: &io::Error) -> ExchangeError {
    let detail = format!("{what}: {error}");
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ExchangeError::Closed(detail),
        _ => ExchangeError::Upstream(detail),
    }
}

fn client_failure(error: &BoxError) -> ExchangeError {
    let mut stalled = false;
    let mut detail = error.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(cause) = source {
        stalled |= cause.downcast_ref::<BodyReadTimeout>().is_some();
        source = cause.source();
        if let Some(next) = source {
            detail.push_str(": ");
            detail.push_str(&next.to_string());
        }
    }
    ExchangeError::Client { stalled, detail }
}

/// How the request body is framed towards the upstream (hyper's client rules: a
/// length the request carries, else the body's exact size, else chunked, except
/// for methods that never have a body).
#[derive(Debug, Clone, Copy)]
enum RequestFraming {
    Length(u64),
    Chunked,
}

/// A request ready to be written: its encoded head (and, when the body had its
/// first bytes ready at once, those too), and the rest of its body.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The head and any body bytes already encoded behind it.
    pending: Vec<u8>,
    body: ForwardBody,
    /// `None` when the body has been encoded completely (or there is none).
    framing: Option<RequestFraming>,
    /// Body bytes still owed under a length framing.
    remaining: u64,
    head_request: bool,
    /// The request has no body, so `pending` keeps the whole request after it was
    /// written and it can be sent again (a retry on another instance) without
    /// keeping a copy of its parts.
    replayable: bool,
}

impl Outgoing {
    /// Encodes the head of `parts` (origin form, HTTP/1.1, hop-by-hop headers already
    /// removed) and decides the body's framing.
    pub(crate) fn new(mut parts: Parts, body: ForwardBody) -> Self {
        let replayable = body.is_end_stream();
        let framing = if replayable {
            parts.headers.remove(header::TRANSFER_ENCODING);
            None
        } else if let Some(length) = content_length(&parts.headers) {
            Some(RequestFraming::Length(length))
        } else if let Some(length) = body.size_hint().exact() {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            Some(RequestFraming::Length(length))
        } else if matches!(parts.method, Method::GET | Method::HEAD | Method::CONNECT) {
            // As hyper: these almost never have a body; one of unknown length is not
            // sent rather than sent chunked.
            None
        } else {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            Some(RequestFraming::Chunked)
        };
        let mut pending = Vec::with_capacity(256 + parts.headers.len() * 48);
        pending.extend_from_slice(parts.method.as_str().as_bytes());
        pending.push(b' ');
        match (parts.uri.authority(), parts.uri.path_and_query()) {
            (None, Some(path)) => pending.extend_from_slice(path.as_str().as_bytes()),
            (None, None) => pending.push(b'/'),
            (Some(_), _) => pending.extend_from_slice(parts.uri.to_string().as_bytes()),
        }
        pending.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &parts.headers {
            pending.extend_from_slice(name.as_str().as_bytes());
            pending.extend_from_slice(b": ");
            pending.extend_from_slice(value.as_bytes());
            pending.extend_from_slice(b"\r\n");
        }
        pending.extend_from_slice(b"\r\n");
        let remaining = match framing {
            Some(RequestFraming::Length(length)) => length,
            _ => 0,
        };
        Self {
            pending,
            body,
            framing,
            remaining,
            head_request: parts.method == Method::HEAD,
            replayable,
        }
    }

    /// Whether the whole request is still here to be sent again (it has no body).
    pub(crate) fn replayable(&self) -> bool {
        self.replayable
    }

    /// Encodes one body frame behind what is pending; data beyond a declared length,
    /// or a body that ends short of it, is the client's error.
    fn encode(&mut self, frame: Frame<Bytes>) -> Result<(), ExchangeError> {
        let Ok(data) = frame.into_data() else {
            // Trailers: hyper's client only sends those a `Trailer` header declares,
            // and that header is hop-by-hop here.
            return Ok(());
        };
        if data.is_empty() {
            return Ok(());
        }
        match self.framing {
            Some(RequestFraming::Length(_)) => {
                if data.len() as u64 > self.remaining {
                    return Err(ExchangeError::Client {
                        stalled: false,
                        detail: "the request body is longer than its content-length".into(),
                    });
                }
                self.remaining -= data.len() as u64;
                self.pending.extend_from_slice(&data);
            }
            Some(RequestFraming::Chunked) => {
                use std::io::Write as _;
                let _ = write!(self.pending, "{:X}\r\n", data.len());
                self.pending.extend_from_slice(&data);
                self.pending.extend_from_slice(b"\r\n");
            }
            None => {}
        }
        Ok(())
    }

    /// The body has ended: the chunked terminator, or a check that the length was met.
    fn finish_body(&mut self) -> Result<(), ExchangeError> {
        match self.framing.take() {
            Some(RequestFraming::Chunked) => self.pending.extend_from_slice(b"0\r\n\r\n"),
            Some(RequestFraming::Length(_)) if self.remaining > 0 => {
                return Err(ExchangeError::Client {
                    stalled: false,
                    detail: "the request body ended before its content-length".into(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Takes body frames that are ready now into `pending`, so the head and a small
    /// body go out in one write.
    fn take_ready(&mut self, cx: &mut Context<'_>) -> Result<(), ExchangeError> {
        while self.framing.is_some() && self.pending.len() < MAX_READ {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => return self.finish_body(),
                Poll::Ready(Some(Err(error))) => return Err(client_failure(&error)),
                Poll::Ready(Some(Ok(frame))) => {
                    self.encode(frame)?;
                    if self.body.is_end_stream() {
                        return self.finish_body();
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends the request on `connection` and resolves with the response head; its
    /// body reads the rest from the connection and gives the connection back to
    /// `home` once read, when it can be reused. On a pooled connection found closed
    /// before a byte of the request went out, it fails with `Unsent`, and the request
    /// may go on another connection as it is.
    pub(crate) async fn send(
        &mut self,
        mut connection: Connection,
        home: Home,
    ) -> Result<Response<ResponseBody>, ExchangeError> {
        poll_fn(|cx| Poll::Ready(self.take_ready(cx))).await?;
        match write_some(&connection.stream, &self.pending).await {
            Ok(0) => return Err(ExchangeError::Unsent),
            Err(error) if is_closed(&error) => return Err(ExchangeError::Unsent),
            Err(error) => return Err(io_failure("writing the request", &error)),
            Ok(written) => {
                if let Err(error) = write_all(&connection.stream, &self.pending[written..]).await {
                    return Err(io_failure("writing the request", &error));
                }
            }
        }
        if !self.replayable {
            self.pending.clear();
        }

        let head_request = self.head_request;
        let Connection { stream, buf } = &mut connection;
        let (mut reader, writer) = stream.split();
        let mut body_sent = self.framing.is_none();
        let head = if body_sent {
            read_head(&mut reader, buf, head_request).await?
        } else {
            // The rest of the body goes out while the head is awaited: an upstream
            // may answer (and stop reading) before the body has ended.
            let sending = self.send_body(writer.as_ref());
            let reading = read_head(&mut reader, buf, head_request);
            tokio::pin!(sending, reading);
            let mut sending_done = false;
            loop {
                tokio::select! {
                    biased;
                    head = &mut reading => break head?,
                    sent = &mut sending, if !sending_done => {
                        sending_done = true;
                        match sent {
                            Ok(()) => body_sent = true,
                            Err(ExchangeError::Client { stalled, detail }) => {
                                return Err(ExchangeError::Client { stalled, detail });
                            }
                            // The upstream may have answered before it stopped reading.
                            Err(_) => {}
                        }
                    }
                }
            }
        };
        Ok(head.into_response(connection, body_sent, home))
    }

    async fn send_body(&mut self, stream: &TcpStream) -> Result<(), ExchangeError> {
        while self.framing.is_some() {
            let frame = poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                None => self.finish_body()?,
                Some(Err(error)) => return Err(client_failure(&error)),
                Some(Ok(frame)) => {
                    self.encode(frame)?;
                    if self.body.is_end_stream() {
                        self.finish_body()?;
                    } else {
                        poll_fn(|cx| Poll::Ready(self.take_ready(cx))).await?;
                    }
                }
            }
            if !self.pending.is_empty() {
                write_all(stream, &self.pending)
                    .await
                    .map_err(|error| io_failure("writing the request body", &error))?;
                self.pending.clear();
            }
        }
        Ok(())
    }
}

fn is_closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// One write of as much of `data` as the socket takes.
async fn write_some(stream: &TcpStream, data: &[u8]) -> io::Result<usize> {
    loop {
        match stream.try_write(data) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            result => return result,
        }
    }
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let written = write_some(stream, data).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[written..];
    }
    Ok(())
}

/// The Content-Length a request or response carries: every value (and every element
/// of a list) equal, or `None` when absent or malformed.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let parsed: u64 = std::str::from_utf8(part).ok()?.parse().ok()?;
            if length.is_some_and(|l| l != parsed) {
                return None;
            }
            length = Some(parsed);
        }
    }
    length
}

/// A parsed response head and how its body is framed.
struct Head {
    response: Response<()>,
    framing: Framing,
    keep_alive: bool,
}

impl Head {
    fn into_response(
        self,
        connection: Connection,
        body_sent: bool,
        home: Home,
    ) -> Response<ResponseBody> {
        let reusable = self.keep_alive && body_sent;
        let mut body = ResponseBody {
            connection: Some(connection),
            framing: self.framing,
            reusable,
            home: Some(home),
        };
        if matches!(body.framing, Framing::Length(0)) {
            body.framing = Framing::Done;
        }
        if matches!(body.framing, Framing::Done) {
            body.finish();
        }
        self.response.map(|()| body)
    }
}

async fn read_head(
    reader: &mut tokio::net::tcp::ReadHalf<'_>,
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Head, ExchangeError> {
    loop {
        if !buf.is_empty()
            && let Some(head) = parse_head(buf, head_request)?
        {
            return Ok(head);
        }
        if buf.len() >= MAX_HEAD {
            return Err(ExchangeError::Upstream(format!(
                "the upstream's response head is larger than {MAX_HEAD} bytes"
            )));
        }
        match poll_fn(|cx| fill(Pin::new(&mut *reader), cx, buf, MIN_READ)).await {
            Ok(0) if buf.is_empty() => {
                return Err(ExchangeError::Closed(
                    "the upstream closed the connection before responding".into(),
                ));
            }
            Ok(0) => {
                return Err(ExchangeError::Closed(
                    "the upstream closed the connection in the middle of the response head".into(),
                ));
            }
            Ok(_) => {}
            Err(error) => return Err(io_failure("reading the response", &error)),
        }
    }
}

fn invalid(what: &str) -> ExchangeError {
    ExchangeError::Upstream(format!("invalid response from the upstream: {what}"))
}

/// Parses a complete response head at the front of `buf` and removes it (and any
/// interim 1xx responses before it); `None` while it is incomplete.
fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, ExchangeError> {
    loop {
        // Uninitialised: zeroing 100 header slots per response costs more than parsing.
        let mut headers =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buf,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(error) => return Err(invalid(&error.to_string())),
        };
        let status = parsed
            .code
            .and_then(|code| StatusCode::from_u16(code).ok())
            .ok_or_else(|| invalid("status code"))?;
        if status.is_informational() {
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(invalid("switching protocols unasked"));
            }
            // 100 Continue and other interim answers: the final one follows.
            buf.advance(length);
            continue;
        }
        let version = if parsed.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        // Offsets into the head, so the values can share its bytes once it is split off.
        let base = buf.as_ptr() as usize;
        let count = parsed.headers.len();
        let spans: Vec<(usize, usize, usize, usize)> = parsed
            .headers
            .iter()
            .map(|field| {
                (
                    field.name.as_ptr() as usize - base,
                    field.name.len(),
                    field.value.as_ptr() as usize - base,
                    field.value.len(),
                )
            })
            .collect();
        let reason = parsed
            .reason
            .filter(|r| Some(*r) != status.canonical_reason() && !r.is_empty())
            .map(|r| (r.as_ptr() as usize - base, r.len()));
        let head = buf.split_to(length).freeze();
        let mut map = HeaderMap::with_capacity(count);
        for &(name, name_len, value, value_len) in &spans {
            let name = HeaderName::from_bytes(&head[name..name + name_len])
                .map_err(|_| invalid("header name"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(value..value + value_len))
                .map_err(|_| invalid("header value"))?;
            map.append(name, value);
        }

        let mut keep_alive = version == Version::HTTP_11;
        for value in map.get_all(header::CONNECTION) {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == Version::HTTP_10 {
                    keep_alive = true;
                }
            }
        }
        let framing = if head_request
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Framing::Done
        } else if map.contains_key(header::TRANSFER_ENCODING) {
            // Chunked last: chunked; any other coding last: read to the close. A length
            // beside it is not to be trusted (RFC 9112 §6.3) and is not passed on.
            map.remove(header::CONTENT_LENGTH);
            let chunked = map
                .get_all(header::TRANSFER_ENCODING)
                .iter()
                .next_back()
                .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if chunked {
                Framing::Chunked(Chunk::Size)
            } else {
                Framing::Close
            }
        } else if map.contains_key(header::CONTENT_LENGTH) {
            Framing::Length(content_length(&map).ok_or_else(|| invalid("content-length"))?)
        } else {
            Framing::Close
        };
        if matches!(framing, Framing::Close) {
            keep_alive = false;
        }

        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = map;
        if let Some((start, len)) = reason
            && let Ok(reason) = hyper::ext::ReasonPhrase::try_from(head.slice(start..start + len))
        {
            response.extensions_mut().insert(reason);
        }
        return Ok(Some(Head {
            response,
            framing,
            keep_alive,
        }));
    }
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    /// Read completely.
    Done,
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    Close,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
}

/// An upstream response body, read from the connection as it is asked for.
#[derive(Debug)]
pub(crate) struct ResponseBody {
    connection: Option<Connection>,
    framing: Framing,
    /// Both sides allow another request on the connection, and the request body was
    /// sent completely.
    reusable: bool,
    home: Option<Home>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BodyError(String);

impl ResponseBody {
    /// The body has been read to its end: the connection goes back to its pool when
    /// it can carry another request.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        let connection = self.connection.take();
        if let (Some(connection), Some(home)) = (connection, self.home.take())
            && self.reusable
            && connection.buf.is_empty()
        {
            home.upstream.connections.put(home.worker, connection);
        }
    }

    fn fail(&mut self, detail: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.connection = None;
        self.framing = Framing::Done;
        Poll::Ready(Some(Err(Box::new(BodyError(detail)))))
    }

    fn fill(&mut self, cx: &mut Context<'_>, want: u64) -> Poll<Result<(), String>> {
        let Some(connection) = self.connection.as_mut() else {
            return Poll::Ready(Err("the upstream connection is gone".into()));
        };
        match ready!(connection.poll_fill(cx, usize::try_from(want).unwrap_or(MAX_READ))) {
            Ok(0) => Poll::Ready(Err(
                "the upstream closed the connection in the middle of the response body".into(),
            )),
            Ok(_) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(format!("reading the response body: {error}"))),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if matches!(self.framing, Framing::Done) {
            self.finish();
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let buffered = this.connection.as_ref().map_or(0, |c| c.buf.len());
            match this.framing {
                Framing::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(remaining) => {
                    if buffered == 0 {
                        if let Err(detail) = ready!(this.fill(cx, remaining)) {
                            return this.fail(detail);
                        }
                        continue;
                    }
                    let take = remaining.min(buffered as u64);
                    let data = this.split(take as usize);
                    this.framing = Framing::Length(remaining - take);
                    if remaining == take {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Close => {
                    if buffered > 0 {
                        let data = this.split(buffered);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match this.connection.as_mut().map(|c| c.poll_fill(cx, MAX_READ)) {
                        None | Some(Poll::Ready(Ok(0))) => {
                            // Ended by the close; nothing to reuse.
                            this.connection = None;
                            this.framing = Framing::Done;
                            return Poll::Ready(None);
                        }
                        Some(Poll::Ready(Ok(_))) => continue,
                        Some(Poll::Ready(Err(error))) => {
                            return this.fail(format!("reading the response body: {error}"));
                        }
                        Some(Poll::Pending) => return Poll::Pending,
                    }
                }
                Framing::Chunked(chunk) => match ready!(this.poll_chunked(cx, chunk, buffered)) {
                    Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                    Ok(None) => continue,
                    Err(detail) => return this.fail(detail),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(remaining) => SizeHint::with_exact(remaining),
            Framing::Chunked(_) | Framing::Close => SizeHint::default(),
        }
    }
}

impl ResponseBody {
    fn split(&mut self, len: usize) -> Bytes {
        self.connection
            .as_mut()
            .map(|c| c.buf.split_to(len).freeze())
            .unwrap_or_default()
    }

    /// One step of chunked decoding: a frame, or `None` when the state moved on (or
    /// more bytes were read) and the caller should look again.
    fn poll_chunked(
        &mut self,
        cx: &mut Context<'_>,
        chunk: Chunk,
        buffered: usize,
    ) -> Poll<Result<Option<Frame<Bytes>>, String>> {
        let Some(connection) = self.connection.as_mut() else {
            return Poll::Ready(Err("the upstream connection is gone".into()));
        };
        let buf = &mut connection.buf;
        match chunk {
            Chunk::Size if buffered > 0 => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    buf.advance(used);
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                    return Poll::Ready(Ok(None));
                }
                Ok(httparse::Status::Partial) if buffered > MAX_CHUNK_LINE => {
                    return Poll::Ready(Err("chunk size line too long".into()));
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Poll::Ready(Err("invalid chunk size".into())),
            },
            Chunk::Data(remaining) if buffered > 0 => {
                let take = remaining.min(buffered as u64);
                let data = buf.split_to(take as usize).freeze();
                self.framing = Framing::Chunked(if take == remaining {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(remaining - take)
                });
                return Poll::Ready(Ok(Some(Frame::data(data))));
            }
            Chunk::DataEnd if buffered >= 2 => {
                if &buf[..2] != b"\r\n" {
                    return Poll::Ready(Err("missing CRLF after a chunk".into()));
                }
                buf.advance(2);
                self.framing = Framing::Chunked(Chunk::Size);
                return Poll::Ready(Ok(None));
            }
            Chunk::Trailers if buffered >= 2 && &buf[..2] == b"\r\n" => {
                buf.advance(2);
                self.finish();
                return Poll::Ready(Ok(None));
            }
            Chunk::Trailers if buffered > 0 => {
                let mut fields = [httparse::EMPTY_HEADER; 32];
                match httparse::parse_headers(buf, &mut fields) {
                    Ok(httparse::Status::Complete((used, fields))) => {
                        let mut trailers = HeaderMap::with_capacity(fields.len());
                        for field in fields {
                            if let (Ok(name), Ok(value)) = (
                                HeaderName::from_bytes(field.name.as_bytes()),
                                HeaderValue::from_bytes(field.value),
                            ) {
                                trailers.append(name, value);
                            }
                        }
                        buf.advance(used);
                        self.finish();
                        return Poll::Ready(Ok(Some(Frame::trailers(trailers))));
                    }
                    Ok(httparse::Status::Partial) if buffered > MAX_TRAILERS => {
                        return Poll::Ready(Err("response trailers too large".into()));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Poll::Ready(Err("invalid response trailers".into())),
                }
            }
            _ => {}
        }
        let want = match chunk {
            Chunk::Data(remaining) => remaining,
            _ => MIN_READ as u64,
        };
        ready!(self.fill(cx, want))?;
        Poll::Ready(Ok(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Result<Option<Head>, ExchangeError> {
        parse_head(&mut BytesMut::from(bytes), false)
    }

    #[test]
    fn frames_responses_as_rfc_9112_says() {
        let h = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert!(matches!(h.framing, Framing::Length(5)) && h.keep_alive);
        let h = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(h.framing, Framing::Chunked(_)));
        assert!(!h.response.headers().contains_key(header::CONTENT_LENGTH));
        let h = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(h.framing, Framing::Close) && !h.keep_alive);
        let h = head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(matches!(h.framing, Framing::Close) && !h.keep_alive);
        let h = head(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = head(b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = head(b"HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(h.framing, Framing::Done));
        let h = parse_head(
            &mut BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"[..]),
            true,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(h.framing, Framing::Done));
    }

    #[test]
    fn refuses_what_cannot_be_framed_safely() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5a\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(
            head(b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn skips_interim_responses_and_waits_for_a_whole_head() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"[..],
        );
        let h = parse_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.response.status(), 201);
        assert_eq!(&buf[..], b"ok");
        assert!(head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap().is_none());
    }

    #[test]
    fn keeps_a_reason_phrase_that_is_not_the_usual_one() {
        let h = head(b"HTTP/1.1 200 Fine\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        let reason = h
            .response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .unwrap();
        assert_eq!(reason.as_bytes(), b"Fine");
        let h = head(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(
            h.response
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .is_none()
        );
    }

    #[test]
    fn encodes_the_request_head_and_body_framing_as_hyper_does() {
        let (mut parts, ()) = http::Request::post("/up?x=1")
            .body(())
            .unwrap()
            .into_parts();
        parts.headers.insert("x-a", HeaderValue::from_static("1"));
        let mut out = Outgoing::new(
            parts,
            ForwardBody::Buffered(Some(Bytes::from_static(b"abc"))),
        );
        let waker = std::task::Waker::noop();
        out.take_ready(&mut Context::from_waker(waker)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.pending),
            "POST /up?x=1 HTTP/1.1\r\nx-a: 1\r\ncontent-length: 3\r\n\r\nabc"
        );
        assert!(out.framing.is_none());

        let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        let out = Outgoing::new(parts, ForwardBody::Empty);
        assert_eq!(
            String::from_utf8_lossy(&out.pending),
            "GET / HTTP/1.1\r\n\r\n"
        );
    }
}
