//! The traffic status a service reports (for the API and the dashboard).

use std::net::SocketAddr;

use rampart_core::Timestamp;
use rampart_core::rollout::Steering;
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
    /// The canary's header or cookie match and mirrored share, besides the weight.
    #[serde(skip_serializing_if = "Steering::is_none")]
    pub steering: Steering,
    /// Requests picked for mirroring and what became of them.
    pub mirror: MirrorStatus,
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
    /// Requests the step's header or cookie match sent here; judged.
    pub matched: RequestCounts,
    /// Mirrored copies of stable's requests sent here (responses discarded); judged.
    pub mirrored: RequestCounts,
}

/// Cumulative counts of the requests picked for mirroring, since the service started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MirrorStatus {
    /// Copies sent to the canary.
    pub sent: u64,
    /// Not copied: `mirror_max_in_flight` copies were in flight already, or no
    /// canary instance could take it.
    pub dropped: u64,
    /// Not copied: a body over `mirror_max_body_bytes` (or one that failed), or a
    /// non-idempotent method the service does not allow to mirror.
    pub skipped: u64,
}

impl MirrorStatus {
    pub(crate) fn of(counts: &crate::mirror::MirrorCounters) -> Self {
        Self {
            sent: counts.sent.load(Ordering::Relaxed),
            dropped: counts.dropped.load(Ordering::Relaxed),
            skipped: counts.skipped.load(Ordering::Relaxed),
        }
    }
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
            requests: counters.requests(),
            errors: counters.errors(),
            retries: counters.retries(),
            in_flight: counters.in_flight(),
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
