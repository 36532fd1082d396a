//! `rampart_store_sqlite_memory_bytes`: SQLite's own allocations, read at scrape
//! time (see `rampart_store::sqlite_memory`).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

#[derive(Debug)]
pub struct SqliteMemory;

impl Collector for SqliteMemory {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (current, _) = rampart_store::sqlite_memory();
        let metric = encoder.encode_descriptor(
            "rampart_store_sqlite_memory",
            "Memory SQLite holds now (page caches, statements, schema) over all the store's connections",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        ConstGauge::new(current).encode(metric)
    }
}
