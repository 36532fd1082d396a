//! What the engine feeds a rollout: its own reports, analysis verdicts, operator requests.

use serde::{Deserialize, Serialize};

use super::phase::{Actor, PauseCause};
use crate::judge::Verdict;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// Start the rollout (the deploy request; `actor` is who asked for it).
    Begin {
        actor: Actor,
    },
    /// All validation checks finished; `can_deploy` is false when a critical one failed.
    ValidationFinished {
        can_deploy: bool,
        summary: String,
    },
    /// The new version's instances are up and ready.
    InstancesReady,
    /// The new version's instances could not be started.
    InstancesFailed {
        reason: String,
    },
    /// Time passed; send one at (or after) [`super::Rollout::next_wakeup`].
    Tick,
    /// A judge's verdict on the current analysis window.
    Analysis(Verdict),
    /// Skip the remaining steps and promote now.
    Promote {
        actor: Actor,
        reason: String,
    },
    Pause {
        actor: Actor,
        reason: String,
    },
    Resume {
        actor: Actor,
        reason: String,
    },
    /// Stop the rollout; the canary is rolled back and the rollout ends `Aborted`.
    Abort {
        actor: Actor,
        reason: String,
    },
    /// Emergency rollback; ends `RolledBack`.
    Rollback {
        actor: Actor,
        reason: String,
    },
    /// Start a revert: this rollout (created for it) returns the service to its
    /// `version`, the one stable before the last promotion, from `previous_version`.
    Revert {
        actor: Actor,
        reason: String,
    },
    /// A named approval for `step` (0-based; `None`: the current step), given by
    /// `actor`, whose token the engine has already matched against the step's name.
    Approve {
        actor: Actor,
        step: Option<usize>,
        reason: String,
    },
    /// The confirm hooks at `point` answered: all 2xx (`accepted`) or not.
    Confirmation {
        point: ConfirmPoint,
        accepted: bool,
        answer: String,
    },
    /// The engine finished [`super::Command::RunPreRolloutHooks`].
    PreRolloutFinished {
        ok: bool,
        summary: String,
    },
    /// A canary instance died while serving traffic.
    CanaryCrashed {
        reason: String,
    },
    /// The engine finished [`super::Command::PromoteCanary`].
    PromotionDone,
    /// The engine finished [`super::Command::StopCanary`] after a rollback.
    RollbackDone,
    /// A metric of the user's own (Prometheus) cannot be judged: hold the step
    /// (Progressing to Paused for `cause`); nothing changes if already paused.
    AnalysisHeld {
        cause: PauseCause,
        reason: String,
    },
    /// The metric provider answers again: a rollout paused for
    /// [`PauseCause::AnalysisUnavailable`] resumes with a fresh step window.
    AnalysisRestored {
        reason: String,
    },
    /// A metric of the user's own failed past its `failure_limit`, or its provider
    /// stayed unavailable past the limit: roll back.
    AnalysisFailed {
        reason: String,
    },
    /// The engine finished [`super::Command::SwitchBack`].
    SwitchedBack,
    /// rampart restarted; this rollout was loaded from the store.
    Recovered {
        policy: RecoveryPolicy,
    },
}

/// Where confirm hooks are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmPoint {
    /// Before the canary's weight goes up to the next step.
    TrafficIncrease,
    /// Before the canary is promoted.
    Promotion,
}

impl ConfirmPoint {
    pub fn name(self) -> &'static str {
        match self {
            ConfirmPoint::TrafficIncrease => "confirm_traffic_increase",
            ConfirmPoint::Promotion => "confirm_promotion",
        }
    }
}

/// What to do with a rollout that was in flight when rampart stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryPolicy {
    /// Roll the canary back: the safe choice when nobody is watching.
    #[default]
    Rollback,
    /// Re-establish the current state: same step, restarted hold, fresh analysis window.
    Resume,
}

impl Input {
    /// The verb used in error messages ("cannot resume: ...").
    pub fn action(&self) -> &'static str {
        match self {
            Input::Begin { .. } => "begin",
            Input::ValidationFinished { .. } => "finish validation",
            Input::InstancesReady => "mark instances ready",
            Input::InstancesFailed { .. } => "mark instances failed",
            Input::Tick => "tick",
            Input::Analysis(_) => "record analysis",
            Input::Promote { .. } => "promote",
            Input::Pause { .. } => "pause",
            Input::Resume { .. } => "resume",
            Input::Abort { .. } => "abort",
            Input::Rollback { .. } => "roll back",
            Input::Revert { .. } => "revert",
            Input::Approve { .. } => "approve",
            Input::Confirmation { .. } => "record a confirmation",
            Input::PreRolloutFinished { .. } => "finish the pre-rollout hooks",
            Input::CanaryCrashed { .. } => "handle a canary crash",
            Input::PromotionDone => "finish promotion",
            Input::RollbackDone => "finish rollback",
            Input::SwitchedBack => "finish switching back",
            Input::Recovered { .. } => "recover",
            Input::AnalysisHeld { .. } => "hold for analysis",
            Input::AnalysisRestored { .. } => "resume after analysis",
            Input::AnalysisFailed { .. } => "fail analysis",
        }
    }
}
