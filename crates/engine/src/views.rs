//! What the engine shows: service status with live numbers, deployment records.

use std::net::SocketAddr;

use rampart_core::SetSample;
use rampart_core::judge::Verdict;
use rampart_core::rollout::{Phase, Transition};
use rampart_router::TrafficStatus;
use serde::{Deserialize, Serialize};

/// One set's traffic over the live window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetNumbers {
    pub requests: u64,
    pub errors: u64,
    /// Percent of requests that failed; `None` without requests.
    pub error_rate_pct: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl From<&SetSample> for SetNumbers {
    fn from(s: &SetSample) -> Self {
        let q = |q: f64| s.latency.quantile_us(q).map(|us| us as f64 / 1000.0);
        SetNumbers {
            requests: s.requests,
            errors: s.errors,
            error_rate_pct: s.error_rate().map(|r| r * 100.0),
            p50_ms: q(0.5),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveNumbers {
    pub window_secs: u64,
    pub stable: SetNumbers,
    pub canary: SetNumbers,
}

/// The rollout in flight, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveRolloutView {
    pub id: String,
    pub version: String,
    pub phase: Phase,
    pub state: String,
    /// 1-based step number and the step count, while progressing or paused.
    pub step: Option<usize>,
    pub steps: usize,
    pub canary_weight: f64,
    pub last_verdict: Option<Verdict>,
    pub last_transition: Option<Transition>,
    /// At a gate: what it waits for ("approval by release-manager: …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub service: String,
    pub listen: SocketAddr,
    pub backend: String,
    pub stable_version: String,
    /// Where an emergency rollback goes, if a promotion happened since start.
    pub rollback_target: Option<String>,
    pub active: Option<ActiveRolloutView>,
    /// The most recent finished deployment.
    pub last_deployment: Option<DeploymentSummary>,
    pub live: LiveNumbers,
    pub traffic: TrafficStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentSummary {
    pub id: String,
    pub service: String,
    pub version: String,
    pub previous_version: Option<String>,
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

/// Everything about one deployment: the rollout with its steps and history, its
/// analysis in brief (every measurement is a page away, see [`MeasurementPage`]: a
/// long rollout has hundreds) and every event.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentDetail {
    pub summary: DeploymentSummary,
    pub record: crate::record::DeploymentRecord,
    pub analysis: AnalysisSummary,
    pub events: Vec<rampart_store::DeploymentEvent>,
    pub validation: Option<serde_json::Value>,
}

/// A deployment's analysis measurements, counted, with the latest in full.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisSummary {
    pub measurements: u64,
    /// Measurements by outcome: pass, fail, inconclusive.
    pub by_outcome: std::collections::BTreeMap<String, u64>,
    pub last: Option<MeasurementView>,
}

/// One analysis: when, at which step, and the judge's verdict with its numbers.
#[derive(Debug, Clone, Serialize)]
pub struct MeasurementView {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    /// 1-based, as every step number rampart shows.
    pub step: u32,
    pub outcome: String,
    pub verdict: serde_json::Value,
}

impl From<rampart_store::Measurement> for MeasurementView {
    fn from(m: rampart_store::Measurement) -> Self {
        Self {
            id: m.id,
            at: m.at,
            step: m.step + 1,
            outcome: m.outcome,
            verdict: m.verdict,
        }
    }
}

/// A page of a deployment's measurements, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct MeasurementPage {
    pub total: u64,
    pub offset: u64,
    pub limit: u32,
    pub items: Vec<MeasurementView>,
}

pub fn summary_of(row: &rampart_store::DeploymentRow) -> DeploymentSummary {
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    DeploymentSummary {
        id: row.id.clone(),
        service: row.service.clone(),
        version: row.version.clone(),
        previous_version: row.previous_version.clone(),
        state: row.state.clone(),
        created_at: fmt(row.created_at),
        updated_at: fmt(row.updated_at),
        finished_at: row.finished_at.map(fmt),
    }
}
