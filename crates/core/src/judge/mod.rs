//! Canary judges: compare canary against stable on the same live traffic and say
//! pass, fail or not-enough-data, with the numbers that explain why.
//!
//! Every judge is behind [`Judge`], so the engine drives threshold, sequential and
//! future judges (e.g. Prometheus-backed) the same way.

use serde::{Deserialize, Serialize};

mod build;
mod confidence;
mod error_test;
mod latency_test;
mod mixture;
pub mod sequential;
#[cfg(test)]
mod sequential_tests;
#[cfg(test)]
mod test_streams;
pub mod threshold;

pub use build::{AnalysisSettings, JudgeKind, SettingsError, build_judge};
pub use confidence::{MixtureBound, wilson_interval};
pub use sequential::{Finding, SequentialJudge, SequentialSettings};
pub use threshold::{ThresholdJudge, ThresholdSettings};

use crate::clock::Timestamp;
use crate::sample::WindowSample;

/// The outcome of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No evidence of a regression so far.
    Pass,
    /// The canary is worse than allowed.
    Fail,
    /// Not enough data to say either way; the step holds.
    Inconclusive,
}

/// One number a judge looked at, with what it was compared against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// e.g. "error_rate", "p95_latency_ms", "error_rate_evidence".
    pub metric: String,
    pub canary: Option<f64>,
    pub stable: Option<f64>,
    /// Lower and upper confidence bounds of the canary estimate, when the judge has them.
    pub canary_bounds: Option<(f64, f64)>,
    pub stable_bounds: Option<(f64, f64)>,
    /// The test statistic (or the compared value) and the threshold it is held to.
    pub statistic: Option<f64>,
    pub threshold: Option<f64>,
    pub outcome: Outcome,
}

/// What a judge concluded and why, in words and numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub judge: String,
    pub outcome: Outcome,
    /// One sentence a user can read, e.g. "canary error rate 4.1% > ceiling 1.0%".
    pub reason: String,
    pub evidence: Vec<Evidence>,
    pub canary_requests: u64,
    pub stable_requests: u64,
    pub at: Timestamp,
}

pub trait Judge: Send {
    fn name(&self) -> &'static str;
    /// Feeds the traffic measured since the previous call (one or more whole seconds;
    /// the engine calls this every second).
    fn observe(&mut self, sample: &WindowSample);
    /// Judges what was observed, per the judge's own windowing. Threshold judges judge
    /// the traffic since their previous evaluation; sequential judges judge everything
    /// since the last [`Judge::reset`].
    fn evaluate(&mut self, now: Timestamp) -> Verdict;
    /// Forgets all observations: a fresh analysis window (e.g. after a restart).
    fn reset(&mut self);
    /// The evidence gathered so far, to be stored and carried over a restart of
    /// rampart; `None` when there is nothing worth keeping (a threshold judge judges
    /// each window on its own).
    fn evidence(&self) -> Option<JudgeEvidence> {
        None
    }
    /// Continues from stored evidence. Refused (false, nothing changed) when the
    /// evidence is of another judge or was gathered under other settings: the
    /// guarantees hold only for one test run under one set of settings.
    fn restore(&mut self, _evidence: JudgeEvidence) -> bool {
        false
    }
}

/// A judge's stored evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "judge", rename_all = "snake_case")]
pub enum JudgeEvidence {
    Sequential(Box<SequentialJudge>),
}
