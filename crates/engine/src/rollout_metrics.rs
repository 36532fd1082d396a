//! Prometheus export of each service's rollout (`rampart_rollout_*`), as a
//! `prometheus_client` collector: phase, canary weight, step, the judge's latest
//! verdict and e-values, and how many rollouts ended in each outcome.
//!
//! The collector only reads: each service keeps a small [`RolloutSnapshot`] that its
//! controller updates with every committed record (`ServiceRuntime::set_record`), and
//! the outcome counts, seeded from the store at start and incremented as rollouts end.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use rampart_core::judge::Outcome;
use rampart_core::rollout::{Actor, Phase};

use crate::record::{DeploymentRecord, state_name};
use crate::service::ServiceRuntime;

/// Every phase of `rampart_core::rollout`, as `rampart_rollout_phase` names them.
pub const PHASES: [&str; 16] = [
    "pending",
    "validating",
    "starting",
    "progressing",
    "paused",
    "previewing",
    "awaiting_promotion",
    "promoting",
    "post_promotion",
    "reverting",
    "switching_back",
    "rolling_back",
    "succeeded",
    "rolled_back",
    "failed",
    "aborted",
];

/// What a paused rollout waits for, as `rampart_rollout_waiting` names it
/// (`PauseCause::name`).
pub const WAITS: [&str; 6] = [
    "operator",
    "deadline",
    "until_promoted",
    "approval",
    "confirm_traffic_increase",
    "confirm_promotion",
];

/// The terminal phases, as `rampart_rollouts_total` names them.
pub const OUTCOMES: [&str; 4] = ["succeeded", "rolled_back", "failed", "aborted"];

/// Who rolled a canary back, as `rampart_rollout_rollbacks_total` names it.
pub const ROLLBACK_CAUSES: [&str; 2] = ["automatic", "operator"];

/// `operator` when a person (or token) started the rollback, `automatic` when
/// rampart did (failed analysis, a deadline, a crashed canary, a restart).
pub fn rollback_cause(record: &DeploymentRecord) -> &'static str {
    let by_operator = record
        .rollout
        .history
        .iter()
        .rev()
        .find(|t| matches!(t.to, Phase::RollingBack { .. }))
        .is_some_and(|t| matches!(t.actor, Actor::User(_)));
    if by_operator { "operator" } else { "automatic" }
}

const VERDICTS: [(Outcome, &str); 3] = [
    (Outcome::Pass, "pass"),
    (Outcome::Fail, "fail"),
    (Outcome::Inconclusive, "inconclusive"),
];

/// The judge whose evidence statistics are e-values (the threshold judge's are
/// plain compared values).
const E_VALUE_JUDGE: &str = "sequential";

/// What the metrics show of a service's rollout in flight, or of its last one.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSnapshot {
    pub deployment: String,
    pub version: String,
    pub previous_version: Option<String>,
    /// Snake case, one of [`PHASES`].
    pub phase: String,
    /// 1-based; 0 outside `progressing` and `paused`.
    pub step: u64,
    pub canary_weight_percent: f64,
    pub verdict: Option<Outcome>,
    /// `(test, e-value, rollback threshold)` of the latest verdict, sequential judge only.
    pub e_values: Vec<EValue>,
    /// While paused: what for, one of [`WAITS`].
    pub waiting: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EValue {
    pub test: String,
    pub value: f64,
    pub threshold: f64,
}

impl RolloutSnapshot {
    pub fn of(record: &DeploymentRecord) -> Self {
        let rollout = &record.rollout;
        let (step, weight) = match rollout.phase {
            Phase::Progressing { step, weight } | Phase::Paused { step, weight, .. } => {
                (step as u64 + 1, weight)
            }
            _ => (0, 0.0),
        };
        let verdict = rollout.last_verdict.as_ref();
        let e_values = verdict
            .filter(|v| v.judge == E_VALUE_JUDGE)
            .map(|v| {
                v.evidence
                    .iter()
                    .filter_map(|e| {
                        Some(EValue {
                            test: e.metric.clone(),
                            value: e.statistic?,
                            threshold: e.threshold?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            deployment: record.id.clone(),
            version: rollout.version.clone(),
            previous_version: rollout.previous_version.clone(),
            phase: state_name(&rollout.phase),
            step,
            canary_weight_percent: weight,
            verdict: verdict.map(|v| v.outcome),
            e_values,
            waiting: match rollout.phase {
                Phase::Paused { cause, .. } => Some(cause.name()),
                _ => None,
            },
        }
    }
}

/// How many of a service's rollouts ended in each outcome (a terminal phase).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutcomeCounts(BTreeMap<String, u64>);

impl OutcomeCounts {
    pub fn add(&mut self, outcome: &str, n: u64) {
        *self.0.entry(outcome.to_string()).or_default() += n;
    }

    pub fn get(&self, outcome: &str) -> u64 {
        self.0.get(outcome).copied().unwrap_or(0)
    }
}

/// One service as the collector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRollouts {
    pub service: String,
    pub current: Option<RolloutSnapshot>,
    pub ended: OutcomeCounts,
    /// Rolled-back rollouts by [`rollback_cause`].
    pub rollbacks: OutcomeCounts,
}

/// Exports `rampart_rollout_*` and `rampart_rollouts_total`, labelled `service`.
#[derive(Clone)]
pub struct RolloutCollector {
    services: crate::engine::ServiceMap,
}

impl std::fmt::Debug for RolloutCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutCollector")
            .field("services", &self.services.load().len())
            .finish()
    }
}

impl RolloutCollector {
    pub(crate) fn new(services: crate::engine::ServiceMap) -> Self {
        Self { services }
    }
}

impl Collector for RolloutCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows: Vec<ServiceRollouts> = self
            .services
            .load()
            .values()
            .map(|s| s.rollouts())
            .collect();
        encode(&rows, encoder)
    }
}

