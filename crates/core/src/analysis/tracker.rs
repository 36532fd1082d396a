//! One metric over a rollout: its measurements, counted against its limits, and what
//! they mean for the step and the rollout.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::criterion::Criterion;
use super::query::QueryTemplate;
use crate::clock::Timestamp;
use crate::judge::{Evidence, Outcome, Verdict};

/// One `[[service.analysis.metric]]`, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    pub name: String,
    /// The `[[metric_provider]]` that answers the query.
    pub provider: String,
    pub query: QueryTemplate,
    pub criterion: Criterion,
    /// How often the query runs.
    pub interval: Duration,
    /// Failed measurements (over the whole rollout) allowed; one more fails the metric.
    pub failure_limit: u32,
    /// Inconclusive measurements in a row allowed; one more pauses the rollout.
    pub inconclusive_limit: u32,
    /// Failed queries in a row allowed; one more pauses the rollout until the provider
    /// answers again.
    pub error_limit: u32,
    /// Paused this long for an unavailable provider, the rollout rolls back.
    pub unavailable_limit: Duration,
}

/// What one run of the query gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Measurement {
    /// The canary's value and, for a comparison, stable's.
    Value { canary: f64, stable: Option<f64> },
    /// The query ran but returned no samples (or NaN): says nothing.
    NoData { detail: String },
    /// The query did not run: provider down, HTTP error, timeout, bad PromQL.
    Error { detail: String },
}

/// Where a metric stands, for status and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricState {
    /// Not measured yet.
    Pending,
    Passing,
    /// The latest measurement failed; the metric has not failed yet.
    Failing,
    Inconclusive,
    /// The latest queries failed, not yet more than `error_limit` in a row.
    Erroring,
    /// More than `error_limit` queries failed in a row: the rollout holds.
    Unavailable,
    /// More than `failure_limit` measurements failed.
    Failed,
}

/// What a measurement asks of the rollout, beyond holding or passing the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Roll the canary back: the metric failed, or its provider stayed unavailable
    /// past `unavailable_limit`.
    RollBack { reason: String },
    /// Pause for an operator: too many inconclusive measurements in a row.
    Pause { reason: String },
}

#[derive(Debug, Clone)]
pub struct MetricTracker {
    spec: MetricSpec,
    failed: u32,
    inconclusive_run: u32,
    error_run: u32,
    unavailable_since: Option<Timestamp>,
    state: MetricState,
    /// The latest measurement's time, outcome and evidence.
    last: Option<(Timestamp, Evidence, String)>,
}

impl MetricTracker {
    pub fn new(spec: MetricSpec) -> Self {
        Self {
            spec,
            failed: 0,
            inconclusive_run: 0,
            error_run: 0,
            unavailable_since: None,
            state: MetricState::Pending,
            last: None,
        }
    }

    pub fn spec(&self) -> &MetricSpec {
        &self.spec
    }

    pub fn state(&self) -> MetricState {
        self.state
    }

    /// Since when the provider has been unavailable (more than `error_limit` failed
    /// queries in a row), if it is now.
    pub fn unavailable_since(&self) -> Option<Timestamp> {
        self.unavailable_since
    }

    /// The latest measurement in words, for reasons and status.
    pub fn last_reason(&self) -> Option<&str> {
        self.last.as_ref().map(|(_, _, reason)| reason.as_str())
    }

