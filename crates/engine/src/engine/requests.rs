//! What callers hand the engine: a deployment, an operator's action, a traffic change.

use std::collections::BTreeMap;

use rampart_config::UpstreamAddress;
use serde::{Deserialize, Serialize};

/// A request to deploy a version.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployRequest {
    pub version: String,
    /// Static backend: where the new version runs, as IP addresses or host names
    /// (resolved at the deploy).
    #[serde(default)]
    pub canary: Vec<UpstreamAddress>,
    /// Process backend: extra environment for the new version's instances.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Deploy although an incident froze deploys to the service (admins only; the
    /// API checks the role, the audit entry records the override).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub override_freeze: bool,
}

/// An operator's action on a service's rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Promote,
    Pause,
    Resume,
    Abort,
    Rollback,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Promote => "promote",
            Operation::Pause => "pause",
            Operation::Resume => "resume",
            Operation::Abort => "abort",
            Operation::Rollback => "rollback",
        }
    }
}

/// A manual change of a service's traffic split.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrafficChange {
    /// Percent of requests to the canary set.
    #[serde(default)]
    pub canary_weight: Option<f64>,
    /// Replaces the canary set with these upstreams (host names resolved now).
    #[serde(default)]
    pub canary: Option<Vec<UpstreamAddress>>,
    /// Version label of the given canary set (default `canary`).
    #[serde(default)]
    pub version: Option<String>,
    /// Requests in flight above this get 503 with `Retry-After`; 0 lifts the limit.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Ejecting instances after consecutive failures, on or off.
    #[serde(default)]
    pub outlier_detection: Option<bool>,
}
