//! Telemetry history (`GET /api/v1/telemetry`) and the health score in the original
//! specification's shape (`GET /health/metrics`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use rampart_core::Timestamp;
use rampart_core::health_score::{
    Alert, HealthScore, HostInput, ScorePart, ServiceInput, health_score,
};
use rampart_core::series::Scope;
use rampart_telemetry::Latest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// Longest history a query may ask for (the longest `downsampled_retention`).
const MAX_SINCE: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Deserialize, IntoParams)]
pub struct TelemetryQuery {
    /// How far back: a duration such as `15m` or `24h` (default `15m`).
    pub since: Option<String>,
    /// One point per step, the mean of the points in it: `5s`, `1m`, `1h`
    /// (default: the collection interval). Steps of a minute or more, and
    /// history older than `[telemetry] retention`, come from 1-minute summaries.
    pub step: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesPoints {
    /// e.g. `cpu_percent`, `requests_per_second`.
    pub metric: String,
    /// e.g. `{"cpu": "total"}`, `{"set": "stable", "version": "v1"}`.
    pub labels: BTreeMap<String, String>,
    /// `[milliseconds since the epoch, value]` pairs, oldest first.
    pub points: Vec<(u64, f64)>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TelemetryHistory {
    /// Milliseconds since the epoch.
    pub now: u64,
    pub since: u64,
    pub step_secs: f64,
    pub interval_secs: f64,
    pub host: Vec<SeriesPoints>,
    /// Per service name.
    pub services: BTreeMap<String, Vec<SeriesPoints>>,
    /// Series held now, and the most memory they may take (bounded by retention).
    pub series_held: usize,
    pub memory_bound_bytes: usize,
}

fn duration(name: &str, text: &str) -> Result<Duration, ApiError> {
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        ApiError::BadRequest(format!(
            "`{name}` is `{text}`: {e}; use a duration such as 30s, 15m or 24h"
        ))
    })?;
    if parsed.is_zero() {
        return Err(ApiError::BadRequest(format!(
            "`{name}` must be above zero, such as 15m"
        )));
    }
    Ok(parsed)
}

