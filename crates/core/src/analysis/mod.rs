//! Analysis from the user's own metrics: queries to a metric provider (Prometheus
//! first) whose answers pass, fail or say nothing about the canary. Pure: the engine
//! runs the queries on a schedule and feeds each answer here with its time; this
//! module decides what the answers mean for the rollout. Method and the mapping to
//! Argo Rollouts' AnalysisTemplate: docs/ANALYSIS.md.
//!
//! Per metric, like Argo's measurements:
//! - a value that meets the criterion passes, one that does not fails; failed
//!   measurements over the whole rollout beyond `failure_limit` fail the metric, and
//!   the rollout rolls back;
//! - no samples (or NaN) is inconclusive: the step holds; more than
//!   `inconclusive_limit` in a row pause the rollout for an operator;
//! - a query that fails (provider down, 5xx, timeout, bad PromQL) says nothing about
//!   the canary: the step holds; `error_limit` failures in a row pause the rollout
//!   until the provider answers again (then it resumes on its own); unavailable for
//!   `unavailable_limit`, the rollout rolls back without a verdict on the canary.

mod criterion;
mod query;
mod tracker;

#[cfg(test)]
mod tests;

pub use criterion::{Comparison, Criterion, CriterionError, Direction, SuccessCondition};
pub use query::{QueryTemplate, TemplateError};
pub use tracker::{Measurement, MetricSpec, MetricState, MetricTracker, Signal, combine};
