//! The rollout state machine: one deployment from "validate" to "serving all traffic"
//! or "rolled back", as a pure function of inputs and timestamps.
//!
//! The engine owns the loop: it persists the [`Rollout`] (serde, stable JSON), feeds it
//! an [`Input`] with the current time, persists the result, then executes the returned
//! [`Command`]s in order. It sends [`Input::Tick`] at [`Rollout::next_wakeup`] (ticking
//! more often is harmless). Nothing here does I/O, sleeps or reads a clock.
//!
//! # States
//!
//! ```text
//! Pending --Begin--> Validating --ValidationFinished(ok)--> Starting --InstancesReady--> Progressing{0}
//!                        |--ValidationFinished(not ok)--> Failed          |--InstancesFailed--> Failed
//! Progressing{k} --hold elapsed & latest analysis Pass--> Progressing{k+1} ... --> Promoting
//! Promoting --PromotionDone--> Succeeded (then ScheduleScaleDown of the previous version)
//! RollingBack{ends_as} --RollbackDone--> RolledBack | Aborted
//! Pending --Revert--> Reverting --PromotionDone--> Succeeded (the reverted-from version stops at once)
//!                        |--InstancesFailed--> Failed
//! ```
//!
//! # Deadlines
//!
//! Every phase that waits on an action of the engine has a deadline
//! ([`RolloutSpec::deadlines`], [`Rollout::phase_deadline_at`]), set afresh whenever
//! the phase is entered (recovery included) and returned by [`Rollout::next_wakeup`].
//! The engine retries a failed action until then; a tick at or after it ends the phase
//! on the safe side, whatever the action is doing:
//!
//! | phase                        | at its deadline                                        |
//! |------------------------------|--------------------------------------------------------|
//! | Validating                   | Failed, `CancelValidation` (nothing was started)       |
//! | Starting (first start)       | Failed, `StopCanary` (no traffic reached it)           |
//! | Starting (after a restart)   | RollingBack → RolledBack, incident                     |
//! | Promoting                    | RollingBack → RolledBack, incident (the swap had not happened) |
//! | Reverting                    | Failed, `StopCanary` (the current version keeps serving) |
//! | RollingBack{ends_as}         | `ends_as`, `StopCanary` again: the canary takes no traffic; the engine keeps stopping it |
//!
//! A `StopCanary` issued with a terminal transition needs no answer. Progressing has
//! the progress deadline instead (below); Paused waits for an operator.
//!
//! # Progressing
//!
//! Entering a step sets the canary weight, restarts the hold and starts a fresh analysis
//! window (`SetCanaryWeight`, `ResetAnalysis`). Every `analysis_interval` a tick yields
//! `EvaluateAnalysis`; the engine answers with [`Input::Analysis`].
//! - The step advances only when its hold has elapsed **and** the latest verdict is
//!   `Pass`. A hold that ends while the latest verdict is `Inconclusive` or `Fail` waits.
//! - `Fail` verdicts in a row reaching `failure_limit` roll back. `Pass` resets the count;
//!   `Inconclusive` neither counts nor resets.
//! - Progress deadline: with no `Pass` for `progress_deadline` (counted from the step's
//!   start or its last `Pass`), the rollout rolls back (`DeadlineAction::Fail`) or pauses
//!   (`DeadlineAction::Pause`).
//! - Verdicts older than the current window (`verdict.at` before the step started) are
//!   refused with [`TransitionError::StaleVerdict`].
//!
//! # Failures
//!
//! - Validation failure ends `Failed`; nothing was started.
//! - Instances failing to start end `Failed` with `StopCanary` (to clean up whatever did
//!   start): no user traffic ever reached them, so there is nothing to roll back. The
//!   exception is re-starting after a restart under the resume policy: that canary had
//!   served traffic, so it is rolled back like any other.
//! - A canary crash while Progressing, Paused or Promoting rolls back.
//! - Every rollback rampart starts on its own also yields `OpenIncident`.
//! - Rolling back always commands `SetCanaryWeight { percent: 0.0 }` first, then
//!   `StopCanary`.
//!
//! # Operators
//!
//! | from \ input | Promote   | Pause  | Resume      | Abort              | Rollback              |
//! |--------------|-----------|--------|-------------|--------------------|-----------------------|
//! | Pending      | refused   | refused| refused     | Aborted            | Aborted               |
//! | Validating   | refused   | refused| refused     | Aborted (cancel)   | Aborted (cancel)      |
//! | Starting     | refused   | refused| refused     | RollingBack→Aborted| RollingBack→RolledBack|
//! | Progressing  | Promoting | Paused | refused     | RollingBack→Aborted| RollingBack→RolledBack|
//! | Paused       | Promoting | refused| Progressing | RollingBack→Aborted| RollingBack→RolledBack|
//! | Promoting    | refused   | refused| refused     | refused            | refused               |
//! | Reverting    | refused   | refused| refused     | refused            | refused               |
//! | RollingBack  | refused   | refused| refused     | refused            | refused               |
//! | terminal     | refused   | refused| refused     | refused            | refused               |
//!
//! Rollback before anything was started ends `Aborted` like abort: there is nothing to
//! roll back. Promoting cannot be aborted: the analysis has passed and the promotion is a
//! single routing swap; roll back afterwards by deploying the previous version. A refused
//! input returns a [`TransitionError`] ("cannot resume: rollout is Progressing, not
//! Paused") and changes nothing.
//!
//! Pausing holds the weight and the step: no weight changes, no advance, no progress
//! deadline. Analysis keeps running and is recorded, and failures still count: a pause
//! stops progress, not protection. Resume restarts the step's hold with a fresh
//! analysis window. Only Progressing can be paused; before traffic flows there is
//! nothing to hold (abort instead).
//!
//! # Metrics of the user's own
//!
//! The engine runs the service's Prometheus (or other provider) metrics beside the
//! judge ([`crate::analysis`]) and reports what the router's judge cannot:
//! - [`Input::AnalysisHeld`]: Progressing goes to Paused with the cause
//!   (`analysis_unavailable`: the provider does not answer; `analysis_inconclusive`:
//!   too much no-data); already Paused stays as it is. No progress deadline runs
//!   while paused, so an outage of the provider never rolls a canary back by itself.
//! - [`Input::AnalysisRestored`]: Paused for `analysis_unavailable` resumes the step
//!   with a restarted hold and a fresh window; any other phase is left alone.
//! - [`Input::AnalysisFailed`]: a failed metric (or a provider unavailable past its
//!   limit) rolls back from Progressing or Paused, with an incident; for blue-green
//!   it rolls the preview back, or switches back after the switch.
//!   Blue-green never gets `AnalysisHeld`: it has no pause.
//!
//! # Gates
//!
//! A step is left only through its gates, checked in this order once its hold has
//! elapsed with a passing analysis (or an operator released it):
//!
//! 1. `until_promoted`: entering the step sets the weight and pauses at once
//!    (`PauseCause::UntilPromoted`), with no timer. `resume` releases the gate (the
//!    step's remaining gates follow); `promote` skips the remaining steps as always.
//! 2. `approve = NAME`: the step waits (`PauseCause::Approval`) until
//!    [`Input::Approve`] for it; an approval may be given ahead, for any step not yet
//!    left, and is recorded in [`Rollout::approvals`]. Neither resume nor promote
//!    passes an approval: promote is refused while any step from the current one on
//!    lacks its approval.
//! 3. confirm hooks: before the next step `AskConfirmation { TrafficIncrease }`,
//!    before promotion `AskConfirmation { Promotion }` (`PauseCause::Confirm…`). A
//!    "no" keeps the rollout there, records the answer ([`Rollout::confirmation`])
//!    and asks again every `hooks.confirm_interval`; a "yes" moves on. An operator's
//!    resume or promote overrides a "no" (recorded with the actor).
//!
//! Every gate is a `Paused` phase, so the judge keeps watching: analysis runs and
//! failures still roll the canary back while a gate waits, and there is no progress
//! deadline (a gate waits for people or hooks, not for evidence).
//!
//! Pre-rollout hooks: with `hooks.pre_rollout`, ready instances (first start, with a
//! stable version) go to `Starting { pre_rollout: true }` with `RunPreRolloutHooks`;
//! [`Input::PreRolloutFinished`] either enters step 1 or ends `Failed` with
//! `StopCanary`: no traffic ever reached the canary. They count against the start
//! deadline.
//!
//! # Revert
//!
//! An emergency rollback with no rollout in flight is a rollout of its own, created
//! with `version` = the version stable before the last promotion and
//! `previous_version` = the one stable now, and started with [`Input::Revert`] (from
//! Pending only). Reverting issues `PromoteCanary` (start or scale the returning
//! version, then one swap makes it stable); `PromotionDone` ends it `Succeeded` with
//! `ScheduleScaleDown` of the reverted-from version after zero. A failed start ends it
//! `Failed` with the current version still serving; a canary crash while Reverting is
//! left to the backend. A restart finishes a revert under either policy.
//!
//! # First deployment
//!
//! With no `previous_version` there is no stable version to compare against or to shift
//! traffic from, so ready instances go straight to Promoting.
//!
//! # Recovery after a restart
//!
//! The engine sends [`Input::Recovered`] to every non-terminal rollout it loads. The
//! default policy is [`RecoveryPolicy::Rollback`]: a rollout nobody is watching is
//! brought to the safe side.
//! - `Rollback`: Pending and Validating end `Aborted` (nothing was started); Starting,
//!   Progressing, Paused and Promoting go to RollingBack (ends RolledBack); RollingBack
//!   and Reverting re-issue their commands.
//! - `Resume`: the current state is re-established. Validating re-runs validation;
//!   Starting re-issues `StartCanary`; Progressing and Paused go through Starting (the
//!   canary's instances may have died with rampart) and, once ready, return to the same
//!   step (still paused if they were) with the weight set again, the hold restarted and a
//!   fresh analysis window; Promoting and Reverting re-issue `PromoteCanary`;
//!   RollingBack re-issues its commands.
//!
//! Every transition, including a recovery that stays in place, is recorded in
//! [`Rollout::history`] with time, from, to, reason and actor, and announced with
//! [`Command::Notify`] after the commands that act on it.

