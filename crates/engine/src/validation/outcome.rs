//! The result of a validation run, as stored and served by the API.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationResult {
    pub passed: Vec<CheckOutcome>,
    /// Failed critical checks: any of them stops the deployment.
    pub failed: Vec<CheckOutcome>,
    /// Failed non-critical checks.
    pub warnings: Vec<CheckOutcome>,
    pub can_deploy: bool,
    pub execution_time_ms: u64,
    /// RFC 3339, UTC.
    pub started_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub name: String,
    /// `command`, `http`, `tcp` or `prometheus`.
    pub kind: String,
    pub critical: bool,
    pub passed: bool,
    /// How many times the check ran, retries included.
    pub attempts: u32,
    /// All attempts and the backoff between them.
    pub duration_ms: u64,
    /// What the last attempt found, for a human: "exit code 2", "expected 200, got 503",
    /// "timed out after 5s".
    pub message: String,
    /// The last attempt's command output or response body, bounded.
    pub output: Option<String>,
}
