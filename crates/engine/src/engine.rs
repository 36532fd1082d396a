//! The engine's front door: start every service, accept deployments and operator
//! actions, answer status questions, and recover after a restart.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_backends::{Backend, BackendEvent, BackendEventKind, VersionSpec};
use rampart_config::{BackendConfig, Config, RestartPolicy, ServiceConfig};
use rampart_core::rollout::{Actor, Input, Phase, RecoveryPolicy, Rollout, Transition};
use rampart_core::{Clock, Timestamp};
use rampart_router::{
    RouteTable, Router, RouterCollector, ServiceRoute, TrafficStatus, UpstreamSet,
};
use rampart_store::{DeploymentRow, NewAuditEvent, Store, ValidationRunRow};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::controller::{Controller, stop_version};
use crate::error::EngineError;
use crate::own_listeners::OwnListeners;
use crate::record::{DeploymentKind, DeploymentRecord};
use crate::service::{
    ActiveRollout, ControllerRequest, ServiceRuntime, ServingVersion, routable, upstream_set,
};
use crate::settings;
use crate::shared::{EngineEvent, SYSTEM_ACTOR, Shared};
use crate::validation::{self, ValidationResult};
use crate::views::{
    ActiveRolloutView, AnalysisSummary, DeploymentDetail, DeploymentSummary, LiveNumbers,
    MeasurementPage, MeasurementView, ServiceStatus, SetNumbers, summary_of,
};

/// How far back the live numbers in a status look.
pub const LIVE_WINDOW: Duration = Duration::from_secs(10);

/// A request to deploy a version.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployRequest {
    pub version: String,
    /// Static backend: where the new version runs.
    #[serde(default)]
    pub canary: Vec<SocketAddr>,
    /// Process backend: extra environment for the new version's instances.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// An operator's action on a service's rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Promote,
    Pause,
    Resume,
    Abort,
    Rollback,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Promote => "promote",
            Operation::Pause => "pause",
            Operation::Resume => "resume",
            Operation::Abort => "abort",
            Operation::Rollback => "rollback",
        }
    }
}

