//! One service at run time: its router handle, its backend, which version is stable,
//! and the rollout in flight (if any).
//!
//! One writer: every change of the service's state and of its routing table goes
//! through a method here, under one lock, so that a promotion's swap and the stable
//! watcher's address update can never interleave, and a change is made whole or not
//! at all. Readers get [`ServiceRuntime::lock`], a read-only view.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use rampart_backends::{Backend, Instance};
use rampart_config::{BackendConfig, ServiceConfig};
use rampart_router::{RouteTable, ServiceHandle, UpstreamSet};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::record::DeploymentRecord;
use crate::rollout_metrics::{
    OUTCOMES, OutcomeCounts, RolloutSnapshot, ServiceRollouts, rollback_cause,
};
use crate::routes::RouteWriter;
use rampart_core::rollout::Phase;

/// A version serving (or having served) a service's stable traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingVersion {
    pub version: String,
    /// Static backend: the addresses; process backend: filled from the backend.
    pub addresses: Vec<SocketAddr>,
    /// Process backend: the per-deploy environment this version was deployed with,
    /// given again whenever its instances are started anew (restart, revert).
    pub env: BTreeMap<String, String>,
}

/// A request to the controller of the rollout in flight.
pub enum ControllerRequest {
    Operate {
        input: rampart_core::rollout::Input,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Stop acting without changing the rollout's state (rampart is shutting down).
    Detach,
}

pub struct ActiveRollout {
    pub id: String,
    pub version: String,
    pub requests: mpsc::Sender<ControllerRequest>,
    /// The supervised controller; `None` between the claim and its spawn.
    pub task: Option<JoinHandle<()>>,
}

/// A version being stopped in the background (after the scale-down delay, after a
/// revert, or after a rollout ended before its canary could be stopped).
pub struct PendingStop {
    generation: u64,
    task: JoinHandle<()>,
}

pub struct ServiceRuntime {
    /// Swapped whole by a config reload; read with [`ServiceRuntime::config`].
    config: ArcSwap<ServiceConfig>,
    /// For reading: status, windows, drains. Changes go through `routes`.
    pub router: ServiceHandle,
    routes: Arc<dyn RouteWriter>,
    pub backend: Arc<dyn Backend>,
    pub(crate) state: Mutex<ServiceState>,
    /// The one owner of this service's instance counts (see `scaling`).
    pub(crate) sizing: crate::scaling::Sizing,
    /// Blue-green: the preview listener's routing (`crate::preview`); written only by
    /// the rollout's controller.
    pub(crate) preview: Option<ServiceHandle>,
    /// Tasks that live as long as the service is configured (the stable watcher,
    /// the autoscaler), by job; aborted when a reload removes it or rampart stops.
    tasks: Mutex<BTreeMap<&'static str, JoinHandle<()>>>,
}

pub(crate) struct ServiceState {
    pub stable: ServingVersion,
    /// The version a post-promotion rollback returns to.
    pub previous: Option<ServingVersion>,
    pub active: Option<ActiveRollout>,
    /// Versions being stopped in the background, by version.
    pub stopping: BTreeMap<String, PendingStop>,
    /// The last record the active controller persisted, for status without a store read.
    pub last_record: Option<DeploymentRecord>,
    /// What `/metrics` shows of the rollout in flight, or of the last one (seeded from
    /// the store at start, unlike `last_record`).
    rollout_view: Option<RolloutSnapshot>,
    /// Rollouts that ended, by outcome (seeded from the store at start).
    ended: OutcomeCounts,
    /// Rolled-back rollouts by cause (seeded from the store at start).
    rollbacks: OutcomeCounts,
    next_generation: u64,
}

/// A read-only view of a service's state; changes go through [`ServiceRuntime`]'s
/// methods.
pub(crate) struct StateView<'a>(MutexGuard<'a, ServiceState>);

impl Deref for StateView<'_> {
    type Target = ServiceState;

    fn deref(&self) -> &ServiceState {
        &self.0
    }
}

impl ServiceRuntime {
    /// A service whose routing changes go through `routes` (the router's own handle,
    /// or in tests one that refuses tables).
    pub fn with_routes(
        config: ServiceConfig,
        router: ServiceHandle,
        routes: Arc<dyn RouteWriter>,
        backend: Arc<dyn Backend>,
        stable: ServingVersion,
        previous: Option<ServingVersion>,
    ) -> Self {
        Self {
            config: ArcSwap::from_pointee(config),
            router,
            routes,
            backend,
            state: Mutex::new(ServiceState {
                stable,
                previous,
                active: None,
                stopping: BTreeMap::new(),
                last_record: None,
                rollout_view: None,
                ended: OutcomeCounts::default(),
                rollbacks: OutcomeCounts::default(),
                next_generation: 0,
            }),
            sizing: crate::scaling::Sizing::default(),
            preview: None,
            tasks: Mutex::new(BTreeMap::new()),
        }
    }

    /// The service's configuration now (a reload may replace it; a rollout in flight
    /// read what it needed when it started, see `reload`).
    pub fn config(&self) -> Arc<ServiceConfig> {
        self.config.load_full()
    }

