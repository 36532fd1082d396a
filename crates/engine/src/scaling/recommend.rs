//! What the last 24 hours suggest, with the evidence: a `min` that is too high or
//! too low, a target that makes the size flap, instances that restart often.

use std::time::Duration;

use rampart_core::autoscale::Action;
use serde::Serialize;

use super::record::ScalingRecord;
use super::{SetKind, autoscale_spec};
use crate::engine::Engine;
use crate::error::EngineError;

const DAY: Duration = Duration::from_secs(24 * 3600);
/// Decisions read per service (a day of acting ones with room to spare).
const READ: u32 = 20_000;
/// Direction changes a day from which the size counts as flapping.
const FLAPS: usize = 6;
/// Restarts of one instance from which it counts as restarting often.
const RESTARTS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationKind {
    MinTooHigh,
    MinTooLow,
    FlappingTarget,
    RestartingInstances,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub service: String,
    pub kind: RecommendationKind,
    pub message: String,
    pub evidence: serde_json::Value,
}

impl Engine {
    /// Suggestions from the last 24 h of decisions and instance restarts.
    pub async fn recommendations(&self) -> Result<Vec<Recommendation>, EngineError> {
        let mut out = Vec::new();
        let now = self.shared().store.now();
        let since = now - chrono::Duration::from_std(DAY).unwrap_or(chrono::Duration::days(1));
        for svc in self.runtimes() {
            let name = svc.name().to_string();
            if !svc.is_static() {
                for version in svc.backend.versions() {
                    for instance in svc.backend.instances(&version) {
                        if instance.restarts >= RESTARTS {
                            out.push(Recommendation {
                                service: name.clone(),
                                kind: RecommendationKind::RestartingInstances,
                                message: format!(
                                    "instance {} restarted {} times; read its logs (data_dir/logs/{name}/{}.stderr.log) before it takes more traffic",
                                    instance.id, instance.restarts, instance.id
                                ),
                                evidence: serde_json::json!({ "instance": instance.id, "version": version, "restarts": instance.restarts, "state": instance.state }),
                            });
                        }
                    }
                }
            }
            let Some(config) = &svc.config().autoscale else {
                continue;
            };
            let spec = autoscale_spec(config);
            let reading = name.clone();
            let rows = self
                .shared()
                .store
                .read(move |tx| tx.list_scaling_decisions(Some(&reading), READ))
                .await?;
            let records: Vec<ScalingRecord> = rows
                .iter()
                .filter(|r| r.at >= since)
                .filter_map(ScalingRecord::from_row)
                .filter(|r| r.set == SetKind::Stable)
                .collect();
            out.extend(judge(&name, &spec, &records));
        }
        Ok(out)
    }
}