/// A manual change of a service's traffic split.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrafficChange {
    /// Percent of requests to the canary set.
    #[serde(default)]
    pub canary_weight: Option<f64>,
    /// Replaces the canary set with these upstreams.
    #[serde(default)]
    pub canary: Option<Vec<SocketAddr>>,
    /// Version label of the given canary set (default `canary`).
    #[serde(default)]
    pub version: Option<String>,
    /// Requests in flight above this get 503 with `Retry-After`; 0 lifts the limit.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Ejecting instances after consecutive failures, on or off.
    #[serde(default)]
    pub outlier_detection: Option<bool>,
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
    watchers: Mutex<Vec<JoinHandle<()>>>,
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
        });
        let data_dir = config.server.data_dir.clone();

        let mut prepared = Vec::new();
        for service in &config.services {
            let backend = rampart_backends::build(service, &data_dir)?;
            let (stable, previous) = serving_versions(&shared.store, service).await?;
            let stable = start_stable(service, backend.as_ref(), stable).await?;
            prepared.push((service.clone(), backend, stable, previous));
        }

        let routes = prepared
            .iter()
            .map(|(service, _, stable, _)| ServiceRoute {
                name: service.name.clone(),
                listen: service.listen,
                settings: service.router.clone(),
                stable: upstream_set(stable),
                canary: None,
                canary_weight: 0.0,
            })
            .collect();
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
            let runtime = Arc::new(ServiceRuntime::new(
                service, handle, backend, stable, previous,
            ));
            watchers.push(tokio::spawn(watch_stable(shared.clone(), runtime.clone())));
            services.insert(runtime.name().to_string(), runtime);
        }
        let engine = Engine {
            inner: Arc::new(Inner {
                own_listeners,
                collector: router.collector(),
                shared,
                services,
                router: Mutex::new(Some(router)),
                watchers: Mutex::new(watchers),
            }),
        };
        engine.recover().await?;
        Ok(engine)
    }

    /// Tells the engine where the API really listens (its configured address may
    /// have port 0), so no canary can be pointed at it.
    pub fn add_api_listener(&self, addr: SocketAddr) {
        self.inner.own_listeners.add(addr, "rampart's API");
    }

    /// Refuses canary addresses that lead back into rampart itself.
    fn check_canary_addresses(&self, addrs: &[SocketAddr]) -> Result<(), EngineError> {
        for addr in addrs {
            if let Some(listener) = self.inner.own_listeners.reached_by(*addr) {
                return Err(EngineError::InvalidRequest(format!(
                    "`canary`: {addr} is {listener}, so requests to the canary would loop back \
                     into rampart and be served by the stable version; give the address where \
                     the new version listens"
                )));
            }
        }
        Ok(())
    }

    /// The router's Prometheus collector (per-version request metrics).
    pub fn router_collector(&self) -> RouterCollector {
        self.inner.collector.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.shared.events.subscribe()
    }

    pub(crate) fn runtimes(&self) -> impl Iterator<Item = &Arc<ServiceRuntime>> {
        self.inner.services.values()
    }

    pub fn service_names(&self) -> Vec<String> {
        self.inner.services.keys().cloned().collect()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
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

    /// A service's router numbers over the last `last` (at most the router's 640 s).
    pub fn window(
        &self,
        service: &str,
        last: Duration,
    ) -> Result<rampart_core::WindowSample, EngineError> {
        Ok(self.service(service)?.router.window(last))
    }

    pub fn traffic(&self, service: &str) -> Result<TrafficStatus, EngineError> {
        Ok(self.service(service)?.router.status())
    }

    /// Changes a service's traffic by hand: the split (refused while a rollout owns
    /// it), the concurrency limit and outlier detection (allowed at any time: incident
    /// response uses them). Audited; nothing changes if any part is invalid.
    pub async fn set_traffic(
        &self,
        service: &str,
        change: TrafficChange,
        actor: &str,
    ) -> Result<TrafficStatus, EngineError> {
        let svc = self.service(service)?;
        let changes_split = change.canary_weight.is_some() || change.canary.is_some();
        if !changes_split && change.max_concurrency.is_none() && change.outlier_detection.is_none()
        {
            return Err(EngineError::InvalidRequest(
                "nothing to change: give canary_weight (with canary), max_concurrency or outlier_detection".into(),
            ));
        }
        if let Some(version) = &change.version {
            validate_version("version", version)?;
        }
        let mut table = None;
        if changes_split {
            if let Some(active) = &svc.lock().active {
                // Pausing only holds the rollout at its step; the split stays its own
                // until it ends, so only ending it is advice that works.
                return Err(EngineError::Conflict(format!(
                    "rollout {} of {} owns the traffic split of `{service}` until it ends (a paused rollout too); \
                     end it with `rampart promote {service}` or `rampart abort {service}`, then set the split; \
                     max_concurrency and outlier_detection can be changed during a rollout",
                    active.id, active.version
                )));
            }
            let current = svc.router.table();
            let weight = change.canary_weight.unwrap_or(current.canary_weight);
            if !(0.0..=100.0).contains(&weight) || !weight.is_finite() {
                return Err(EngineError::InvalidRequest(format!(
                    "canary_weight is {weight}; use a percentage from 0 to 100"
                )));
            }
            if let Some(addrs) = &change.canary {
                self.check_canary_addresses(addrs)?;
                let unique: HashSet<_> = addrs.iter().collect();
                if unique.len() != addrs.len() {
                    return Err(EngineError::InvalidRequest(
                        "canary lists an address twice".into(),
                    ));
                }
            }
            let canary = match &change.canary {
                Some(addrs) if addrs.is_empty() => None,
                Some(addrs) => Some(UpstreamSet::new(
                    change.version.clone().unwrap_or_else(|| "canary".into()),
                    addrs.clone(),
                )),
                None => current.canary.clone(),
            };
            if canary.is_none() && weight > 0.0 {
                return Err(EngineError::InvalidRequest(format!(
                    "`{service}` has no canary set; give `canary` addresses with a non-zero weight"
                )));
            }
            table = Some(RouteTable {
                stable: current.stable,
                canary,
                canary_weight: weight,
            });
        }
        let audit = NewAuditEvent {
            actor: actor.to_string(),
            action: "traffic.set".into(),
            subject: format!("service/{service}"),
            details: serde_json::to_value(&change).unwrap_or_default(),
        };
        self.inner
            .shared
            .store
            .write(move |tx| tx.append_audit(&audit))
            .await?;
        if let Some(table) = table {
            svc.router.swap(table)?;
        }
        if let Some(limit) = change.max_concurrency {
            svc.router.set_max_concurrency((limit > 0).then_some(limit));
        }
        if let Some(enabled) = change.outlier_detection {
            svc.router.set_outlier_detection(enabled);
        }
        Ok(svc.router.status())
    }

    /// Starts a rollout of `request.version`; refuses while another one is in flight.
    pub async fn deploy(
        &self,
        service: &str,
        request: DeployRequest,
        actor: &str,
    ) -> Result<DeploymentSummary, EngineError> {
        let svc = self.service(service)?.clone();
        validate_version("version", &request.version)?;
        let stable = svc.stable();
        if stable.version == request.version {
            return Err(EngineError::Conflict(format!(
                "{} is already the stable version of `{service}`",
                request.version
            )));
        }
        let addresses = match &svc.config.backend {
            BackendConfig::Static(s) => {
                let addrs = if request.canary.is_empty() {
                    s.canary.clone()
                } else {
                    request.canary.clone()
                };
                if addrs.is_empty() {
                    return Err(EngineError::InvalidRequest(format!(
                        "`{service}` uses the static backend: name where {} runs with `canary` addresses",
                        request.version
                    )));
                }
                self.check_canary_addresses(&addrs)?;
                addrs
            }
            BackendConfig::Process(_) => {
                if !request.canary.is_empty() {
                    return Err(EngineError::InvalidRequest(format!(
                        "`{service}` uses the process backend, which starts the instances itself; drop `canary`"
                    )));
                }
                Vec::new()
            }
        };
        let spec = settings::rollout_spec(&svc.config);
        let now = self.inner.shared.clock.now();
        let rollout = Rollout::new(
            service,
            request.version.clone(),
            Some(stable.version.clone()),
            spec,
            now,
        )
        .map_err(|e| EngineError::Internal(format!("the service's strategy is invalid: {e}")))?;
        let record = DeploymentRecord {
            id: rampart_store::new_id(),
            kind: DeploymentKind::Rollout,
            rollout,
            addresses,
            env: request.env.clone(),
            actor: actor.to_string(),
            reason: request.reason.clone().unwrap_or_default(),
            previous_addresses: stable.addresses.clone(),
            previous_env: stable.env.clone(),
        };

        // Claim the service before writing, so two deploys cannot both start.
        let (requests, receiver) = mpsc::channel(16);
        {
            let mut state = svc.lock();
            // A controller that ended without clearing its claim (it panicked) must
            // not block the service forever.
            if state.active.as_ref().is_some_and(|a| a.task.is_finished()) {
                state.active = None;
            }
            if let Some(active) = &state.active {
                let phase = state
                    .last_record
                    .as_ref()
                    .filter(|r| r.id == active.id)
                    .map(|r| r.rollout.phase.name().to_string())
                    .unwrap_or_else(|| "in progress".into());
                return Err(EngineError::RolloutInProgress {
                    service: service.to_string(),
                    id: active.id.clone(),
                    version: active.version.clone(),
                    phase,
                });
            }
            state.active = Some(ActiveRollout {
                id: record.id.clone(),
                version: request.version.clone(),
                requests: requests.clone(),
                // Replaced by the controller's task once it runs.
                task: tokio::spawn(std::future::pending()),
            });
        }
        let row = match self.insert_deployment(&svc, &record, actor, &request).await {
            Ok(row) => row,
            Err(e) => {
                svc.lock().active = None;
                return Err(e);
            }
        };
        self.spawn_controller(
            svc,
            record,
            receiver,
            requests,
            Input::Begin {
                actor: Actor::user(actor),
            },
        )?;
        Ok(summary_of(&row))
    }

    async fn insert_deployment(
        &self,
        svc: &ServiceRuntime,
        record: &DeploymentRecord,
        actor: &str,
        request: &DeployRequest,
    ) -> Result<DeploymentRow, EngineError> {
        let now = self.inner.shared.store.now();
        let row = DeploymentRow {
            id: record.id.clone(),
            service: svc.name().to_string(),
            version: record.rollout.version.clone(),
            previous_version: record.rollout.previous_version.clone(),
            state: record.state_name(),
            record: serde_json::to_value(record).map_err(rampart_store::StoreError::from)?,
            created_at: now,
            updated_at: now,
            finished_at: record.rollout.is_terminal().then_some(now),
        };
        let service = svc.name();
        let audit = NewAuditEvent {
            actor: actor.to_string(),
            action: match record.kind {
                DeploymentKind::Rollout => "deployment.create".into(),
                DeploymentKind::Revert => "deployment.revert".into(),
            },
            subject: format!("service/{service}/deployment/{}", record.id),
            details: serde_json::json!({
                "version": record.rollout.version,
                "previous_version": record.rollout.previous_version,
                "reason": request.reason,
                "canary": record.addresses,
                "env": request.env.keys().collect::<Vec<_>>(),
            }),
        };
        let inserted = row.clone();
        self.inner
            .shared
            .store
            .write(move |tx| {
                tx.insert_deployment(&inserted)?;
                tx.append_audit(&audit)
            })
            .await?;
        Ok(row)
    }

    fn spawn_controller(
        &self,
        svc: Arc<ServiceRuntime>,
        record: DeploymentRecord,
        receiver: mpsc::Receiver<ControllerRequest>,
        requests: mpsc::Sender<ControllerRequest>,
        first: Input,
    ) -> Result<(), EngineError> {
        let id = record.id.clone();
        let version = record.rollout.version.clone();
        svc.lock().last_record = Some(record.clone());
        let controller =
            match Controller::new(self.inner.shared.clone(), svc.clone(), record, receiver) {
                Ok(c) => c,
                Err(e) => {
                    svc.lock().active = None;
                    return Err(e);
                }
            };
        let task = tokio::spawn(controller.run(first));
        let mut state = svc.lock();
        match state.active.as_mut() {
            Some(active) if active.id == id => {
                std::mem::replace(&mut active.task, task).abort();
            }
            _ => {
                state.active = Some(ActiveRollout {
                    id,
                    version,
                    requests,
                    task,
                });
            }
        }
        Ok(())
    }

    /// Promote, pause, resume, abort or roll back. A rollback with no rollout in
    /// flight returns to the version that was stable before the last promotion.
    pub async fn operate(
        &self,
        service: &str,
        operation: Operation,
        actor: &str,
        reason: Option<String>,
    ) -> Result<DeploymentSummary, EngineError> {
        let svc = self.service(service)?.clone();
        let reason =
            reason.unwrap_or_else(|| format!("{} requested by {actor}", operation.as_str()));
        let active = svc
            .lock()
            .active
            .as_ref()
            .map(|a| (a.id.clone(), a.requests.clone()));
        let Some((id, requests)) = active else {
            if operation == Operation::Rollback {
                return self.revert(&svc, actor, &reason).await;
            }
            return Err(EngineError::NoActiveRollout {
                service: service.to_string(),
                action: operation.as_str().to_string(),
            });
        };
        let who = Actor::user(actor);
        let input = match operation {
            Operation::Promote => Input::Promote { actor: who, reason },
            Operation::Pause => Input::Pause { actor: who, reason },
            Operation::Resume => Input::Resume { actor: who, reason },
            Operation::Abort => Input::Abort { actor: who, reason },
            Operation::Rollback => Input::Rollback { actor: who, reason },
        };
        let (reply, answer) = oneshot::channel();
        requests
            .send(ControllerRequest::Operate { input, reply })
            .await
            .map_err(|_| EngineError::NoActiveRollout {
                service: service.to_string(),
                action: operation.as_str().into(),
            })?;
        answer.await.map_err(|_| EngineError::NoActiveRollout {
            service: service.to_string(),
            action: operation.as_str().into(),
        })??;
        self.summary(&id).await
    }

    /// Emergency rollback after a promotion: route back to the previous version (at
    /// once while it still runs within the scale-down delay), then stop the bad one.
    async fn revert(
        &self,
        svc: &Arc<ServiceRuntime>,
        actor: &str,
        reason: &str,
    ) -> Result<DeploymentSummary, EngineError> {
        let service = svc.name().to_string();
        let (current, previous, pending) = {
            let mut state = svc.lock();
            let pending = state.scale_down.take();
            (state.stable.clone(), state.previous.clone(), pending)
        };
        let Some(previous) = previous else {
            return Err(EngineError::Conflict(format!(
                "`{service}` has no rollout in flight and no previous version to roll back to"
            )));
        };
        let still_running = match pending {
            Some(p) if p.version.version == previous.version => {
                p.task.abort();
                true
            }
            Some(p) => {
                p.task.abort();
                false
            }
            None => false,
        };
        let target = if svc.is_static() || still_running {
            previous.clone()
        } else {
            // With the environment it was deployed with: the revert brings back the
            // version as it ran, not a version without its settings.
            let instances = svc
                .backend
                .start(
                    VersionSpec::new(previous.version.clone(), svc.full_instances())
                        .with_env(previous.env.clone()),
                )
                .await?;
            ServingVersion {
                version: previous.version.clone(),
                addresses: routable(&instances),
                env: previous.env.clone(),
            }
        };

        let now = self.inner.shared.clock.now();
        let mut rollout = Rollout::new(
            &service,
            target.version.clone(),
            Some(current.version.clone()),
            settings::rollout_spec(&svc.config),
            now,
        )
        .map_err(|e| EngineError::Internal(format!("the service's strategy is invalid: {e}")))?;
        let transition = Transition {
            at: now,
            from: Phase::Pending,
            to: Phase::Succeeded,
            reason: format!(
                "emergency rollback from {} to {}: {reason}",
                current.version, target.version
            ),
            actor: Actor::user(actor),
        };
        rollout.phase = Phase::Succeeded;
        rollout.history.push(transition.clone());
        let record = DeploymentRecord {
            id: rampart_store::new_id(),
            kind: DeploymentKind::Revert,
            rollout,
            addresses: target.addresses.clone(),
            env: target.env.clone(),
            actor: actor.to_string(),
            reason: reason.to_string(),
            previous_addresses: current.addresses.clone(),
            previous_env: current.env.clone(),
        };
        // Committed before the switch: a crash right after still comes back on the
        // previous version.
        let row = self
            .insert_deployment(
                svc,
                &record,
                actor,
                &DeployRequest {
                    version: target.version.clone(),
                    reason: Some(reason.to_string()),
                    ..DeployRequest::default()
                },
            )
            .await?;
        svc.router.swap(RouteTable {
            stable: upstream_set(&target),
            canary: None,
            canary_weight: 0.0,
        })?;
        {
            let mut state = svc.lock();
            state.stable = target;
            state.previous = Some(current.clone());
            state.last_record = Some(record.clone());
        }
        self.inner.shared.publish(EngineEvent {
            service: service.clone(),
            deployment_id: Some(record.id.clone()),
            kind: crate::shared::EngineEventKind::Transition { transition },
        });
        // The reverted-from version drains, then stops.
        let shared = self.inner.shared.clone();
        let svc2 = svc.clone();
        tokio::spawn(async move {
            for addr in current.addresses.iter().copied() {
                let _ = svc2.router.wait_drained(addr).await;
            }
            stop_version(
                &shared,
                &svc2,
                &current.version,
                "reverted by an emergency rollback",
            )
            .await;
        });
        Ok(summary_of(&row))
    }

    async fn summary(&self, id: &str) -> Result<DeploymentSummary, EngineError> {
        let key = id.to_string();
        let row = self
            .inner
            .shared
            .store
            .read(move |tx| tx.get_deployment(&key))
            .await?
            .ok_or_else(|| EngineError::UnknownDeployment(id.to_string()))?;
        Ok(summary_of(&row))
    }

    pub async fn status(&self, service: &str) -> Result<ServiceStatus, EngineError> {
        let svc = self.service(service)?;
        let (stable, previous, active, boundary) = {
            let state = svc.lock();
            let active = state.active.as_ref().and_then(|a| {
                state
                    .last_record
                    .as_ref()
                    .filter(|r| r.id == a.id)
                    .map(active_view)
            });
            // Live numbers belong to one rollout: from its start while it runs, from
            // its end once it is over, so no set shows another rollout's requests.
            let boundary = state.last_record.as_ref().map(|r| {
                let rollout = &r.rollout;
                match &active {
                    Some(_) => rollout.created_at,
                    None => rollout.history.last().map_or(rollout.created_at, |t| t.at),
                }
            });
            (
                state.stable.clone(),
                state.previous.clone(),
                active,
                boundary,
            )
        };
        let now = self.inner.shared.clock.now();
        let start = live_window_start(now, boundary);
        let window = svc.router.window_between(start, now);
        let name = service.to_string();
        let last_deployment = self
            .inner
            .shared
            .store
            .read(move |tx| tx.list_deployments(Some(&name), 5))
            .await?
            .into_iter()
            .find(|row| row.finished_at.is_some())
            .map(|row| summary_of(&row));
        Ok(ServiceStatus {
            service: service.to_string(),
            listen: svc.router.listen_addr(),
            backend: svc.backend.kind().to_string(),
            stable_version: stable.version,
            rollback_target: previous.map(|p| p.version),
            active,
            last_deployment,
            live: LiveNumbers {
                window_secs: now.since(start).as_secs_f64().ceil() as u64,
                stable: SetNumbers::from(&window.stable),
                canary: SetNumbers::from(&window.canary),
            },
            traffic: svc.router.status(),
        })
    }

    /// The per-second samples the judge saw in deployment `id`, as JSON lines (one
    /// `WindowSample` each, what `judge-bench --replay` reads); empty when it judged
    /// nothing.
    pub async fn deployment_samples(&self, id: &str) -> Result<String, EngineError> {
        let key = id.to_string();
        let known = self
            .inner
            .shared
            .store
            .read(move |tx| tx.get_deployment(&key))
            .await?;
        if known.is_none() {
            return Err(EngineError::UnknownDeployment(id.to_string()));
        }
        let path = crate::samples::samples_path(&self.inner.shared.samples_dir, id);
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(EngineError::Io(format!(
                "cannot read the samples of deployment {id} at {}: {e}",
                path.display()
            ))),
        }
    }

    pub async fn deployment(&self, id: &str) -> Result<DeploymentDetail, EngineError> {
        let key = id.to_string();
        // One snapshot: the row, its measurements, events and validation agree.
        let (row, validation_runs, by_outcome, last, events) = self
            .inner
            .shared
            .store
            .read(move |tx| {
                let Some(row) = tx.get_deployment(&key)? else {
                    return Ok(None);
                };
                let runs = tx.list_validation_runs(&row.service, 20)?;
                let by_outcome = tx.measurement_counts(&key)?;
                let last = tx.measurements(&key, 1)?;
                let events = tx.deployment_events(&key)?;
                Ok(Some((row, runs, by_outcome, last, events)))
            })
            .await?
            .ok_or_else(|| EngineError::UnknownDeployment(id.to_string()))?;
        let record: DeploymentRecord = serde_json::from_value(row.record.clone()).map_err(|e| {
            EngineError::Internal(format!("deployment {id} has an unreadable record: {e}"))
        })?;
        let validation = validation_runs
            .into_iter()
            .find(|v| v.deployment_id.as_deref() == Some(id))
            .map(|v| v.result);
        Ok(DeploymentDetail {
            summary: summary_of(&row),
            analysis: AnalysisSummary {
                measurements: by_outcome.values().sum(),
                by_outcome,
                last: last.into_iter().next().map(MeasurementView::from),
            },
            events,
            record,
            validation,
        })
    }

    /// A page of a deployment's analysis measurements, oldest first.
    pub async fn measurements(
        &self,
        id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<MeasurementPage, EngineError> {
        let key = id.to_string();
        let (total, items) = self
            .inner
            .shared
            .store
            .read(move |tx| {
                if tx.get_deployment(&key)?.is_none() {
                    return Ok(None);
                }
                let total: u64 = tx.measurement_counts(&key)?.values().sum();
                Ok(Some((total, tx.measurements_page(&key, offset, limit)?)))
            })
            .await?
            .ok_or_else(|| EngineError::UnknownDeployment(id.to_string()))?;
        Ok(MeasurementPage {
            total,
            offset,
            limit,
            items: items.into_iter().map(MeasurementView::from).collect(),
        })
    }

    pub async fn deployments(
        &self,
        service: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeploymentSummary>, EngineError> {
        if let Some(name) = service {
            self.service(name)?;
        }
        let service = service.map(str::to_string);
        Ok(self
            .inner
            .shared
            .store
            .read(move |tx| tx.list_deployments(service.as_deref(), limit))
            .await?
            .iter()
            .map(summary_of)
            .collect())
    }

    /// Runs the service's checks alone (no deployment), stores and audits the run.
    pub async fn validate(
        &self,
        service: &str,
        actor: &str,
    ) -> Result<ValidationResult, EngineError> {
        let svc = self.service(service)?;
        let result = validation::run_checks(&svc.config.checks, &self.inner.shared.base_dir).await;
        let row = ValidationRunRow {
            id: rampart_store::new_id(),
            service: service.to_string(),
            deployment_id: None,
            started_at: self.inner.shared.store.now(),
            result: serde_json::to_value(&result).map_err(rampart_store::StoreError::from)?,
            can_deploy: result.can_deploy,
        };
        let audit = NewAuditEvent {
            actor: actor.to_string(),
            action: "validation.run".into(),
            subject: format!("service/{service}"),
            details: serde_json::json!({
                "can_deploy": result.can_deploy,
                "failed": result.failed.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                "warnings": result.warnings.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            }),
        };
        self.inner
            .shared
            .store
            .write(move |tx| {
                tx.insert_validation_run(&row)?;
                tx.append_audit(&audit)
            })
            .await?;
        Ok(result)
    }

    /// Drives every rollout that was in flight at the last stop to a safe state.
    async fn recover(&self) -> Result<(), EngineError> {
        let policy = self.inner.shared.on_restart;
        let in_flight = self
            .inner
            .shared
            .store
            .read(|tx| tx.active_deployments())
            .await?;
        for row in in_flight {
            let Some(svc) = self.inner.services.get(&row.service).cloned() else {
                tracing::warn!(deployment = %row.id, service = %row.service, "in-flight deployment of a service no longer configured; leaving it as it is");
                continue;
            };
            let record: DeploymentRecord = match serde_json::from_value(row.record.clone()) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(deployment = %row.id, error = %e, "cannot read an in-flight deployment");
                    continue;
                }
            };
            tracing::warn!(deployment = %row.id, service = %row.service, state = %row.state, ?policy, "recovering a rollout that was in flight");
            let (requests, receiver) = mpsc::channel(16);
            self.spawn_controller(svc, record, receiver, requests, Input::Recovered { policy })?;
        }
        Ok(())
    }

    /// Stops controllers (rollouts stay as stored and are recovered at the next start),
    /// the routers (in-flight requests finish within `grace`) and every instance.
    pub async fn shutdown(&self, grace: Duration) {
        for svc in self.inner.services.values() {
            let active = svc.lock().active.take();
            if let Some(active) = active {
                let _ = active.requests.send(ControllerRequest::Detach).await;
                let _ = active.task.await;
            }
            if let Some(pending) = svc.lock().scale_down.take() {
                pending.task.abort();
            }
        }
        for watcher in self
            .inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            watcher.abort();
        }
        let router = self
            .inner
            .router
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(router) = router {
            router.shutdown(grace).await;
        }
        for svc in self.inner.services.values() {
            svc.backend.shutdown().await;
        }
    }
}

