//! Starting every service, recovering the rollouts in flight at the last stop,
//! keeping the stable set in step with the backend, and shutting down.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rampart_backends::{Backend, BackendEvent, BackendEventKind, VersionSpec};
use rampart_config::{BackendConfig, ServiceConfig, UpstreamAddress};
use rampart_core::rollout::{Input, RecoveryPolicy};
use rampart_store::{NewAuditEvent, Store};
use tokio::sync::{broadcast, mpsc};

use super::Engine;
use crate::error::EngineError;
use crate::record::DeploymentRecord;
use crate::service::{ControllerRequest, ServiceRuntime, ServingVersion, routable};
use crate::shared::{SYSTEM_ACTOR, Shared};

impl Engine {
    /// Drives every rollout that was in flight at the last stop to a safe state.
    pub(super) async fn recover(&self) -> Result<(), EngineError> {
        self.recover_with(self.inner.shared.on_restart).await
    }

    /// [`Engine::recover`] with `policy` instead of `server.on_restart`.
    pub(super) async fn recover_with(&self, policy: RecoveryPolicy) -> Result<(), EngineError> {
        let in_flight = self
            .inner
            .shared
            .store
            .read(|tx| tx.active_deployments())
            .await?;
        for row in in_flight {
            let Some(svc) = self.runtime(&row.service) else {
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
            if let Err(e) = svc.claim(&record.id, &record.rollout.version, requests) {
                tracing::error!(deployment = %row.id, error = %e, "two rollouts of one service were in flight; recovering the first only");
                continue;
            }
            self.spawn_controller(svc, record, receiver, Input::Recovered { policy });
        }
        Ok(())
    }

    /// Stops controllers (rollouts stay as stored and are recovered at the next start),
    /// the routers (in-flight requests finish within `grace`) and every instance.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_everything(grace, false).await;
    }

    /// Controllers detach; their rollouts stay as committed.
    pub(super) async fn detach_controllers(&self) {
        for svc in &self.runtimes() {
            let active = svc.take_active();
            if let Some(active) = active {
                let _ = active.requests.send(ControllerRequest::Detach).await;
                if let Some(task) = active.task {
                    let _ = task.await;
                }
            }
            svc.cancel_all_stops();
        }
    }

    /// Shutdown; `hand_over`: the instances are left running for a new rampart
    /// whatever `instances_outlive` says.
    pub(super) async fn stop_everything(&self, grace: Duration, hand_over: bool) {
        self.detach_controllers().await;
        let services = self.runtimes();
        for svc in &services {
            // The stable watchers, resolvers and autoscalers of every service.
            svc.end_tasks();
        }
        if hand_over {
            self.inner.router.hand_off(grace).await;
        } else {
            self.inner.router.shutdown(grace).await;
        }
        for svc in &services {
            if hand_over {
                svc.backend.hand_over().await;
            } else {
                svc.backend.shutdown().await;
            }
        }
    }
}

/// The version to serve at start and the one to roll back to: from the last
/// successful deployment, else from the config.
pub(crate) async fn serving_versions(
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
            // Resolved at start (`resolve::resolved_service`): IP addresses only.
            addresses: s.stable.iter().filter_map(UpstreamAddress::ip).collect(),
            env: BTreeMap::new(),
        },
    };
    Ok((stable, None))
}

/// Process backend: start the stable version's instances and wait until they are
/// ready. Static backend: the addresses are known; nothing to start.
pub(crate) async fn start_stable(
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
/// Runs [`watch_stable`] for the life of the engine; one that panics is logged and
/// started again (after a pause), so the stable set is never left unwatched.
pub(crate) async fn supervise_stable_watcher(shared: Arc<Shared>, svc: Arc<ServiceRuntime>) {
    loop {
        let watched = AssertUnwindSafe(watch_stable(shared.clone(), svc.clone()))
            .catch_unwind()
            .await;
        match watched {
            // The backend closed its events: rampart is shutting down.
            Ok(()) => return,
            Err(payload) => {
                let panic = crate::controller::panic_message(payload);
                tracing::error!(service = %svc.name(), %panic, "the stable watcher panicked; starting it again");
                tokio::time::sleep(STABLE_RECONCILE_EVERY).await;
            }
        }
    }
}

async fn watch_stable(shared: Arc<Shared>, svc: Arc<ServiceRuntime>) {
    let mut events = svc.backend.subscribe();
    let mut every = tokio::time::interval(STABLE_RECONCILE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    audit_backend_event(&shared, svc.name(), &event).await;
                    if !event.instances.is_empty() {
                        route_stable(&svc, &event.version, routable(&event.instances));
                    }
                }
                // Missed events: the next look at the backend catches up.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // Level-triggered: an event lost or a change the router refused is
            // repaired from what the backend says now.
            _ = every.tick() => {
                if !svc.is_static() {
                    let stable = svc.stable().version;
                    let instances = svc.backend.instances(&stable);
                    if !instances.is_empty() {
                        route_stable(&svc, &stable, routable(&instances));
                    }
                }
            }
        }
    }
}

/// How often the stable set is compared with the backend's instances.
const STABLE_RECONCILE_EVERY: Duration = Duration::from_secs(5);

fn route_stable(svc: &ServiceRuntime, version: &str, addrs: Vec<std::net::SocketAddr>) {
    match svc.stable_instances_changed(version, addrs) {
        Ok(true) => {
            tracing::info!(service = %svc.name(), %version, "stable set follows the backend's instances")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(service = %svc.name(), %version, error = %e, "the router refused the stable set; trying again at the next look")
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
