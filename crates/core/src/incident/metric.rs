//! What an incident condition can measure, and the units each measure is written in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which traffic of a service a metric counts: all of it, or one version's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// Every request of the service (stable and canary together).
    Service,
    Stable,
    Canary,
    Host,
    Security,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Service => "service",
            Subject::Stable => "stable",
            Subject::Canary => "canary",
            Subject::Host => "host",
            Subject::Security => "security",
        }
    }

    /// Whether a condition on this subject is evaluated once per service.
    pub fn is_per_service(self) -> bool {
        matches!(self, Subject::Service | Subject::Stable | Subject::Canary)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Percent of requests answered 5xx or not answered.
    ErrorRate,
    LatencyP50,
    LatencyP95,
    LatencyP99,
    /// Requests per second.
    RequestRate,
    InFlight,
    /// Instances crashed or restarting now.
    InstanceCrashes,
    /// 0 (failing) to 100 (healthy), as `/health/metrics` explains it.
    HealthScore,
    /// 1 while the service's last rollout ended rolled back or failed, recently.
    RolloutFailed,
    /// Percent of all cores busy.
    Cpu,
    /// Percent of memory in use.
    Memory,
    /// Percent of the data dir's file system in use.
    Disk,
    /// One-minute load average.
    Load,
    MemoryAvailable,
    DiskAvailable,
    /// Failed API authentications per second (written per minute, usually).
    FailedAuth,
    /// Requests the API's limiter refused, per second.
    RateLimited,
}

/// The kind of quantity a metric is, which decides the units it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Percent,
    /// Stored in milliseconds.
    Latency,
    /// Stored per second.
    Rate,
    Count,
    Bytes,
    /// A 0/1 flag: written alone (`service.rollout_failed`) or compared with 0 or 1.
    Flag,
}

impl Dimension {
    /// The units accepted, for messages.
    pub fn units(self) -> &'static str {
        match self {
            Dimension::Percent => "`%` (or none)",
            Dimension::Latency => "`ms` or `s` (none means ms)",
            Dimension::Rate => "`/s` or `/min` (none means per second)",
            Dimension::Count | Dimension::Flag => "no unit",
            Dimension::Bytes => "`B`, `KB`, `MB`, `GB`, `KiB`, `MiB` or `GiB` (none means bytes)",
        }
    }
}

/// `(subject, name, metric, dimension)` for every name a condition may use.
pub const METRICS: &[(Subject, &str, Metric, Dimension)] = &[
    (
        Subject::Service,
        "error_rate",
        Metric::ErrorRate,
        Dimension::Percent,
    ),
    (
        Subject::Service,
        "latency_p50",
        Metric::LatencyP50,
        Dimension::Latency,
    ),
    (
        Subject::Service,
        "latency_p95",
        Metric::LatencyP95,
        Dimension::Latency,
    ),
    (
        Subject::Service,
        "latency_p99",
        Metric::LatencyP99,
        Dimension::Latency,
    ),
    (
        Subject::Service,
        "request_rate",
        Metric::RequestRate,
        Dimension::Rate,
    ),
    (
        Subject::Service,
        "in_flight",
        Metric::InFlight,
        Dimension::Count,
    ),
    (
        Subject::Service,
        "instance_crashes",
        Metric::InstanceCrashes,
        Dimension::Count,
    ),
    (
        Subject::Service,
        "health_score",
        Metric::HealthScore,
        Dimension::Count,
    ),
    (
        Subject::Service,
        "rollout_failed",
        Metric::RolloutFailed,
        Dimension::Flag,
    ),
    (
        Subject::Stable,
        "error_rate",
        Metric::ErrorRate,
        Dimension::Percent,
    ),
    (
        Subject::Stable,
        "latency_p50",
        Metric::LatencyP50,
        Dimension::Latency,
    ),
    (
        Subject::Stable,
        "latency_p95",
        Metric::LatencyP95,
        Dimension::Latency,
    ),
    (
        Subject::Stable,
        "latency_p99",
        Metric::LatencyP99,
        Dimension::Latency,
    ),
    (
        Subject::Stable,
        "request_rate",
        Metric::RequestRate,
        Dimension::Rate,
    ),
    (
        Subject::Canary,
        "error_rate",
        Metric::ErrorRate,
        Dimension::Percent,
    ),
    (
        Subject::Canary,
        "latency_p50",
        Metric::LatencyP50,
        Dimension::Latency,
    ),
    (
        Subject::Canary,
        "latency_p95",
        Metric::LatencyP95,
        Dimension::Latency,
    ),
    (
        Subject::Canary,
        "latency_p99",
        Metric::LatencyP99,
        Dimension::Latency,
    ),
    (
        Subject::Canary,
        "request_rate",
        Metric::RequestRate,
        Dimension::Rate,
    ),
    (Subject::Host, "cpu", Metric::Cpu, Dimension::Percent),
    (Subject::Host, "memory", Metric::Memory, Dimension::Percent),
    (Subject::Host, "disk", Metric::Disk, Dimension::Percent),
    (Subject::Host, "load", Metric::Load, Dimension::Count),
    (
        Subject::Host,
        "memory_available",
        Metric::MemoryAvailable,
        Dimension::Bytes,
    ),
    (
        Subject::Host,
        "disk_available",
        Metric::DiskAvailable,
        Dimension::Bytes,
    ),
    (
        Subject::Security,
        "failed_auth",
        Metric::FailedAuth,
        Dimension::Rate,
    ),
    (
        Subject::Security,
        "rate_limited",
        Metric::RateLimited,
        Dimension::Rate,
    ),
];