/// The start of the live window: `LIVE_WINDOW` back from `now` (in whole seconds, the
/// router's resolution), but not before the first whole second after `boundary`.
fn live_window_start(now: Timestamp, boundary: Option<Timestamp>) -> Timestamp {
    let seconds = LIVE_WINDOW.as_secs().max(1);
    let mut start = Timestamp::from_millis((now.as_secs() + 1).saturating_sub(seconds) * 1000);
    if let Some(boundary) = boundary {
        let after = Timestamp::from_millis(boundary.as_millis().div_ceil(1000) * 1000);
        start = start.max(after.min(now));
    }
    start
}

fn active_view(record: &DeploymentRecord) -> ActiveRolloutView {
    let rollout = &record.rollout;
    let (step, canary_weight) = match rollout.phase {
        Phase::Progressing { step, weight } | Phase::Paused { step, weight, .. } => {
            (Some(step + 1), weight)
        }
        _ => (None, 0.0),
    };
    ActiveRolloutView {
        id: record.id.clone(),
        version: rollout.version.clone(),
        phase: rollout.phase.clone(),
        state: record.state_name(),
        step,
        steps: rollout.spec.steps.len(),
        canary_weight,
        last_verdict: rollout.last_verdict.clone(),
        last_transition: rollout.history.last().cloned(),
    }
}

