//! What the dashboard asks the API that nothing else did: who the caller is, and
//! every service's status in one call.

use axum::extract::State;
use axum::{Extension, Json};
use rampart_store::Role;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::problem::ApiError;
use crate::routes::deployments::to_json;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// The token's name (the actor in the audit log).
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// May deploy, promote, pause, resume, abort, roll back and set traffic.
    pub can_operate: bool,
    /// May manage tokens.
    pub can_admin: bool,
}

/// The caller's token name and role, and what the role allows: for clients that
/// adapt to it (the dashboard hides actions a viewer cannot take; the API refuses
/// them regardless).
#[utoipa::path(get, path = "/api/v1/whoami", tag = "meta",
    security(("bearer" = [])),
    responses((status = 200, body = WhoAmI)))]
pub async fn whoami(Extension(principal): Extension<Principal>) -> Json<WhoAmI> {
    Json(WhoAmI {
        name: principal.token_name,
        role: principal.role.as_str().into(),
        // Changes other than token management need the operator role (see auth.rs).
        can_operate: principal.role >= Role::Operator,
        can_admin: principal.role >= Role::Admin,
    })
}

/// Every configured service's status (as `GET /api/v1/services/{name}/status`),
/// in configuration order: the dashboard's overview in one request.
#[utoipa::path(get, path = "/api/v1/status", tag = "deployments",
    security(("bearer" = [])),
    responses((status = 200, description = "an array of service statuses", body = Vec<Object>)))]
pub async fn all_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let config = state.config.load_full();
    let mut statuses = Vec::with_capacity(config.services.len());
    for service in &config.services {
        // A service a reload removed meanwhile is simply left out.
        match state.engine.status(&service.name).await {
            Ok(status) => statuses.push(status),
            Err(rampart_engine::EngineError::UnknownService { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    to_json(&statuses)
}
