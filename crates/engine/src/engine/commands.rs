//! What changes a service: deploy, operator actions, the emergency revert, manual
//! traffic changes, a validation run.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_config::BackendConfig;
use rampart_core::rollout::{Actor, Input, Rollout};
use rampart_router::{RouteTable, TrafficStatus, UpstreamSet};
use rampart_store::{DeploymentRow, NewAuditEvent, ValidationRunRow};
use tokio::sync::{mpsc, oneshot};

use super::{DeployRequest, Engine, Operation, TrafficChange};
use crate::controller::supervise;
use crate::error::EngineError;
use crate::record::{DeploymentKind, DeploymentRecord};
use crate::service::{ControllerRequest, ServiceRuntime};
use crate::settings;
use crate::validation::{self, ValidationResult};
use crate::views::{DeploymentSummary, summary_of};

impl Engine {
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
            // Names are looked up first, so the checks and the table below are as
            // close to the swap as they can be.
            let resolved = match &change.canary {
                Some(given) => {
                    let unique: HashSet<_> = given.iter().collect();
                    if unique.len() != given.len() {
                        return Err(EngineError::InvalidRequest(
                            "canary lists an address twice".into(),
                        ));
                    }
                    let addrs = (self.inner.shared.resolver)(given.clone())
                        .await
                        .map_err(|e| EngineError::InvalidRequest(format!("`canary`: {e}")))?;
                    self.check_canary_addresses(&addrs)?;
                    Some(addrs)
                }
                None => None,
            };
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
            let canary = match &resolved {
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
                steering: Default::default(),
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
            let canary_weight = table.canary_weight;
            svc.swap(table)?;
            // Live subscribers (the dashboard) see a split set by hand as well.
            self.inner.shared.publish(crate::shared::EngineEvent {
                service: service.to_string(),
                deployment_id: None,
                kind: crate::shared::EngineEventKind::Traffic { canary_weight },
            });
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
        self.refuse_while_handing_over()?;
        validate_version("version", &request.version)?;
        self.inner
            .safeguards
            .check_deploy(service, request.override_freeze)?;
        let stable = svc.stable();
        if stable.version == request.version {
            return Err(EngineError::Conflict(format!(
                "{} is already the stable version of `{service}`",
                request.version
            )));
        }
        let addresses = match &svc.config().backend {
            BackendConfig::Static(s) => {
                let addrs = if request.canary.is_empty() {
                    (self.inner.shared.resolver)(s.canary.clone())
                        .await
                        .map_err(|e| {
                            EngineError::InvalidRequest(format!(
                                "`{service}`'s configured canary addresses: {e}"
                            ))
                        })?
                } else {
                    (self.inner.shared.resolver)(request.canary.clone())
                        .await
                        .map_err(|e| EngineError::InvalidRequest(format!("`canary`: {e}")))?
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
        let spec = settings::rollout_spec(&svc.config());
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
        self.claim_settled(&svc, &record.id, &request.version, requests)
            .await?;
        let row = match self.insert_deployment(&svc, &record, actor, &request).await {
            Ok(row) => row,
            Err(e) => {
                svc.release(&record.id, None);
                return Err(e);
            }
        };
        self.spawn_controller(
            svc,
            record,
            receiver,
            Input::Begin {
                actor: Actor::user(actor),
            },
        );
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
                "override_freeze": request.override_freeze,
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

    /// Runs the rollout's controller under its supervisor; the service must be
    /// claimed for it.
    pub(super) fn spawn_controller(
        &self,
        svc: Arc<ServiceRuntime>,
        record: DeploymentRecord,
        receiver: mpsc::Receiver<ControllerRequest>,
        first: Input,
    ) {
        let id = record.id.clone();
        svc.set_record(record.clone());
        let task = tokio::spawn(supervise(
            self.inner.shared.clone(),
            svc.clone(),
            record,
            receiver,
            first,
        ));
        svc.attach(&id, task);
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

    /// Emergency rollback after a promotion, as a rollout of its own through core's
    /// machine (Pending -> Reverting -> Succeeded): the previous version comes back (at
    /// once while it still runs within the scale-down delay, started again with its
    /// per-deploy environment otherwise), then the reverted-from version drains and
    /// stops. Returns once the revert ended.
    async fn revert(
        &self,
        svc: &Arc<ServiceRuntime>,
        actor: &str,
        reason: &str,
    ) -> Result<DeploymentSummary, EngineError> {
        let service = svc.name().to_string();
        let (current, previous) = {
            let state = svc.lock();
            (state.stable.clone(), state.previous.clone())
        };
        let Some(previous) = previous else {
            return Err(EngineError::Conflict(format!(
                "`{service}` has no rollout in flight and no previous version to roll back to"
            )));
        };
        let spec = settings::rollout_spec(&svc.config());
        let deadline = spec.deadlines.promotion;
        let now = self.inner.shared.clock.now();
        let rollout = Rollout::new(
            &service,
            previous.version.clone(),
            Some(current.version.clone()),
            spec,
            now,
        )
        .map_err(|e| EngineError::Internal(format!("the service's strategy is invalid: {e}")))?;
        let record = DeploymentRecord {
            id: rampart_store::new_id(),
            kind: DeploymentKind::Revert,
            rollout,
            addresses: previous.addresses.clone(),
            env: previous.env.clone(),
            actor: actor.to_string(),
            reason: reason.to_string(),
            previous_addresses: current.addresses.clone(),
            previous_env: current.env.clone(),
        };
        let id = record.id.clone();
        let (requests, receiver) = mpsc::channel(16);
        self.claim_settled(svc, &id, &previous.version, requests)
            .await?;
        // Committed before anything moves: a crash from here on finishes the revert
        // at the next start.
        let inserted = self
            .insert_deployment(
                svc,
                &record,
                actor,
                &DeployRequest {
                    version: previous.version.clone(),
                    reason: Some(reason.to_string()),
                    ..DeployRequest::default()
                },
            )
            .await;
        if let Err(e) = inserted {
            svc.release(&id, None);
            return Err(e);
        }
        self.spawn_controller(
            svc.clone(),
            record,
            receiver,
            Input::Revert {
                actor: Actor::user(actor),
                reason: reason.to_string(),
            },
        );
        // The caller learns how it ended: bounded by the revert's own deadline.
        let limit = deadline + Duration::from_secs(5);
        let ended = tokio::time::timeout(limit, async {
            while svc.lock().active.as_ref().is_some_and(|a| a.id == id) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if ended.is_err() {
            tracing::warn!(deployment = %id, "the revert is still running; answering with its state so far");
        }
        self.summary(&id).await
    }

    /// Runs the service's checks alone (no deployment), stores and audits the run.
    pub async fn validate(
        &self,
        service: &str,
        actor: &str,
    ) -> Result<ValidationResult, EngineError> {
        let svc = self.service(service)?;
        let result =
            validation::run_checks(&svc.config().checks, &self.inner.shared.base_dir).await;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
