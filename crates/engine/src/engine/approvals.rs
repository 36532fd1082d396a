//! Named approvals of a rollout's steps (`rampart approve`). The API matches the
//! caller's token against the name a step needs before the approval is fed to the
//! rollout, so the engine offers both halves.

use rampart_core::rollout::{Actor, Input};
use tokio::sync::oneshot;

use super::Engine;
use crate::error::EngineError;
use crate::service::ControllerRequest;
use crate::views::DeploymentSummary;

/// The step (0-based) an approval would be for, and the approval name it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalNeeded {
    pub deployment_id: String,
    pub step: usize,
    pub name: String,
}

impl Engine {
    /// What `rampart approve SERVICE [--step N]` would approve: `step` (0-based) or the
    /// rollout's current step. Refused like the approval itself would be (no rollout,
    /// no approval needed there, already given, already passed).
    pub fn approval_needed(
        &self,
        service: &str,
        step: Option<usize>,
    ) -> Result<ApprovalNeeded, EngineError> {
        let svc = self.service(service)?;
        let state = svc.lock();
        let no_rollout = || EngineError::NoActiveRollout {
            service: service.to_string(),
            action: "approve".into(),
        };
        let active = state.active.as_ref().ok_or_else(no_rollout)?;
        let record = state
            .last_record
            .as_ref()
            .filter(|record| record.id == active.id)
            .ok_or_else(no_rollout)?;
        let (step, name) = record.rollout.approval_target(step)?;
        Ok(ApprovalNeeded {
            deployment_id: record.id.clone(),
            step,
            name: name.to_string(),
        })
    }

    /// Gives the approval of `step` (0-based) as `actor`; the caller has matched the
    /// actor's token against the step's approval name.
    pub async fn approve(
        &self,
        service: &str,
        step: usize,
        actor: &str,
        reason: Option<String>,
    ) -> Result<DeploymentSummary, EngineError> {
        let svc = self.service(service)?.clone();
        let gone = || EngineError::NoActiveRollout {
            service: service.to_string(),
            action: "approve".into(),
        };
        let (id, requests) = svc
            .lock()
            .active
            .as_ref()
            .map(|a| (a.id.clone(), a.requests.clone()))
            .ok_or_else(gone)?;
        let input = Input::Approve {
            actor: Actor::user(actor),
            step: Some(step),
            reason: reason.unwrap_or_default(),
        };
        let (reply, answer) = oneshot::channel();
        requests
            .send(ControllerRequest::Operate { input, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())??;
        self.summary(&id).await
    }
}
