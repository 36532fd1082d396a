//! Metrics about rampart itself: API traffic, authentication failures, audit writes
//! and build information.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

#[derive(Clone)]
pub struct ServerMetrics {
    http_requests: Family<Labels, Counter>,
    auth_failures: Family<Labels, Counter>,
    build_info: Family<Labels, Gauge>,
}

impl ServerMetrics {
    /// Creates the families and registers them in `registry`. `audit_appended` is the
    /// store's count of committed audit entries, read at scrape time, so every writer
    /// (API, engine, server) is counted without telling anyone.
    pub fn register(
        registry: &mut Registry,
        version: &str,
        audit_appended: Arc<AtomicU64>,
    ) -> Self {
        let metrics = Self {
            http_requests: Family::default(),
            auth_failures: Family::default(),
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
        registry.register_collector(Box::new(AuditEntries(audit_appended)));
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

    /// `method` comes from the client: any method outside the standard ones is
    /// counted as `other`, so a client cannot mint new series.
    pub fn observe_request(&self, route: &str, method: &str, status: u16) {
        self.http_requests
            .get_or_create(&vec![
                ("route", route.to_string()),
                ("method", method_label(method).to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }
}

/// The standard methods (RFC 9110 §9 and PATCH) as themselves, anything else as
/// `other`: the label's values stay a fixed, small set.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// `rampart_audit_entries_total`, read from the store's counter at scrape time.
#[derive(Debug)]
struct AuditEntries(Arc<AtomicU64>);

impl Collector for AuditEntries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metric = encoder.encode_descriptor(
            "rampart_audit_entries",
            "Audit log entries written by this process",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.0.load(Ordering::Relaxed)).encode(metric)
    }
}
