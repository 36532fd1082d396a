//! Readiness probes for the parts the engine runs.

use std::time::Duration;

use rampart_engine::Engine;
use rampart_router::InstanceState;

use crate::health::{CheckResult, HealthStatus, ReadinessProbe, now_rfc3339};

/// A service is ready when its router has a stable instance to send traffic to.
pub struct ServiceRoutingProbe {
    pub engine: Engine,
    pub service: String,
}

impl ReadinessProbe for ServiceRoutingProbe {
    fn name(&self) -> String {
        format!("service:{}", self.service)
    }

    fn check(&self) -> CheckResult {
        let (status, usable, output) = match self.engine.traffic(&self.service) {
            Ok(traffic) => {
                let usable = traffic
                    .stable
                    .instances
                    .iter()
                    .filter(|i| i.state == InstanceState::Active)
                    .count();
                if usable > 0 {
                    (HealthStatus::Pass, usable, None)
                } else {
                    (
                        HealthStatus::Fail,
                        0,
                        Some(format!(
                            "no usable stable instance of {} ({} configured)",
                            traffic.stable.version,
                            traffic.stable.instances.len()
                        )),
                    )
                }
            }
            Err(e) => (HealthStatus::Fail, 0, Some(e.to_string())),
        };
        CheckResult {
            component_type: "component".into(),
            status,
            time: now_rfc3339(),
            observed_value: Some(usable as f64),
            observed_unit: Some("stable instances".into()),
            output,
        }
    }
}

/// How far back a service's error rate is judged.
pub const ERROR_WINDOW: Duration = Duration::from_secs(60);

/// A service whose users are failing is at least `warn`: its router's error rate
/// (5xx, connect failures, timeouts) over the last minute, stable and canary
/// together, above `warn_error_rate` percent. Never `fail`: rampart itself can
/// still do its job, and readiness must not pull the router that serves the users.
pub struct ServiceErrorsProbe {
    pub engine: Engine,
    pub service: String,
    pub warn_error_rate: f64,
}

impl ReadinessProbe for ServiceErrorsProbe {
    fn name(&self) -> String {
        format!("service:{}:error_rate", self.service)
    }

    /// At worst `warn`: never makes rampart unready.
    fn decides_readiness(&self) -> bool {
        false
    }

    fn check(&self) -> CheckResult {
        let (status, rate, output) = match self.engine.window(&self.service, ERROR_WINDOW) {
            Ok(window) => {
                let requests = window.stable.requests + window.canary.requests;
                let errors = window.stable.errors + window.canary.errors;
                if requests == 0 {
                    (
                        HealthStatus::Pass,
                        None,
                        Some(format!(
                            "no requests in the last {} s",
                            ERROR_WINDOW.as_secs()
                        )),
                    )
                } else {
                    let rate = errors as f64 * 100.0 / requests as f64;
                    let summary = format!(
                        "{errors} of {requests} requests failed in the last {} s ({rate:.1} %)",
                        ERROR_WINDOW.as_secs()
                    );
                    if rate > self.warn_error_rate {
                        (
                            HealthStatus::Warn,
                            Some(rate),
                            Some(format!(
                                "{summary}; warns above {} % ([telemetry] warn_error_rate)",
                                self.warn_error_rate
                            )),
                        )
                    } else {
                        (HealthStatus::Pass, Some(rate), Some(summary))
                    }
                }
            }
            Err(e) => (HealthStatus::Warn, None, Some(e.to_string())),
        };
        CheckResult {
            component_type: "component".into(),
            status,
            time: now_rfc3339(),
            observed_value: rate,
            observed_unit: Some("percent of requests failed".into()),
            output,
        }
    }
}
