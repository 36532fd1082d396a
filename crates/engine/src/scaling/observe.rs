//! One set's load as the autoscaler reads it: instances and their CPU and memory
//! from the latest telemetry collection, rate and p95 from the router's windows.

use std::time::Duration;

use rampart_backends::InstanceState;
use rampart_core::Timestamp;
use rampart_core::WindowSample;
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
    now: Timestamp,
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
    let (sample, secs) = completed_seconds(svc, window, now);
    let (traffic, arrived) = match set {
        SetKind::Stable => (&sample.stable, sample_arrivals(svc, window, now).0),
        SetKind::Canary => (&sample.canary, sample_arrivals(svc, window, now).1),
    };
    // The router's table says which version each set is; a set whose version is not
    // this one has no traffic of it.
    let table = svc.router.table();
    let routed = match set {
        SetKind::Stable => table.stable.version == version,
        SetKind::Canary => table.canary.as_ref().is_some_and(|c| c.version == version),
    };
    Observation {
        current: counted.len() as u32,
        instances: samples,
        // Demand is what arrived: requests counted when they finish read 0 during a
        // stall of every instance and then the whole backlog at once, so the stall
        // sized the service (2 → 3 on a steady 6 req/s, read as 25.5).
        requests_per_second: routed.then(|| arrived as f64 / secs),
        p95_ms: traffic
            .latency
            .quantile_us(0.95)
            .filter(|_| routed)
            .map(|us| us as f64 / 1000.0),
    }
}

/// Arrivals per set (stable, canary) over the same whole seconds as
/// [`completed_seconds`].
pub(crate) fn sample_arrivals(
    svc: &ServiceRuntime,
    window: Duration,
    now: Timestamp,
) -> (u64, u64) {
    let (start, end) = whole_seconds(window, now);
    svc.router.arrivals_between(start, end)
}

/// The whole seconds of the last `window` before `now`'s second.
fn whole_seconds(window: Duration, now: Timestamp) -> (Timestamp, Timestamp) {
    let seconds = window.as_secs().max(1);
    let end = Timestamp::from_millis(now.as_secs() * 1000);
    let start = Timestamp::from_millis(end.as_millis().saturating_sub(seconds * 1000));
    (start, end)
}

/// The router's counts over the whole seconds of the last `window` before `now`'s
/// second, and their length in seconds. The current second is still filling:
/// counting it as a whole second understated the rate, by up to all of it with a
/// 1 s window (a 1 s sync read 0 and 4 req/s by turns under a steady 14).
fn completed_seconds(
    svc: &ServiceRuntime,
    window: Duration,
    now: Timestamp,
) -> (WindowSample, f64) {
    let (start, end) = whole_seconds(window, now);
    let sample = svc.router.window_between(start, end);
    (sample, window.as_secs().max(1) as f64)
}
