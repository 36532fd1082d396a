//! What an autoscaler is told: limits, targets, behaviour. Built by the engine from
//! `[service.autoscale]`; defaults are the Kubernetes HPA's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The HPA's tolerance: no change while the usage ratio is within 10 % of 1.0.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// The HPA's sync period.
pub const DEFAULT_SYNC: Duration = Duration::from_secs(15);
/// The HPA's default scale-down stabilisation window.
pub const DEFAULT_SCALE_DOWN_STABILIZATION: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Percent of one core per instance, averaged over the instances (a resource
    /// metric with an utilisation target).
    Cpu,
    /// Resident memory per instance in MiB, averaged (a resource metric with an
    /// average-value target).
    MemoryMib,
    /// Requests per second per instance: the version's total rate over the target
    /// per instance (a per-pod external metric with an average-value target).
    RpsPerInstance,
    /// The version's p95 latency in milliseconds (an object metric with a value target).
    P95Ms,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Cpu => "cpu",
            MetricKind::MemoryMib => "memory_mib",
            MetricKind::RpsPerInstance => "rps_per_instance",
            MetricKind::P95Ms => "p95_ms",
        }
    }

    /// Read per instance (resource metrics), where readiness and missing metrics
    /// matter; otherwise one number for the whole version.
    pub fn per_instance(self) -> bool {
        matches!(self, MetricKind::Cpu | MetricKind::MemoryMib)
    }

    /// A load the forecaster can extrapolate and divide by the target per instance
    /// (total CPU, total requests); latency is not a load.
    pub fn forecastable(self) -> bool {
        matches!(self, MetricKind::Cpu | MetricKind::RpsPerInstance)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub metric: MetricKind,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAmount {
    Instances(u32),
    Percent(u32),
}

/// At most this much change per `period` (HPA `HPAScalingPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub amount: PolicyAmount,
    #[serde(with = "duration_secs")]
    pub period: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The policy allowing the largest change.
    #[default]
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// One direction's rules (HPA `HPAScalingRules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behavior {
    pub policies: Vec<Policy>,
    pub select: Select,
    /// Recommendations of this long ago still count (scale-up: the lowest of them,
    /// scale-down: the highest).
    #[serde(with = "duration_secs")]
    pub stabilization: Duration,
}

impl Behavior {
    /// HPA defaults for scale-up: 4 instances or 100 % per 15 s, whichever is more;
    /// no stabilisation.
    pub fn hpa_scale_up() -> Self {
        Self {
            policies: vec![
                Policy {
                    amount: PolicyAmount::Instances(4),
                    period: Duration::from_secs(15),
                },
                Policy {
                    amount: PolicyAmount::Percent(100),
                    period: Duration::from_secs(15),
                },
            ],
            select: Select::Max,
            stabilization: Duration::ZERO,
        }
    }

    /// HPA defaults for scale-down: 100 % per 15 s after a 5-minute stabilisation.
    pub fn hpa_scale_down() -> Self {
        Self {
            policies: vec![Policy {
                amount: PolicyAmount::Percent(100),
                period: Duration::from_secs(15),
            }],
            select: Select::Max,
            stabilization: DEFAULT_SCALE_DOWN_STABILIZATION,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The HPA algorithm on live metrics.
    #[default]
    Reactive,
    /// max(reactive, forecast ahead by the lead time); never scales in on a forecast.
    Predictive,
    /// Acts reactively; records what the forecast would have done.
    ForecastOnly,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Reactive => "reactive",
            Mode::Predictive => "predictive",
            Mode::ForecastOnly => "forecast_only",
        }
    }
}

/// A budget: `max_cost_per_hour / cost_per_instance_hour` instances at most.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub per_instance_hour: f64,
    pub max_per_hour: Option<f64>,
}

impl Cost {
    /// The most instances the budget pays for, if there is a budget.
    pub fn max_instances(&self) -> Option<u32> {
        let cap = self.max_per_hour?;
        if self.per_instance_hour <= 0.0 {
            return None;
        }
        Some((cap / self.per_instance_hour + 1e-9).floor().max(0.0) as u32)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoscaleSpec {
    pub min: u32,
    pub max: u32,
    pub targets: Vec<Target>,
    #[serde(with = "duration_secs")]
    pub sync: Duration,
    pub tolerance: f64,
    pub scale_up: Behavior,
    pub scale_down: Behavior,
    pub mode: Mode,
    pub cost: Option<Cost>,
    /// How far ahead the predictive mode provisions: covers instance start-up and one
    /// sync period.
    #[serde(with = "duration_secs")]
    pub lead_time: Duration,
}

impl AutoscaleSpec {
    /// The HPA's defaults around the given limits and targets.
    pub fn hpa_defaults(min: u32, max: u32, targets: Vec<Target>) -> Self {
        Self {
            min,
            max,
            targets,
            sync: DEFAULT_SYNC,
            tolerance: DEFAULT_TOLERANCE,
            scale_up: Behavior::hpa_scale_up(),
            scale_down: Behavior::hpa_scale_down(),
            mode: Mode::Reactive,
            cost: None,
            lead_time: Duration::from_secs(120),
        }
    }

    /// The longest window any recommendation must be remembered for.
    pub(crate) fn longest_window(&self) -> Duration {
        self.scale_up
            .stabilization
            .max(self.scale_down.stabilization)
    }

    pub(crate) fn longest_period(&self) -> Duration {
        self.scale_up
            .policies
            .iter()
            .chain(&self.scale_down.policies)
            .map(|p| p.period)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
