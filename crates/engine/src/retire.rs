//! Stopping a version in the background: after the scale-down delay of a promotion,
//! at once after a revert, or after a rollout ended before its canary was confirmed
//! stopped. Each stop is tracked by its service (cancelled when the version is
//! deployed or reverted to again, aborted at shutdown) and retried with backoff until
//! it succeeds; its first failure is audited, so a version that will not stop is seen.

use std::sync::Arc;
use std::time::Duration;

use rampart_store::NewAuditEvent;
use tokio::sync::oneshot;

use crate::backoff::Backoff;
use crate::error::EngineError;
use crate::service::ServiceRuntime;
use crate::shared::{EngineEvent, EngineEventKind, SYSTEM_ACTOR, Shared};

/// Stops `version` of `svc` after `after`, retrying until it is stopped. A version the
/// service serves as stable again by then is left running.
pub(crate) fn stop_in_background(
    shared: Arc<Shared>,
    svc: Arc<ServiceRuntime>,
    version: String,
    after: Duration,
    reason: String,
) {
    let (generation_tx, generation_rx) = oneshot::channel();
    let task_svc = svc.clone();
    let task_version = version.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let mut backoff = Backoff::default();
        loop {
            match retire(&shared, &task_svc, &task_version, &reason).await {
                Ok(()) => break,
                Err(e) => {
                    let delay = backoff.failed();
                    tracing::warn!(service = %task_svc.name(), version = %task_version, error = %e, retry_in = ?delay, "cannot stop a version; trying again");
                    if backoff.failures() == 1 {
                        audit_stop_failure(&shared, task_svc.name(), &task_version, &e).await;
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
        if let Ok(generation) = generation_rx.await {
            task_svc.stop_done(&task_version, generation);
        }
    });
    let generation = svc.track_stop(&version, task);
    let _ = generation_tx.send(generation);
}

/// Takes `version` out of the routing table (if the canary set still names it), waits
/// for its requests to drain, then stops it.
async fn retire(
    shared: &Shared,
    svc: &ServiceRuntime,
    version: &str,
    reason: &str,
) -> Result<(), EngineError> {
    if svc.lock().stable.version == version {
        tracing::info!(service = %svc.name(), %version, "not stopping a version that is stable again");
        return Ok(());
    }
    let table = svc.table();
    if table.stable.version == version {
        // The router still sends it the stable traffic: the controller repairs that
        // first; stopping it now would fail every request.
        return Err(EngineError::Internal(format!(
            "the router's stable set is still {version}"
        )));
    }
    let mut draining = svc.route(|table| {
        if table.canary.as_ref().is_some_and(|c| c.version == version) {
            table.canary = None;
            table.canary_weight = 0.0;
        }
    })?;
    draining.extend(svc.backend.instances(version).iter().map(|i| i.addr));
    for addr in draining {
        // Not known to the router (never routed, or drained and forgotten) is fine.
        let _ = svc.router.wait_drained(addr).await;
    }
    svc.backend.stop(version).await?;
    let service = svc.name().to_string();
    let entry = NewAuditEvent {
        actor: SYSTEM_ACTOR.into(),
        action: "version.stop".into(),
        subject: format!("service/{service}/version/{version}"),
        details: serde_json::json!({ "reason": reason }),
    };
    if let Err(e) = shared.store.write(move |tx| tx.append_audit(&entry)).await {
        tracing::error!(error = %e, "cannot audit stopping a version");
    }
    shared.publish(EngineEvent {
        service,
        deployment_id: None,
        kind: EngineEventKind::VersionStopped {
            version: version.to_string(),
        },
    });
    Ok(())
}

async fn audit_stop_failure(shared: &Shared, service: &str, version: &str, error: &EngineError) {
    let entry = NewAuditEvent {
        actor: SYSTEM_ACTOR.into(),
        action: "version.stop_failed".into(),
        subject: format!("service/{service}/version/{version}"),
        details: serde_json::json!({ "error": error.to_string(), "retrying": true }),
    };
    if let Err(e) = shared.store.write(move |tx| tx.append_audit(&entry)).await {
        tracing::error!(error = %e, "cannot audit a failed stop");
    }
}
