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
    /// A name for the token's holder; it is the actor in the audit log. 1 to 64
    /// letters, digits, `-`, `_` and `.`, not all digits.
    #[schema(
        pattern = "^[A-Za-z0-9._-]*[A-Za-z._-][A-Za-z0-9._-]*$",
        min_length = 1,
        max_length = 64
    )]
    pub name: String,
    /// viewer, operator or admin.
    #[schema(pattern = "^(viewer|operator|admin)$")]
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

/// The store's rule for token names, as a message for a 400 problem.
pub fn validate_token_name(name: &str) -> Result<(), String> {
    rampart_store::validate_token_name(name).map_err(|e| {
        format!("{e}; names are 1 to 64 characters, not all digits (those read as token ids)")
    })
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

/// Revokes a token by name or id; it stops working at once. The last active admin
/// token cannot be revoked through the API (nobody could manage tokens afterwards).
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "tokens",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "token name or id")),
    responses((status = 200, body = TokenView),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "the last active admin token", body = Problem, content_type = "application/problem+json")))]
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
            move |tx| {
                refuse_revoking_the_last_admin(tx, &name)?;
                match tx.revoke_token(&name) {
                    Ok(info) => Ok(info),
                    Err(e @ StoreError::NotFound { .. }) => Err(ApiError::NotFound(e.to_string())),
                    Err(e) => Err(e.into()),
                }
            },
        )
        .await?;
    Ok(Json(info.into()))
}

/// Revoking the only active admin token would leave the API with no one able to
/// create or revoke tokens (only `rampart token create` on the server's data dir
/// could repair it), so it is refused; checked in the revoking transaction.
fn refuse_revoking_the_last_admin(
    tx: &rampart_store::Tx,
    name_or_id: &str,
) -> Result<(), ApiError> {
    let Some(target) = tx.get_token(name_or_id)? else {
        return Ok(());
    };
    if target.role != Role::Admin || !target.is_active() {
        return Ok(());
    }
    let other_admins = tx
        .list_tokens()?
        .iter()
        .filter(|t| t.id != target.id && t.role == Role::Admin && t.is_active())
        .count();
    if other_admins == 0 {
        return Err(ApiError::Conflict(format!(
            "`{}` is the last active admin token; create another admin token first, then revoke this one",
            target.name
        )));
    }
    Ok(())
}
