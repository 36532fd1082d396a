//! API token management (admin only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use rampart_store::{Role, StoreError, TokenInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    /// viewer, operator or admin.
    pub role: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl From<TokenInfo> for TokenView {
    fn from(t: TokenInfo) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            role: t.role.to_string(),
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name for the token's holder; it is the actor in the audit log.
    pub name: String,
    /// viewer, operator or admin.
    pub role: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: TokenView,
    /// The secret, shown this once; only its hash is stored.
    pub secret: String,
}

/// All tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenView>),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_tokens(State(state): State<AppState>) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = state.store.read(|tx| tx.list_tokens()).await?;
    Ok(Json(
        state
            .store
            .with_pending_uses(tokens)
            .into_iter()
            .map(TokenView::from)
            .collect(),
    ))
}

pub fn validate_token_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "token name `{name}` is not allowed: use 1 to 64 characters from a-z, A-Z, 0-9, '-', '_', '.', '@'"
        ))
    }
}

/// Creates a token and returns its secret once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens",
    security(("bearer" = [])),
    request_body = CreateToken,
    responses((status = 201, body = CreatedToken),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<CreateToken>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let body = crate::routes::deployments::json_body(body)?;
    validate_token_name(&body.name).map_err(ApiError::BadRequest)?;
    let role: Role = body
        .role
        .parse()
        .map_err(|e: rampart_store::ParseRoleError| ApiError::BadRequest(e.to_string()))?;
    let ((info, secret), _) = state
        .audited(
            &principal,
            "token.create",
            &format!("token/{}", body.name),
            serde_json::json!({ "role": role.to_string() }),
            move |tx| match tx.create_token(&body.name, role) {
                Ok(created) => Ok(created),
                Err(StoreError::TokenNameTaken { name }) => Err(ApiError::Conflict(format!(
                    "a token named `{name}` already exists; pick another name or revoke it first"
                ))),
                Err(e) => Err(e.into()),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: info.into(),
            secret,
        }),
    ))
}

/// Revokes a token by name or id; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "tokens",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "token name or id")),
    responses((status = 200, body = TokenView),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    let (info, _) = state
        .audited(
            &principal,
            "token.revoke",
            &format!("token/{name}"),
            serde_json::json!({}),
            move |tx| match tx.revoke_token(&name) {
                Ok(info) => Ok(info),
                Err(e @ StoreError::NotFound { .. }) => Err(ApiError::NotFound(e.to_string())),
                Err(e) => Err(e.into()),
            },
        )
        .await?;
    Ok(Json(info.into()))
}
