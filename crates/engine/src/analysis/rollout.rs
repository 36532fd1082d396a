//! One rollout's metrics of the user's own: a task per metric queries its provider on
//! the metric's interval; the controller records each answer (core decides what it
//! means) and adds the metrics' say to every verdict of the judge.

use std::sync::Arc;
use std::time::Duration;

use rampart_core::analysis::{Criterion, Measurement, MetricSpec, MetricTracker, Signal, combine};
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
        let blue_green = match rollout.phase {
            Phase::Progressing { .. } | Phase::Paused { .. } => false,
            Phase::Previewing | Phase::AwaitingPromotion { .. } | Phase::PostPromotion => true,
            _ => return None,
        };
        let (tracker, _) = self.metrics.get_mut(report.index)?;
        if !judges(tracker, &rollout.phase) {
            return None;
        }
        match tracker.record(report.measurement, report.at) {
            Some(Signal::RollBack { reason }) => return Some(Input::AnalysisFailed { reason }),
            // Blue-green has no pause: the metric's inconclusive say keeps the window
            // from passing, and the progress deadline decides.
            Some(Signal::Pause { .. }) if blue_green => return None,
            Some(Signal::Pause { reason }) => {
                return Some(Input::AnalysisHeld {
                    cause: PauseCause::AnalysisInconclusive,
                    reason,
                });
            }
            None => {}
        }
        if blue_green {
            // Likewise for an unavailable provider, until `unavailable_limit` fails it.
            return None;
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

    /// The judge's verdict with the metrics' evidence and say, for the rollout's
    /// current window.
    pub fn combine(&self, verdict: Verdict, rollout: &Rollout) -> Verdict {
        if self.metrics.is_empty() {
            return verdict;
        }
        let trackers: Vec<MetricTracker> = self
            .metrics
            .iter()
            .map(|(t, _)| t)
            .filter(|t| judges(t, &rollout.phase))
            .cloned()
            .collect();
        combine(verdict, &trackers, rollout.step_started_at)
    }
}

/// Whether the metric has a say in `phase`. After blue-green's switch the old version
/// serves nothing, so there is no stable to compare with: only `success` metrics
/// judge the live traffic then (the router's judge compares it with the traffic
/// before the switch).
fn judges(tracker: &MetricTracker, phase: &Phase) -> bool {
    !(matches!(phase, Phase::PostPromotion)
        && matches!(tracker.spec().criterion, Criterion::Compare(_)))
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
    let compare = matches!(spec.criterion, Criterion::Compare(_));
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

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::analysis::{Comparison, Direction, QueryTemplate, SuccessCondition};

    fn tracker(criterion: Criterion) -> MetricTracker {
        MetricTracker::new(MetricSpec {
            name: "m".into(),
            provider: "prom".into(),
            query: QueryTemplate::parse(r#"sum(rate(x{version="{canary}"}[30s]))"#).expect("query"),
            criterion,
            interval: Duration::from_secs(1),
            failure_limit: 0,
            inconclusive_limit: 5,
            error_limit: 4,
            unavailable_limit: Duration::from_secs(600),
        })
    }

    #[test]
    fn after_the_blue_green_switch_only_success_metrics_judge() {
        let success = tracker(Criterion::Success(
            SuccessCondition::parse("result < 0.05").expect("condition"),
        ));
        let compare = tracker(Criterion::Compare(Comparison {
            direction: Direction::LowerIsBetter,
            tolerance_pct: 10.0,
            tolerance: 0.0,
        }));
        for phase in [
            Phase::Previewing,
            Phase::AwaitingPromotion { auto_at: None },
        ] {
            assert!(judges(&success, &phase) && judges(&compare, &phase));
        }
        assert!(judges(&success, &Phase::PostPromotion));
        assert!(
            !judges(&compare, &Phase::PostPromotion),
            "the old version serves nothing after the switch"
        );
    }
}
