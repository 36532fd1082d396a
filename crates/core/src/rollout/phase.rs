//! Where a rollout is, and who moved it there.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// The state of one rollout. `Succeeded`, `RolledBack`, `Failed` and `Aborted` are
/// terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    /// Created, not yet begun.
    Pending,
    /// Checks are running; nothing has been started.
    Validating,
    /// The new version's instances are starting; no traffic reaches them yet.
    Starting {
        /// Set when re-establishing a step after a restart: where to go once ready.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<ResumePoint>,
        /// The instances are ready and the pre-rollout hooks run against them; still no
        /// traffic reaches them.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pre_rollout: bool,
    },
    /// `weight` percent of traffic goes to the canary at step `step` (0-based).
    Progressing {
        step: usize,
        weight: f64,
    },
    /// Held at `step` and `weight`: no weight changes and no step advance until resumed.
    Paused {
        step: usize,
        weight: f64,
        cause: PauseCause,
    },
    /// The new version is being scaled to full size and made stable.
    Promoting,
    /// An emergency rollback with no rollout in flight: the version that was stable
    /// before the last promotion (this rollout's `version`) is being started or scaled
    /// to full size and made stable again; the reverted-from version keeps serving
    /// until the swap.
    Reverting,
    /// Blue-green: the new version runs at preview size behind the preview listener
    /// (no user traffic) and its pre-promotion analysis runs.
    Previewing,
    /// Blue-green: the preview passed; waits for `promote`, or until `auto_at`.
    AwaitingPromotion {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auto_at: Option<Timestamp>,
    },
    /// Blue-green: the switch happened; live traffic on the new version is judged
    /// against the version before it, which stays warm.
    PostPromotion,
    /// Blue-green: the version before the switch is being made stable again, in one
    /// swap; then the new version is stopped and the rollout ends as `ends_as`.
    SwitchingBack {
        ends_as: RollbackEnd,
    },
    /// Canary weight is 0 and the new version is being stopped; ends as `ends_as`.
    RollingBack {
        ends_as: RollbackEnd,
    },
    Succeeded,
    RolledBack,
    /// Ended before any traffic reached the new version (validation or start-up failed).
    Failed,
    /// Ended by an operator (or by a restart before anything was started).
    Aborted,
}

/// Why a rollout is paused (module docs, "Gates", say who may end each wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    Operator,
    /// The step's analysis did not pass within the progress deadline.
    Deadline,
    /// A metric provider (Prometheus) does not answer: the step holds until it does,
    /// then the rollout resumes on its own.
    AnalysisUnavailable,
    /// A metric returned no data more often in a row than its `inconclusive_limit`.
    AnalysisInconclusive,
    /// A `pause = "until_promoted"` step: waits for promote or resume, no timer.
    UntilPromoted,
    /// The step needs its named approval (`rampart approve`).
    Approval,
    /// A confirm-traffic-increase hook has not said yes to the next step yet.
    ConfirmTrafficIncrease,
    /// A confirm-promotion hook has not said yes to promotion yet.
    ConfirmPromotion,
}

impl PauseCause {
    /// Whether this wait is a gate of the step (rather than a hold on the rollout):
    /// ending it moves the rollout on instead of restarting the step.
    pub fn is_gate(self) -> bool {
        !matches!(
            self,
            PauseCause::Operator
                | PauseCause::Deadline
                | PauseCause::AnalysisUnavailable
                | PauseCause::AnalysisInconclusive
        )
    }

    /// Snake-case name, as in the JSON and the metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            PauseCause::Operator => "operator",
            PauseCause::Deadline => "deadline",
            PauseCause::AnalysisUnavailable => "analysis_unavailable",
            PauseCause::AnalysisInconclusive => "analysis_inconclusive",
            PauseCause::UntilPromoted => "until_promoted",
            PauseCause::Approval => "approval",
            PauseCause::ConfirmTrafficIncrease => "confirm_traffic_increase",
            PauseCause::ConfirmPromotion => "confirm_promotion",
        }
    }
}

/// The terminal state a rollback ends in once the engine reports `RollbackDone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackEnd {
    RolledBack,
    Aborted,
}

/// A step to return to after the canary's instances are ready again (crash recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    pub step: usize,
    /// Return paused (for this reason) instead of progressing.
    pub paused: Option<PauseCause>,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Validating => "Validating",
            Phase::Starting { .. } => "Starting",
            Phase::Progressing { .. } => "Progressing",
            Phase::Paused { .. } => "Paused",
            Phase::Promoting => "Promoting",
            Phase::Reverting => "Reverting",
            Phase::Previewing => "Previewing",
            Phase::AwaitingPromotion { .. } => "AwaitingPromotion",
            Phase::PostPromotion => "PostPromotion",
            Phase::SwitchingBack { .. } => "SwitchingBack",
            Phase::RollingBack { .. } => "RollingBack",
            Phase::Succeeded => "Succeeded",
            Phase::RolledBack => "RolledBack",
            Phase::Failed => "Failed",
            Phase::Aborted => "Aborted",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Phase::Succeeded | Phase::RolledBack | Phase::Failed | Phase::Aborted
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Progressing { step, weight } => {
                write!(f, "Progressing (step {}, {weight}%)", step + 1)
            }
            Phase::Paused {
                step,
                weight,
                cause,
            } => {
                let by = match cause {
                    PauseCause::Operator => "Paused by an operator",
                    PauseCause::Deadline => "Paused at the progress deadline",
                    PauseCause::AnalysisUnavailable => {
                        "Paused while the analysis provider is unavailable"
                    }
                    PauseCause::AnalysisInconclusive => "Paused on inconclusive analysis",
                    PauseCause::UntilPromoted => "Paused until promoted",
                    PauseCause::Approval => "Waiting for approval",
                    PauseCause::ConfirmTrafficIncrease => {
                        "Waiting for the confirm-traffic-increase hook"
                    }
                    PauseCause::ConfirmPromotion => "Waiting for the confirm-promotion hook",
                };
                write!(f, "{by} (step {}, {weight}%)", step + 1)
            }
            Phase::Starting {
                pre_rollout: true, ..
            } => f.write_str("Starting (pre-rollout hooks running)"),
            Phase::RollingBack { ends_as } => {
                let end = match ends_as {
                    RollbackEnd::RolledBack => "RolledBack",
                    RollbackEnd::Aborted => "Aborted",
                };
                write!(f, "RollingBack (ends {end})")
            }
            other => f.write_str(other.name()),
        }
    }
}

/// Who caused a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Actor {
    /// rampart itself: analysis, deadlines, backends, recovery.
    System,
    /// A person or token, by name (the audit log's actor).
    User(String),
}

impl Actor {
    pub fn user(name: impl Into<String>) -> Self {
        Actor::User(name.into())
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("rampart"),
            Actor::User(name) => f.write_str(name),
        }
    }
}

/// One recorded state change: a user can always see what happened, when, why and by whom.
/// A recovery that re-establishes the current state is recorded with `from == to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub at: Timestamp,
    pub from: Phase,
    pub to: Phase,
    pub reason: String,
    pub actor: Actor,
}
