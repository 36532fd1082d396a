//! A service's size: the autoscaler's decisions, an operator's scale, and what the
//! last day suggests.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use rampart_engine::ScaleRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::problem::{ApiError, Problem};
use crate::routes::deployments::{json_body, to_json};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ScalingQuery {
    /// Most recent decisions to return (default 50, at most 1000).
    pub limit: Option<u32>,
}

/// One decision: the set and version it sized, the change, who, why, and the numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScalingDecisionDoc {
    pub id: Option<i64>,
    pub service: String,
    /// `stable` or `canary`.
    pub set: String,
    pub version: String,
    /// RFC 3339.
    pub at: Option<String>,
    pub from: u32,
    pub to: u32,
    /// `applied`, `unchanged` or `failed`.
    pub status: String,
    pub actor: String,
    pub reason: String,
    pub error: Option<String>,
    /// current, ready, metrics[] ({metric, target, observed, ratio, adjusted_ratio,
    /// proposal, counted, not_ready, missing, note}), recommendation, forecast,
    /// stabilized, desired, bounds, limited_by, cost, reason.
    #[schema(value_type = Object)]
    pub decision: Value,
    /// {instances, until (ms), actor}: the operator's minimum in force then.
    #[schema(value_type = Option<Object>)]
    pub operator_floor: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetSizeDoc {
    pub version: String,
    pub instances: u32,
    pub ready: u32,
}

/// Current size, limits and recent decisions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScalingDoc {
    pub service: String,
    pub autoscaled: bool,
    /// `reactive`, `predictive` or `forecast_only`.
    pub mode: Option<String>,
    pub stable: SetSizeDoc,
    pub canary: Option<SetSizeDoc>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    /// Instances `max_cost_per_hour` pays for.
    pub budget_max: Option<u32>,
    /// {instances, until (ms), actor} while an operator's minimum holds.
    #[schema(value_type = Option<Object>)]
    pub operator_floor: Option<Value>,
    pub sync_secs: Option<f64>,
    pub decisions: Vec<ScalingDecisionDoc>,
}

/// Exactly one of `instances`, `add` and `factor`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleBody {
    /// This many stable instances.
    pub instances: Option<u32>,
    /// This many more than now.
    pub add: Option<u32>,
    /// Now × factor, rounded up.
    pub factor: Option<f64>,
    /// With autoscaling on: the size holds as `min` this long, e.g. "30m" (default 30m, at most 7 days).
    #[serde(rename = "for")]
    pub hold: Option<String>,
    pub reason: Option<String>,
}

/// Something the last 24 h of data suggests, with the evidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationDoc {
    pub service: String,
    /// `min_too_high`, `min_too_low`, `flapping_target` or `restarting_instances`.
    pub kind: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub evidence: Value,
}

/// The service's size, limits and its recent scaling decisions, newest first.
#[utoipa::path(get, path = "/api/v1/services/{name}/scaling", tag = "scaling",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name"), ScalingQuery),
    responses((status = 200, body = ScalingDoc),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_scaling(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ScalingQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    to_json(&state.engine.scaling(&name, limit).await?)
}

/// Sets the stable size by hand (operator). With autoscaling on, the size becomes
/// the minimum for `for` and the autoscaler acts at once. Audited.
#[utoipa::path(post, path = "/api/v1/services/{name}/scale", tag = "scaling",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name")),
    request_body = ScaleBody,
    responses((status = 200, body = ScalingDecisionDoc),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn post_scale(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Json<ScaleBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(body)?;
    let hold_secs = match &body.hold {
        None => None,
        Some(text) => Some(
            humantime::parse_duration(text)
                .map_err(|e| {
                    ApiError::BadRequest(format!(
                        "`for`: `{text}` is not a duration ({e}); write e.g. \"30m\" or \"2h\""
                    ))
                })?
                .as_secs(),
        ),
    };
    let record = state
        .engine
        .scale(
            &name,
            ScaleRequest {
                instances: body.instances,
                add: body.add,
                factor: body.factor,
                hold_secs,
                reason: body.reason,
                actor: principal.token_name.clone(),
            },
        )
        .await?;
    to_json(&record)
}

/// What the last 24 h suggest for every service, with evidence.
#[utoipa::path(get, path = "/api/v1/recommendations", tag = "scaling",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<RecommendationDoc>)))]
pub async fn get_recommendations(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    to_json(&state.engine.recommendations().await?)
}
