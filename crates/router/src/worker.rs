//! The data plane's worker threads.
//!
//! Each worker is an OS thread with its own current-thread tokio runtime that accepts
//! on its own socket of every service's `SO_REUSEPORT` group (so the kernel spreads
//! new connections over the workers; [`crate::listeners`]) and uses only the upstream
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
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::connection::{ClientSlot, ConnectionBody, Liveness, TrackedIo};
use crate::linger::ClientSocket;
use crate::listeners::Accepting;
use crate::proxy;
use crate::service::{LiveSettings, ServiceState};
use crate::tls::TlsAcceptor;

/// One service as one worker serves it.
pub(crate) struct LocalService {
    pub(crate) state: Arc<ServiceState>,
    /// This worker's index: its slot in every instance's idle-connection pool.
    pub(crate) worker: usize,
}

/// A service for a worker to start accepting on: its own duplicates of the service's
/// listening sockets it accepts on (see [`crate::listeners::share_out`]).
pub(crate) struct Added {
    pub(crate) listeners: Vec<std::net::TcpListener>,
    pub(crate) state: Arc<ServiceState>,
    /// `Some(grace)` stops this service only (a reload removed it).
    pub(crate) stop: watch::Receiver<Option<Duration>>,
    /// Dropped once this worker has stopped serving the service and drained it.
    pub(crate) done: mpsc::Sender<()>,
}

/// A worker's runtime, ready to be moved onto the worker's thread; services come and
/// go through its channel while it runs.
pub(crate) struct Worker {
    index: usize,
    runtime: Runtime,
}

impl Worker {
    pub(crate) fn new(index: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self { index, runtime })
    }

    /// A handle to the worker's runtime, to spawn work onto its thread.
    pub(crate) fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }

    /// Starts the worker's thread, which serves every service sent on `added`. The
    /// returned receiver resolves once the worker has stopped: its listeners closed
    /// and its connections drained or closed.
    pub(crate) fn spawn(
        self,
        mut added: mpsc::UnboundedReceiver<Added>,
        stop: watch::Receiver<Option<Duration>>,
    ) -> std::io::Result<oneshot::Receiver<()>> {
        let (done, stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("rampart-router-{}", self.index))
            .spawn(move || {
                let Worker { index, runtime } = self;
                crate::per_worker::enter_worker(index);
                runtime.block_on(async move {
                    let mut services = JoinSet::new();
                    let mut stopping = stop.clone();
                    loop {
                        tokio::select! {
                            service = added.recv() => match service {
                                Some(service) => match Accepting::from_std(service.listeners) {
                                    Ok(listener) => {
                                        services.spawn(serve(
                                            listener,
                                            service.state,
                                            index,
                                            stop.clone(),
                                            service.stop,
                                            service.done,
                                        ));
                                    }
                                    Err(error) => {
                                        tracing::error!(service = %service.state.name, %error, "a router worker could not take the service's sockets; connections the kernel queues on them are not accepted");
                                    }
                                },
                                // The router is gone.
                                None => break,
                            },
                            Some(_) = services.join_next(), if !services.is_empty() => {}
                            changed = stopping.changed() => {
                                if changed.is_err() || stopping.borrow().is_some() {
                                    break;
                                }
                            }
                        }
                    }
                    // Each service drains on its own (it saw the same stop).
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

/// Which stop ended a service's accept loop, and the grace it gives.
async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    loop {
        if let Some(grace) = *stop.borrow_and_update() {
            return grace;
        }
        if stop.changed().await.is_err() {
            // The router was dropped without a shutdown: stop at once.
            return Duration::ZERO;
        }
    }
}

async fn serve(
    listener: Accepting,
    state: Arc<ServiceState>,
    worker: usize,
    mut router_stop: watch::Receiver<Option<Duration>>,
    mut service_stop: watch::Receiver<Option<Duration>>,
    _done: mpsc::Sender<()>,
) {
    let local = Arc::new(LocalService { state, worker });
    let state = &local.state;
    // auto::Builder serves HTTP/1.1 and HTTP/2 (h2c with prior knowledge) on the
    // same port by sniffing the connection preface; rebuilt when a reload changes
    // the settings it is made of.
    let mut settings = state.settings.load_full();
    let mut builder = Arc::new(server_builder(&settings.config));
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
                    let current = state.settings.load();
                    if !Arc::ptr_eq(&current, &settings) {
                        settings = arc_swap::Guard::into_inner(current);
                        builder = Arc::new(server_builder(&settings.config));
                    }
                    // Boxed: a task's cell is as large as its future, and tokio moves
                    // the whole cell's stage on spawn, completion and join; a
                    // connection's future is several KiB.
                    match &state.tls {
                        None => {
                            connections.spawn(Box::pin(serve_connection(&builder, &settings.config, graceful.watcher(), stream, peer, &local, slot)));
                        }
                        Some(acceptor) => {
                            connections.spawn(Box::pin(serve_tls_connection(acceptor.clone(), Arc::clone(&builder), Arc::clone(&settings), graceful.watcher(), stream, peer, Arc::clone(&local), slot)));
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
            grace = stop_requested(&mut router_stop) => break grace,
            grace = stop_requested(&mut service_stop) => break grace,
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
#[allow(clippy::too_many_arguments)]
async fn serve_tls_connection(
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    settings: Arc<LiveSettings>,
    watcher: Watcher,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: Arc<LocalService>,
    slot: ClientSlot,
) {
    let handshake_timeout = settings.config.header_read_timeout.get();
    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            serve_connection(&builder, &settings.config, watcher, tls, peer, &local, slot).await
        }
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

fn serve_connection<S>(
    builder: &auto::Builder<TokioExecutor>,
    settings: &rampart_config::RouterConfig,
    watcher: Watcher,
    stream: S,
    peer: SocketAddr,
    local: &Arc<LocalService>,
    slot: ClientSlot,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    S: ClientSocket + AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let local = Arc::clone(local);
    let idle_timeout = settings.idle_timeout.get();
    let header_timeout = settings.header_read_timeout.get();
    let liveness = Liveness::new();
    let tracked = liveness.clone();
    let client_ip = crate::headers::ClientIp::for_connection(peer.ip());
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let active = tracked.request_started();
        let unread =
            (!hyper::body::Body::is_end_stream(request.body())).then(|| tracked.body_started());
        let http1 = request.version() < hyper::Version::HTTP_2;
        let state = Arc::clone(&local.state);
        // Boxed once here: hyper moves the service's future twice more before it polls it.
        let response = Box::pin(proxy::handle(
            Arc::clone(&local),
            peer,
            Arc::clone(&client_ip),
            request,
            unread,
        ));
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
