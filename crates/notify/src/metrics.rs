//! Prometheus metrics of the delivery worker, so that a receiver that keeps
//! refusing rampart's messages can itself be alerted on.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Cheap to clone; every clone counts into the same families.
#[derive(Clone)]
pub struct DeliveryMetrics {
    attempts: Family<Labels, Counter>,
    delivery_seconds: Family<Labels, Histogram>,
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        DeliveryMetrics {
            attempts: Family::default(),
            // 10 ms to ~1.5 h: from a prompt delivery to one retried for hours.
            delivery_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 4.0, 10))
            }),
        }
    }
}

impl DeliveryMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rampart_notification_attempts",
            "Delivery attempts, by notifier and outcome (delivered, skipped, retry, failed, abandoned)",
            self.attempts.clone(),
        );
        registry.register(
            "rampart_notification_delivery_seconds",
            "From a notification's commit to its delivery, by notifier",
            self.delivery_seconds.clone(),
        );
    }

    pub(crate) fn attempt(&self, notifier: &str, outcome: &'static str) {
        self.attempts
            .get_or_create(&vec![
                ("notifier", notifier.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    pub(crate) fn delivered_after(&self, notifier: &str, seconds: f64) {
        self.delivery_seconds
            .get_or_create(&vec![("notifier", notifier.to_string())])
            .observe(seconds);
    }
}
