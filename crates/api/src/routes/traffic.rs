//! The traffic split of a service, by hand.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use rampart_config::UpstreamAddress;
use rampart_engine::TrafficChange;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::problem::{ApiError, Problem};
use crate::routes::deployments::{json_body, to_json};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficBody {
    /// Percent of requests to the canary set, 0 to 100 (fractions allowed).
    pub canary_weight: Option<f64>,
    /// Replaces the canary set with these upstreams, e.g. ["127.0.0.1:9003"] or
    /// ["canary.internal:9003"] (host names are resolved now).
    #[schema(value_type = Option<Vec<String>>)]
    pub canary: Option<Vec<UpstreamAddress>>,
    /// Version label of the given canary set.
    pub version: Option<String>,
    /// Requests in flight above this get 503 with `Retry-After`; 0 lifts the limit.
    pub max_concurrency: Option<u32>,
    /// Turn ejection of failing instances on or off.
    pub outlier_detection: Option<bool>,
}

/// The weight, and every instance of each set with its state.
#[utoipa::path(get, path = "/api/v1/services/{name}/traffic", tag = "traffic",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name")),
    responses((status = 200, body = Object),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_traffic(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    to_json(&state.engine.traffic(&name)?)
}

/// Sets the split by hand (refused while a rollout owns it), the concurrency limit
/// and outlier detection (allowed at any time). Audited.
#[utoipa::path(put, path = "/api/v1/services/{name}/traffic", tag = "traffic",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name")),
    request_body = TrafficBody,
    responses((status = 200, body = Object),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn put_traffic(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Json<TrafficBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(body)?;
    let status = state
        .engine
        .set_traffic(
            &name,
            TrafficChange {
                canary_weight: body.canary_weight,
                canary: body.canary,
                version: body.version,
                max_concurrency: body.max_concurrency,
                outlier_detection: body.outlier_detection,
            },
            &principal.token_name,
        )
        .await?;
    to_json(&status)
}
