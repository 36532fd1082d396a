//! Liveness, readiness and the detailed health document
//! (`application/health+json`, draft-inadarei-api-health-check).

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;
use crate::store_health::StoreHealthView;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub component_type: String,
    pub status: HealthStatus,
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A part rampart needs in order to serve; readiness fails while any probe fails.
pub trait ReadinessProbe: Send + Sync {
    /// e.g. "store:responsive", "router:listeners".
    fn name(&self) -> String;
    fn check(&self) -> CheckResult;
    /// Whether the check can fail, and so decide readiness. `/health/ready` runs
    /// only those (a check that at worst warns is work a probe need not wait for);
    /// `/health` runs every check.
    fn decides_readiness(&self) -> bool {
        true
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthDocument {
    pub status: HealthStatus,
    pub version: String,
    pub release_id: String,
    pub service_id: String,
    pub description: String,
    pub checks: BTreeMap<String, Vec<CheckResult>>,
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The store's last ping, kept by the background pinger ([`crate::store_health`]):
/// a probe never waits for the store.
fn store_check(state: &AppState) -> CheckResult {
    let (status, took, output) = match state.store_health.view(Instant::now()) {
        StoreHealthView::Answered { took, error: None } => (HealthStatus::Pass, Some(took), None),
        StoreHealthView::Answered {
            took,
            error: Some(error),
        } => (HealthStatus::Fail, Some(took), Some(error)),
        StoreHealthView::NotYetPinged => (
            HealthStatus::Fail,
            None,
            Some("the store has not been pinged yet".to_string()),
        ),
        StoreHealthView::Stale { since } => (
            HealthStatus::Fail,
            None,
            Some(format!(
                "the store has not answered a ping for {:.1} s",
                since.as_secs_f64()
            )),
        ),
    };
    CheckResult {
        component_type: "datastore".into(),
        status,
        time: now_rfc3339(),
        observed_value: took.map(|t| t.as_secs_f64() * 1000.0),
        observed_unit: Some("ms".into()),
        output,
    }
}

/// Every check, or with `readiness_only` the ones that can fail.
fn run_checks(
    state: &AppState,
    readiness_only: bool,
) -> (HealthStatus, BTreeMap<String, Vec<CheckResult>>) {
    let mut checks = BTreeMap::new();
    checks.insert("store:responsive".to_string(), vec![store_check(state)]);
    for probe in state
        .probes
        .load()
        .iter()
        .filter(|p| !readiness_only || p.decides_readiness())
    {
        checks.insert(probe.name(), vec![probe.check()]);
    }
    let worst =
        checks
            .values()
            .flatten()
            .map(|c| c.status)
            .fold(HealthStatus::Pass, |acc, s| match (acc, s) {
                (HealthStatus::Fail, _) | (_, HealthStatus::Fail) => HealthStatus::Fail,
                (HealthStatus::Warn, _) | (_, HealthStatus::Warn) => HealthStatus::Warn,
                _ => HealthStatus::Pass,
            });
    (worst, checks)
}

fn health_json(status: StatusCode, doc: &HealthDocument) -> Response {
    let mut response = (status, Json(doc)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/health+json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn document(
    status: HealthStatus,
    checks: BTreeMap<String, Vec<CheckResult>>,
    description: &str,
) -> HealthDocument {
    HealthDocument {
        status,
        version: "1".into(),
        release_id: env!("CARGO_PKG_VERSION").into(),
        service_id: "rampart".into(),
        description: description.into(),
        checks,
    }
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "alive", body = HealthDocument, content_type = "application/health+json")))]
pub async fn live() -> Response {
    health_json(
        StatusCode::OK,
        &document(HealthStatus::Pass, BTreeMap::new(), "rampart is alive"),
    )
}

/// rampart can do its job: the store answers and every required part is up.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "ready", body = HealthDocument, content_type = "application/health+json"),
        (status = 503, description = "not ready; the failing checks are listed", body = HealthDocument, content_type = "application/health+json")))]
pub async fn ready(State(state): State<AppState>) -> Response {
    // Polled many times a second by load balancers: only what can make rampart
    // unready (the error-rate checks sum a minute of the router's histograms and at
    // worst warn; `/health` shows them).
    let (status, checks) = run_checks(&state, true);
    let failing: BTreeMap<_, _> = checks
        .into_iter()
        .filter(|(_, results)| results.iter().any(|r| r.status == HealthStatus::Fail))
        .collect();
    if status == HealthStatus::Fail {
        health_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &document(HealthStatus::Fail, failing, "rampart is not ready"),
        )
    } else {
        health_json(
            StatusCode::OK,
            &document(status, failing, "rampart is ready"),
        )
    }
}

/// Every check with its details.
#[utoipa::path(get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "pass or warn", body = HealthDocument, content_type = "application/health+json"),
        (status = 503, description = "fail", body = HealthDocument, content_type = "application/health+json")))]
pub async fn health(State(state): State<AppState>) -> Response {
    let (status, checks) = run_checks(&state, false);
    let code = if status == HealthStatus::Fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    health_json(code, &document(status, checks, "rampart health"))
}
