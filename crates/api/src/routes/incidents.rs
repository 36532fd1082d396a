//! Incidents: the list (by state, service, severity), one with its timeline, and
//! the operator's acknowledge, escalate and resolve.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use rampart_store::IncidentQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::problem::{ApiError, Problem};
use crate::routes::deployments::{ReasonBody, to_json};
use crate::state::AppState;

const STATES: [&str; 3] = ["open", "acknowledged", "resolved"];

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    /// `open`, `acknowledged`, `resolved`, or `unresolved` (open or acknowledged).
    pub state: Option<String>,
    pub service: Option<String>,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: Option<String>,
    /// At most this many, newest first (default 50, at most 1000).
    pub limit: Option<u32>,
}

/// An incident as listed. (The document's shape; the handlers return the store's.)
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct IncidentSchema {
    id: String,
    /// The rule that opened it; null for one a rolled-back rollout opened.
    rule: Option<String>,
    /// Null for a host-wide or security incident.
    service: Option<String>,
    /// open | acknowledged | resolved
    status: String,
    /// critical | high | medium | low
    severity: String,
    title: String,
    opened_at: String,
    updated_at: String,
    acknowledged_at: Option<String>,
    escalated_at: Option<String>,
    escalations: u32,
    closed_at: Option<String>,
    /// How often the condition came back while it was open.
    repeats: u32,
    last_seen_at: Option<String>,
    /// Reason, condition, observations.
    #[schema(value_type = Object)]
    details: (),
}

/// One entry of an incident's timeline.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct IncidentEventSchema {
    id: i64,
    incident_id: String,
    at: String,
    /// opened | repeated | acknowledged | escalated | resolved | action | notification
    kind: String,
    actor: String,
    #[schema(value_type = Object)]
    details: (),
}

/// An incident with its timeline, oldest event first: the incident's own fields at
/// the top level (the engine's `IncidentDetail` flattens it), then `timeline`.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct IncidentDetailSchema {
    #[serde(flatten)]
    incident: IncidentSchema,
    timeline: Vec<IncidentEventSchema>,
}

fn query(params: IncidentParams) -> Result<IncidentQuery, ApiError> {
    let mut query = IncidentQuery {
        service: params.service,
        limit: match params.limit.unwrap_or(50) {
            0 | 1001.. => {
                return Err(ApiError::BadRequest(
                    "query parameter `limit` must be 1 to 1000".into(),
                ));
            }
            n => n,
        },
        ..IncidentQuery::default()
    };
    match params.state.as_deref() {
        None => {}
        Some("unresolved") => query.unresolved = true,
        Some(state) if STATES.contains(&state) => query.status = Some(state.to_string()),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "query parameter `state` is `{other}`; use open, acknowledged, resolved or unresolved"
            )));
        }
    }
    if let Some(severity) = params.severity {
        if rampart_core::notify::Severity::parse(&severity).is_none() {
            return Err(ApiError::BadRequest(format!(
                "query parameter `severity` is `{severity}`; use critical, high, medium or low"
            )));
        }
        query.severity = Some(severity);
    }
    Ok(query)
}

/// Incidents, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents",
    security(("bearer" = [])),
    params(IncidentParams),
    responses((status = 200, body = Vec<IncidentSchema>),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_incidents(
    State(state): State<AppState>,
    Query(params): Query<IncidentParams>,
) -> Result<Json<Value>, ApiError> {
    to_json(&state.incidents.list(query(params)?).await?)
}

/// One incident with its timeline: every change, action (with its result and
/// timing) and notification.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "incident id")),
    responses((status = 200, body = IncidentDetailSchema),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_incident(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    to_json(&state.incidents.get(&id).await?)
}

fn reason(body: Result<Bytes, BytesRejection>) -> Result<Option<String>, ApiError> {
    let body = body?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(serde_json::from_slice::<ReasonBody>(&body)
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "invalid request body: {e}; send {{\"reason\": \"...\"}} or nothing"
            ))
        })?
        .reason)
}

macro_rules! incident_action {
    ($fn_name:ident, $path:literal, $method:ident, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "incidents",
            security(("bearer" = [])),
            params(("id" = String, Path, description = "incident id")),
            request_body(content = ReasonBody, description = "optional reason", content_type = "application/json"),
            responses((status = 200, description = "the incident as it is now", body = IncidentSchema),
                      (status = 404, body = Problem, content_type = "application/problem+json"),
                      (status = 409, body = Problem, content_type = "application/problem+json")))]
        pub async fn $fn_name(
            State(state): State<AppState>,
            Extension(principal): Extension<Principal>,
            Path(id): Path<String>,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Json<Value>, ApiError> {
            let reason = reason(body)?;
            to_json(&state.incidents.$method(&id, &principal.token_name, reason).await?)
        }
    };
}

incident_action!(
    acknowledge,
    "/api/v1/incidents/{id}/acknowledge",
    acknowledge,
    "Acknowledges an open incident: someone is on it; escalation stops."
);
incident_action!(
    escalate,
    "/api/v1/incidents/{id}/escalate",
    escalate,
    "Escalates an unresolved incident now (its notifiers are told)."
);
incident_action!(
    resolve,
    "/api/v1/incidents/{id}/resolve",
    resolve,
    "Resolves an incident by hand; its actions are undone where that makes sense. If the condition still holds, a new incident opens."
);
