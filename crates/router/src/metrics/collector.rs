//! Prometheus export of the per-version counters, as a `prometheus_client` custom
//! collector the API server registers in its `Registry`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::metrics::CLASS_LABELS;
use crate::metrics::counters::SetCounters;

type Labels = Vec<(&'static str, String)>;

/// Exports `rampart_router_*` series labelled `service`, `set` and `version`; those
/// of requests whose client picked the set also carry `chosen_by="client"`.
#[derive(Debug, Clone)]
pub struct RouterCollector {
    pub(crate) services: crate::router::ServiceList,
}

impl RouterCollector {
    fn rows(&self) -> Vec<(Labels, Arc<SetCounters>)> {
        let mut rows = Vec::new();
        for service in self.services.load().iter() {
            let table = service.table.load();
            for set in std::iter::once(&table.stable).chain(table.canary.as_ref()) {
                let labels = vec![
                    ("service", service.name.clone()),
                    ("set", set.kind.as_str().to_owned()),
                    ("version", set.version.clone()),
                ];
                // The split's requests keep the plain labels; the client-chosen ones
                // are the same series with `chosen_by="client"`.
                let mut client = labels.clone();
                client.push(("chosen_by", "client".to_owned()));
                rows.push((labels, Arc::clone(&set.counters)));
                rows.push((client, Arc::clone(&set.client_counters)));
            }
        }
        rows
    }
}

struct Counter(u64);

impl EncodeMetric for Counter {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0, None)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

impl Collector for RouterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = self.rows();

        let mut family = encoder.encode_descriptor(
            "rampart_router_requests",
            "Requests completed by the router, per service, set and version.",
            None,
            MetricType::Counter,
        )?;
        for (labels, c) in &rows {
            Counter(c.requests()).encode(family.encode_family(labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "rampart_router_responses",
            "Responses by status class (1xx..5xx); router-made 502/503/504 count as 5xx.",
            None,
            MetricType::Counter,
        )?;
        for (labels, c) in &rows {
            for (class, count) in CLASS_LABELS.iter().zip(c.classes()) {
                let mut with_class = labels.clone();
                with_class.push(("class", (*class).to_owned()));
                Counter(count).encode(family.encode_family(&with_class)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "rampart_router_errors",
            "5xx responses, connect failures, connections closed early and timeouts, charged to the set chosen for the request.",
            None,
            MetricType::Counter,
        )?;
        for (labels, c) in &rows {
            Counter(c.errors()).encode(family.encode_family(labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "rampart_router_retries",
            "Failed attempts (connect failure, connection closed) retried on another instance; each is also an error of this set.",
            None,
            MetricType::Counter,
        )?;
        for (labels, c) in &rows {
            Counter(c.retries()).encode(family.encode_family(labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "rampart_router_in_flight",
            "Requests in flight.",
            None,
            MetricType::Gauge,
        )?;
        for (labels, c) in &rows {
            family
                .encode_family(labels)?
                .encode_gauge(&(c.in_flight() as i64))?;
        }

        let mut family = encoder.encode_descriptor(
            "rampart_router_request_duration_seconds",
            "Time from the request's arrival to the end of the response body.",
            None,
            MetricType::Histogram,
        )?;
        for (labels, c) in &rows {
            let (sum, count, buckets) = c.duration_histogram();
            family
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}