fn validate_version(field: &str, version: &str) -> Result<(), EngineError> {
    rampart_core::version::check_version(version).map_err(|rule| {
        EngineError::InvalidRequest(format!(
            "`{field}`: version `{}` is not allowed: {rule}",
            echo(&version.escape_debug().to_string())
        ))
    })
}

/// Input echoed in an error, cut so that a 10 000-character value does not come back
/// whole: its start and its length are enough to recognise it.
fn echo(text: &str) -> String {
    const SHOWN: usize = 40;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}… ({} characters)", &text[..cut], text.chars().count()),
        None => text.to_string(),
    }
}

/// The version to serve at start and the one to roll back to: from the last
/// successful deployment, else from the config.
async fn serving_versions(
    store: &Store,
    service: &ServiceConfig,
) -> Result<(ServingVersion, Option<ServingVersion>), EngineError> {
    let name = service.name.clone();
    let latest = store
        .read(move |tx| tx.list_deployments(Some(&name), 200))
        .await?
        .into_iter()
        .filter(|row| row.state == "succeeded")
        .find_map(|row| serde_json::from_value::<DeploymentRecord>(row.record).ok());
    if let Some(record) = latest {
        let stable = ServingVersion {
            version: record.rollout.version.clone(),
            addresses: record.addresses.clone(),
            env: record.env.clone(),
        };
        let previous = record
            .rollout
            .previous_version
            .clone()
            .map(|version| ServingVersion {
                version,
                addresses: record.previous_addresses.clone(),
                env: record.previous_env.clone(),
            });
        return Ok((stable, previous));
    }
    let stable = match &service.backend {
        BackendConfig::Process(p) => ServingVersion {
            version: p.initial_version.clone(),
            addresses: Vec::new(),
            env: BTreeMap::new(),
        },
        BackendConfig::Static(s) => ServingVersion {
            version: s.stable_version.clone(),
            addresses: s.stable.clone(),
            env: BTreeMap::new(),
        },
    };
    Ok((stable, None))
}