    /// Records the measurement taken (queried) at `at`.
    pub fn record(&mut self, measurement: Measurement, at: Timestamp) -> Option<Signal> {
        let name = self.spec.name.clone();
        let (outcome, canary, stable, bound, reason) = match measurement {
            Measurement::Error { detail } => {
                self.error_run = self.error_run.saturating_add(1);
                let reason = format!(
                    "metric {name}: query to provider {} failed ({} in a row): {detail}",
                    self.spec.provider, self.error_run
                );
                if self.error_run > self.spec.error_limit {
                    let since = *self.unavailable_since.get_or_insert(at);
                    self.state = MetricState::Unavailable;
                    let down = at.since(since);
                    if down >= self.spec.unavailable_limit {
                        self.remember(at, Outcome::Inconclusive, None, None, None, reason.clone());
                        return Some(Signal::RollBack {
                            reason: format!(
                                "analysis provider {} unavailable for {}s (limit {}s); rolled back without a verdict on the canary: {reason}",
                                self.spec.provider,
                                down.as_secs(),
                                self.spec.unavailable_limit.as_secs()
                            ),
                        });
                    }
                } else {
                    self.state = MetricState::Erroring;
                }
                self.remember(at, Outcome::Inconclusive, None, None, None, reason);
                return None;
            }
            Measurement::NoData { detail } => {
                self.answered();
                self.inconclusive_run = self.inconclusive_run.saturating_add(1);
                self.state = MetricState::Inconclusive;
                let reason = format!("metric {name}: no data ({detail})");
                self.remember(at, Outcome::Inconclusive, None, None, None, reason.clone());
                if self.inconclusive_run > self.spec.inconclusive_limit {
                    // Counted afresh after the pause, so a resume gets a new allowance.
                    let run = std::mem::take(&mut self.inconclusive_run);
                    return Some(Signal::Pause {
                        reason: format!(
                            "{reason}: {run} inconclusive measurements in a row (limit {}); paused for an operator",
                            self.spec.inconclusive_limit
                        ),
                    });
                }
                return None;
            }
            Measurement::Value { canary, stable } => {
                self.answered();
                self.inconclusive_run = 0;
                let (ok, canary, stable, bound, reason) = match &self.spec.criterion {
                    Criterion::Success(condition) => {
                        let ok = condition.holds(canary);
                        let reason = format!(
                            "metric {name}: result {canary} {} `{condition}`",
                            if ok { "meets" } else { "fails" }
                        );
                        (ok, canary, None, None, reason)
                    }
                    Criterion::Compare(comparison) => match stable {
                        Some(stable) => {
                            let ok = comparison.passes(canary, stable);
                            let bound = comparison.bound(stable);
                            let worse = match comparison.direction {
                                super::Direction::LowerIsBetter => "above",
                                super::Direction::HigherIsBetter => "below",
                            };
                            let reason = if ok {
                                format!(
                                    "metric {name}: canary {canary} within tolerance of stable {stable} (bound {bound})"
                                )
                            } else {
                                format!(
                                    "metric {name}: canary {canary} {worse} stable {stable} beyond the tolerance (bound {bound})"
                                )
                            };
                            (ok, canary, Some(stable), Some(bound), reason)
                        }
                        None => {
                            // A comparison without stable's value says nothing.
                            return self.record(
                                Measurement::NoData {
                                    detail: "no value for the stable version".into(),
                                },
                                at,
                            );
                        }
                    },
                };
                let outcome = if ok { Outcome::Pass } else { Outcome::Fail };
                (outcome, Some(canary), stable, bound, reason)
            }
        };
        if outcome == Outcome::Fail {
            self.failed = self.failed.saturating_add(1);
            self.state = MetricState::Failing;
        } else {
            self.state = MetricState::Passing;
        }
        let failed_now = self.failed > self.spec.failure_limit;
        let reason = if outcome == Outcome::Fail {
            format!(
                "{reason} ({} failed measurement(s), limit {})",
                self.failed, self.spec.failure_limit
            )
        } else {
            reason
        };
        self.remember(at, outcome, canary, stable, bound, reason.clone());
        if failed_now {
            self.state = MetricState::Failed;
            return Some(Signal::RollBack { reason });
        }
        None
    }

    fn answered(&mut self) {
        self.error_run = 0;
        self.unavailable_since = None;
    }

    fn remember(
        &mut self,
        at: Timestamp,
        outcome: Outcome,
        canary: Option<f64>,
        stable: Option<f64>,
        bound: Option<f64>,
        reason: String,
    ) {
        let evidence = Evidence {
            metric: self.spec.name.clone(),
            canary,
            stable,
            canary_bounds: None,
            stable_bounds: None,
            statistic: canary,
            threshold: bound,
            outcome,
        };
        self.last = Some((at, evidence, reason));
    }

    /// The metric's say on a step that started at `step_started`: Fail once it
    /// failed; Pass if its latest measurement, taken in the step, passed; otherwise
    /// Inconclusive (the step waits for one).
    pub fn outcome_since(&self, step_started: Timestamp) -> Outcome {
        if self.state == MetricState::Failed {
            return Outcome::Fail;
        }
        match &self.last {
            Some((at, evidence, _)) if *at >= step_started && evidence.outcome == Outcome::Pass => {
                Outcome::Pass
            }
            _ => Outcome::Inconclusive,
        }
    }
}

/// The router judge's verdict with the metrics' say added: their evidence is listed;
/// a failed metric fails the verdict; a step passes only when the judge and every
/// metric (measured within the step) pass.
pub fn combine(
    mut verdict: Verdict,
    metrics: &[MetricTracker],
    step_started: Timestamp,
) -> Verdict {
    let mut waiting = Vec::new();
    for metric in metrics {
        if let Some((_, evidence, _)) = &metric.last {
            verdict.evidence.push(evidence.clone());
        }
        match metric.outcome_since(step_started) {
            Outcome::Fail => {
                if verdict.outcome != Outcome::Fail {
                    verdict.outcome = Outcome::Fail;
                    verdict.reason = metric
                        .last_reason()
                        .unwrap_or("a metric failed")
                        .to_string();
                }
            }
            Outcome::Inconclusive => waiting.push(metric),
            Outcome::Pass => {}
        }
    }
    if verdict.outcome == Outcome::Pass
        && let Some(metric) = waiting.first()
    {
        verdict.outcome = Outcome::Inconclusive;
        verdict.reason = match metric.last_reason() {
            Some(last) if metric.state != MetricState::Passing => {
                format!(
                    "{}; waiting for metric {}: {last}",
                    verdict.reason, metric.spec.name
                )
            }
            _ => format!(
                "{}; waiting for a measurement of metric {} in this step",
                verdict.reason, metric.spec.name
            ),
        };
    }
    verdict
}
