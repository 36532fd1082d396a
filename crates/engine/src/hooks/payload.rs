//! The JSON every hook receives (docs/ROLLOUTS.md, "Hook payload"). It describes the
//! rollout, never the per-deploy environment (which holds secrets).

use rampart_core::rollout::{Phase, Transition};
use serde_json::{Value, json};

use crate::record::DeploymentRecord;

pub(crate) fn payload(
    hook: &str,
    kind: &str,
    record: &DeploymentRecord,
    transition: Option<&Transition>,
) -> Value {
    let rollout = &record.rollout;
    let (step, weight) = match rollout.phase {
        Phase::Progressing { step, weight } | Phase::Paused { step, weight, .. } => {
            (Some(step + 1), weight)
        }
        _ => (None, 0.0),
    };
    json!({
        "hook": hook,
        "kind": kind,
        "service": rollout.service,
        "deployment_id": record.id,
        "version": rollout.version,
        "previous_version": rollout.previous_version,
        "state": record.state_name(),
        "phase": rollout.phase,
        "step": step,
        "steps": rollout.spec.steps.len(),
        "canary_weight": weight,
        "deployed_by": record.actor,
        "reason": record.reason,
        "last_verdict": rollout.last_verdict.as_ref().map(|v| json!({
            "judge": v.judge,
            "outcome": v.outcome,
            "reason": v.reason,
            "canary_requests": v.canary_requests,
            "stable_requests": v.stable_requests,
        })),
        "transition": transition,
        "waiting_for": rollout.waiting_for(),
        "approvals": rollout.approvals,
    })
}