/// Process backend: start the stable version's instances and wait until they are
/// ready. Static backend: the addresses are known; nothing to start.
async fn start_stable(
    service: &ServiceConfig,
    backend: &dyn Backend,
    stable: ServingVersion,
) -> Result<ServingVersion, EngineError> {
    match &service.backend {
        BackendConfig::Static(_) => Ok(stable),
        BackendConfig::Process(p) => {
            // A restart brings the version back with its per-deploy environment.
            let instances = backend
                .start(
                    VersionSpec::new(stable.version.clone(), p.instances)
                        .with_env(stable.env.clone()),
                )
                .await?;
            Ok(ServingVersion {
                version: stable.version,
                addresses: routable(&instances),
                env: stable.env,
            })
        }
    }
}

/// Keeps the router's stable set in step with the backend (crashed instances leave,
/// restarted ones come back) and audits what the backend did on its own.
async fn watch_stable(shared: Arc<Shared>, svc: Arc<ServiceRuntime>) {
    let mut events = svc.backend.subscribe();
    loop {
        let event: BackendEvent = match events.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        audit_backend_event(&shared, svc.name(), &event).await;
        let stable_version = svc.lock().stable.version.clone();
        if event.version != stable_version || event.instances.is_empty() {
            continue;
        }
        let addrs = routable(&event.instances);
        let current = svc.router.table().stable;
        if current.version == stable_version && current.instances != addrs {
            svc.router
                .set_stable(UpstreamSet::new(stable_version.clone(), addrs.clone()));
            svc.lock().stable.addresses = addrs;
        }
    }
}

