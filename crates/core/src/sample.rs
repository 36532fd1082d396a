//! What the router measured, in the shape the judges read: per version set, over one
//! window of time.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::histogram::LatencyHistogram;

/// Traffic one version set (stable or canary) received over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSample {
    /// Requests that completed (with any outcome) in the window.
    pub requests: u64,
    /// 5xx responses plus connect failures and timeouts.
    pub errors: u64,
    /// Latency of completed requests.
    pub latency: LatencyHistogram,
}

impl SetSample {
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    pub fn merge(&mut self, other: &SetSample) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }
}

/// Canary and stable over the same window `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSample {
    pub start: Timestamp,
    pub end: Timestamp,
    pub stable: SetSample,
    pub canary: SetSample,
}
