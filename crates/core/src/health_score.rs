//! The health score: 0–100, from parts that each take a bounded number of points
//! off 100, so a score is always explainable by its parts.
//!
//! | part | at most | penalty |
//! |---|---|---|
//! | host saturation | 20 | `20 × clamp((s − 80) / 20, 0, 1)`, `s` the highest of CPU %, memory % and the fullest filesystem's % |
//! | service errors | 40 | per service `40 × clamp(e / warn, 0, 1)`, `e` its error rate over the last minute (100 % with no routable instance), `warn` the `[telemetry] warn_error_rate`; the worst service counts |
//! | service latency | 20 | per service `20 × clamp(p95 / objective − 1, 0, 1)`; the worst service counts |
//! | crashed instances | 20 | `20 × down / all` over every process-backend instance |
//!
//! Score = 100 − the counted penalties, rounded to one decimal. Alerts come from
//! the same inputs: a failing service (errors at or above `warn`) is a warning, a
//! service with no routable instance is critical, as is a host saturated at 98 %.

use serde::{Deserialize, Serialize};

pub const HOST_POINTS: f64 = 20.0;
pub const ERROR_POINTS: f64 = 40.0;
pub const LATENCY_POINTS: f64 = 20.0;
pub const CRASH_POINTS: f64 = 20.0;

