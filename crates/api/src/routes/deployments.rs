//! Deployments and operator actions on a service's rollout.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use rampart_config::UpstreamAddress;
use rampart_engine::{DeployRequest, EngineError, Operation};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use rampart_store::Role;

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownService { .. }
            | EngineError::UnknownDeployment(_)
            | EngineError::UnknownIncident(_) => ApiError::NotFound(e.to_string()),
            EngineError::RolloutInProgress { .. }
            | EngineError::NoActiveRollout { .. }
            | EngineError::Conflict(_)
            | EngineError::Transition(_) => ApiError::Conflict(e.to_string()),
            EngineError::InvalidRequest(_) => ApiError::BadRequest(e.to_string()),
            EngineError::Backend(_) => ApiError::Unavailable(e.to_string()),
            EngineError::ShuttingDown => ApiError::Unavailable(e.to_string()),
            // A weight out of range is the request's fault; anything else the router
            // refuses is rampart's.
            EngineError::Router(rampart_router::RouterError::InvalidWeight(_)) => {
                ApiError::BadRequest(e.to_string())
            }
            EngineError::Router(_)
            | EngineError::Store(_)
            | EngineError::Io(_)
            | EngineError::Internal(_) => {
                tracing::error!(error = %e, "internal error");
                ApiError::Internal(e.to_string())
            }
        }
    }
}

pub(crate) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(ApiError::from)
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| ApiError::Internal(format!("cannot encode the response: {e}")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// The version to roll out, e.g. "v2".
    pub version: String,
    /// Static backend: where the new version runs, e.g. ["127.0.0.1:9003"] or
    /// ["v2.internal:9003"] (host names are resolved at the deploy).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub canary: Vec<UpstreamAddress>,
    /// Process backend: extra environment for the new version's instances.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Why; recorded in the audit log.
    pub reason: Option<String>,
    /// Deploy although an incident froze deploys to the service (admin tokens only;
    /// audited).
    #[serde(default)]
    pub override_freeze: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why; recorded in the audit log.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many (default 50, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn limit(params: &ListParams) -> Result<u32, ApiError> {
    match params.limit.unwrap_or(50) {
        0 | 1001.. => Err(ApiError::BadRequest(
            "query parameter `limit` must be 1 to 1000".into(),
        )),
        n => Ok(n),
    }
}

/// Starts a rollout: validation, canary steps judged on live traffic, then promotion
/// or rollback. Refused while another rollout of the service is in flight.
#[utoipa::path(post, path = "/api/v1/services/{name}/deployments", tag = "deployments",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name")),
    request_body = DeployBody,
    responses((status = 201, description = "the deployment, as started", body = Object),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json")))]
pub async fn create_deployment(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Json<DeployBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_body(body)?;
    if body.override_freeze && principal.role < Role::Admin {
        return Err(ApiError::Forbidden(format!(
            "token `{}` has role {}, but `override_freeze` needs role admin",
            principal.token_name, principal.role
        )));
    }
    let summary = state
        .engine
        .deploy(
            &name,
            DeployRequest {
                version: body.version,
                canary: body.canary,
                env: body.env,
                reason: body.reason,
                override_freeze: body.override_freeze,
            },
            &principal.token_name,
        )
        .await?;
    Ok((StatusCode::CREATED, to_json(&summary)?))
}

/// The service's deployments, newest first.
#[utoipa::path(get, path = "/api/v1/services/{name}/deployments", tag = "deployments",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name"), ListParams),
    responses((status = 200, description = "deployment summaries, newest first", body = Vec<Object>),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_service_deployments(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    to_json(
        &state
            .engine
            .deployments(Some(&name), limit(&params)?)
            .await?,
    )
}

/// All deployments, newest first.
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments",
    security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, description = "deployment summaries, newest first", body = Vec<Object>)))]
pub async fn list_deployments(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    to_json(&state.engine.deployments(None, limit(&params)?).await?)
}