    /// A reload changed the service's configuration.
    pub(crate) fn set_config(&self, config: ServiceConfig) {
        self.config.store(Arc::new(config));
    }

    /// Keeps `task` as this service's `job`, aborting the one it replaces.
    pub(crate) fn own_task(&self, job: &'static str, task: JoinHandle<()>) {
        let old = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job, task);
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Aborts this service's `job` (one that no longer applies).
    pub(crate) fn end_task(&self, job: &'static str) {
        let old = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job);
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Aborts every task of the service (it is removed, or rampart stops).
    pub(crate) fn end_tasks(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks.into_values() {
            task.abort();
        }
    }

    /// With the routing of a blue-green service's preview listener.
    pub(crate) fn with_preview(mut self, preview: Option<ServiceHandle>) -> Self {
        self.preview = preview;
        self
    }

    fn write(&self) -> MutexGuard<'_, ServiceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock(&self) -> StateView<'_> {
        StateView(self.write())
    }

    pub fn name(&self) -> &str {
        self.router.name()
    }

    /// Full size of the service: what the autoscaler or an operator set, else the
    /// configured instance count (process backend).
    pub fn full_instances(&self) -> u32 {
        match &self.config().backend {
            BackendConfig::Process(p) => self.sizing.stable_target().unwrap_or(p.instances),
            BackendConfig::Static(s) => s.stable.len() as u32,
        }
    }

    pub fn is_static(&self) -> bool {
        matches!(self.config().backend, BackendConfig::Static(_))
    }

    pub fn stable(&self) -> ServingVersion {
        self.lock().stable.clone()
    }

    // --- the rollout in flight --------------------------------------------------------

