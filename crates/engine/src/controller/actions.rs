//! The long actions a controller runs in the background, one at a time: validation,
//! starting the canary, bringing the promoted version to full size, stopping the
//! canary. They only talk to the backends and the checks; every routing change they
//! lead to is made by the controller itself when their result comes back, so the
//! routing table has one writer and a deadline can never race a swap.

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_backends::VersionSpec;
use rampart_core::rollout::Input;
use rampart_store::ValidationRunRow;

use crate::error::EngineError;
use crate::record::DeploymentRecord;
use crate::service::{ServiceRuntime, routable};
use crate::settings;
use crate::shared::Shared;
use crate::validation;

/// What a background action came back with.
#[derive(Debug)]
pub(crate) enum ActionResult {
    /// A report for the state machine.
    Input(Input),
    /// The canary's instances run here: route to them (weight 0), then report ready.
    CanaryStarted(Vec<SocketAddr>),
    /// The version being promoted (or reverted to) runs at full size here: swap.
    Scaled(Vec<SocketAddr>),
    /// Worth another try after a backoff (the phase's deadline bounds the tries).
    Failed(String),
}

pub(crate) async fn run_validation(
    shared: Arc<Shared>,
    svc: Arc<ServiceRuntime>,
    deployment_id: String,
) -> ActionResult {
    let result = validation::run_checks(&svc.config().checks, &shared.base_dir).await;
    let summary = summarize_validation(&result);
    let row = ValidationRunRow {
        id: rampart_store::new_id(),
        service: svc.name().to_string(),
        deployment_id: Some(deployment_id),
        started_at: shared.store.now(),
        result: serde_json::to_value(&result).unwrap_or_default(),
        can_deploy: result.can_deploy,
    };
    if let Err(e) = shared
        .store
        .write(move |tx| tx.insert_validation_run(&row))
        .await
    {
        tracing::error!(error = %e, "cannot store the validation run");
    }
    ActionResult::Input(Input::ValidationFinished {
        can_deploy: result.can_deploy,
        summary,
    })
}

fn summarize_validation(result: &validation::ValidationResult) -> String {
    let names = |list: &[validation::CheckOutcome]| {
        list.iter()
            .map(|c| format!("{} ({})", c.name, c.message))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!(
        "{} passed, {} failed, {} warnings in {} ms",
        result.passed.len(),
        result.failed.len(),
        result.warnings.len(),
        result.execution_time_ms
    );
    if !result.failed.is_empty() {
        text.push_str(&format!("; failed: {}", names(&result.failed)));
    }
    if !result.warnings.is_empty() {
        text.push_str(&format!("; warnings: {}", names(&result.warnings)));
    }
    text
}

/// Starts (or adopts) the canary's instances. A start the backend refuses is the
/// rollout's answer (`InstancesFailed`); the start deadline bounds one that hangs.
pub(crate) async fn start_canary(
    svc: Arc<ServiceRuntime>,
    record: DeploymentRecord,
) -> ActionResult {
    let version = record.rollout.version.clone();
    let spec = if svc.is_static() {
        VersionSpec::new(version.clone(), record.addresses.len() as u32)
            .with_addresses(record.addresses.clone())
    } else {
        let count = settings::canary_instances(&svc.config(), svc.full_instances());
        VersionSpec::new(version.clone(), count).with_env(record.env.clone())
    };
    match svc.backend.start(spec).await {
        Ok(instances) => ActionResult::CanaryStarted(routable(&instances)),
        Err(e) => ActionResult::Input(Input::InstancesFailed {
            reason: e.to_string(),
        }),
    }
}

/// Brings the version to full size (scales it when it runs, starts it with its
/// per-deploy environment when not). For a promotion, a failed scale-up promotes with
/// what runs (the canary passed); a revert that cannot start the version reports it.
pub(crate) async fn scale_to_full(
    svc: Arc<ServiceRuntime>,
    record: DeploymentRecord,
    reverting: bool,
) -> ActionResult {
    let version = record.rollout.version.clone();
    if svc.is_static() {
        return ActionResult::Scaled(record.addresses.clone());
    }
    let full = svc.full_instances();
    let running = !svc.backend.instances(&version).is_empty();
    let result = if running {
        svc.backend.scale(&version, full).await
    } else {
        svc.backend
            .start(VersionSpec::new(version.clone(), full).with_env(record.env.clone()))
            .await
    };
    match result {
        Ok(instances) => ActionResult::Scaled(routable(&instances)),
        Err(e) if reverting && !running => ActionResult::Input(Input::InstancesFailed {
            reason: e.to_string(),
        }),
        Err(e) => {
            tracing::warn!(error = %e, %version, "could not bring the version to full size; going on with the instances that run");
            ActionResult::Scaled(routable(&svc.backend.instances(&version)))
        }
    }
}

/// Stops the canary's instances once the controller has taken them out of the
/// routing table and they drained.
pub(crate) async fn stop_canary(
    svc: Arc<ServiceRuntime>,
    version: String,
    draining: Vec<SocketAddr>,
) -> ActionResult {
    for addr in draining {
        let _ = svc.router.wait_drained(addr).await;
    }
    match svc.backend.stop(&version).await {
        Ok(()) => ActionResult::Input(Input::RollbackDone),
        Err(e) => ActionResult::Failed(format!("cannot stop {version}: {}", EngineError::from(e))),
    }
}
