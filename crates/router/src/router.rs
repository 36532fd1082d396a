//! The router: one listener per service, served by the worker threads of
//! [`crate::worker`]. Services are added and removed while it runs (a config reload
//! does that, and start-up is the same path from no service at all).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_core::Clock;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::RouterError;
use crate::metrics::collector::RouterCollector;
use crate::service::{ServiceHandle, ServiceRoute, ServiceState};
use crate::worker::{Added, Worker};

/// Every routed service, as the collector and lookups read them.
pub(crate) type ServiceList = Arc<ArcSwap<Vec<Arc<ServiceState>>>>;

/// All routed services. Dropping it without [`Router::shutdown`] stops the listeners
/// at once, without a grace period.
pub struct Router {
    services: ServiceList,
    /// Per service: how to stop it alone, and how to learn that every worker has.
    stops: Mutex<HashMap<String, ServiceStop>>,
    /// One per worker thread: services to start accepting on.
    workers: Vec<mpsc::UnboundedSender<Added>>,
    runtimes: Vec<tokio::runtime::Handle>,
    /// One per worker thread; resolves when that worker has stopped.
    stopped: Mutex<Vec<oneshot::Receiver<()>>>,
    /// `Some(grace)` asks every listener to stop accepting and drain for `grace`.
    stop: watch::Sender<Option<Duration>>,
    clock: Arc<dyn Clock>,
    /// Serialises adds and removals, so a name is never bound twice.
    changing: Mutex<()>,
    /// One more descriptor of each of a service's listening sockets (its
    /// `SO_REUSEPORT` group), to hand to a new rampart in a graceful upgrade (the
    /// workers hold their own).
    sockets: Mutex<HashMap<String, ServiceSockets>>,
    /// Sockets of bound and routed services together (see [`GROUP_SOCKETS_BUDGET`]).
    group_sockets: Arc<AtomicUsize>,
}

/// How many listening sockets the services' `SO_REUSEPORT` groups may hold together;
/// a service bound beyond it gets one socket, shared by the workers. A graceful
/// upgrade passes every socket in one message of at most 253 descriptors, so this
/// leaves room for 120 more services after the budget is spent.
const GROUP_SOCKETS_BUDGET: usize = 128;

#[derive(Debug)]
struct ServiceStop {
    stop: watch::Sender<Option<Duration>>,
    /// Yields `None` once every worker has dropped its sender (stopped and drained).
    done: mpsc::Receiver<()>,
}

/// A service whose listener is bound (connections queue in the kernel) but not yet
/// served: [`Router::install`] starts serving it; dropping it closes the socket.
#[derive(Debug)]
pub struct BoundService {
    state: Arc<ServiceState>,
    /// Per worker, duplicates of the listening sockets it accepts on.
    listeners: Vec<Vec<std::net::TcpListener>>,
    /// The originals, kept for a handover while the service is routed.
    sockets: ServiceSockets,
}

/// A service's listening sockets, counted against [`GROUP_SOCKETS_BUDGET`] until
/// dropped.
#[derive(Debug)]
struct ServiceSockets {
    sockets: Vec<std::net::TcpListener>,
    _reserved: Reserved,
}

#[derive(Debug)]
struct Reserved {
    count: usize,
    total: Arc<AtomicUsize>,
}

impl Reserved {
    fn new(count: usize, total: &Arc<AtomicUsize>) -> Self {
        total.fetch_add(count, Ordering::Relaxed);
        Self {
            count,
            total: Arc::clone(total),
        }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.total.fetch_sub(self.count, Ordering::Relaxed);
    }
}

impl BoundService {
    /// The address the listener is bound to (port 0 resolved).
    pub fn listen_addr(&self) -> SocketAddr {
        self.state.listen
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("services", &self.services.load().len())
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
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
        let router = Self::empty(clock, workers)?;
        let mut bound = Vec::with_capacity(services.len());
        for route in services {
            if bound.iter().any(|b: &BoundService| b.name() == route.name) {
                return Err(RouterError::DuplicateService(route.name));
            }
            bound.push(router.bind(route).await?);
        }
        for service in bound {
            router.install(service)?;
        }
        Ok(router)
    }

