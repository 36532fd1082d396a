//! rampart's own metrics and their Prometheus exposition.
//!
//! Host metrics and bounded in-memory time series join this crate with the telemetry
//! issue; for now it owns the metric registry every part registers into, and the
//! text rendering that `/metrics` serves.

pub mod exposition;
pub mod server_metrics;

pub use exposition::{CONTENT_TYPE, render};
pub use server_metrics::ServerMetrics;
