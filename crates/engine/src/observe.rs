//! What telemetry reads from the engine: each service's traffic per version (from
//! its router) and its process instances (from its backend). Read-only: no store,
//! no locks held across I/O.

use std::time::Duration;

use rampart_backends::InstanceState as BackendState;
use rampart_core::SetSample;
use rampart_router::InstanceState as RouterState;
use rampart_telemetry::{
    InstanceObservation, ServiceObservation, ServiceSource, TrafficNumbers, VersionObservation,
};

use crate::engine::Engine;

/// Health looks at the last minute.
const MINUTE: Duration = Duration::from_secs(60);

fn numbers(sample: &SetSample, window: Duration) -> TrafficNumbers {
    let q = |q: f64| sample.latency.quantile_us(q).map(|us| us as f64 / 1000.0);
    TrafficNumbers {
        window_secs: window.as_secs_f64(),
        requests: sample.requests,
        errors: sample.errors,
        p50_ms: q(0.5),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
    }
}

fn state_name(state: BackendState) -> &'static str {
    match state {
        BackendState::Starting => "starting",
        BackendState::Ready => "ready",
        BackendState::Crashed => "crashed",
        BackendState::Restarting => "restarting",
        BackendState::Stopping => "stopping",
        BackendState::Stopped => "stopped",
    }
}

impl ServiceSource for Engine {
    fn observe(&self, interval: Duration) -> Vec<ServiceObservation> {
        self.runtimes()
            .into_iter()
            .map(|service| {
                let recent = service.router.window(interval);
                let minute = service.router.window(MINUTE);
                let traffic = service.router.status();
                let routable = |set: &rampart_router::SetStatus| {
                    set.instances
                        .iter()
                        .filter(|i| i.state == RouterState::Active)
                        .count() as u64
                };
                let mut versions = vec![VersionObservation {
                    set: "stable".into(),
                    version: traffic.stable.version.clone(),
                    interval: numbers(&recent.stable, interval),
                    minute: numbers(&minute.stable, MINUTE),
                    routable_instances: routable(&traffic.stable),
                }];
                if let Some(canary) = &traffic.canary {
                    versions.push(VersionObservation {
                        set: "canary".into(),
                        version: canary.version.clone(),
                        interval: numbers(&recent.canary, interval),
                        minute: numbers(&minute.canary, MINUTE),
                        routable_instances: routable(canary),
                    });
                }
                let instances = if service.is_static() {
                    Vec::new()
                } else {
                    service
                        .backend
                        .versions()
                        .iter()
                        .flat_map(|version| service.backend.instances(version))
                        .map(|i| InstanceObservation {
                            ready: i.is_ready(),
                            down: matches!(
                                i.state,
                                BackendState::Crashed | BackendState::Restarting
                            ),
                            state: state_name(i.state).into(),
                            id: i.id,
                            version: i.version,
                            pid: i.pid,
                            restarts: i.restarts,
                        })
                        .collect()
                };
                ServiceObservation {
                    service: service.name().to_string(),
                    backend: service.backend.kind().to_string(),
                    versions,
                    in_flight: traffic.in_flight,
                    instances,
                    p95_objective_ms: service.config().analysis.max_p95_ms,
                }
            })
            .collect()
    }
}