/// Gives each service its latest deployment and its outcome counts from the store,
/// before any rollout is recovered (a recovered rollout that ends is counted then).
pub(crate) async fn seed<'a>(
    store: &rampart_store::Store,
    services: impl Iterator<Item = &'a Arc<ServiceRuntime>>,
) -> Result<(), crate::EngineError> {
    let counts = store.read(|tx| tx.finished_deployment_counts()).await?;
    let rolled_back = store
        .read(|tx| tx.finished_deployment_records("rolled_back"))
        .await?;
    for svc in services {
        let name = svc.name().to_string();
        let latest = store
            .read(move |tx| tx.list_deployments(Some(&name), 1))
            .await?
            .into_iter()
            .next()
            .and_then(|row| serde_json::from_value::<DeploymentRecord>(row.record).ok());
        let mut ended = OutcomeCounts::default();
        for (_, state, n) in counts.iter().filter(|(s, _, _)| s == svc.name()) {
            ended.add(state, *n);
        }
        let mut rollbacks = OutcomeCounts::default();
        for (_, record) in rolled_back.iter().filter(|(s, _)| s == svc.name()) {
            // A record this rampart cannot read was still a rollback.
            let cause = serde_json::from_value::<DeploymentRecord>(record.clone())
                .map_or("automatic", |r| rollback_cause(&r));
            rollbacks.add(cause, 1);
        }
        svc.seed_rollouts(latest.as_ref(), ended, rollbacks);
    }
    Ok(())
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

struct Counter(u64);

impl EncodeMetric for Counter {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0, None)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// Writes the families for `rows`; a service that never had a rollout has only
/// its counters (at 0).
fn encode(rows: &[ServiceRollouts], mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let current = || {
        rows.iter()
            .filter_map(|r| r.current.as_ref().map(|c| (r.service.as_str(), c)))
    };

    let mut family = encoder.encode_descriptor(
        "rampart_rollout_phase",
        "1 for the phase the service's rollout in flight (or its last one) is in, 0 for the other phases.",
        None,
        MetricType::Gauge,
    )?;
    for (service, c) in current() {
        for phase in PHASES {
            let labels: Labels = vec![("service", service), ("phase", phase)];
            family
                .encode_family(&labels)?
                .encode_gauge(&i64::from(c.phase == phase))?;
        }
    }

    let mut family = encoder.encode_descriptor(
        "rampart_rollout_canary_weight_percent",
        "Percent of the service's traffic the rollout's current step sends to the canary (0 outside progressing and paused).",
        None,
        MetricType::Gauge,
    )?;
    for (service, c) in current() {
        let labels: Labels = vec![("service", service)];
        family
            .encode_family(&labels)?
            .encode_gauge(&c.canary_weight_percent)?;
    }

    let mut family = encoder.encode_descriptor(
        "rampart_rollout_step",
        "The rollout's current canary step, 1-based; 0 outside progressing and paused.",
        None,
        MetricType::Gauge,
    )?;
    for (service, c) in current() {
        let labels: Labels = vec![("service", service)];
        family
            .encode_family(&labels)?
            .encode_gauge(&i64::try_from(c.step).unwrap_or(i64::MAX))?;
    }

    let mut family = encoder.encode_descriptor(
        "rampart_rollout_waiting",
        "1 for what the service's paused rollout waits for (an operator, the progress deadline's pause, an until_promoted gate, an approval, a confirm hook), 0 for the others; all 0 when not paused.",
        None,
        MetricType::Gauge,
    )?;
    for (service, c) in current() {
        for on in WAITS {
            let labels: Labels = vec![("service", service), ("on", on)];
            family
                .encode_family(&labels)?
                .encode_gauge(&i64::from(c.waiting == Some(on)))?;
        }
    }

    let mut family = encoder.encode_descriptor(
        "rampart_rollout_info",
        "The service's rollout in flight (or its last one): deployment id, version deployed and the version it replaces.",
        None,
        MetricType::Gauge,
    )?;
    for (service, c) in current() {
        let labels: Labels = vec![
            ("service", service),
            ("deployment", &c.deployment),
            ("version", &c.version),
            (
                "previous_version",
                c.previous_version.as_deref().unwrap_or(""),
            ),
        ];
        family.encode_family(&labels)?.encode_gauge(&1i64)?;
    }

    let mut family = encoder.encode_descriptor(
        "rampart_rollout_verdict",
        "1 for the outcome of the canary judge's latest verdict on the rollout, 0 for the others; absent before the first verdict.",
        None,
        MetricType::Gauge,
    )?;
    for (service, c) in current() {
        let Some(verdict) = c.verdict else { continue };
        for (outcome, name) in VERDICTS {
            let labels: Labels = vec![("service", service), ("outcome", name)];
            family
                .encode_family(&labels)?
                .encode_gauge(&i64::from(verdict == outcome))?;
        }
    }

    let mut family = encoder.encode_descriptor(
        "rampart_rollout_e_value",
        "The sequential judge's latest e-value per test (evidence that the canary is worse); the canary fails a test once its e-value reaches the threshold.",
        None,
        MetricType::Gauge,
    )?;
    for (service, c) in current() {
        for e in &c.e_values {
            let labels: Labels = vec![("service", service), ("test", &e.test)];
            family.encode_family(&labels)?.encode_gauge(&e.value)?;
        }
    }

    let mut family = encoder.encode_descriptor(
        "rampart_rollout_e_value_threshold",
        "The e-value at which the sequential judge fails a test (1/alpha of that test).",
        None,
        MetricType::Gauge,
    )?;
    for (service, c) in current() {
        for e in &c.e_values {
            let labels: Labels = vec![("service", service), ("test", &e.test)];
            family.encode_family(&labels)?.encode_gauge(&e.threshold)?;
        }
    }

    let mut family = encoder.encode_descriptor(
        "rampart_rollouts",
        "Rollouts (and emergency reverts) of the service that ended, by outcome; counted from the store at start.",
        None,
        MetricType::Counter,
    )?;
    for row in rows {
        for outcome in OUTCOMES {
            let labels: Labels = vec![("service", &row.service), ("outcome", outcome)];
            Counter(row.ended.get(outcome)).encode(family.encode_family(&labels)?)?;
        }
    }

    let mut family = encoder.encode_descriptor(
        "rampart_rollout_rollbacks",
        "Rollouts of the service that were rolled back, by cause: automatic (analysis, a deadline, a crashed canary, a restart) or operator.",
        None,
        MetricType::Counter,
    )?;
    for row in rows {
        for cause in ROLLBACK_CAUSES {
            let labels: Labels = vec![("service", &row.service), ("cause", cause)];
            Counter(row.rollbacks.get(cause)).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode as encode_text;
    use prometheus_client::registry::Registry;

    #[derive(Debug)]
    struct Fixed(Vec<ServiceRollouts>);

    impl Collector for Fixed {
        fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode(&self.0, encoder)
        }
    }

    fn text(rows: Vec<ServiceRollouts>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(rows)));
        let mut out = String::new();
        encode_text(&mut out, &registry).expect("encode");
        out
    }

    fn progressing() -> RolloutSnapshot {
        RolloutSnapshot {
            deployment: "d1".into(),
            version: "v2".into(),
            previous_version: Some("v1".into()),
            phase: "progressing".into(),
            step: 2,
            canary_weight_percent: 25.0,
            verdict: Some(Outcome::Inconclusive),
            e_values: vec![EValue {
                test: "error_rate_pct".into(),
                value: 3.5,
                threshold: 20.0,
            }],
            waiting: None,
        }
    }

    #[test]
    fn a_rollout_at_a_gate_shows_what_it_waits_for() {
        let mut at_gate = progressing();
        at_gate.phase = "paused".into();
        at_gate.waiting = Some("approval");
        let out = text(vec![ServiceRollouts {
            service: "web".into(),
            current: Some(at_gate),
            ended: OutcomeCounts::default(),
            rollbacks: OutcomeCounts::default(),
        }]);
        assert!(
            out.contains("rampart_rollout_waiting{service=\"web\",on=\"approval\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("rampart_rollout_waiting{service=\"web\",on=\"until_promoted\"} 0"),
            "{out}"
        );
    }

    #[test]
    fn a_rollout_in_flight_shows_its_phase_step_weight_verdict_and_e_values() {
        let mut ended = OutcomeCounts::default();
        ended.add("succeeded", 3);
        ended.add("rolled_back", 1);
        let out = text(vec![ServiceRollouts {
            service: "web".into(),
            current: Some(progressing()),
            ended,
            rollbacks: OutcomeCounts::default(),
        }]);
        for line in [
            "# TYPE rampart_rollout_phase gauge",
            "rampart_rollout_phase{service=\"web\",phase=\"progressing\"} 1",
            "rampart_rollout_phase{service=\"web\",phase=\"reverting\"} 0",
            "rampart_rollout_phase{service=\"web\",phase=\"succeeded\"} 0",
            "rampart_rollout_canary_weight_percent{service=\"web\"} 25.0",
            "rampart_rollout_step{service=\"web\"} 2",
            "rampart_rollout_info{service=\"web\",deployment=\"d1\",version=\"v2\",previous_version=\"v1\"} 1",
            "rampart_rollout_verdict{service=\"web\",outcome=\"inconclusive\"} 1",
            "rampart_rollout_verdict{service=\"web\",outcome=\"fail\"} 0",
            "rampart_rollout_e_value{service=\"web\",test=\"error_rate_pct\"} 3.5",
            "rampart_rollout_e_value_threshold{service=\"web\",test=\"error_rate_pct\"} 20.0",
            "# TYPE rampart_rollouts counter",
            "rampart_rollouts_total{service=\"web\",outcome=\"succeeded\"} 3",
            "rampart_rollouts_total{service=\"web\",outcome=\"rolled_back\"} 1",
            "rampart_rollouts_total{service=\"web\",outcome=\"aborted\"} 0",
            "# TYPE rampart_rollout_rollbacks counter",
            "rampart_rollout_rollbacks_total{service=\"web\",cause=\"automatic\"} 0",
            "rampart_rollout_rollbacks_total{service=\"web\",cause=\"operator\"} 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
        let phases = out
            .lines()
            .filter(|l| l.starts_with("rampart_rollout_phase{"))
            .count();
        assert_eq!(phases, PHASES.len(), "{out}");
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with("rampart_rollout_phase{") && l.ends_with(" 1"))
                .count(),
            1,
            "exactly one phase is current: {out}"
        );
    }

    #[test]
    fn every_phase_of_the_state_machine_is_exported() {
        use rampart_core::rollout::{PauseCause, RollbackEnd};
        let all = [
            Phase::Pending,
            Phase::Validating,
            Phase::Starting {
                resume: None,
                pre_rollout: false,
            },
            Phase::Progressing {
                step: 0,
                weight: 1.0,
            },
            Phase::Paused {
                step: 0,
                weight: 1.0,
                cause: PauseCause::Operator,
            },
            Phase::Previewing,
            Phase::AwaitingPromotion { auto_at: None },
            Phase::Promoting,
            Phase::PostPromotion,
            Phase::Reverting,
            Phase::SwitchingBack {
                ends_as: RollbackEnd::RolledBack,
            },
            Phase::RollingBack {
                ends_as: RollbackEnd::RolledBack,
            },
            Phase::Succeeded,
            Phase::RolledBack,
            Phase::Failed,
            Phase::Aborted,
        ];
        let names: Vec<String> = all.iter().map(state_name).collect();
        assert_eq!(names, PHASES);
        let terminal: Vec<&String> = all
            .iter()
            .zip(&names)
            .filter(|(p, _)| p.is_terminal())
            .map(|(_, n)| n)
            .collect();
        assert_eq!(terminal, OUTCOMES);
    }

    #[test]
    fn a_service_without_rollouts_has_only_zero_counters() {
        let out = text(vec![ServiceRollouts {
            service: "api".into(),
            current: None,
            ended: OutcomeCounts::default(),
            rollbacks: OutcomeCounts::default(),
        }]);
        assert!(!out.contains("rampart_rollout_phase{"), "{out}");
        assert!(!out.contains("rampart_rollout_info{"), "{out}");
        for outcome in OUTCOMES {
            let line = format!("rampart_rollouts_total{{service=\"api\",outcome=\"{outcome}\"}} 0");
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }

    #[test]
    fn a_first_deployment_has_an_empty_previous_version_and_no_verdict_yet() {
        let mut first = progressing();
        first.previous_version = None;
        first.verdict = None;
        first.e_values.clear();
        let out = text(vec![ServiceRollouts {
            service: "web".into(),
            current: Some(first),
            ended: OutcomeCounts::default(),
            rollbacks: OutcomeCounts::default(),
        }]);
        assert!(out.contains("previous_version=\"\"} 1"), "{out}");
        assert!(!out.contains("rampart_rollout_verdict{"), "{out}");
        assert!(!out.contains("rampart_rollout_e_value{"), "{out}");
    }
}
