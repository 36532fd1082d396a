//! The values incident conditions read, gathered once per tick: per service from
//! its router and backend, for the host from telemetry, for security from the
//! API's authentication counters (turned into per-second rates here).

use std::collections::VecDeque;
use std::time::Duration;

use rampart_core::incident::{Metric, MetricRef, Readings, Subject};
use rampart_core::rollout::Phase;
use rampart_core::{SetSample, Timestamp};

use crate::Engine;

/// What the engine cannot see itself, handed in by the server.
pub trait Sources: Send + Sync {
    /// The latest host numbers (telemetry's last collection).
    fn host(&self) -> HostNumbers;
    /// Failed API authentications since start.
    fn failed_auth_total(&self) -> u64;
    /// Requests the API's limiter refused since start.
    fn rate_limited_total(&self) -> u64;
    /// The service's health score (0–100), if telemetry has one.
    fn health_score(&self, service: &str) -> Option<f64>;
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostNumbers {
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub disk_percent: Option<f64>,
    pub load1: Option<f64>,
    pub memory_available_bytes: Option<f64>,
    pub disk_available_bytes: Option<f64>,
}

/// Error rates and latencies look at this much recent traffic.
pub(crate) const SERVICE_WINDOW: Duration = Duration::from_secs(10);
/// Fewer requests than this in the window: the error rate and latencies are not
/// measured (two requests, one failed, is not a 50 % error rate).
pub(crate) const MIN_REQUESTS: u64 = 20;
/// A rollout that ended rolled back or failed counts for `service.rollout_failed`
/// this long.
const ROLLOUT_FAILED_FOR: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SetNumbers {
    pub error_rate: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub rate: f64,
}

impl SetNumbers {
    fn of(sample: &SetSample, window: Duration) -> Self {
        let measured = sample.requests >= MIN_REQUESTS;
        let q = |q: f64| {
            measured
                .then(|| sample.latency.quantile_us(q))
                .flatten()
                .map(|us| us as f64 / 1000.0)
        };
        SetNumbers {
            error_rate: measured.then(|| sample.errors as f64 * 100.0 / sample.requests as f64),
            p50: q(0.5),
            p95: q(0.95),
            p99: q(0.99),
            rate: sample.requests as f64 / window.as_secs_f64(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceNumbers {
    pub service: String,
    pub all: SetNumbers,
    pub stable: SetNumbers,
    pub canary: SetNumbers,
    pub in_flight: f64,
    pub crashes: f64,
    pub health_score: Option<f64>,
    pub rollout_failed: bool,
}

/// A counter's per-second rate over the last minute.
#[derive(Debug, Default)]
pub(crate) struct CounterRate {
    samples: VecDeque<(Timestamp, u64)>,
}

impl CounterRate {
    pub fn observe(&mut self, now: Timestamp, total: u64) -> Option<f64> {
        self.samples.push_back((now, total));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.since(*at) > Duration::from_secs(60))
        {
            self.samples.pop_front();
        }
        let (first_at, first) = *self.samples.front()?;
        let elapsed = now.since(first_at).as_secs_f64();
        // Until a few seconds are seen, a burst counts over a full second at least.
        Some(total.saturating_sub(first) as f64 / elapsed.max(1.0))
    }
}

pub(crate) fn service_numbers(
    engine: &Engine,
    sources: &dyn Sources,
    now: Timestamp,
) -> Vec<ServiceNumbers> {
    engine
        .runtimes()
        .into_iter()
        .map(|svc| {
            let window = svc.router.window(SERVICE_WINDOW);
            let mut all = window.stable.clone();
            all.merge(&window.canary);
            let traffic = svc.router.status();
            let crashes = if svc.is_static() {
                0
            } else {
                svc.backend
                    .versions()
                    .iter()
                    .flat_map(|v| svc.backend.instances(v))
                    .filter(|i| {
                        matches!(
                            i.state,
                            rampart_backends::InstanceState::Crashed
                                | rampart_backends::InstanceState::Restarting
                        )
                    })
                    .count()
            };
            let rollout_failed = svc.lock().last_record.as_ref().is_some_and(|record| {
                let rollout = &record.rollout;
                matches!(rollout.phase, Phase::RolledBack | Phase::Failed)
                    && rollout
                        .history
                        .last()
                        .is_some_and(|t| now.since(t.at) <= ROLLOUT_FAILED_FOR)
            });
            ServiceNumbers {
                service: svc.name().to_string(),
                all: SetNumbers::of(&all, SERVICE_WINDOW),
                stable: SetNumbers::of(&window.stable, SERVICE_WINDOW),
                canary: SetNumbers::of(&window.canary, SERVICE_WINDOW),
                in_flight: traffic.in_flight as f64,
                crashes: crashes as f64,
                health_score: sources.health_score(svc.name()),
                rollout_failed,
            }
        })
        .collect()
}

/// Everything one rule in one scope reads.
pub(crate) struct ScopeReadings<'a> {
    pub service: Option<&'a ServiceNumbers>,
    pub host: &'a HostNumbers,
    pub failed_auth: Option<f64>,
    pub rate_limited: Option<f64>,
}

impl Readings for ScopeReadings<'_> {
    fn read(&self, metric: MetricRef) -> Option<f64> {
        let set = |s: &ServiceNumbers| match metric.subject {
            Subject::Stable => s.stable,
            Subject::Canary => s.canary,
            _ => s.all,
        };
        match metric.metric {
            Metric::ErrorRate => self.service.and_then(|s| set(s).error_rate),
            Metric::LatencyP50 => self.service.and_then(|s| set(s).p50),
            Metric::LatencyP95 => self.service.and_then(|s| set(s).p95),
            Metric::LatencyP99 => self.service.and_then(|s| set(s).p99),
            Metric::RequestRate => self.service.map(|s| set(s).rate),
            Metric::InFlight => self.service.map(|s| s.in_flight),
            Metric::InstanceCrashes => self.service.map(|s| s.crashes),
            Metric::HealthScore => self.service.and_then(|s| s.health_score),
            Metric::RolloutFailed => self.service.map(|s| f64::from(u8::from(s.rollout_failed))),
            Metric::Cpu => self.host.cpu_percent,
            Metric::Memory => self.host.memory_percent,
            Metric::Disk => self.host.disk_percent,
            Metric::Load => self.host.load1,
            Metric::MemoryAvailable => self.host.memory_available_bytes,
            Metric::DiskAvailable => self.host.disk_available_bytes,
            Metric::FailedAuth => self.failed_auth,
            Metric::RateLimited => self.rate_limited,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_rates_over_the_last_minute() {
        let mut rate = CounterRate::default();
        assert_eq!(rate.observe(Timestamp(0), 10), Some(0.0));
        assert_eq!(rate.observe(Timestamp(10_000), 110), Some(10.0));
        // The first sample is older than a minute now and drops out.
        assert_eq!(rate.observe(Timestamp(70_000), 110), Some(0.0));
    }
}