/// Host and per-service series from `since` ago, one point per `step`.
#[utoipa::path(get, path = "/api/v1/telemetry", tag = "telemetry",
    security(("bearer" = [])),
    params(TelemetryQuery),
    responses((status = 200, body = TelemetryHistory),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn get_telemetry(
    State(state): State<AppState>,
    Query(query): Query<TelemetryQuery>,
) -> Result<Json<TelemetryHistory>, ApiError> {
    let interval = state.telemetry.settings().interval();
    let since = match &query.since {
        Some(text) => duration("since", text)?,
        None => Duration::from_secs(15 * 60),
    };
    if since > MAX_SINCE {
        return Err(ApiError::BadRequest(format!(
            "`since` is {}; history goes back at most 7 days",
            query.since.as_deref().unwrap_or_default()
        )));
    }
    let step = match &query.step {
        Some(text) => duration("step", text)?.max(interval),
        None => interval,
    };
    let now = state.clock.now();
    let from = Timestamp(now.as_millis().saturating_sub(since.as_millis() as u64));
    let mut host = Vec::new();
    let mut services: BTreeMap<String, Vec<SeriesPoints>> = BTreeMap::new();
    for view in state.telemetry.query(from, step) {
        let series = SeriesPoints {
            metric: view.key.metric,
            labels: view.key.labels.into_iter().collect(),
            points: view
                .points
                .iter()
                .map(|p| (p.at.as_millis(), p.value))
                .collect(),
        };
        match view.key.scope {
            Scope::Host => host.push(series),
            Scope::Service(name) => services.entry(name).or_default().push(series),
        }
    }
    let (series_held, memory_bound_bytes) = state.telemetry.footprint();
    Ok(Json(TelemetryHistory {
        now: now.as_millis(),
        since: from.as_millis(),
        step_secs: step.as_secs_f64(),
        interval_secs: interval.as_secs_f64(),
        host,
        services,
        series_held,
        memory_bound_bytes,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsSummary {
    /// Busy percent of all cores since the previous collection.
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub load1: f64,
    /// The fullest filesystem's mount point and used percent.
    pub fullest_filesystem: Option<(String, f64)>,
    pub services: Vec<ServiceSummary>,
    /// When the numbers were collected (milliseconds since the epoch).
    pub collected_at: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceSummary {
    pub service: String,
    pub requests_last_minute: u64,
    pub error_rate_percent: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p95_objective_ms: f64,
    pub routable_instances: u64,
    pub instances: u64,
    pub down_instances: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthMetrics {
    /// 0–100; see docs/TELEMETRY.md for the formula.
    pub health_score: f64,
    pub active_alerts: usize,
    pub critical_alerts: usize,
    pub metrics_summary: Option<MetricsSummary>,
    /// Every part of the score with what it observed and the points it takes off.
    #[schema(value_type = Vec<Object>)]
    pub score_parts: Vec<ScorePart>,
    #[schema(value_type = Vec<Object>)]
    pub alerts: Vec<Alert>,
}

pub fn inputs(latest: &Latest, default_objective_ms: f64) -> (HostInput, Vec<ServiceInput>) {
    let host = HostInput {
        cpu_percent: latest.cpu_total_percent,
        memory_percent: latest.memory_used_percent(),
        fullest_filesystem: latest
            .fullest_filesystem()
            .map(|(mount, used)| (mount.to_string(), used)),
    };
    let services = latest
        .services
        .iter()
        .map(|s| {
            let requests: u64 = s.versions.iter().map(|v| v.minute.requests).sum();
            let errors: u64 = s.versions.iter().map(|v| v.minute.errors).sum();
            let stable = s.versions.iter().find(|v| v.set == "stable");
            ServiceInput {
                service: s.service.clone(),
                requests,
                error_rate_percent: (requests > 0).then(|| errors as f64 * 100.0 / requests as f64),
                // The worst version's p95: a slow canary hurts its users too.
                p95_ms: s
                    .versions
                    .iter()
                    .filter_map(|v| v.minute.p95_ms)
                    .max_by(f64::total_cmp),
                p95_objective_ms: s.p95_objective_ms.unwrap_or(default_objective_ms),
                routable_instances: stable.map_or(0, |v| v.routable_instances),
                instances: s.instances.len() as u64,
                down_instances: s.instances.iter().filter(|i| i.down).count() as u64,
            }
        })
        .collect();
    (host, services)
}

/// The health score with its parts, the alerts it raises and a summary of the
/// numbers it was computed from.
#[utoipa::path(get, path = "/health/metrics", tag = "health",
    responses((status = 200, body = HealthMetrics)))]
pub async fn health_metrics(State(state): State<AppState>) -> Json<HealthMetrics> {
    let objective_ms = state
        .config
        .load()
        .telemetry
        .p95_objective
        .get()
        .as_secs_f64()
        * 1000.0;
    let latest = state.telemetry.latest();
    let (host, services) = match &latest {
        Some(latest) => inputs(latest, objective_ms),
        None => (HostInput::default(), Vec::new()),
    };
    let HealthScore {
        score,
        parts,
        alerts,
    } = health_score(
        &host,
        &services,
        state.config.load().telemetry.warn_error_rate,
    );
    let metrics_summary = latest.as_ref().map(|latest| MetricsSummary {
        cpu_percent: host.cpu_percent,
        memory_percent: host.memory_percent,
        load1: latest.host.load1,
        fullest_filesystem: host.fullest_filesystem.clone(),
        services: services
            .iter()
            .map(|s| ServiceSummary {
                service: s.service.clone(),
                requests_last_minute: s.requests,
                error_rate_percent: s.error_rate_percent,
                p95_ms: s.p95_ms,
                p95_objective_ms: s.p95_objective_ms,
                routable_instances: s.routable_instances,
                instances: s.instances,
                down_instances: s.down_instances,
            })
            .collect(),
        collected_at: latest.at.as_millis(),
    });
    Json(HealthMetrics {
        health_score: score,
        active_alerts: alerts.len(),
        critical_alerts: alerts
            .iter()
            .filter(|a| a.severity == rampart_core::health_score::Severity::Critical)
            .count(),
        metrics_summary,
        score_parts: parts,
        alerts,
    })
}
