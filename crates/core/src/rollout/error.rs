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
    #[error(
        "rollout state names step {} but its spec has only {steps} step(s); the stored rollout is inconsistent",
        .step + 1
    )]
    NoSuchStep { step: usize, steps: usize },
}
