//! One proxied request: choose the set and instance, forward, retry once when that is
//! safe, record the outcome.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::body::{
    BodyReadTimeout, ForwardBody, PendingOutcome, ProxyBody, Received, RequestGuard, SetGauge,
    UpstreamBody,
};
use crate::connection::UnreadBody;
use crate::exchange::{Connection, ExchangeError, Home, Outgoing};
use crate::headers;
use crate::mirror;
use crate::outcome::Outcome;
use crate::pool;
use crate::problem::Problem;
use crate::service::ServiceState;
use crate::table::{ActiveTable, Assignment, SetKind};
use crate::upstream::{InFlight, Upstream};
use crate::worker::LocalService;

/// How an attempt to get a response head from an upstream failed.
pub(crate) enum Failure {
    /// No connection could be made: nothing reached the upstream.
    Connect(String),
    /// The connection closed before any response; for an idempotent request this is
    /// as safe to retry as a connect failure (RFC 9110 §9.2.2).
    ClosedEarly(String),
    Other(String),
    Timeout,
    /// The client's request body failed or stalled: the client's doing, charged to no
    /// upstream.
    Client {
        stalled: bool,
        detail: String,
    },
}

impl Failure {
    fn classify(error: &hyper::Error) -> Self {
        if error.is_user() {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
            let mut stalled = false;
            while let Some(cause) = source {
                stalled |= cause.downcast_ref::<BodyReadTimeout>().is_some();
                source = cause.source();
            }
            return Failure::Client {
                stalled,
                detail: error_chain(error),
            };
        }
        // The response head never arrived (the sender only resolves on it), so a
        // connection that closed or was reset counts as "closed early".
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = source {
            let closed = if let Some(h) = cause.downcast_ref::<hyper::Error>() {
                h.is_incomplete_message() || h.is_canceled()
            } else if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                )
            } else {
                false
            };
            if closed {
                return Failure::ClosedEarly(error_chain(error));
            }
            source = cause.source();
        }
        Failure::Other(error_chain(error))
    }

    fn from_exchange(error: ExchangeError) -> Self {
        match error {
            // Only a pooled connection hands a request back; on a new one it means the
            // connection closed at once.
            ExchangeError::Unsent => {
                Failure::ClosedEarly("the upstream closed the new connection at once".into())
            }
            ExchangeError::Closed(detail) => Failure::ClosedEarly(detail),
            ExchangeError::Upstream(detail) => Failure::Other(detail),
            ExchangeError::Client { stalled, detail } => Failure::Client { stalled, detail },
        }
    }

    /// The problem the router answers with when this failure ends the request.
    pub(crate) fn problem(&self) -> Problem {
        match self {
            Failure::Connect(_) => Problem::UpstreamUnreachable,
            Failure::ClosedEarly(_) | Failure::Other(_) => Problem::UpstreamFailed,
            Failure::Timeout => Problem::UpstreamTimeout,
            Failure::Client { stalled: true, .. } => Problem::ClientTimeout,
            Failure::Client { stalled: false, .. } => Problem::ClientFailed,
        }
    }

    /// Whether the upstream is to blame (an error of the chosen set, and a strike for
    /// outlier detection).
    pub(crate) fn upstream_at_fault(&self) -> bool {
        !matches!(self, Failure::Client { .. })
    }

    /// A connect failure sent nothing, so any request may go elsewhere; a connection
    /// that closed early may have seen the request, so only idempotent ones may.
    fn retryable(&self, idempotent: bool) -> bool {
        match self {
            Failure::Connect(_) => true,
            Failure::ClosedEarly(_) => idempotent,
            Failure::Other(_) | Failure::Timeout | Failure::Client { .. } => false,
        }
    }
}

/// A failed attempt, with the request back when it can be sent again as it is (it has
/// no body, so its encoded head is the whole request).
pub(crate) struct Failed {
    pub(crate) failure: Failure,
    replay: Option<Box<Outgoing>>,
}

