//! The configured services.

use axum::Json;
use axum::extract::{Path, State};
use rampart_config::{BackendConfig, JudgeKind, ServiceConfig};
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// Percent of traffic to the canary.
    pub weight: f64,
    /// How long the step holds, e.g. "30s" ("0s" for a step that waits for an operator).
    pub hold: String,
    /// The step waits for `rampart resume` or `rampart promote` (pause = until_promoted).
    pub until_promoted: bool,
    /// The approval (token name or role) the step needs before it is left.
    pub approve: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceView {
    pub name: String,
    /// Where the router takes the service's traffic.
    pub listen: String,
    /// `process` or `static`.
    pub backend: String,
    pub steps: Vec<StepView>,
    /// `sequential` or `threshold`.
    pub judge: String,
    pub analysis_interval: String,
    pub checks: Vec<String>,
}

impl From<&ServiceConfig> for ServiceView {
    fn from(s: &ServiceConfig) -> Self {
        ServiceView {
            name: s.name.clone(),
            listen: s.listen.to_string(),
            backend: match s.backend {
                BackendConfig::Process(_) => "process",
                BackendConfig::Static(_) => "static",
            }
            .into(),
            steps: s
                .strategy
                .steps
                .iter()
                .map(|st| StepView {
                    weight: st.weight,
                    hold: st.hold().to_string(),
                    until_promoted: st.pause.is_some(),
                    approve: st.approve.clone(),
                })
                .collect(),
            judge: match s.analysis.judge {
                JudgeKind::Sequential => "sequential",
                JudgeKind::Threshold => "threshold",
            }
            .into(),
            analysis_interval: s.analysis.interval.to_string(),
            checks: s.checks.iter().map(|c| c.name.clone()).collect(),
        }
    }
}

/// The services rampart is configured to route and deploy.
#[utoipa::path(get, path = "/api/v1/services", tag = "services",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<ServiceView>),
              (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_services(State(state): State<AppState>) -> Json<Vec<ServiceView>> {
    Json(
        state
            .config
            .load()
            .services
            .iter()
            .map(ServiceView::from)
            .collect(),
    )
}

/// One configured service.
#[utoipa::path(get, path = "/api/v1/services/{name}", tag = "services",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name")),
    responses((status = 200, body = ServiceView),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_service(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ServiceView>, ApiError> {
    state
        .config
        .load()
        .services
        .iter()
        .find(|s| s.name == name)
        .map(|s| Json(ServiceView::from(s)))
        .ok_or_else(|| ApiError::NotFound(unknown_service(&state, &name)))
}

pub fn unknown_service(state: &AppState, name: &str) -> String {
    let config = state.config.load();
    let known: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    if known.is_empty() {
        format!("no service named `{name}`: no services are configured")
    } else {
        format!(
            "no service named `{name}`; configured services: {}",
            known.join(", ")
        )
    }
}
