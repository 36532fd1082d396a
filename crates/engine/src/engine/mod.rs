//! The engine's front door: start every service, accept deployments and operator
//! actions, answer status questions, and recover after a restart.
//!
//! One file per seam: `lifecycle` (start, recovery, shutdown, the stable watcher),
//! `commands` (deploy, operate, revert, traffic, validate), `queries` (status,
//! deployments, measurements).

mod approvals;
mod commands;
mod handover;
mod history;
mod lifecycle;
mod queries;
mod requests;
mod settling;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_backends::{Backend, BackendError};
use rampart_config::{Config, RestartPolicy, ServiceConfig};
use rampart_core::Clock;
use rampart_core::rollout::RecoveryPolicy;
use rampart_router::{Router, RouterCollector, ServiceHandle, ServiceRoute};
use rampart_store::Store;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::own_listeners::OwnListeners;
use crate::routes::RouteWriter;
use crate::service::{ServiceRuntime, upstream_set};
use crate::shared::{EngineEvent, Shared};
use lifecycle::{serving_versions, start_stable, supervise_stable_watcher};

/// How far back the live numbers in a status look.
pub const LIVE_WINDOW: Duration = Duration::from_secs(10);

pub use approvals::ApprovalNeeded;
pub use history::Revision;
pub use requests::{DeployRequest, Operation, TrafficChange};

/// How the engine gets each service's backend and routing writer.
pub(crate) struct Parts {
    pub backend: BackendFactory,
    pub routes: RoutesFactory,
    /// Host names of static upstreams (tests answer on cue).
    pub resolver: crate::resolve::Resolver,
}

pub(crate) type BackendFactory =
    Box<dyn Fn(&ServiceConfig, &Path) -> Result<Arc<dyn Backend>, BackendError> + Send + Sync>;
pub(crate) type RoutesFactory = Box<dyn Fn(ServiceHandle) -> Arc<dyn RouteWriter> + Send + Sync>;