mod command;
mod error;
mod gates;
mod input;
mod machine;
mod phase;
mod serde_millis;
mod spec;
mod steering;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use command::Command;
pub use error::TransitionError;
pub use input::{ConfirmPoint, Input, RecoveryPolicy};
pub use phase::{Actor, PauseCause, Phase, ResumePoint, RollbackEnd, Transition};
pub use spec::{
    BlueGreenSpec, DeadlineAction, HookGates, PhaseDeadlines, RolloutSpec, SpecError, Step,
    Strategy,
};
pub use steering::{MatchSource, RequestMatch, Steering, ValueMatch};

use crate::clock::Timestamp;
use crate::judge::{Outcome, Verdict};

/// One deployment of `version` of `service`, and everything needed to continue it after
/// a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub service: String,
    pub version: String,
    /// The version serving traffic now; `None` for a service's first deployment.
    pub previous_version: Option<String>,
    pub spec: RolloutSpec,
    pub phase: Phase,
    pub created_at: Timestamp,
    /// Start of the current step's hold and analysis window (Progressing, Paused).
    pub step_started_at: Timestamp,
    /// The step's start or its latest `Pass`; the progress deadline counts from here.
    pub last_progress_at: Timestamp,
    /// When the next `EvaluateAnalysis` is due (Progressing, Paused).
    pub next_analysis_at: Timestamp,
    /// The latest verdict's outcome in the current window; `None` right after a reset.
    pub step_outcome: Option<Outcome>,
    pub consecutive_failures: u32,
    /// The latest verdict of the whole rollout, kept across steps for display.
    pub last_verdict: Option<Verdict>,
    pub history: Vec<Transition>,
    /// When the current phase gives up (Validating, Starting, Promoting, Reverting,
    /// RollingBack): set on entering it from [`RolloutSpec::deadlines`]. Absent from
    /// rollouts stored before deadlines existed: recovery re-enters the phase and sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_deadline_at: Option<Timestamp>,
    /// Approvals given so far, ahead of their step or at it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// The latest "no" of the confirm hooks the rollout waits on; cleared on moving on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<ConfirmationAnswer>,
    /// When the confirm hooks are asked again (while waiting on them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_confirmation_at: Option<Timestamp>,
}