impl From<Failure> for Failed {
    fn from(failure: Failure) -> Self {
        Self {
            failure,
            replay: None,
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The set a request asks for by header (only from the networks allowed to), is sent
/// to by the step's header or cookie match, or holds by a sticky cookie the split
/// issued.
fn requested_set(
    state: &ServiceState,
    parts: &Parts,
    table: &ActiveTable,
    client: SocketAddr,
) -> Option<(SetKind, Assignment)> {
    let settings = state.settings.load();
    if let Some(name) = &settings.version_header
        && state.may_pick_version(client.ip())
        && let Some(kind) = parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| SetKind::parse(v.trim()))
    {
        return Some((kind, Assignment::Client));
    }
    // A step's match: testers reach the canary whatever the weight.
    if let Some(rule) = &table.canary_match
        && rule.matches(&parts.headers)
    {
        return Some((SetKind::Canary, Assignment::Matched));
    }
    let cookie = settings.config.sticky_cookie.as_deref()?;
    state
        .cookies
        .read(&parts.headers, cookie, table.generation)
        .map(|kind| (kind, Assignment::Split))
}

pub(crate) async fn handle(
    local: Arc<LocalService>,
    client: SocketAddr,
    client_ip: Arc<headers::ClientIp>,
    mut request: Request<Incoming>,
    // Told when the request body has been read to its end (`None` without a body).
    unread: Option<UnreadBody>,
) -> Result<Response<ProxyBody>, Infallible> {
    let state = &local.state;
    let started = Instant::now();
    if headers::forwarded_by_us(request.headers()) {
        // Not a user's request but our own coming back: the one that sent it records
        // the outcome (this 508).
        return Ok(Problem::LoopDetected.response(
            &state.name,
            "this request was already forwarded by this rampart: an upstream of the service points back at one of rampart's own listeners; fix the instance addresses".into(),
        ));
    }
    if request.method() == Method::CONNECT {
        // Forwarded, a CONNECT an upstream accepted would turn the pooled upstream
        // connection into a tunnel that later requests were written into.
        return Ok(Problem::ConnectNotSupported.response(
            &state.name,
            "CONNECT opens a tunnel, which this router does not: it forwards requests to the service's instances; use a forward proxy for tunnels".into(),
        ));
    }
    if let Some(coding) = (!request.body().is_end_stream())
        .then(|| headers::transfer_coding_besides_chunked(request.headers()))
        .flatten()
    {
        // hyper decodes the chunked framing and would drop the other coding, so the
        // upstream would take gzip bytes for the body itself. nginx answers 501 too.
        return Ok(Problem::TransferCodingNotSupported.response(
            &state.name,
            format!("the transfer coding `{coding}` is not supported (only chunked is); send the body with `Content-Encoding: {coding}` instead"),
        ));
    }
    let Some(permit) = state.limit.try_acquire() else {
        return Ok(Problem::Overloaded.response(
            &state.name,
            format!(
                "the service is at its concurrency limit of {:?} requests",
                state.limit.get()
            ),
        ));
    };
    let upgrade = headers::is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    let mut table = state.table.load_full();

    // Which set: header override, then a sticky cookie of this rollout, then the split.
    let requested = requested_set(state, &parts, &table, client);
    let issue_cookie = requested.is_none() && state.settings.load().config.sticky_cookie.is_some();
    let (kind, assignment) = requested.unwrap_or_else(|| {
        let canary = table.canary.is_some() && state.splitter.next_is_canary(table.canary_step);
        let kind = if canary {
            SetKind::Canary
        } else {
            SetKind::Stable
        };
        (kind, Assignment::Split)
    });
    state.arrived(kind);

    let now_ms = state.clock.now().as_millis();
    // Only a request without a body can be sent twice: a streamed body is consumed.
    let retry_possible = !upgrade && body.is_end_stream();
    let idempotent = is_idempotent(&parts.method);
    let (mut mirror, tee) = if !upgrade && mirror::candidate(&table, kind, assignment) {
        state
            .mirror
            .plan(&table, idempotent, &body)
            .map_or((None, None), |(planned, tee)| (Some(planned), tee))
    } else {
        (None, None)
    };
    let mut first_pick = None;
    for _ in 0..3 {
        match begin_on(state, &table, kind, assignment, now_ms, None) {
            Begin::Started(served, in_flight) => {
                first_pick = Some((served, in_flight));
                break;
            }
            // The instance started draining after we loaded the table: use the new one.
            Begin::Raced => table = state.table.load_full(),
            Begin::NoInstance => break,
        }
    }
    // Charged to the chosen set whoever answers in the end (see `outcome`); taken
    // when recorded, so a request is recorded once.
    let outcome = Outcome::new(&local, &table, kind, assignment, started);
    let Some((served, in_flight)) = first_pick else {
        let response = Problem::NoUpstream
            .response(&state.name, "the service has no instance to send to".into());
        outcome.finish(response.status().as_u16(), true);
        return Ok(response);
    };
    let mut outcome = Some(outcome);
    if let Some(chosen) = outcome.take_if(|o| o.kind() != served) {
        // The chosen set had no instance to take it: its failure, although the other
        // set serves the client.
        chosen.finish(Problem::NoUpstream.status().as_u16(), true);
    }

    let set = table.set(served).unwrap_or(&table.stable);
    prepare_forward(&mut parts, &client_ip, local.state.tls.is_some());
    // A failed attempt gives its encoded request back for the retry, except when the
    // request has no Host: then each instance's address becomes it, so a copy of the
    // parts is kept to encode again.
    let retry_parts =
        (retry_possible && !parts.headers.contains_key(header::HOST)).then(|| clone_parts(&parts));
    if let Some(mut planned) = mirror.take() {
        planned.set_parts(clone_parts(&parts));
        planned.spawn(Arc::clone(&local), Arc::clone(&table));
    }
    let first = send(
        &local,
        parts,
        ForwardBody::client(
            body,
            state.settings.load().config.body_read_timeout.get(),
            tee,
            unread,
        ),
        in_flight.upstream(),
    )
    .await;
    let (set, in_flight, result) = match first {
        Err(failed)
            if retry_possible
                && failed.failure.retryable(idempotent)
                && (retry_parts.is_some() || failed.replay.is_some()) =>
        {
            let Failed { failure, replay } = failed;
            state.upstream_failed(set, in_flight.upstream(), now_ms);
            // The failed attempt is the chosen set's outcome; the retry only serves
            // the client.
            if let Some(chosen) = outcome.take() {
                chosen.count_retry();
                chosen.finish(failure.problem().status().as_u16(), true);
            }
            let failed = in_flight.upstream().addr;
            drop(in_flight);
            match begin_on(state, &table, set.kind, assignment, now_ms, Some(failed)) {
                Begin::Started(retry_kind, retry_in_flight) => {
                    let retry_set = table.set(retry_kind).unwrap_or(&table.stable);
                    tracing::debug!(service = %state.name, instance = %failed, retry = %retry_in_flight.upstream().addr, "retrying on another instance");
                    let upstream = retry_in_flight.upstream();
                    // Boxed, so the rare retry adds nothing to every request's future.
                    let second = match (retry_parts, replay) {
                        (Some(parts), _) => {
                            Box::pin(send(&local, parts, ForwardBody::Empty, upstream)).await
                        }
                        (None, Some(request)) => {
                            Box::pin(send_encoded(&local, request, upstream)).await
                        }
                        (None, None) => Err(failure.into()),
                    };
                    (retry_set, retry_in_flight, second)
                }
                Begin::Raced | Begin::NoInstance => {
                    return Ok(failure_response(state, failure));
                }
            }
        }
        other => (set, in_flight, other),
    };

    let mut response = match result {
        Ok(exchanged) => exchanged,
        Err(Failed { failure, .. }) => {
            let upstream_at_fault = failure.upstream_at_fault();
            if upstream_at_fault {
                state.upstream_failed(set, in_flight.upstream(), now_ms);
            }
            let response = failure_response(state, failure);
            if let Some(chosen) = outcome.take() {
                chosen.finish(response.status().as_u16(), upstream_at_fault);
            }
            return Ok(response);
        }
    };

    let status = response.status();
    if status.is_server_error() {
        state.upstream_failed(set, in_flight.upstream(), now_ms);
    } else {
        in_flight.upstream().record_success();
    }
    let switching = status == StatusCode::SWITCHING_PROTOCOLS && upgrade;
    headers::strip_hop_by_hop(response.headers_mut(), switching);
    if issue_cookie
        && let Some(name) = state.settings.load().config.sticky_cookie.as_deref()
        && let Some(cookie) = state.cookies.set_cookie(name, table.generation, set.kind)
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    let guard = RequestGuard {
        _permit: permit,
        _upstream: in_flight.in_flight,
        _gauge: in_flight.gauge,
    };

    // Recorded when the body has been passed on; now when there is none.
    let mut pending = outcome.take().map(|outcome| PendingOutcome {
        outcome,
        status: status.as_u16(),
        error: status.is_server_error(),
    });
    if (switching || response.body().is_end_stream())
        && let Some(pending) = pending.take()
    {
        pending.outcome.finish(pending.status, pending.error);
    }

    if switching {
        // The connection now belongs to the tunnel.
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        if let Some(client_upgrade) = client_upgrade {
            tokio::spawn(tunnel(
                state.clone(),
                client_upgrade,
                upstream_upgrade,
                guard,
            ));
        }
        let (parts, _) = response.into_parts();
        return Ok(Response::from_parts(parts, ProxyBody::empty()));
    }
    let (parts, inner) = response.into_parts();
    Ok(Response::from_parts(
        parts,
        ProxyBody::Upstream(UpstreamBody::new(inner, guard, pending)),
    ))
}

/// A request counted on its instance and on its set's gauge.
struct Dispatched {
    in_flight: InFlight,
    gauge: SetGauge,
}

impl Dispatched {
    fn upstream(&self) -> &Arc<Upstream> {
        self.in_flight.upstream()
    }
}

enum Begin {
    Started(SetKind, Dispatched),
    /// The picked instance stopped being active after the table was loaded.
    Raced,
    NoInstance,
}

/// Picks an instance and counts the request on it and on its set.
fn begin_on(
    state: &ServiceState,
    table: &ActiveTable,
    kind: SetKind,
    assignment: Assignment,
    now_ms: u64,
    exclude: Option<SocketAddr>,
) -> Begin {
    match table.pick(kind, now_ms, exclude) {
        None => Begin::NoInstance,
        Some((set, upstream)) => match upstream.begin() {
            Some(in_flight) => Begin::Started(
                set.kind,
                Dispatched {
                    in_flight,
                    gauge: SetGauge::new(set.counters_for(assignment), state.metrics_enabled()),
                },
            ),
            None => Begin::Raced,
        },
    }
}

/// Rewrites the client's request head into the upstream's: hop-by-hop headers out,
/// forwarding headers in, HTTP/1.1 towards the upstream whatever the client spoke.
fn prepare_forward(parts: &mut Parts, client: &headers::ClientIp, tls: bool) {
    let upgrade = headers::is_upgrade(&parts.headers);
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    // HTTP/2 carries the host in :authority; HTTP/1.1 upstreams need it as Host.
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, value);
    }
    // A clone of the value shares its bytes, so the headers can be changed meanwhile.
    let host = parts.headers.get(header::HOST).cloned();
    let host = host.as_ref().and_then(|h| h.to_str().ok());
    let proto = if tls { "https" } else { "http" };
    // The forwarding headers and the marker: one growth of the map, not several.
    parts.headers.reserve(4);
    headers::add_forwarding(&mut parts.headers, client, host, proto);
    headers::mark_forwarded(&mut parts.headers);
    parts.version = Version::HTTP_11;
}

