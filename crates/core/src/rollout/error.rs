//! Why an input was refused. A refused input leaves the rollout unchanged.

use thiserror::Error;

use crate::clock::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransitionError {
    /// e.g. "cannot resume: rollout is Progressing, not Paused".
    #[error("cannot {action}: rollout is {phase}, not {expected}")]
    WrongPhase {
        action: &'static str,
        phase: &'static str,
        expected: &'static str,
    },
    #[error("cannot {action}: rollout already finished as {phase}")]
    Finished {
        action: &'static str,
        phase: &'static str,
    },
    /// A verdict about traffic from before the current analysis window began (e.g. one
    /// computed just before a step change); judging the new window on it would be wrong.
    #[error(
        "cannot record analysis: verdict at {} ms predates the current analysis window, which started at {} ms",
        .verdict_at.0,
        .window_start.0
    )]
    StaleVerdict {
        verdict_at: Timestamp,
        window_start: Timestamp,
    },
    /// A step at or after the current one waits for an approval that was not given.
    #[error(
        "cannot {action}: step {} needs approval by {name}; run `rampart approve SERVICE --step {}` with a token named {name} or holding that role",
        .step + 1,
        .step + 1
    )]
    ApprovalRequired {
        action: &'static str,
        step: usize,
        name: String,
    },
    #[error("cannot approve: step {} needs no approval ({needing})", .step + 1)]
    NoApprovalNeeded { step: usize, needing: String },
    #[error("cannot approve: step {} was already approved by {by}", .step + 1)]
    AlreadyApproved { step: usize, by: String },
    #[error("cannot approve: the rollout is past step {}", .step + 1)]
    StepPassed { step: usize },
    #[error("cannot approve: the rollout is {phase}, not at a step; name the step to approve")]
    NoCurrentStep { phase: &'static str },
    #[error(
        "rollout state names step {} but its spec has only {steps} step(s); the stored rollout is inconsistent",
        .step + 1
    )]
    NoSuchStep { step: usize, steps: usize },
}