/// One approval: `name` (the step's `approve`) for `step` (0-based), given by `by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub step: usize,
    pub name: String,
    pub by: String,
    pub at: Timestamp,
}

/// What the confirm hooks said when they last said no.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmationAnswer {
    pub point: ConfirmPoint,
    pub answer: String,
    pub at: Timestamp,
}

impl Rollout {
    /// A rollout in `Pending`; nothing happens until [`Input::Begin`].
    pub fn new(
        service: impl Into<String>,
        version: impl Into<String>,
        previous_version: Option<String>,
        spec: RolloutSpec,
        now: Timestamp,
    ) -> Result<Self, SpecError> {
        spec.validate()?;
        Ok(Self {
            service: service.into(),
            version: version.into(),
            previous_version,
            spec,
            phase: Phase::Pending,
            created_at: now,
            step_started_at: now,
            last_progress_at: now,
            next_analysis_at: now,
            step_outcome: None,
            consecutive_failures: 0,
            last_verdict: None,
            history: Vec::new(),
            phase_deadline_at: None,
            approvals: Vec::new(),
            confirmation: None,
            next_confirmation_at: None,
        })
    }

    pub fn is_terminal(&self) -> bool {
        self.phase.is_terminal()
    }

    /// The router's canary rules the committed phase wants: the current step's match
    /// and mirroring while Progressing or Paused, none otherwise (a rollback, a
    /// promotion and the phases before traffic route by weight alone).
    pub fn steering(&self) -> Steering {
        self.current_step()
            .map(|(_, step)| step.steering.clone())
            .unwrap_or_default()
    }

