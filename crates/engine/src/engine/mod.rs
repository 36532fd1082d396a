//! The engine's front door: start every service, accept deployments and operator
//! actions, answer status questions, and recover after a restart.
//!
//! One file per seam: `lifecycle` (start, recovery, shutdown, the stable watcher),
//! `commands` (deploy, operate, revert, traffic, validate), `queries` (status,
//! deployments, measurements).

mod apply;
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

use arc_swap::ArcSwap;
use rampart_backends::{Backend, BackendError};
use rampart_config::{Config, RestartPolicy, ServiceConfig};
use rampart_core::Clock;
use rampart_core::rollout::RecoveryPolicy;
use rampart_router::{Router, RouterCollector, ServiceHandle};
use rampart_store::Store;
use tokio::sync::broadcast;

use crate::error::EngineError;
use crate::own_listeners::OwnListeners;
use crate::routes::RouteWriter;
use crate::service::ServiceRuntime;
use crate::shared::{EngineEvent, SYSTEM_ACTOR, Shared};
pub(crate) use apply::AUTOSCALER;
pub(crate) use lifecycle::{serving_versions, start_stable, supervise_stable_watcher};

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

/// The services by name; swapped whole when a reload adds or removes one.
pub(crate) type ServiceMap = Arc<ArcSwap<BTreeMap<String, Arc<ServiceRuntime>>>>;

struct Inner {
    shared: Arc<Shared>,
    own_listeners: OwnListeners,
    services: ServiceMap,
    router: Router,
    collector: RouterCollector,
    rollout_collector: crate::rollout_metrics::RolloutCollector,
    /// Deploy freezes and the API lock-down that incident actions set.
    safeguards: Arc<crate::incidents::Safeguards>,
    /// A new rampart is taking over (graceful upgrade).
    handing_over: std::sync::atomic::AtomicBool,
    /// How services' backends and routing writers are made (start-up and reload).
    parts: Parts,
    data_dir: PathBuf,
    /// The config the services run with now, and one reload at a time.
    config: tokio::sync::Mutex<Config>,
    /// Where the autoscalers of services added later read instance usage.
    telemetry: Mutex<Option<rampart_telemetry::Telemetry>>,
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
    ///
    /// Start-up is a reload from a config without services: the services are added
    /// by the same [`crate::reload`] code that adds them to a running rampart.
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
        let workers = std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN);
        let router = Router::empty(clock, workers)?;
        let own_listeners = OwnListeners::default();
        own_listeners.add(config.server.listen, "rampart's API");
        let services: ServiceMap = Arc::default();
        let without_services = Config {
            services: Vec::new(),
            ..config.clone()
        };
        let engine = Engine {
            inner: Arc::new(Inner {
                own_listeners,
                collector: router.collector(),
                rollout_collector: crate::rollout_metrics::RolloutCollector::new(services.clone()),
                router,
                shared,
                services,
                safeguards: Arc::default(),
                handing_over: Default::default(),
                parts,
                data_dir: config.server.data_dir.clone(),
                config: tokio::sync::Mutex::new(without_services.clone()),
                telemetry: Mutex::new(None),
            }),
        };
        let plan = crate::reload::diff(&without_services, config);
        if let Err(e) = engine.apply(plan, SYSTEM_ACTOR, true).await {
            engine.inner.router.shutdown(Duration::ZERO).await;
            return Err(e);
        }
        *engine.inner.config.lock().await = config.clone();
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

    pub(crate) fn runtime(&self, name: &str) -> Option<Arc<ServiceRuntime>> {
        self.inner.services.load().get(name).cloned()
    }

    pub(crate) fn runtimes(&self) -> Vec<Arc<ServiceRuntime>> {
        self.inner.services.load().values().cloned().collect()
    }

    pub fn service_names(&self) -> Vec<String> {
        self.inner.services.load().keys().cloned().collect()
    }

    /// Where autoscalers read instance usage, for services added from now on.
    pub(crate) fn set_telemetry(&self, telemetry: rampart_telemetry::Telemetry) {
        *self
            .inner
            .telemetry
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(telemetry);
    }

    pub(crate) fn service(&self, name: &str) -> Result<Arc<ServiceRuntime>, EngineError> {
        let services = self.inner.services.load();
        services
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::UnknownService {
                name: name.to_string(),
                known: if services.is_empty() {
                    "none".into()
                } else {
                    services.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            })
    }
}
