//! One rollout's metrics of the user's own: a task per metric queries its provider on
//! the metric's interval; the controller records each answer (core decides what it
//! means) and adds the metrics' say to every verdict of the judge.

use std::sync::Arc;
use std::time::Duration;

use rampart_core::analysis::{Measurement, MetricSpec, MetricTracker, Signal, combine};
use rampart_core::judge::Verdict;
use rampart_core::rollout::{Input, PauseCause, Phase, Rollout};
use rampart_core::{Clock, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{MetricProvider, Providers, QueryAnswer};

/// One answer, from the metric at `index`, to the query sent at `at`.
pub(crate) struct Report {
    index: usize,
    measurement: Measurement,
    at: Timestamp,
}

pub(crate) struct RolloutMetrics {
    metrics: Vec<(MetricTracker, Arc<dyn MetricProvider>)>,
    reports: mpsc::Receiver<Report>,
    sender: mpsc::Sender<Report>,
    tasks: Vec<JoinHandle<()>>,
}

impl RolloutMetrics {
    /// The service's metrics, each with its provider (the config check made sure each
    /// one exists).
    pub fn new(specs: Vec<MetricSpec>, providers: &Providers) -> Result<Self, String> {
        let metrics = specs
            .into_iter()
            .map(|spec| {
                let provider = providers.get(&spec.provider).cloned().ok_or_else(|| {
                    format!(
                        "metric {} names the unknown metric provider {}",
                        spec.name, spec.provider
                    )
                })?;
                Ok((MetricTracker::new(spec), provider))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let (sender, reports) = mpsc::channel(64);
        Ok(Self {
            metrics,
            reports,
            sender,
            tasks: Vec::new(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// Starts querying after `delay` (the canary's warm-up), once per rollout.
    pub fn start(&mut self, canary: &str, stable: &str, delay: Duration, clock: Arc<dyn Clock>) {
        if !self.tasks.is_empty() {
            return;
        }
        for (index, (tracker, provider)) in self.metrics.iter().enumerate() {
            let spec = tracker.spec().clone();
            let provider = provider.clone();
            let sender = self.sender.clone();
            let clock = clock.clone();
            let (canary, stable) = (canary.to_string(), stable.to_string());
            self.tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                loop {
                    let at = clock.now();
                    let measurement = measure(provider.as_ref(), &spec, &canary, &stable).await;
                    let report = Report {
                        index,
                        measurement,
                        at,
                    };
                    if sender.send(report).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(spec.interval).await;
                }
            }));
        }
    }

    /// The next answer; never, while nothing is being queried.
    pub async fn next_report(&mut self) -> Report {
        if self.tasks.is_empty() {
            return std::future::pending().await;
        }
        match self.reports.recv().await {
            Some(report) => report,
            // `self.sender` keeps the channel open.
            None => std::future::pending().await,
        }
    }

    /// Records an answer and says what the rollout must do about it, if anything.
    /// Answers outside the analysis phases are dropped: they judge nothing.
    pub fn record(&mut self, report: Report, rollout: &Rollout) -> Option<Input> {
        if !matches!(
            rollout.phase,
            Phase::Progressing { .. } | Phase::Paused { .. }
        ) {
            return None;
        }
        let (tracker, _) = self.metrics.get_mut(report.index)?;
        match tracker.record(report.measurement, report.at) {
            Some(Signal::RollBack { reason }) => return Some(Input::AnalysisFailed { reason }),
            Some(Signal::Pause { reason }) => {
                return Some(Input::AnalysisHeld {
                    cause: PauseCause::AnalysisInconclusive,
                    reason,
                });
            }
            None => {}
        }
        let unavailable = self
            .metrics
            .iter()
            .find(|(tracker, _)| tracker.unavailable_since().is_some());
        match (unavailable, &rollout.phase) {
            (Some((tracker, provider)), Phase::Progressing { .. }) => Some(Input::AnalysisHeld {
                cause: PauseCause::AnalysisUnavailable,
                reason: format!(
                    "analysis provider unavailable ({} {}): {}; the step holds until it answers (rolled back after {}s)",
                    provider.kind(),
                    tracker.spec().provider,
                    tracker.last_reason().unwrap_or("queries fail"),
                    tracker.spec().unavailable_limit.as_secs()
                ),
            }),
            (
                None,
                Phase::Paused {
                    cause: PauseCause::AnalysisUnavailable,
                    ..
                },
            ) => Some(Input::AnalysisRestored {
                reason: "analysis provider answers again".into(),
            }),
            _ => None,
        }
    }

    /// The judge's verdict with the metrics' evidence and say.
    pub fn combine(&self, verdict: Verdict, step_started: Timestamp) -> Verdict {
        if self.metrics.is_empty() {
            return verdict;
        }
        let trackers: Vec<MetricTracker> = self.metrics.iter().map(|(t, _)| t.clone()).collect();
        combine(verdict, &trackers, step_started)
    }
}

impl Drop for RolloutMetrics {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs the metric's query (and, for a comparison, the same query about stable).
async fn measure(
    provider: &dyn MetricProvider,
    spec: &MetricSpec,
    canary: &str,
    stable: &str,
) -> Measurement {
    let canary_query = spec.query.render(canary, stable);
    let compare = matches!(
        spec.criterion,
        rampart_core::analysis::Criterion::Compare(_)
    );
    let (canary_answer, stable_answer) = if compare {
        let stable_query = spec.query.render(stable, stable);
        let (c, s) = tokio::join!(provider.query(&canary_query), provider.query(&stable_query));
        (c, Some(s))
    } else {
        (provider.query(&canary_query).await, None)
    };
    let canary = match canary_answer {
        Err(detail) => return Measurement::Error { detail },
        Ok(QueryAnswer::NoData(detail)) => {
            return Measurement::NoData {
                detail: format!("canary: {detail}"),
            };
        }
        Ok(QueryAnswer::Value(v)) => v,
    };
    let stable = match stable_answer {
        None => None,
        Some(Err(detail)) => return Measurement::Error { detail },
        Some(Ok(QueryAnswer::NoData(detail))) => {
            return Measurement::NoData {
                detail: format!("stable: {detail}"),
            };
        }
        Some(Ok(QueryAnswer::Value(v))) => Some(v),
    };
    Measurement::Value { canary, stable }
}