fn clone_parts(parts: &Parts) -> Parts {
    let (mut copy, ()) = Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

/// Sends the request head (and streams the body) to `upstream` on one of this
/// worker's pooled connections, or a new one; resolves with the response head (its
/// body reads the rest from the connection), bounded by the service's request
/// timeout.
pub(crate) async fn send(
    local: &LocalService,
    mut parts: Parts,
    body: ForwardBody,
    upstream: &Arc<Upstream>,
) -> Result<Response<Received>, Failed> {
    // An upstream gets origin-form (`/path?query`); HTTP/2 clients and proxies send
    // absolute-form. (CONNECT, with its authority-form, is refused in `handle`.)
    if parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
    if !parts.headers.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(upstream.authority.as_str())
    {
        parts.headers.insert(header::HOST, host);
    }
    parts.version = Version::HTTP_11;
    if headers::is_upgrade(&parts.headers) {
        // Boxed: hyper's client makes this future several times the size of the
        // whole exchange, and every request's future would carry it unboxed.
        let upgraded = Box::pin(upgrade(local, Request::from_parts(parts, body), upstream));
        within_request_timeout(local, async { upgraded.await.map_err(Failed::from) }).await
    } else {
        send_encoded(local, Box::new(Outgoing::new(parts, body)), upstream).await
    }
}

/// Sends an encoded request (a new one, or one a failed attempt gave back) to
/// `upstream`, as [`send`] does.
async fn send_encoded(
    local: &LocalService,
    request: Box<Outgoing>,
    upstream: &Arc<Upstream>,
) -> Result<Response<Received>, Failed> {
    within_request_timeout(local, exchange(local, request, upstream)).await
}

async fn within_request_timeout(
    local: &LocalService,
    attempt: impl Future<Output = Result<Response<Received>, Failed>>,
) -> Result<Response<Received>, Failed> {
    let timeout = local.state.settings.load().config.request_timeout.get();
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(Failure::Timeout.into()),
        Ok(result) => result,
    }
}

