//! The router: one listener per service, all started together and stopped together.
//! The listeners are served by the worker threads of [`crate::worker`].

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::Clock;
use tokio::sync::{oneshot, watch};

use crate::error::RouterError;
use crate::metrics::collector::RouterCollector;
use crate::service::{ServiceHandle, ServiceRoute, ServiceState};
use crate::worker::Worker;

/// All routed services. Dropping it without [`Router::shutdown`] stops the listeners
/// at once, without a grace period.
#[derive(Debug)]
pub struct Router {
    services: Arc<Vec<Arc<ServiceState>>>,
    /// One per worker thread; resolves when that worker has stopped.
    workers: Vec<oneshot::Receiver<()>>,
    /// `Some(grace)` asks the listeners to stop accepting and drain for `grace`.
    stop: watch::Sender<Option<Duration>>,
    closing: watch::Sender<bool>,
    /// One more descriptor of each service's listening socket, to hand to a new
    /// rampart in a graceful upgrade (the workers hold their own).
    sockets: Vec<std::net::TcpListener>,
}

impl Router {
    /// Binds every service's listener first, then starts serving on one worker thread
    /// per available core. If any bind fails, nothing is left running and the error
    /// names the service and address.
    pub async fn start(
        services: Vec<ServiceRoute>,
        clock: Arc<dyn Clock>,
    ) -> Result<Router, RouterError> {
        let workers = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
        Self::start_with_workers(services, clock, workers).await
    }

    /// Like [`Router::start`], with `workers` data-plane threads (each runs its own
    /// single-threaded runtime and accepts on every service's listener).
    pub async fn start_with_workers(
        services: Vec<ServiceRoute>,
        clock: Arc<dyn Clock>,
        workers: NonZeroUsize,
    ) -> Result<Router, RouterError> {
        let mut names = std::collections::HashSet::new();
        for route in &services {
            if !names.insert(route.name.as_str()) {
                return Err(RouterError::DuplicateService(route.name.clone()));
            }
        }
        let mut bound = Vec::with_capacity(services.len());
        for route in &services {
            let bind_error = |source| RouterError::Bind {
                service: route.name.clone(),
                addr: route.listen,
                source,
            };
            let listener = crate::listeners::bind_or_take(route.listen)
                .await
                .map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            // Deregistered from this runtime; each worker registers its own duplicate.
            let listener = listener.into_std().map_err(bind_error)?;
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
                workers.get(),
            )?);
        }

        // Build every worker before starting any, so a failure leaves nothing running.
        let mut prepared = Vec::with_capacity(workers.get());
        for index in 0..workers.get() {
            let mut listeners = Vec::with_capacity(bound.len());
            for ((listener, local), state) in bound.iter().zip(&states) {
                let duplicate = listener.try_clone().map_err(|source| RouterError::Bind {
                    service: state.name.clone(),
                    addr: *local,
                    source,
                })?;
                listeners.push((duplicate, Arc::clone(state)));
            }
            prepared.push(Worker::new(index, listeners).map_err(RouterError::Workers)?);
        }
        // The workers hold duplicates; the originals are kept for a handover.
        let sockets = bound.into_iter().map(|(listener, _)| listener).collect();
        let runtimes: Vec<_> = prepared.iter().map(Worker::runtime).collect();
        for state in &states {
            state.set_worker_runtimes(runtimes.clone());
        }
        let (stop, stop_rx) = watch::channel(None);
        let mut started = Vec::with_capacity(prepared.len());
        for worker in prepared {
            // On an error `stop` is dropped, which stops the workers already started.
            started.push(
                worker
                    .spawn(stop_rx.clone())
                    .map_err(RouterError::Workers)?,
            );
        }
        Ok(Router {
            services: Arc::new(states),
            workers: started,
            stop,
            closing,
            sockets,
        })
    }

    /// Duplicates of every service's listening socket, for a new rampart to accept
    /// on (graceful upgrade): the kernel keeps one accept queue per socket, so no
    /// connection is lost between this router's last accept and the new one's first.
    pub fn listening_sockets(&self) -> std::io::Result<Vec<std::net::TcpListener>> {
        self.sockets
            .iter()
            .map(std::net::TcpListener::try_clone)
            .collect()
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

    /// [`Router::shutdown`] when another rampart accepts on the same sockets: this
    /// one stops accepting at once, then for a moment (see `worker::HANDOFF_LINGER`)
    /// answers every HTTP/1 request with `Connection: close`, so active keep-alive
    /// clients reconnect (to the new rampart) between two requests, before the rest
    /// is drained. Only connections idle all that while are closed under their
    /// client, which could race its next request against the close.
    pub async fn hand_off(self, grace: Duration) {
        for state in self.services.iter() {
            state
                .handing_off
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.shutdown(grace).await;
    }

    /// Stops accepting connections, lets requests in flight finish for up to `grace`,
    /// then closes whatever is left (including upgraded connections).
    pub async fn shutdown(self, grace: Duration) {
        self.stop.send_replace(Some(grace));
        for worker in self.workers {
            if worker.await.is_err() {
                tracing::warn!("router worker thread failed");
            }
        }
        self.closing.send_replace(true);
    }
}
