//! The task a rollout's controller runs in. A controller that panics is not left
//! dead with its service locked: the rollout is read back from its last committed
//! state and driven on by a new controller as after a restart (policy rollback:
//! the safe side, since its in-memory state was lost). A controller that keeps
//! panicking is given up after a few tries with the canary taken out of the routing
//! table and the service unlocked; the rollout is recovered at the next start.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rampart_core::rollout::{Input, RecoveryPolicy};
use rampart_store::NewAuditEvent;
use tokio::sync::mpsc;

use super::{Controller, panic_message};
use crate::backoff::Backoff;
use crate::error::EngineError;
use crate::record::DeploymentRecord;
use crate::service::{ControllerRequest, ServiceRuntime};
use crate::shared::{SYSTEM_ACTOR, Shared};

/// Controllers started for one rollout before it is given up.
const MAX_INCARNATIONS: u32 = 3;

pub(crate) async fn supervise(
    shared: Arc<Shared>,
    svc: Arc<ServiceRuntime>,
    record: DeploymentRecord,
    requests: mpsc::Receiver<ControllerRequest>,
    first: Input,
) {
    let id = record.id.clone();
    let mut next = Some((record, requests, first));
    let mut incarnations = 0;
    while let Some((record, requests, first)) = next.take() {
        incarnations += 1;
        let controller = match Controller::new(shared.clone(), svc.clone(), record, requests) {
            Ok(controller) => controller,
            Err(e) => {
                tracing::error!(deployment = %id, error = %e, "cannot run the rollout's controller");
                give_up(&svc, &id);
                return;
            }
        };
        let panicked = match AssertUnwindSafe(controller.run(first)).catch_unwind().await {
            Ok(()) => return,
            Err(payload) => panic_message(payload),
        };
        tracing::error!(deployment = %id, panic = %panicked, "the rollout's controller panicked");
        audit_panic(&shared, svc.name(), &id, &panicked, incarnations).await;
        if incarnations >= MAX_INCARNATIONS {
            give_up(&svc, &id);
            return;
        }
        let record = match read_back(&shared, &id).await {
            Ok(record) => record,
            Err(e) => {
                tracing::error!(deployment = %id, error = %e, "cannot read the rollout back");
                give_up(&svc, &id);
                return;
            }
        };
        let (sender, receiver) = mpsc::channel(16);
        svc.replace_requests(&id, sender);
        next = Some((
            record,
            receiver,
            Input::Recovered {
                policy: RecoveryPolicy::Rollback,
            },
        ));
    }
}

/// The last committed record, retried while the store is busy.
async fn read_back(shared: &Shared, id: &str) -> Result<DeploymentRecord, EngineError> {
    let mut backoff = Backoff::default();
    loop {
        let key = id.to_string();
        let read = shared.store.read(move |tx| tx.get_deployment(&key)).await;
        match read {
            Ok(Some(row)) => {
                return serde_json::from_value(row.record).map_err(|e| {
                    EngineError::Internal(format!("deployment {id} has an unreadable record: {e}"))
                });
            }
            Ok(None) => return Err(EngineError::UnknownDeployment(id.to_string())),
            Err(e) if backoff.failures() < 8 => {
                let delay = backoff.failed();
                tracing::warn!(deployment = %id, error = %e, retry_in = ?delay, "cannot read the rollout back; trying again");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// No controller can drive the rollout: take the canary out of the routing table so
/// users are served by the stable version, and unlock the service.
fn give_up(svc: &ServiceRuntime, id: &str) {
    let routed = svc.route(|table| {
        table.canary_weight = 0.0;
        table.canary = None;
    });
    if let Err(e) = routed {
        tracing::error!(deployment = %id, error = %e, "cannot take the canary out of the routing table");
    }
    tracing::error!(deployment = %id, "giving up the rollout's controller; the service takes new deploys and the rollout is recovered at the next start");
    svc.release(id, None);
}

async fn audit_panic(shared: &Shared, service: &str, id: &str, panic: &str, incarnation: u32) {
    let entry = NewAuditEvent {
        actor: SYSTEM_ACTOR.into(),
        action: "deployment.controller_panicked".into(),
        subject: format!("service/{service}/deployment/{id}"),
        details: serde_json::json!({
            "panic": panic,
            "incarnation": incarnation,
            "recovering": incarnation < MAX_INCARNATIONS,
        }),
    };
    if let Err(e) = shared.store.write(move |tx| tx.append_audit(&entry)).await {
        tracing::error!(error = %e, "cannot audit a controller panic");
    }
    // A short pause, so a panic on every input does not spin.
    tokio::time::sleep(Duration::from_millis(100)).await;
}