impl Parts {
    /// The backends the config names, recording their instances in the store; the
    /// router's own tables.
    pub fn real(options: rampart_backends::ProcessOptions) -> Self {
        Self {
            backend: Box::new(move |service, data_dir| {
                rampart_backends::build_with(service, data_dir, options.clone())
            }),
            routes: Box::new(|handle| Arc::new(handle)),
            resolver: crate::resolve::system(),
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    own_listeners: OwnListeners,
    services: BTreeMap<String, Arc<ServiceRuntime>>,
    router: Mutex<Option<Router>>,
    collector: RouterCollector,
    rollout_collector: crate::rollout_metrics::RolloutCollector,
    watchers: Mutex<Vec<JoinHandle<()>>>,
    /// Deploy freezes and the API lock-down that incident actions set.
    safeguards: Arc<crate::incidents::Safeguards>,
    /// A new rampart is taking over (graceful upgrade).
    handing_over: std::sync::atomic::AtomicBool,
}

impl Engine {
    /// Starts every service's stable version and router, then recovers the rollouts
    /// that were in flight when rampart last stopped (see `server.on_restart`).
    pub async fn start(
        config: &Config,
        store: Store,
        clock: Arc<dyn Clock>,
        base_dir: PathBuf,
    ) -> Result<Engine, EngineError> {
        let options = rampart_backends::ProcessOptions {
            outlive: config.server.instances_outlive,
            ledger: Some(handover::store_ledger(&store)),
        };
        Self::start_with(config, store, clock, base_dir, Parts::real(options)).await
    }

    /// [`Engine::start`] with the backends and routing writers `parts` makes (tests
    /// inject faults through them).
    pub(crate) async fn start_with(
        config: &Config,
        store: Store,
        clock: Arc<dyn Clock>,
        base_dir: PathBuf,
        parts: Parts,
    ) -> Result<Engine, EngineError> {
        let metric_providers =
            crate::analysis::build_providers(config).map_err(EngineError::InvalidRequest)?;
        let shared = Arc::new(Shared {
            store,
            clock: clock.clone(),
            events: broadcast::channel(1024).0,
            samples_dir: config.server.data_dir.join("samples"),
            base_dir,
            on_restart: match config.server.on_restart {
                RestartPolicy::Rollback => RecoveryPolicy::Rollback,
                RestartPolicy::Resume => RecoveryPolicy::Resume,
            },
            metric_providers,
            resolver: parts.resolver.clone(),
        });
        let data_dir = config.server.data_dir.clone();

        let mut prepared = Vec::new();
        for service in &config.services {
            // The backend and the first table see addresses; the runtime keeps the
            // names, resolved again on a schedule and at each deploy.
            let resolved = crate::resolve::resolved_service(service, &shared.resolver).await?;
            let backend = (parts.backend)(&resolved, &data_dir)?;
            let (stable, previous) = serving_versions(&shared.store, &resolved).await?;
            let stable = start_stable(&resolved, backend.as_ref(), stable).await?;
            prepared.push((service.clone(), backend, stable, previous));
        }

        let mut routes: Vec<ServiceRoute> = prepared
            .iter()
            .map(|(service, _, stable, _)| ServiceRoute {
                name: service.name.clone(),
                listen: service.listen,
                settings: service.router.clone(),
                stable: upstream_set(stable),
                canary: None,
                canary_weight: 0.0,
                tls: service.tls.clone(),
            })
            .collect();
        routes.extend(
            prepared
                .iter()
                .filter_map(|(service, _, stable, _)| crate::preview::route(service, stable)),
        );
        let router = match Router::start(routes, clock).await {
            Ok(router) => router,
            Err(e) => {
                for (_, backend, _, _) in &prepared {
                    backend.shutdown().await;
                }
                return Err(e.into());
            }
        };

        let own_listeners = OwnListeners::default();
        own_listeners.add(config.server.listen, "rampart's API");
        let mut services = BTreeMap::new();
        let mut watchers = Vec::new();
        for (service, backend, stable, previous) in prepared {
            let handle = router.service(&service.name).ok_or_else(|| {
                EngineError::Internal(format!("router lost service {}", service.name))
            })?;
            own_listeners.add(
                handle.listen_addr(),
                format!("the router of service `{}`", service.name),
            );
            let routes = (parts.routes)(handle.clone());
            let preview = router.service(&crate::preview::route_name(&service.name));
            if let Some(preview) = &preview {
                own_listeners.add(
                    preview.listen_addr(),
                    format!("the preview of service `{}`", service.name),
                );
            }
            let runtime = Arc::new(
                ServiceRuntime::with_routes(service, handle, routes, backend, stable, previous)
                    .with_preview(preview),
            );
            watchers.push(tokio::spawn(supervise_stable_watcher(
                shared.clone(),
                runtime.clone(),
            )));
            watchers.push(tokio::spawn(crate::resolve::watch_stable_names(
                shared.clone(),
                runtime.clone(),
            )));
            services.insert(runtime.name().to_string(), runtime);
        }
        crate::rollout_metrics::seed(&shared.store, services.values()).await?;
        let rollout_collector =
            crate::rollout_metrics::RolloutCollector::new(services.values().cloned().collect());
        let engine = Engine {
            inner: Arc::new(Inner {
                own_listeners,
                collector: router.collector(),
                rollout_collector,
                shared,
                services,
                router: Mutex::new(Some(router)),
                watchers: Mutex::new(watchers),
                safeguards: Arc::default(),
                handing_over: Default::default(),
            }),
        };
        engine.recover().await?;
        engine.stop_unclaimed_instances().await?;
        Ok(engine)
    }

    /// Tells the engine where the API really listens (its configured address may
    /// have port 0), so no canary can be pointed at it.
    pub fn add_api_listener(&self, addr: SocketAddr) {
        self.inner.own_listeners.add(addr, "rampart's API");
    }

    /// The router's Prometheus collector (per-version request metrics).
    pub fn router_collector(&self) -> RouterCollector {
        self.inner.collector.clone()
    }

    /// The rollouts' Prometheus collector (`rampart_rollout_*`, `rampart_rollouts_total`).
    pub fn rollout_collector(&self) -> crate::rollout_metrics::RolloutCollector {
        self.inner.rollout_collector.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Deploy freezes and the API lock-down set by incident actions.
    pub fn safeguards(&self) -> &Arc<crate::incidents::Safeguards> {
        &self.inner.safeguards
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    pub(crate) fn runtime(&self, name: &str) -> Option<&Arc<ServiceRuntime>> {
        self.inner.services.get(name)
    }

    pub(crate) fn runtimes(&self) -> impl Iterator<Item = &Arc<ServiceRuntime>> {
        self.inner.services.values()
    }

    pub fn service_names(&self) -> Vec<String> {
        self.inner.services.keys().cloned().collect()
    }

    /// A task that ends with the engine (aborted at shutdown).
    pub(crate) fn add_task(&self, task: JoinHandle<()>) {
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    pub(crate) fn service(&self, name: &str) -> Result<&Arc<ServiceRuntime>, EngineError> {
        self.inner
            .services
            .get(name)
            .ok_or_else(|| EngineError::UnknownService {
                name: name.to_string(),
                known: if self.inner.services.is_empty() {
                    "none".into()
                } else {
                    self.inner
                        .services
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }
}
