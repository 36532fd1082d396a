//! rampart's metrics: the registry every part registers into and its text
//! rendering for `/metrics`; host and per-instance collection (`/proc`), kept as
//! bounded series (`rampart_core::series`) and exported in node_exporter's style.

pub mod exposition;
pub mod host;
pub mod process;
pub mod prometheus;
pub mod sampler;
pub mod server_metrics;
pub mod source;

pub use exposition::{CONTENT_TYPE, render};
pub use prometheus::TelemetryCollector;
pub use sampler::{InstanceUsage, Latest, SeriesView, Settings, Telemetry};
pub use server_metrics::ServerMetrics;
pub use source::{
    InstanceObservation, NoServices, ServiceObservation, ServiceSource, TrafficNumbers,
    VersionObservation,
};
