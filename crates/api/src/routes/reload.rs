//! `POST /api/v1/reload`: re-read the config file and apply what changed, as SIGHUP
//! does (admin; audited by whoever carries it out, see [`Reloader`]).

use std::future::Future;
use std::pin::Pin;

use axum::extract::State;
use axum::{Extension, Json};
use rampart_engine::reload::ReloadSummary;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::problem::{ApiError, Problem};
use crate::routes::deployments::to_json;
use crate::state::AppState;

/// Why a reload changed nothing.
#[derive(Debug, Clone)]
pub enum ReloadFailure {
    /// The file does not validate: the diagnostics `rampart check-config` prints.
    Invalid(String),
    /// It validates but asks for what cannot change while rampart runs.
    Refused(Vec<String>),
    /// Applying it failed (a port taken, an instance that would not start); what
    /// had started for it was stopped again.
    Failed(String),
}

impl From<ReloadFailure> for ApiError {
    fn from(failure: ReloadFailure) -> Self {
        match failure {
            ReloadFailure::Invalid(diagnostics) => ApiError::Unprocessable(format!(
                "the config file is not valid; nothing was changed:\n{diagnostics}"
            )),
            ReloadFailure::Refused(reasons) => ApiError::Conflict(format!(
                "the reload was refused; nothing was changed:\n  - {}",
                reasons.join("\n  - ")
            )),
            ReloadFailure::Failed(error) => {
                ApiError::Conflict(format!("the reload failed; nothing was changed: {error}"))
            }
        }
    }
}

pub type ReloadFuture =
    Pin<Box<dyn Future<Output = Result<ReloadSummary, ReloadFailure>> + Send + 'static>>;

/// Re-reads the config and applies it: `rampart serve` provides it, and its SIGHUP
/// handler calls the same one, so both are validated, applied and audited alike.
pub trait Reloader: Send + Sync {
    fn reload(&self, actor: String) -> ReloadFuture;
}

/// One changed setting.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldChangeDoc {
    /// Its path within the service, e.g. `router.request_timeout`.
    pub field: String,
    #[schema(value_type = Object)]
    pub from: Value,
    #[schema(value_type = Object)]
    pub to: Value,
}

/// A service whose settings changed, and how each change took effect.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangedServiceDoc {
    pub name: String,
    pub fields: Vec<FieldChangeDoc>,
    pub notes: Vec<String>,
}

/// What the reload applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadDoc {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<ChangedServiceDoc>,
    /// False when the file said what rampart already runs.
    pub changes: bool,
}

/// Re-reads the config file, validates it whole, and applies the differences
/// (services added, removed, changed) without a restart; a bad file or a change
/// that needs a restart changes nothing. Admin only; audited as `config.reload`.
#[utoipa::path(post, path = "/api/v1/reload", tag = "server",
    security(("bearer" = [])),
    responses((status = 200, body = ReloadDoc),
              (status = 409, description = "refused (a setting that needs a restart, a rollout in flight) or failed to apply; nothing changed", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "the config file is not valid; the diagnostics are in `detail`", body = Problem, content_type = "application/problem+json")))]
pub async fn reload(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let summary = state.reloader.reload(principal.token_name.clone()).await?;
    to_json(&summary)
}