/// Crashes and restarts are actions rampart takes (or reacts to) without anyone
/// asking: each gets an audit entry.
async fn audit_backend_event(shared: &Shared, service: &str, event: &BackendEvent) {
    let (action, instance, details) = match &event.kind {
        BackendEventKind::InstanceCrashed { instance, reason } => (
            "instance.crashed",
            instance,
            serde_json::json!({ "reason": reason }),
        ),
        BackendEventKind::InstanceRestarted { instance } => {
            ("instance.restarted", instance, serde_json::json!({}))
        }
        BackendEventKind::RestartFailed {
            instance,
            error,
            retry_in_ms,
        } => (
            "instance.restart_failed",
            instance,
            serde_json::json!({ "error": error, "retry_in_ms": retry_in_ms }),
        ),
        _ => return,
    };
    let mut details = details;
    details["version"] = serde_json::json!(event.version);
    let audit = NewAuditEvent {
        actor: SYSTEM_ACTOR.into(),
        action: action.into(),
        subject: format!("service/{service}/instance/{instance}"),
        details,
    };
    let result = shared.store.write(move |tx| tx.append_audit(&audit)).await;
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot audit a backend event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn an_over_long_version_is_cut_in_its_error() {
        let long = "v".repeat(10_000);
        let message = validate_version("version", &long).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("(10000 characters)"), "{message}");
        assert!(
            validate_version("version", "bad version")
                .unwrap_err()
                .to_string()
                .contains("`bad version`")
        );
    }

    #[test]
    fn the_live_window_never_reaches_back_past_the_rollout_boundary() {
        let now = at(100_500);
        // No rollout known: the last ten whole seconds, the current one included.
        assert_eq!(live_window_start(now, None), at(91_000));
        // Long ago: no effect.
        assert_eq!(live_window_start(now, Some(at(20_000))), at(91_000));
        // Three seconds ago, mid-second: from the next whole second, so that the
        // boundary's own second (with the previous rollout's requests) is left out.
        assert_eq!(live_window_start(now, Some(at(97_300))), at(98_000));
        // Within the current second: nothing yet.
        assert_eq!(live_window_start(now, Some(at(100_200))), now);
    }
}
