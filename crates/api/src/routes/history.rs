//! A service's revisions and the rollback to one of them (`rampart history`,
//! `rampart rollback --to`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::problem::{ApiError, Problem};
use crate::routes::deployments::{json_body, to_json};
use crate::state::AppState;

/// The versions the service ran, oldest first: revision 0 is the version before its
/// first deployment, then one revision per deployment with when, who and outcome.
#[utoipa::path(get, path = "/api/v1/services/{name}/history", tag = "deployments",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name")),
    responses((status = 200, description = "revisions, oldest first", body = Vec<Object>),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn history(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    to_json(&state.engine.history(&name).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackToBody {
    /// A revision number (`3`) or a version that ran (`v1`).
    pub to: String,
    /// Why; recorded in the audit log.
    pub reason: Option<String>,
}

/// Starts a rollout back to an earlier revision: its version, with the addresses
/// and per-deploy environment it was deployed with, through the steps and the judge.
#[utoipa::path(post, path = "/api/v1/services/{name}/rollback-to", tag = "deployments",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name")),
    request_body(content = RollbackToBody, content_type = "application/json"),
    responses((status = 201, description = "the rollout started", body = Object),
              (status = 400, description = "no such revision or version", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "a rollout in flight, already stable, or the revision cannot be started again", body = Problem, content_type = "application/problem+json")))]
pub async fn rollback_to(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Json<RollbackToBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_body(body)?;
    let summary = state
        .engine
        .rollback_to(&name, body.to.trim(), &principal.token_name, body.reason)
        .await?;
    Ok((StatusCode::CREATED, to_json(&summary)?))
}
