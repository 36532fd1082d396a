//! The data plane's worker threads.
//!
//! Each worker is an OS thread with its own current-thread tokio runtime that accepts
//! on every service's listening socket (a duplicate of the same socket, so the kernel
//! hands each new connection to one of the workers) and uses only the upstream
//! connections it opened itself ([`crate::pool`]). A proxied request's client connection, upstream connection and body
//! streaming therefore all run on one thread: no cross-thread wake-ups, no work
//! stealing, and no competition with the control plane's runtime. Routing tables,
//! counters and drain notifications are atomics and `tokio::sync` primitives, which
//! work across runtimes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::connection::{ClientSlot, ConnectionBody, Liveness, TrackedIo};
use crate::proxy;
use crate::service::ServiceState;
use crate::tls::TlsAcceptor;

/// One service as one worker serves it.
pub(crate) struct LocalService {
    pub(crate) state: Arc<ServiceState>,
    /// This worker's index: its slot in every instance's idle-connection pool.
    pub(crate) worker: usize,
}

/// A worker's runtime and its listeners, registered with that runtime, ready to be
/// moved onto the worker's thread.
pub(crate) struct Worker {
    index: usize,
    runtime: Runtime,
    listeners: Vec<(TcpListener, Arc<ServiceState>)>,
}

impl Worker {
    /// Builds the runtime and registers a duplicate of every listener with it.
    pub(crate) fn new(
        index: usize,
        listeners: Vec<(std::net::TcpListener, Arc<ServiceState>)>,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let registered = {
            let _entered = runtime.enter();
            listeners
                .into_iter()
                .map(|(listener, state)| Ok((TcpListener::from_std(listener)?, state)))
                .collect::<std::io::Result<Vec<_>>>()?
        };
        Ok(Self {
            index,
            runtime,
            listeners: registered,
        })
    }

    /// A handle to the worker's runtime, to spawn work onto its thread.
    pub(crate) fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }

    /// Starts the worker's thread. The returned receiver resolves once the worker has
    /// stopped: its listeners closed and its connections drained or closed.
    pub(crate) fn spawn(
        self,
        stop: watch::Receiver<Option<Duration>>,
    ) -> std::io::Result<oneshot::Receiver<()>> {
        let (done, stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("rampart-router-{}", self.index))
            .spawn(move || {
                let Worker {
                    index,
                    runtime,
                    listeners,
                } = self;
                runtime.block_on(async move {
                    let mut services = JoinSet::new();
                    for (listener, state) in listeners {
                        services.spawn(serve(listener, state, index, stop.clone()));
                    }
                    while services.join_next().await.is_some() {}
                });
                // Dropping the runtime closes what is left on this worker: upgraded
                // tunnels and idle pooled upstream connections.
                drop(runtime);
                let _ = done.send(());
            })?;
        Ok(stopped)
    }
}

/// How long connections keep being served with `Connection: close` after a handover
/// before idle ones are closed: long enough for a keep-alive client that sends at
/// least a request a second to leave on its own.
const HANDOFF_LINGER: Duration = Duration::from_millis(1500);

async fn serve(
    listener: TcpListener,
    state: Arc<ServiceState>,
    worker: usize,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let local = Arc::new(LocalService { state, worker });
    let state = &local.state;
    // auto::Builder serves HTTP/1.1 and HTTP/2 (h2c with prior knowledge) on the
    // same port by sniffing the connection preface.
    let builder = Arc::new(server_builder(&state.settings));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let grace = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Over the per-client limit: closed at once, before any read.
                    let Some(slot) = state.connection_limit.acquire(peer.ip()) else {
                        tracing::debug!(service = %state.name, %peer, "connection refused: too many from this client");
                        continue;
                    };
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "set_nodelay failed");
                    }
                    match &state.tls {
                        None => {
                            connections.spawn(serve_connection(&builder, graceful.watcher(), stream, peer, &local, slot));
                        }
                        Some(acceptor) => {
                            connections.spawn(serve_tls_connection(acceptor.clone(), Arc::clone(&builder), graceful.watcher(), stream, peer, Arc::clone(&local), slot));
                        }
                    }
                }
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(service = %state.name, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            changed = stop.changed() => {
                let grace = *stop.borrow();
                match (changed, grace) {
                    (_, Some(grace)) => break grace,
                    (Err(_), None) => break Duration::ZERO,
                    (Ok(()), None) => {}
                }
            }
        }
    };
    drop(listener);
    let grace = if state.handing_off.load(std::sync::atomic::Ordering::Relaxed) {
        let started = tokio::time::Instant::now();
        let linger = tokio::time::sleep(HANDOFF_LINGER.min(grace));
        tokio::pin!(linger);
        loop {
            tokio::select! {
                () = &mut linger => break,
                next = connections.join_next() => if next.is_none() { break },
            }
        }
        grace.saturating_sub(started.elapsed())
    } else {
        grace
    };
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(service = %state.name, "drain grace over; closing remaining connections");
    }
    connections.shutdown().await;
}

/// The client-facing server with the service's limits on head size and header count.
fn server_builder(settings: &rampart_config::RouterConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let max_header_bytes = settings.max_header_bytes as usize;
    builder
        .http1()
        .timer(TokioTimer::new())
        // Kept by `connection::Liveness` instead: hyper's also runs while a keep-alive
        // connection waits for its next request.
        .header_read_timeout(None)
        // The read buffer bounds the request head; hyper's floor is 8 KiB.
        .max_buf_size(max_header_bytes.max(8192))
        .max_headers(settings.max_headers as usize);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(settings.max_header_bytes);
    builder
}

/// A TLS connection: the handshake (within `header_read_timeout`, so a client that
/// stalls it is cut like one that stalls its head), then HTTP as on a plain one.
async fn serve_tls_connection(
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: Arc<LocalService>,
    slot: ClientSlot,
) {
    let handshake_timeout = local.state.settings.header_read_timeout.get();
    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve_connection(&builder, watcher, tls, peer, &local, slot).await,
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

fn serve_connection<S>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    stream: S,
    peer: SocketAddr,
    local: &Arc<LocalService>,
    slot: ClientSlot,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let local = Arc::clone(local);
    let idle_timeout = local.state.settings.idle_timeout.get();
    let header_timeout = local.state.settings.header_read_timeout.get();
    let liveness = Liveness::new();
    let tracked = liveness.clone();
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let active = tracked.request_started();
        let http1 = request.version() < hyper::Version::HTTP_2;
        let state = Arc::clone(&local.state);
        let response = proxy::handle(Arc::clone(&local), peer, request);
        async move {
            let mut response = response.await?;
            if http1 && state.handing_off.load(std::sync::atomic::Ordering::Relaxed) {
                response.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(
                response.map(|body| ConnectionBody::new(body, active)),
            )
        }
    });
    let io = TrackedIo::new(stream, liveness.clone());
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    let watched = watcher.watch(connection);
    async move {
        tokio::select! {
            result = watched => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            }
            expiry = liveness.expired(header_timeout, idle_timeout) => {
                tracing::debug!(%peer, ?expiry, "connection closed");
            }
        }
        drop(slot);
    }
}
