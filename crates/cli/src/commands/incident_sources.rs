//! What the incident responder reads beyond the engine: host numbers and health
//! scores from telemetry's latest collection, and the API's authentication counters.

use std::sync::Arc;

use rampart_api::auth_limiter::AuthFailureLimiter;
use rampart_core::health_score::health_score;
use rampart_engine::incidents::{HostNumbers, Sources};
use rampart_telemetry::Telemetry;

pub struct IncidentSources {
    pub telemetry: Telemetry,
    pub auth_limiter: Arc<AuthFailureLimiter>,
    /// `telemetry.p95_objective` in milliseconds.
    pub p95_objective_ms: f64,
    pub warn_error_rate: f64,
}

impl Sources for IncidentSources {
    fn host(&self) -> HostNumbers {
        let Some(latest) = self.telemetry.latest() else {
            return HostNumbers::default();
        };
        let fullest = latest
            .fullest_filesystem()
            .map(|(mount, used)| (mount.to_string(), used));
        let disk_available = fullest.as_ref().and_then(|(mount, _)| {
            latest
                .host
                .filesystems
                .iter()
                .find(|f| f.mountpoint == *mount)
                .map(|f| f.avail_bytes as f64)
        });
        HostNumbers {
            cpu_percent: latest.cpu_total_percent,
            memory_percent: latest.memory_used_percent(),
            disk_percent: fullest.map(|(_, used)| used),
            load1: Some(latest.host.load1),
            memory_available_bytes: (latest.host.memory.total_bytes > 0)
                .then_some(latest.host.memory.available_bytes as f64),
            disk_available_bytes: disk_available,
        }
    }

    fn failed_auth_total(&self) -> u64 {
        self.auth_limiter.failures_total()
    }

    fn rate_limited_total(&self) -> u64 {
        self.auth_limiter.refused_total()
    }

    fn health_score(&self, service: &str) -> Option<f64> {
        let latest = self.telemetry.latest()?;
        let (host, services) =
            rampart_api::routes::telemetry::inputs(&latest, self.p95_objective_ms);
        let own: Vec<_> = services
            .into_iter()
            .filter(|s| s.service == service)
            .collect();
        (!own.is_empty()).then(|| health_score(&host, &own, self.warn_error_rate).score)
    }
}
