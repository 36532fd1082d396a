//! The router: one listener per service, all started together and stopped together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rampart_core::Clock;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::RouterError;
use crate::metrics::collector::RouterCollector;
use crate::proxy;
use crate::service::{ServiceHandle, ServiceRoute, ServiceState};

/// All routed services. Dropping it without [`Router::shutdown`] stops the listeners
/// at once, without a grace period.
#[derive(Debug)]
pub struct Router {
    services: Arc<Vec<Arc<ServiceState>>>,
    listeners: Vec<JoinHandle<()>>,
    /// `Some(grace)` asks the listeners to stop accepting and drain for `grace`.
    stop: watch::Sender<Option<Duration>>,
    closing: watch::Sender<bool>,
}

impl Router {
    /// Binds every service's listener first, then starts serving. If any bind fails,
    /// nothing is left running and the error names the service and address.
    pub async fn start(
        services: Vec<ServiceRoute>,
        clock: Arc<dyn Clock>,
    ) -> Result<Router, RouterError> {
        let mut names = std::collections::HashSet::new();
        for route in &services {
            if !names.insert(route.name.as_str()) {
                return Err(RouterError::DuplicateService(route.name.clone()));
            }
        }
        let mut bound = Vec::with_capacity(services.len());
        for route in &services {
            let listener =
                TcpListener::bind(route.listen)
                    .await
                    .map_err(|source| RouterError::Bind {
                        service: route.name.clone(),
                        addr: route.listen,
                        source,
                    })?;
            let local = listener.local_addr().map_err(|source| RouterError::Bind {
                service: route.name.clone(),
                addr: route.listen,
                source,
            })?;
            bound.push((listener, local));
        }
        let (closing, closing_rx) = watch::channel(false);
        let mut states = Vec::with_capacity(services.len());
        for (route, (_, local)) in services.into_iter().zip(&bound) {
            states.push(ServiceState::new(
                route,
                *local,
                Arc::clone(&clock),
                closing_rx.clone(),
            )?);
        }
        let (stop, stop_rx) = watch::channel(None);
        let listeners = bound
            .into_iter()
            .zip(&states)
            .map(|((listener, _), state)| {
                tokio::spawn(serve(listener, Arc::clone(state), stop_rx.clone()))
            })
            .collect();
        Ok(Router {
            services: Arc::new(states),
            listeners,
            stop,
            closing,
        })
    }

    pub fn service(&self, name: &str) -> Option<ServiceHandle> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .map(|state| ServiceHandle {
                state: Arc::clone(state),
            })
    }

    pub fn services(&self) -> Vec<ServiceHandle> {
        self.services
            .iter()
            .map(|state| ServiceHandle {
                state: Arc::clone(state),
            })
            .collect()
    }

    /// The Prometheus collector for every service; register it with
    /// `registry.register_collector(Box::new(router.collector()))`.
    pub fn collector(&self) -> RouterCollector {
        RouterCollector {
            services: Arc::clone(&self.services),
        }
    }

    /// Stops accepting connections, lets requests in flight finish for up to `grace`,
    /// then closes whatever is left (including upgraded connections).
    pub async fn shutdown(self, grace: Duration) {
        self.stop.send_replace(Some(grace));
        for listener in self.listeners {
            if let Err(error) = listener.await {
                tracing::warn!(%error, "router listener task failed");
            }
        }
        self.closing.send_replace(true);
    }
}

async fn serve(
    listener: TcpListener,
    state: Arc<ServiceState>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    // auto::Builder serves HTTP/1.1 and HTTP/2 (h2c with prior knowledge) on the
    // same port by sniffing the connection preface.
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let grace = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "set_nodelay failed");
                    }
                    connections.spawn(serve_connection(&builder, &graceful, stream, peer, &state));
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
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(service = %state.name, "drain grace over; closing remaining connections");
    }
    connections.shutdown().await;
}

fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: &Arc<ServiceState>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let state = Arc::clone(state);
    let service = service_fn(move |request| proxy::handle(Arc::clone(&state), peer, request));
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .into_owned();
    let watched = graceful.watch(connection);
    async move {
        if let Err(error) = watched.await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}
