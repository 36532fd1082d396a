//! Readiness probes for the parts the engine runs.

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
