//! What telemetry asks of the running services (the engine answers): per version,
//! the router's numbers; per instance, its process and restarts.

use std::time::Duration;

use serde::Serialize;

/// A version's traffic through the router over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrafficNumbers {
    pub window_secs: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl TrafficNumbers {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.window_secs.max(f64::MIN_POSITIVE)
    }

    /// Percent of requests that failed; `None` without requests.
    pub fn error_rate_percent(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 * 100.0 / self.requests as f64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionObservation {
    /// `stable` or `canary`.
    pub set: String,
    pub version: String,
    /// Over the last collection interval.
    pub interval: TrafficNumbers,
    /// Over the last minute (what health judges).
    pub minute: TrafficNumbers,
    /// Instances the router may send this set's traffic to.
    pub routable_instances: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceObservation {
    pub id: String,
    pub version: String,
    /// The backend's state name (`ready`, `crashed`, ...).
    pub state: String,
    pub ready: bool,
    /// Crashed or being restarted.
    pub down: bool,
    /// The process (group leader) rampart runs; `None` for static upstreams.
    pub pid: Option<u32>,
    pub restarts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceObservation {
    pub service: String,
    /// `process`, `static`, ...
    pub backend: String,
    pub versions: Vec<VersionObservation>,
    pub in_flight: u64,
    /// Process backend instances of every running version; empty for static.
    pub instances: Vec<InstanceObservation>,
    /// The service's own p95 objective in milliseconds (`analysis.max_p95_ms`), if
    /// set; `[telemetry] p95_objective` applies otherwise.
    pub p95_objective_ms: Option<f64>,
}

pub trait ServiceSource: Send + Sync {
    /// Every service now, with traffic numbers over the last `interval` and minute.
    fn observe(&self, interval: Duration) -> Vec<ServiceObservation>;
}

/// No services (telemetry of the host alone).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoServices;

impl ServiceSource for NoServices {
    fn observe(&self, _interval: Duration) -> Vec<ServiceObservation> {
        Vec::new()
    }
}