/// One measured quantity: `canary.latency_p99`, `host.cpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetricRef {
    pub subject: Subject,
    pub metric: Metric,
}

impl MetricRef {
    pub fn lookup(subject: &str, name: &str) -> Option<(MetricRef, Dimension)> {
        METRICS
            .iter()
            .find(|(s, n, _, _)| s.as_str() == subject && *n == name)
            .map(|&(subject, _, metric, dimension)| (MetricRef { subject, metric }, dimension))
    }

    pub fn dimension(self) -> Dimension {
        METRICS
            .iter()
            .find(|(s, _, m, _)| *s == self.subject && *m == self.metric)
            .map_or(Dimension::Count, |&(_, _, _, d)| d)
    }

    pub fn name(self) -> &'static str {
        METRICS
            .iter()
            .find(|(s, _, m, _)| *s == self.subject && *m == self.metric)
            .map_or("?", |&(_, n, _, _)| n)
    }

    /// Every name a condition accepts, for "did you mean" and help texts.
    pub fn all_names() -> Vec<String> {
        METRICS
            .iter()
            .map(|(s, n, _, _)| format!("{}.{n}", s.as_str()))
            .collect()
    }
}

impl fmt::Display for MetricRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.subject.as_str(), self.name())
    }
}

/// A unit as written after a number, and the factor to the metric's stored unit.
pub(crate) fn unit_factor(dimension: Dimension, unit: &str) -> Option<f64> {
    let factor = match (dimension, unit) {
        (Dimension::Percent, "" | "%") => 1.0,
        (Dimension::Latency, "" | "ms") => 1.0,
        (Dimension::Latency, "s") => 1000.0,
        (Dimension::Rate, "" | "/s") => 1.0,
        (Dimension::Rate, "/min") => 1.0 / 60.0,
        (Dimension::Count | Dimension::Flag, "") => 1.0,
        (Dimension::Bytes, "" | "B") => 1.0,
        (Dimension::Bytes, "KB") => 1e3,
        (Dimension::Bytes, "MB") => 1e6,
        (Dimension::Bytes, "GB") => 1e9,
        (Dimension::Bytes, "KiB") => 1024.0,
        (Dimension::Bytes, "MiB") => 1024.0 * 1024.0,
        (Dimension::Bytes, "GiB") => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(factor)
}

/// How a stored value reads in a message ("9.8%", "412ms", "130/min").
pub fn format_value(dimension: Dimension, value: f64) -> String {
    let round = |v: f64| {
        if v.abs() >= 100.0 || v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        }
    };
    match dimension {
        Dimension::Percent => format!("{}%", round(value)),
        Dimension::Latency => format!("{}ms", round(value)),
        Dimension::Rate => format!("{}/min", round(value * 60.0)),
        Dimension::Bytes => format!("{}B", round(value)),
        Dimension::Count | Dimension::Flag => round(value),
    }
}