/// Saturation below this costs nothing.
const SATURATION_FREE: f64 = 80.0;
const SATURATION_WARN: f64 = 90.0;
const SATURATION_CRITICAL: f64 = 98.0;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostInput {
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    /// The fullest filesystem: (mount point, used percent).
    pub fullest_filesystem: Option<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInput {
    pub service: String,
    /// Requests over the last minute.
    pub requests: u64,
    /// Percent over the last minute; `None` without requests.
    pub error_rate_percent: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p95_objective_ms: f64,
    /// Instances the router can send the stable traffic to.
    pub routable_instances: u64,
    /// Process-backend instances, and those crashed or restarting.
    pub instances: u64,
    pub down_instances: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub severity: Severity,
    /// `host` or `service/<name>`.
    pub subject: String,
    pub message: String,
}

/// One part of the score, with what was observed and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorePart {
    /// `host_saturation`, `service_errors`, `service_latency`, `crashed_instances`.
    pub part: String,
    /// `host`, `service/<name>` or `instances`.
    pub subject: String,
    pub observed: Option<f64>,
    pub unit: String,
    /// Points this subject would take off.
    pub penalty: f64,
    /// Whether it is the one that counts for its part (the worst service does).
    pub counted: bool,
    pub max_points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthScore {
    pub score: f64,
    pub parts: Vec<ScorePart>,
    pub alerts: Vec<Alert>,
}

fn clamp01(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// The score of a host and its services, `warn_error_rate` in percent.
pub fn health_score(
    host: &HostInput,
    services: &[ServiceInput],
    warn_error_rate: f64,
) -> HealthScore {
    let mut parts = Vec::new();
    let mut alerts = Vec::new();

    let saturations = [
        ("CPU", host.cpu_percent),
        ("memory", host.memory_percent),
        (
            "filesystem",
            host.fullest_filesystem.as_ref().map(|(_, p)| *p),
        ),
    ];
    let worst = saturations
        .iter()
        .filter_map(|(name, v)| v.map(|v| (*name, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let host_penalty = worst.map_or(0.0, |(_, s)| {
        HOST_POINTS * clamp01((s - SATURATION_FREE) / (100.0 - SATURATION_FREE))
    });
    parts.push(ScorePart {
        part: "host_saturation".into(),
        subject: "host".into(),
        observed: worst.map(|(_, s)| s),
        unit: "percent".into(),
        penalty: host_penalty,
        counted: true,
        max_points: HOST_POINTS,
    });
    if let Some((name, s)) = worst.filter(|(_, s)| *s >= SATURATION_WARN) {
        let what = match (name, &host.fullest_filesystem) {
            ("filesystem", Some((mount, _))) => format!("filesystem {mount}"),
            _ => name.to_string(),
        };
        alerts.push(Alert {
            severity: if s >= SATURATION_CRITICAL {
                Severity::Critical
            } else {
                Severity::Warning
            },
            subject: "host".into(),
            message: format!("{what} at {s:.1} %"),
        });
    }

    let warn = if warn_error_rate > 0.0 {
        warn_error_rate
    } else {
        100.0
    };
    let mut error_parts = Vec::new();
    let mut latency_parts = Vec::new();
    for service in services {
        let subject = format!("service/{}", service.service);
        let unroutable = service.routable_instances == 0;
        let errors = if unroutable {
            Some(100.0)
        } else {
            service.error_rate_percent
        };
        error_parts.push(ScorePart {
            part: "service_errors".into(),
            subject: subject.clone(),
            observed: errors,
            unit: "percent".into(),
            penalty: ERROR_POINTS * clamp01(errors.unwrap_or(0.0) / warn),
            counted: false,
            max_points: ERROR_POINTS,
        });
        if unroutable {
            alerts.push(Alert {
                severity: Severity::Critical,
                subject: subject.clone(),
                message: "no instance can take traffic".into(),
            });
        } else if let Some(rate) = errors.filter(|r| *r >= warn) {
            alerts.push(Alert {
                severity: Severity::Warning,
                subject: subject.clone(),
                message: format!(
                    "{rate:.1} % of {} requests failed in the last minute (warns from {warn} %)",
                    service.requests
                ),
            });
        }
        let ratio = service
            .p95_ms
            .filter(|_| service.p95_objective_ms > 0.0)
            .map(|p95| p95 / service.p95_objective_ms);
        latency_parts.push(ScorePart {
            part: "service_latency".into(),
            subject: subject.clone(),
            observed: service.p95_ms,
            unit: "ms".into(),
            penalty: LATENCY_POINTS * clamp01(ratio.unwrap_or(0.0) - 1.0),
            counted: false,
            max_points: LATENCY_POINTS,
        });
        if let (Some(p95), Some(ratio)) = (service.p95_ms, ratio)
            && ratio > 1.0
        {
            alerts.push(Alert {
                severity: Severity::Warning,
                subject: subject.clone(),
                message: format!(
                    "p95 {p95:.1} ms is over its objective of {} ms",
                    service.p95_objective_ms
                ),
            });
        }
        if service.down_instances > 0 {
            alerts.push(Alert {
                severity: Severity::Warning,
                subject,
                message: format!(
                    "{} of {} instances crashed or restarting",
                    service.down_instances, service.instances
                ),
            });
        }
    }
    for group in [&mut error_parts, &mut latency_parts] {
        if let Some(worst) = group
            .iter_mut()
            .max_by(|a, b| a.penalty.total_cmp(&b.penalty))
        {
            worst.counted = true;
        }
    }

    let instances: u64 = services.iter().map(|s| s.instances).sum();
    let down: u64 = services.iter().map(|s| s.down_instances).sum();
    let crashed_share = if instances > 0 {
        down as f64 / instances as f64
    } else {
        0.0
    };
    let crash_part = ScorePart {
        part: "crashed_instances".into(),
        subject: "instances".into(),
        observed: Some(down as f64),
        unit: "instances".into(),
        penalty: CRASH_POINTS * clamp01(crashed_share),
        counted: true,
        max_points: CRASH_POINTS,
    };

    parts.extend(error_parts);
    parts.extend(latency_parts);
    parts.push(crash_part);
    let lost: f64 = parts.iter().filter(|p| p.counted).map(|p| p.penalty).sum();
    let score = ((100.0 - lost).clamp(0.0, 100.0) * 10.0).round() / 10.0;
    HealthScore {
        score,
        parts,
        alerts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(name: &str) -> ServiceInput {
        ServiceInput {
            service: name.into(),
            requests: 1000,
            error_rate_percent: Some(0.0),
            p95_ms: Some(20.0),
            p95_objective_ms: 500.0,
            routable_instances: 2,
            instances: 2,
            down_instances: 0,
        }
    }

    fn calm_host() -> HostInput {
        HostInput {
            cpu_percent: Some(30.0),
            memory_percent: Some(50.0),
            fullest_filesystem: Some(("/".into(), 40.0)),
        }
    }

    #[test]
    fn a_calm_host_with_healthy_services_scores_100_without_alerts() {
        let score = health_score(&calm_host(), &[healthy("a"), healthy("b")], 5.0);
        assert_eq!(score.score, 100.0);
        assert!(score.alerts.is_empty());
        assert_eq!(score.parts.len(), 1 + 2 + 2 + 1);
    }

    #[test]
    fn a_service_failing_at_the_warn_rate_costs_all_error_points_and_warns() {
        let mut failing = healthy("checkout");
        failing.error_rate_percent = Some(5.0);
        let score = health_score(&calm_host(), &[healthy("a"), failing], 5.0);
        assert_eq!(score.score, 60.0);
        assert_eq!(score.alerts.len(), 1);
        assert_eq!(score.alerts[0].severity, Severity::Warning);
        assert_eq!(score.alerts[0].subject, "service/checkout");
        let counted: Vec<&ScorePart> = score
            .parts
            .iter()
            .filter(|p| p.part == "service_errors" && p.counted)
            .collect();
        assert_eq!(counted.len(), 1, "only the worst service counts");
        assert_eq!(counted[0].subject, "service/checkout");
    }

    #[test]
    fn half_the_warn_rate_costs_half_the_error_points() {
        let mut s = healthy("a");
        s.error_rate_percent = Some(2.5);
        assert_eq!(health_score(&calm_host(), &[s], 5.0).score, 80.0);
    }

    #[test]
    fn no_routable_instance_counts_as_all_requests_failing_and_is_critical() {
        let mut s = healthy("a");
        s.routable_instances = 0;
        s.requests = 0;
        s.error_rate_percent = None;
        let score = health_score(&calm_host(), &[s], 5.0);
        assert_eq!(score.score, 60.0);
        assert_eq!(score.alerts[0].severity, Severity::Critical);
    }

    #[test]
    fn latency_costs_from_the_objective_to_twice_it() {
        let mut s = healthy("a");
        s.p95_ms = Some(750.0);
        let score = health_score(&calm_host(), &[s.clone()], 5.0);
        assert_eq!(score.score, 90.0);
        s.p95_ms = Some(5000.0);
        assert_eq!(health_score(&calm_host(), &[s], 5.0).score, 80.0);
    }

    #[test]
    fn host_saturation_costs_from_80_percent_and_alerts_from_90() {
        let mut host = calm_host();
        host.memory_percent = Some(90.0);
        let score = health_score(&host, &[], 5.0);
        assert_eq!(score.score, 90.0);
        assert_eq!(score.alerts[0].severity, Severity::Warning);
        host.fullest_filesystem = Some(("/var".into(), 99.0));
        let score = health_score(&host, &[], 5.0);
        assert_eq!(score.score, 81.0);
        assert_eq!(score.alerts[0].severity, Severity::Critical);
        assert!(score.alerts[0].message.contains("/var"));
    }

    #[test]
    fn crashed_instances_cost_their_share_of_all_instances() {
        let mut s = healthy("a");
        s.down_instances = 1;
        let score = health_score(&calm_host(), &[s, healthy("b")], 5.0);
        assert_eq!(score.score, 95.0);
        assert_eq!(score.alerts.len(), 1);
    }

    #[test]
    fn everything_wrong_at_once_bottoms_out_at_zero() {
        let host = HostInput {
            cpu_percent: Some(100.0),
            memory_percent: Some(100.0),
            fullest_filesystem: None,
        };
        let mut s = healthy("a");
        s.error_rate_percent = Some(50.0);
        s.p95_ms = Some(10_000.0);
        s.down_instances = 2;
        let score = health_score(&host, &[s], 5.0);
        assert_eq!(score.score, 0.0);
        let total: f64 = score
            .parts
            .iter()
            .filter(|p| p.counted)
            .map(|p| p.penalty)
            .sum();
        assert_eq!(total, 100.0);
    }
}
