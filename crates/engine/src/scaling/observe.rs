//! One set's load as the autoscaler reads it: instances and their CPU and memory
//! from the latest telemetry collection, rate and p95 from the router's windows.

use std::time::Duration;

use rampart_backends::InstanceState;
use rampart_core::autoscale::{InstanceSample, Observation};
use rampart_telemetry::Latest;

use super::SetKind;
use crate::service::ServiceRuntime;

const MIB: f64 = 1024.0 * 1024.0;

pub(crate) fn observation(
    svc: &ServiceRuntime,
    latest: Option<&Latest>,
    set: SetKind,
    version: &str,
    window: Duration,
) -> Observation {
    let instances = svc.backend.instances(version);
    let counted: Vec<_> = instances
        .iter()
        .filter(|i| !matches!(i.state, InstanceState::Stopping | InstanceState::Stopped))
        .collect();
    let usage = |id: &str| {
        latest.and_then(|l| {
            l.instances
                .iter()
                .find(|u| u.service == svc.name() && u.instance == id && u.version == version)
        })
    };
    let samples = counted
        .iter()
        // A crashed instance is the HPA's failed pod: counted in the size, not in the
        // metrics.
        .filter(|i| i.state != InstanceState::Crashed)
        .map(|i| {
            let u = usage(&i.id);
            InstanceSample {
                id: i.id.clone(),
                ready: i.is_ready(),
                cpu_percent: u.and_then(|u| u.cpu_percent),
                memory_mib: u.and_then(|u| u.usage).map(|u| u.rss_bytes as f64 / MIB),
            }
        })
        .collect();
    let sample = svc.router.window(window);
    let traffic = match set {
        SetKind::Stable => &sample.stable,
        SetKind::Canary => &sample.canary,
    };
    // The router's table says which version each set is; a set whose version is not
    // this one has no traffic of it.
    let table = svc.router.table();
    let routed = match set {
        SetKind::Stable => table.stable.version == version,
        SetKind::Canary => table.canary.as_ref().is_some_and(|c| c.version == version),
    };
    let secs = sample
        .end
        .since(sample.start)
        .as_secs_f64()
        .max(window.as_secs_f64())
        .max(1.0);
    Observation {
        current: counted.len() as u32,
        instances: samples,
        requests_per_second: routed.then(|| traffic.requests as f64 / secs),
        p95_ms: traffic
            .latency
            .quantile_us(0.95)
            .filter(|_| routed)
            .map(|us| us as f64 / 1000.0),
    }
}