/// The pure part: from a day of stable-set records, newest first.
pub(crate) fn judge(
    service: &str,
    spec: &rampart_core::autoscale::AutoscaleSpec,
    records: &[ScalingRecord],
) -> Vec<Recommendation> {
    let mut out = Vec::new();
    let recommendations: Vec<u32> = records
        .iter()
        .filter_map(|r| r.decision.metrics.iter().filter_map(|m| m.proposal).max())
        .collect();
    // Enough to say something about a day: a decision stored at least every 5 min.
    if recommendations.len() >= 48 {
        let mut sorted = recommendations.clone();
        sorted.sort_unstable();
        let highest = *sorted.last().unwrap_or(&0);
        let p10 = sorted[sorted.len() / 10];
        if highest < spec.min {
            out.push(Recommendation {
                service: service.into(),
                kind: RecommendationKind::MinTooHigh,
                message: format!(
                    "over the last 24 h the metrics never asked for more than {highest} instances, below min = {}; min = {} would have done",
                    spec.min,
                    highest.max(1)
                ),
                evidence: serde_json::json!({ "decisions": recommendations.len(), "highest_recommendation": highest, "min": spec.min }),
            });
        } else if p10 > spec.min {
            out.push(Recommendation {
                service: service.into(),
                kind: RecommendationKind::MinTooLow,
                message: format!(
                    "over the last 24 h the metrics asked for at least {p10} instances 90 % of the time, above min = {}; min = {p10} saves a scale-up after every quiet spell",
                    spec.min
                ),
                evidence: serde_json::json!({ "decisions": recommendations.len(), "p10_recommendation": p10, "min": spec.min }),
            });
        }
    }
    let acting: Vec<&ScalingRecord> = records.iter().filter(|r| r.status == "applied").collect();
    let reversals = acting
        .windows(2)
        .filter(|w| {
            w[0].decision.action() != w[1].decision.action()
                && w[0].decision.action() != Action::None
        })
        .count();
    if reversals >= FLAPS {
        let mut metrics: Vec<&str> = acting
            .iter()
            .filter_map(|r| {
                r.decision
                    .metrics
                    .iter()
                    .filter(|m| m.proposal.is_some())
                    .max_by_key(|m| m.proposal)
                    .map(|m| m.metric.as_str())
            })
            .collect();
        metrics.sort_unstable();
        metrics.dedup();
        out.push(Recommendation {
            service: service.into(),
            kind: RecommendationKind::FlappingTarget,
            message: format!(
                "the size changed direction {reversals} times in 24 h, driven by {}; raise that target's value, or lengthen scale_down_stabilization (now {} s)",
                metrics.join(", "),
                spec.scale_down.stabilization.as_secs()
            ),
            evidence: serde_json::json!({
                "direction_changes": reversals,
                "actions": acting.len(),
                "driving_metrics": metrics,
                "sizes": acting.iter().take(20).map(|r| serde_json::json!({"at": r.at, "from": r.from, "to": r.to})).collect::<Vec<_>>(),
            }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use rampart_core::Timestamp;
    use rampart_core::autoscale::{
        AutoscaleSpec, Autoscaler, Extra, InstanceSample, MetricKind, Observation, Target,
    };

    use super::*;

    fn spec(min: u32) -> AutoscaleSpec {
        AutoscaleSpec::hpa_defaults(
            min,
            20,
            vec![Target {
                metric: MetricKind::Cpu,
                value: 50.0,
            }],
        )
    }

    /// A stored record of a decision on `current` instances each at `cpu`.
    fn record(min: u32, current: u32, cpu: f64, to: u32) -> ScalingRecord {
        let obs = Observation {
            current,
            instances: (0..current)
                .map(|i| InstanceSample {
                    id: format!("v1-{i}"),
                    ready: true,
                    cpu_percent: Some(cpu),
                    memory_mib: None,
                })
                .collect(),
            ..Observation::default()
        };
        let mut decision = Autoscaler::new(spec(min)).decide(Timestamp(0), &obs, &Extra::default());
        decision.desired = to;
        ScalingRecord::new("web", SetKind::Stable, "v1", "rampart", decision, None)
    }

    #[test]
    fn a_min_the_metrics_never_reach_is_too_high_with_evidence() {
        // 4 instances at 10 % of a 50 % target: the metrics ask for 1 all day.
        let records: Vec<_> = (0..60).map(|_| record(4, 4, 10.0, 4)).collect();
        let found = judge("web", &spec(4), &records);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, RecommendationKind::MinTooHigh);
        assert_eq!(found[0].evidence["highest_recommendation"], 1);
        assert!(
            found[0].message.contains("min = 1 would have done"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_min_below_what_the_metrics_always_ask_is_too_low() {
        let records: Vec<_> = (0..60).map(|_| record(1, 4, 100.0, 8)).collect();
        let found = judge("web", &spec(1), &records);
        assert_eq!(found[0].kind, RecommendationKind::MinTooLow);
        assert_eq!(found[0].evidence["p10_recommendation"], 8);
    }

    #[test]
    fn a_size_that_keeps_changing_direction_is_flapping() {
        let records: Vec<_> = (0..10)
            .map(|i| {
                if i % 2 == 0 {
                    record(1, 4, 100.0, 8)
                } else {
                    record(1, 8, 10.0, 4)
                }
            })
            .collect();
        let found = judge("web", &spec(1), &records);
        let flapping = found
            .iter()
            .find(|r| r.kind == RecommendationKind::FlappingTarget)
            .expect("flapping");
        assert!(flapping.evidence["direction_changes"].as_u64() >= Some(6));
        assert_eq!(flapping.evidence["driving_metrics"][0], "cpu");
        // Too few decisions to judge min.
        assert!(
            found
                .iter()
                .all(|r| r.kind == RecommendationKind::FlappingTarget)
        );
    }

    #[test]
    fn a_stored_record_reads_back_the_same() {
        let record = record(1, 2, 100.0, 4);
        let row = rampart_store::ScalingDecision {
            id: 7,
            service: "web".into(),
            at: chrono::Utc::now(),
            from_instances: 2,
            to_instances: 4,
            reason: record.reason.clone(),
            status: record.status.clone(),
            data: serde_json::to_value(&record).unwrap(),
        };
        let back = ScalingRecord::from_row(&row).unwrap();
        assert_eq!(back.id, Some(7));
        assert_eq!(back.decision, record.decision);
        assert_eq!((back.from, back.to, back.set), (2, 4, SetKind::Stable));
    }
}