/// One deployment in full: the rollout with its steps and every transition, its
/// analysis in brief (measurements counted by outcome, the latest in full; the list
/// is paged at `/api/v1/deployments/{id}/measurements`), the events and the
/// validation result.
/// Below the operator role, per-deploy environment values are hidden (names only).
#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "deployment id")),
    responses((status = 200, body = Object),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_deployment(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut detail = state.engine.deployment(&id).await?;
    if principal.role < Role::Operator {
        // Per-deploy environment values are often secrets: viewers see the names.
        for env in [&mut detail.record.env, &mut detail.record.previous_env] {
            env.values_mut()
                .for_each(|value| *value = REDACTED_ENV_VALUE.to_string());
        }
    }
    to_json(&detail)
}

/// What a viewer sees in place of each per-deploy environment value.
pub const REDACTED_ENV_VALUE: &str = "(hidden: needs the operator role)";

/// The per-second samples the judge saw in this deployment, one `WindowSample` per
/// line (JSON lines, what `judge-bench --replay` reads): requests, errors and a
/// latency histogram per set.
#[utoipa::path(get, path = "/api/v1/deployments/{id}/samples", tag = "deployments",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "deployment id")),
    responses((status = 200, body = String, content_type = "application/x-ndjson"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_deployment_samples(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let text = state.engine.deployment_samples(&id).await?;
    Ok(([(http::header::CONTENT_TYPE, "application/x-ndjson")], text).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MeasurementParams {
    /// Skip this many measurements, oldest first (default 0).
    pub offset: Option<u64>,
    /// At most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A deployment's analysis measurements, oldest first, a page at a time: each is one
/// judge verdict with its numbers, and its 1-based step. `total` counts them all;
/// ask for the next page with `offset` = `offset` + `limit` while it is below `total`.
#[utoipa::path(get, path = "/api/v1/deployments/{id}/measurements", tag = "deployments",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "deployment id"), MeasurementParams),
    responses((status = 200, description = "total, offset, limit and items", body = Object),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_measurements(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<MeasurementParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = match params.limit.unwrap_or(100) {
        0 | 1001.. => {
            return Err(ApiError::BadRequest(
                "query parameter `limit` must be 1 to 1000".into(),
            ));
        }
        n => n,
    };
    to_json(
        &state
            .engine
            .measurements(&id, params.offset.unwrap_or(0), limit)
            .await?,
    )
}

/// Where the service stands: stable version, the rollout in flight with its latest
/// verdict, live numbers per set, and the traffic split.
#[utoipa::path(get, path = "/api/v1/services/{name}/status", tag = "deployments",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name")),
    responses((status = 200, body = Object),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn service_status(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    to_json(&state.engine.status(&name).await?)
}

async fn operate(
    state: AppState,
    principal: Principal,
    name: String,
    operation: Operation,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    // The body is optional: no body (or `{}`) means no reason given.
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<ReasonBody>(&body)
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "invalid request body: {e}; send {{\"reason\": \"...\"}} or nothing"
                ))
            })?
            .reason
    };
    let summary = state
        .engine
        .operate(&name, operation, &principal.token_name, reason)
        .await?;
    to_json(&summary)
}

macro_rules! operation_route {
    ($fn_name:ident, $path:literal, $op:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "deployments",
            security(("bearer" = [])),
            params(("name" = String, Path, description = "service name")),
            request_body(content = ReasonBody, description = "optional reason", content_type = "application/json"),
            responses((status = 200, description = "the deployment acted on", body = Object),
                      (status = 404, body = Problem, content_type = "application/problem+json"),
                      (status = 409, body = Problem, content_type = "application/problem+json")))]
        pub async fn $fn_name(
            State(state): State<AppState>,
            Extension(principal): Extension<Principal>,
            Path(name): Path<String>,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Json<Value>, ApiError> {
            operate(state, principal, name, $op, body).await
        }
    };
}

operation_route!(
    promote,
    "/api/v1/services/{name}/promote",
    Operation::Promote,
    "Skips the remaining steps and promotes the canary; for blue-green, switches all traffic to the preview's version."
);
operation_route!(
    pause,
    "/api/v1/services/{name}/pause",
    Operation::Pause,
    "Holds the rollout at its current step and weight; analysis keeps running."
);
operation_route!(
    resume,
    "/api/v1/services/{name}/resume",
    Operation::Resume,
    "Resumes a paused rollout with a fresh hold."
);
operation_route!(
    abort,
    "/api/v1/services/{name}/abort",
    Operation::Abort,
    "Rolls the canary back and ends the rollout as aborted."
);
operation_route!(
    rollback,
    "/api/v1/services/{name}/rollback",
    Operation::Rollback,
    "Emergency rollback: during a rollout, canary weight 0 at once; after a promotion, back to the previous version."
);

/// Runs the service's validation checks alone, without deploying.
#[utoipa::path(post, path = "/api/v1/services/{name}/validate", tag = "deployments",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name")),
    responses((status = 200, description = "passed, failed, warnings, can_deploy, execution_time_ms", body = Object),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn validate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let result = state.engine.validate(&name, &principal.token_name).await?;
    to_json(&result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rampart_s_own_failures_are_500_and_the_request_s_are_400() {
        let status = |e: EngineError| ApiError::from(e).status();
        assert_eq!(
            status(EngineError::Internal("broken invariant".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(EngineError::Store(rampart_store::StoreError::Corrupt(
                "x".into()
            ))),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(EngineError::Router(
                rampart_router::RouterError::DuplicateService("web".into())
            )),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(EngineError::Router(
                rampart_router::RouterError::InvalidWeight(120.0)
            )),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(EngineError::InvalidRequest("bad version".into())),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn body_rejections_keep_their_status() {
        let status = |code| ApiError::from_body_rejection(code, "x".into()).status();
        assert_eq!(
            status(StatusCode::PAYLOAD_TOO_LARGE),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            status(StatusCode::UNPROCESSABLE_ENTITY),
            StatusCode::BAD_REQUEST
        );
    }
}