    /// A router with its worker threads running and no service yet.
    pub fn empty(clock: Arc<dyn Clock>, workers: NonZeroUsize) -> Result<Router, RouterError> {
        // Build every worker before starting any, so a failure leaves nothing running.
        let mut prepared = Vec::with_capacity(workers.get());
        for index in 0..workers.get() {
            prepared.push(Worker::new(index).map_err(RouterError::Workers)?);
        }
        let runtimes: Vec<_> = prepared.iter().map(Worker::runtime).collect();
        let (stop, stop_rx) = watch::channel(None);
        let mut senders = Vec::with_capacity(prepared.len());
        let mut stopped = Vec::with_capacity(prepared.len());
        for worker in prepared {
            let (sender, receiver) = mpsc::unbounded_channel();
            // On an error `stop` and the senders are dropped, which stops the workers
            // already started.
            stopped.push(
                worker
                    .spawn(receiver, stop_rx.clone())
                    .map_err(RouterError::Workers)?,
            );
            senders.push(sender);
        }
        Ok(Router {
            services: Arc::new(ArcSwap::from_pointee(Vec::new())),
            stops: Mutex::new(HashMap::new()),
            workers: senders,
            runtimes,
            stopped: Mutex::new(stopped),
            stop,
            clock,
            changing: Mutex::new(()),
            sockets: Mutex::new(HashMap::new()),
            group_sockets: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Binds the service's listener (or takes the one the service manager passed)
    /// without serving it yet: the fallible half of adding a service, so a caller
    /// adding several can bind them all before any is served.
    pub async fn bind(&self, route: ServiceRoute) -> Result<BoundService, RouterError> {
        if self.service(&route.name).is_some() {
            return Err(RouterError::DuplicateService(route.name));
        }
        let bind_error = |source| RouterError::Bind {
            service: route.name.clone(),
            addr: route.listen,
            source,
        };
        let held = self.group_sockets.load(Ordering::Relaxed);
        let group_size = self
            .workers
            .len()
            .min(GROUP_SOCKETS_BUDGET.saturating_sub(held))
            .max(1);
        let sockets = crate::listeners::bind_group(route.listen, group_size).map_err(bind_error)?;
        let reserved = Reserved::new(sockets.len(), &self.group_sockets);
        let local = sockets[0].local_addr().map_err(bind_error)?;
        // The workers register their own duplicates with their runtimes; the
        // originals are kept for a handover.
        let listeners =
            crate::listeners::share_out(&sockets, self.workers.len()).map_err(|source| {
                RouterError::Bind {
                    service: route.name.clone(),
                    addr: local,
                    source,
                }
            })?;
        let state = ServiceState::new(route, local, Arc::clone(&self.clock), self.workers.len())?;
        state.set_worker_runtimes(self.runtimes.clone());
        Ok(BoundService {
            state,
            listeners,
            sockets: ServiceSockets {
                sockets,
                _reserved: reserved,
            },
        })
    }

    /// Starts serving a bound service on every worker.
    pub fn install(&self, bound: BoundService) -> Result<ServiceHandle, RouterError> {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let BoundService {
            state,
            listeners,
            sockets,
        } = bound;
        if self.service(&state.name).is_some() {
            return Err(RouterError::DuplicateService(state.name.clone()));
        }
        let (stop, stop_rx) = watch::channel(None);
        let (done, done_rx) = mpsc::channel(1);
        for (worker, listener) in self.workers.iter().zip(listeners) {
            let added = Added {
                listeners: listener,
                state: Arc::clone(&state),
                stop: stop_rx.clone(),
                done: done.clone(),
            };
            if worker.send(added).is_err() {
                return Err(RouterError::Workers(std::io::Error::other(
                    "a router worker thread has stopped",
                )));
            }
        }
        self.stops.lock().unwrap_or_else(|p| p.into_inner()).insert(
            state.name.clone(),
            ServiceStop {
                stop,
                done: done_rx,
            },
        );
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(state.name.clone(), sockets);
        self.services.rcu(|list| {
            let mut list = Vec::clone(list);
            list.push(Arc::clone(&state));
            list
        });
        Ok(ServiceHandle { state })
    }

    /// Stops routing `name`: its listener closes at once (new connections are
    /// refused), requests in flight finish within `grace`, then what is left is
    /// closed. Resolves when every worker is done with it; `false` if no such service.
    pub async fn remove(&self, name: &str, grace: Duration) -> bool {
        let (stop, state) = {
            let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
            let state = self.service(name).map(|handle| handle.state);
            let stop = self
                .stops
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            // Closed here: a new rampart taking over must not get a removed service.
            self.sockets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            self.services.rcu(|list| {
                list.iter()
                    .filter(|s| s.name != name)
                    .cloned()
                    .collect::<Vec<_>>()
            });
            (stop, state)
        };
        let Some(mut stop) = stop else {
            return false;
        };
        stop.stop.send_replace(Some(grace));
        // `None` once every worker dropped its sender.
        while stop.done.recv().await.is_some() {}
        if let Some(state) = state {
            // Upgraded tunnels outlive their connection's task: they end here.
            state.closing.send_replace(true);
        }
        true
    }

    /// Duplicates of every service's listening socket, for a new rampart to accept
    /// on (graceful upgrade): the kernel keeps one accept queue per socket, so no
    /// connection is lost between this router's last accept and the new one's first.
    pub fn listening_sockets(&self) -> std::io::Result<Vec<std::net::TcpListener>> {
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flat_map(|service| &service.sockets)
            .map(std::net::TcpListener::try_clone)
            .collect()
    }

    pub fn service(&self, name: &str) -> Option<ServiceHandle> {
        self.services
            .load()
            .iter()
            .find(|s| s.name == name)
            .map(|state| ServiceHandle {
                state: Arc::clone(state),
            })
    }

    pub fn services(&self) -> Vec<ServiceHandle> {
        self.services
            .load()
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
    pub async fn hand_off(&self, grace: Duration) {
        for state in self.services.load().iter() {
            state
                .handing_off
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.shutdown(grace).await;
    }

    /// Stops accepting connections, lets requests in flight finish for up to `grace`,
    /// then closes whatever is left (including upgraded connections).
    pub async fn shutdown(&self, grace: Duration) {
        // The duplicates kept for a handover close too (one already handed over
        // lives on in the new rampart).
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.stop.send_replace(Some(grace));
        let stopped = std::mem::take(&mut *self.stopped.lock().unwrap_or_else(|p| p.into_inner()));
        for worker in stopped {
            if worker.await.is_err() {
                tracing::warn!("router worker thread failed");
            }
        }
        for state in self.services.load().iter() {
            state.closing.send_replace(true);
        }
    }
}
