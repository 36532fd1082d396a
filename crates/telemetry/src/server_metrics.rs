//! Metrics about rampart itself: API traffic, authentication failures, audit writes
//! and build information.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

#[derive(Clone)]
pub struct ServerMetrics {
    http_requests: Family<Labels, Counter>,
    auth_failures: Family<Labels, Counter>,
    audit_entries: Counter,
    build_info: Family<Labels, Gauge>,
}

impl ServerMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry, version: &str) -> Self {
        let metrics = Self {
            http_requests: Family::default(),
            auth_failures: Family::default(),
            audit_entries: Counter::default(),
            build_info: Family::default(),
        };
        registry.register(
            "rampart_http_requests",
            "API requests served, by route template, method and status code",
            metrics.http_requests.clone(),
        );
        registry.register(
            "rampart_auth_failures",
            "Rejected API requests, by reason (missing, invalid, forbidden, rate_limited)",
            metrics.auth_failures.clone(),
        );
        registry.register(
            "rampart_audit_entries",
            "Audit log entries written by this process",
            metrics.audit_entries.clone(),
        );
        registry.register(
            "rampart_build_info",
            "Always 1; labels carry the build's version",
            metrics.build_info.clone(),
        );
        metrics
            .build_info
            .get_or_create(&vec![("version", version.to_string())])
            .set(1);
        metrics
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16) {
        self.http_requests
            .get_or_create(&vec![
                ("route", route.to_string()),
                ("method", method.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn audit_written(&self, entries: u64) {
        self.audit_entries.inc_by(entries);
    }
}
