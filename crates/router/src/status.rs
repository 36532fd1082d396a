//! The traffic status a service reports (for the API and the dashboard).

use std::net::SocketAddr;

use rampart_core::Timestamp;
use serde::Serialize;

use std::sync::atomic::Ordering;

use crate::metrics::counters::SetCounters;
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
    /// Requests the split sent to this version, since it joined the set: the judge's
    /// evidence.
    pub split: RequestCounts,
    /// Requests whose client picked this set with the version header; never judged.
    pub chosen_by_client: RequestCounts,
}

/// Cumulative request counts of one set and version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    pub requests: u64,
    pub errors: u64,
    /// Errors that were failed attempts retried on another instance (the client got
    /// the retry's answer).
    pub retries: u64,
    pub in_flight: u64,
}

impl RequestCounts {
    pub(crate) fn of(counters: &SetCounters) -> Self {
        Self {
            requests: counters.requests.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
            retries: counters.retries.load(Ordering::Relaxed),
            in_flight: counters.in_flight.load(Ordering::Relaxed).max(0) as u64,
        }
    }
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
