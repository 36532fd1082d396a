//! What a rollout asks the engine to do. The engine persists the rollout first, then
//! executes the commands in order, each one finished before the next begins.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::input::ConfirmPoint;
use super::phase::Transition;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Run the validation checks; answer with `ValidationFinished`.
    RunValidation,
    /// Stop checks still running (the rollout ended during validation).
    CancelValidation,
    /// Make sure the new version's instances run, starting those that do not (idempotent:
    /// it is re-issued after a restart); answer with `InstancesReady` or `InstancesFailed`.
    StartCanary,
    /// Run the pre-rollout hooks against the ready canary (it takes no traffic yet);
    /// answer with `PreRolloutFinished`.
    RunPreRolloutHooks,
    /// Ask the confirm hooks at `point`; answer with `Confirmation`. Re-issued every
    /// confirm interval while they say no.
    AskConfirmation { point: ConfirmPoint },
    /// Route `percent` of traffic to the canary.
    SetCanaryWeight { percent: f64 },
    /// Start a fresh analysis window (judge reset): the traffic mix changed.
    ResetAnalysis,
    /// Evaluate the judge now; answer with `Analysis(verdict)`.
    EvaluateAnalysis,
    /// Scale the new version to full size and, in one routing-table swap, make it the
    /// stable version (all traffic, canary weight 0); answer with `PromotionDone`. Until
    /// the swap the previous version is stable, so a promotion can still be rolled back.
    /// Idempotent: it is re-issued after a restart. A revert issues it too: there the
    /// "new version" is the one being returned to.
    PromoteCanary,
    /// Stop the previous version's instances after `after` (instant rollback until then;
    /// zero after a revert: the reverted-from version drains and stops at once).
    /// Issued only once the promotion is done, never before the new version is stable.
    ScheduleScaleDown {
        version: String,
        #[serde(rename = "after_ms", with = "super::serde_millis")]
        after: Duration,
    },
    /// Stop (drain) the new version's instances; answer with `RollbackDone` when rolling
    /// back. Always preceded by `SetCanaryWeight { percent: 0.0 }` when traffic may flow.
    /// Issued with a terminal transition (a failed start, a rollback past its deadline)
    /// it needs no answer: the engine keeps trying until the version is stopped.
    StopCanary,
    /// Blue-green: in one routing-table swap, make the version stable before the
    /// switch (still running) stable again; answer with `SwitchedBack`. Idempotent.
    SwitchBack,
    /// rampart rolled the canary back on its own; someone should look.
    OpenIncident { reason: String },
    /// A transition happened (the same record as in the rollout's history).
    Notify(Transition),
}