    /// Claims the service for rollout `id`; refused while another one is in flight.
    pub(crate) fn claim(
        &self,
        id: &str,
        version: &str,
        requests: mpsc::Sender<ControllerRequest>,
    ) -> Result<(), EngineError> {
        let mut state = self.write();
        // A controller that ended without releasing its claim must not lock the
        // service forever (its supervisor releases it; this is the last guard).
        if state
            .active
            .as_ref()
            .is_some_and(|a| a.task.as_ref().is_some_and(|t| t.is_finished()))
        {
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
                service: self.name().to_string(),
                id: active.id.clone(),
                version: active.version.clone(),
                phase,
            });
        }
        state.active = Some(ActiveRollout {
            id: id.to_string(),
            version: version.to_string(),
            requests,
            task: None,
        });
        Ok(())
    }

    /// The supervised controller of rollout `id` runs as `task`.
    pub(crate) fn attach(&self, id: &str, task: JoinHandle<()>) {
        let mut state = self.write();
        match state.active.as_mut() {
            Some(active) if active.id == id => active.task = Some(task),
            // Released already (it ended at once): nothing to keep.
            _ => {}
        }
    }

    /// A restarted controller listens on a new channel.
    pub(crate) fn replace_requests(&self, id: &str, requests: mpsc::Sender<ControllerRequest>) {
        if let Some(active) = self.write().active.as_mut().filter(|a| a.id == id) {
            active.requests = requests;
        }
    }

    /// Rollout `id` ended (or never began): the service takes a new deploy.
    pub(crate) fn release(&self, id: &str, last: Option<DeploymentRecord>) {
        let mut state = self.write();
        if state.active.as_ref().is_some_and(|a| a.id == id) {
            state.active = None;
        }
        if let Some(record) = last {
            note_record(&mut state, &record);
            state.last_record = Some(record);
        }
    }

    pub(crate) fn take_active(&self) -> Option<ActiveRollout> {
        self.write().active.take()
    }

    /// The record the controller last committed, for status.
    pub(crate) fn set_record(&self, record: DeploymentRecord) {
        let mut state = self.write();
        note_record(&mut state, &record);
        state.last_record = Some(record);
    }

    /// At start, before any rollout is recovered: the service's latest deployment in
    /// the store and how many ended in each outcome.
    pub(crate) fn seed_rollouts(
        &self,
        latest: Option<&DeploymentRecord>,
        ended: OutcomeCounts,
        rollbacks: OutcomeCounts,
    ) {
        let mut state = self.write();
        state.rollout_view = latest.map(RolloutSnapshot::of);
        state.ended = ended;
        state.rollbacks = rollbacks;
    }

    /// The rollout metrics' view of this service.
    pub(crate) fn rollouts(&self) -> ServiceRollouts {
        let state = self.lock();
        ServiceRollouts {
            service: self.name().to_string(),
            current: state.rollout_view.clone(),
            ended: state.ended.clone(),
            rollbacks: state.rollbacks.clone(),
        }
    }

    /// After a revert made `stable` the serving version again.
    pub(crate) fn set_previous(&self, previous: Option<ServingVersion>) {
        self.write().previous = previous;
    }

    // --- routing ------------------------------------------------------------------------

    /// The table the router uses now.
    pub fn table(&self) -> RouteTable {
        self.routes.table()
    }

    /// Changes the routing table as `change` says; refused whole or applied whole.
    /// Returns the instances that left it (now draining).
    pub(crate) fn route(
        &self,
        change: impl FnOnce(&mut RouteTable),
    ) -> Result<Vec<SocketAddr>, EngineError> {
        let _state = self.write();
        let mut table = self.routes.table();
        change(&mut table);
        self.routes.apply(table)
    }

    /// Replaces the whole table (a manual traffic change); refused while a rollout
    /// owns the split, checked under the same lock as the swap so a deploy that
    /// claimed the service meanwhile wins.
    pub(crate) fn swap(&self, table: RouteTable) -> Result<Vec<SocketAddr>, EngineError> {
        let state = self.write();
        if let Some(active) = &state.active {
            return Err(EngineError::Conflict(format!(
                "rollout {} of {} started meanwhile and owns the traffic split of `{}`; nothing was changed",
                active.id,
                active.version,
                self.name()
            )));
        }
        self.routes.apply(table)
    }

    /// In one swap, `new` becomes the stable version with all traffic (no canary); the
    /// version stable until now becomes the one a rollback returns to. Nothing changes
    /// if the router refuses the table.
    pub(crate) fn make_stable(&self, new: ServingVersion) -> Result<Vec<SocketAddr>, EngineError> {
        let mut state = self.write();
        let draining = self
            .routes
            .apply(RouteTable::stable_only(upstream_set(&new)))?;
        if state.stable.version != new.version {
            let old = std::mem::replace(&mut state.stable, new);
            state.previous = Some(old);
        } else {
            state.stable = new;
        }
        Ok(draining)
    }

    /// The stable version's instances changed (a crash, a restart, a scale): route to
    /// `addrs` if `version` is still the stable one and the table differs. Returns
    /// whether the table changed.
    pub(crate) fn stable_instances_changed(
        &self,
        version: &str,
        addrs: Vec<SocketAddr>,
    ) -> Result<bool, EngineError> {
        let mut state = self.write();
        if state.stable.version != version || addrs.is_empty() {
            return Ok(false);
        }
        let mut table = self.routes.table();
        if table.stable.version == version && table.stable.instances == addrs {
            return Ok(false);
        }
        // Only this version's set: a table whose stable set names another version is
        // the controller's to repair.
        if table.stable.version != version {
            return Ok(false);
        }
        table.stable = UpstreamSet::new(version.to_string(), addrs.clone());
        self.routes.apply(table)?;
        state.stable.addresses = addrs;
        Ok(true)
    }

    // --- versions stopped in the background ------------------------------------------

    /// Tracks `task`, which stops `version`; one replaced for the same version is
    /// aborted. Returns the generation to hand to [`ServiceRuntime::stop_done`].
    pub(crate) fn track_stop(&self, version: &str, task: JoinHandle<()>) -> u64 {
        let mut state = self.write();
        state.next_generation += 1;
        let generation = state.next_generation;
        if let Some(old) = state
            .stopping
            .insert(version.to_string(), PendingStop { generation, task })
        {
            old.task.abort();
        }
        generation
    }

    /// A background stop of `version` ended (its own task calls this last).
    pub(crate) fn stop_done(&self, version: &str, generation: u64) {
        let mut state = self.write();
        if state
            .stopping
            .get(version)
            .is_some_and(|p| p.generation == generation)
        {
            state.stopping.remove(version);
        }
    }

    /// Cancels a pending background stop of `version` (it is deployed or reverted to
    /// again). Returns whether one was pending.
    pub(crate) fn cancel_stop(&self, version: &str) -> bool {
        match self.write().stopping.remove(version) {
            Some(pending) => {
                pending.task.abort();
                true
            }
            None => false,
        }
    }

    pub(crate) fn cancel_all_stops(&self) {
        for (_, pending) in std::mem::take(&mut self.write().stopping) {
            pending.task.abort();
        }
    }
}

/// Keeps the metrics' snapshot current and counts a rollout once, when a record of
/// it first reaches a terminal phase.
fn note_record(state: &mut ServiceState, record: &DeploymentRecord) {
    let snapshot = RolloutSnapshot::of(record);
    let ended_now = record.rollout.phase.is_terminal()
        && state
            .rollout_view
            .as_ref()
            .is_none_or(|seen| seen.deployment != record.id || !is_outcome(&seen.phase));
    if ended_now {
        state.ended.add(&snapshot.phase, 1);
        if matches!(record.rollout.phase, Phase::RolledBack) {
            state.rollbacks.add(rollback_cause(record), 1);
        }
    }
    state.rollout_view = Some(snapshot);
}

fn is_outcome(phase: &str) -> bool {
    OUTCOMES.contains(&phase)
}

/// The addresses of the ready instances, or of all of them when none is ready (so
/// traffic flows again as soon as one comes back).
pub fn routable(instances: &[Instance]) -> Vec<SocketAddr> {
    let ready: Vec<SocketAddr> = instances
        .iter()
        .filter(|i| i.is_ready())
        .map(|i| i.addr)
        .collect();
    if ready.is_empty() {
        instances.iter().map(|i| i.addr).collect()
    } else {
        ready
    }
}

pub fn upstream_set(version: &ServingVersion) -> UpstreamSet {
    UpstreamSet::new(version.version.clone(), version.addresses.clone())
}