    /// What a waiting rollout waits for, in words for `status` and events ("approval
    /// by release-manager: `rampart approve checkout`"); `None` when not at a gate.
    pub fn waiting_for(&self) -> Option<String> {
        let Phase::Paused { step, cause, .. } = self.phase else {
            return None;
        };
        let service = &self.service;
        Some(match cause {
            PauseCause::Operator | PauseCause::Deadline => {
                format!("an operator: `rampart resume {service}` or `rampart promote {service}`")
            }
            PauseCause::AnalysisUnavailable => {
                "the analysis provider to answer again (the rollout resumes on its own)".to_string()
            }
            PauseCause::AnalysisInconclusive => format!(
                "conclusive analysis, or an operator: `rampart resume {service}` or `rampart abort {service}`"
            ),
            PauseCause::UntilPromoted => format!(
                "an operator (pause = until_promoted): `rampart resume {service}` for the next step or `rampart promote {service}`"
            ),
            PauseCause::Approval => {
                let name = self
                    .spec
                    .steps
                    .get(step)
                    .and_then(|s| s.approve.clone())
                    .unwrap_or_default();
                format!(
                    "approval by {name}: `rampart approve {service}` with a token named {name} or holding that role"
                )
            }
            PauseCause::ConfirmTrafficIncrease | PauseCause::ConfirmPromotion => {
                let point = if cause == PauseCause::ConfirmPromotion {
                    "confirm_promotion"
                } else {
                    "confirm_traffic_increase"
                };
                match &self.confirmation {
                    Some(no) => format!("the {point} hooks, which last answered: {}", no.answer),
                    None => format!("the {point} hooks' answer"),
                }
            }
        })
    }

    /// The step the canary is at (Progressing or Paused), 0-based, with its definition.
    pub fn current_step(&self) -> Option<(usize, &Step)> {
        match self.phase {
            Phase::Progressing { step, .. } | Phase::Paused { step, .. } => {
                self.spec.steps.get(step).map(|s| (step, s))
            }
            _ => None,
        }
    }
}