/// The exchange on a pooled connection, or a new one when none is idle (or every idle
/// one turns out closed before the request went out).
async fn exchange(
    local: &LocalService,
    mut request: Box<Outgoing>,
    upstream: &Arc<Upstream>,
) -> Result<Response<Received>, Failed> {
    let home = Home {
        upstream: Arc::clone(upstream),
        worker: local.worker,
    };
    let failed = |failure: Failure, request: Box<Outgoing>| Failed {
        failure,
        replay: request.replayable().then_some(request),
    };
    while let Some(connection) = upstream.connections.take(local.worker) {
        match request.send(connection, home.clone()).await {
            Ok(response) => return Ok(response.map(Received::Exchanged)),
            Err(ExchangeError::Unsent) => {}
            Err(error) => return Err(failed(Failure::from_exchange(error), request)),
        }
    }
    let connection = match Connection::open(
        upstream.addr,
        local.state.settings.load().config.connect_timeout.get(),
    )
    .await
    {
        Ok(connection) => connection,
        Err(detail) => return Err(failed(Failure::Connect(detail), request)),
    };
    match request.send(connection, home).await {
        Ok(response) => Ok(response.map(Received::Exchanged)),
        Err(error) => Err(failed(Failure::from_exchange(error), request)),
    }
}

/// An upgrade request (WebSocket) on a connection of its own, on hyper's client,
/// which hands the socket to the tunnel when the upstream switches protocols.
async fn upgrade(
    local: &LocalService,
    request: Request<ForwardBody>,
    upstream: &Upstream,
) -> Result<Response<Received>, Failure> {
    let mut sender = pool::connect_for_upgrade(
        upstream.addr,
        local.state.settings.load().config.connect_timeout.get(),
    )
    .await
    .map_err(Failure::Connect)?;
    match sender.try_send_request(request).await {
        Ok(response) => Ok(response.map(Received::Upgrade)),
        Err(error) => Err(Failure::classify(&error.into_error())),
    }
}

fn failure_response(state: &ServiceState, failure: Failure) -> Response<ProxyBody> {
    let problem = failure.problem();
    let detail = match failure {
        Failure::Connect(e) => format!("no upstream instance could be reached: {e}"),
        Failure::ClosedEarly(e) | Failure::Other(e) => {
            format!("the upstream failed before responding: {e}")
        }
        Failure::Timeout => format!(
            "no response from the upstream within {}",
            state.settings.load().config.request_timeout
        ),
        Failure::Client { detail, .. } => format!("the request body could not be read: {detail}"),
    };
    problem.response(&state.name, detail)
}

/// Copies bytes both ways between the upgraded client and upstream connections until
/// either side closes or the router stops.
async fn tunnel(
    state: Arc<ServiceState>,
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    guard: RequestGuard,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(service = %state.name, %error, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let mut closing = state.closing.subscribe();
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(error) = result {
                tracing::debug!(service = %state.name, %error, "upgraded connection ended with an error");
            }
        }
        _ = closing.wait_for(|closing| *closing) => {}
    }
    drop(guard);
}
