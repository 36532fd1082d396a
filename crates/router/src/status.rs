//! The traffic status a service reports (for the API and the dashboard).

use std::net::SocketAddr;

use rampart_core::Timestamp;
use serde::Serialize;

use crate::upstream::{DrainReport, InstanceState};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficStatus {
    pub service: String,
    pub listen: SocketAddr,
    /// Changes when a set's version changes; part of the sticky cookie.
    pub generation: u64,
    pub canary_weight: f64,
    pub stable: SetStatus,
    pub canary: Option<SetStatus>,
    /// Instances removed from the table: draining, or drained with their report.
    pub removed: Vec<InstanceStatus>,
    /// Requests in flight across the service.
    pub in_flight: u64,
    pub max_concurrency: Option<u32>,
    pub outlier_detection: bool,
    pub metrics_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetStatus {
    pub version: String,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceStatus {
    pub addr: SocketAddr,
    pub state: InstanceState,
    pub in_flight: u64,
    pub consecutive_failures: u32,
    pub ejected_until: Option<Timestamp>,
    /// Present once a removed instance has finished draining.
    pub drain: Option<DrainReport>,
}
