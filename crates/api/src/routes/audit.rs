//! The audit log: list and verify.

use axum::Json;
use axum::extract::{Query, State};
use rampart_store::{AuditEntry, AuditQuery, AuditVerification};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries with a sequence number above this.
    pub after_seq: Option<u64>,
    /// Only entries with a sequence number below this (with `order=desc`: the
    /// next, older page).
    pub before_seq: Option<u64>,
    /// At most this many entries (default 100, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    pub subject: Option<String>,
    pub action: Option<String>,
    /// `asc` (default) or `desc`.
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        AuditEntryView {
            seq: e.seq,
            at: e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actor: e.actor,
            action: e.action,
            subject: e.subject,
            details: e.details,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditVerificationView {
    pub ok: bool,
    pub entries_checked: u64,
    /// The first entry that does not verify.
    pub first_bad_seq: Option<u64>,
    pub problem: Option<String>,
    pub head_hash: Option<String>,
}

impl From<AuditVerification> for AuditVerificationView {
    fn from(v: AuditVerification) -> Self {
        AuditVerificationView {
            ok: v.ok,
            entries_checked: v.entries_checked,
            first_bad_seq: v.first_bad_seq,
            problem: v.problem,
            head_hash: v.head_hash,
        }
    }
}

/// Audit entries, oldest first unless `order=desc`.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    security(("bearer" = [])),
    params(AuditParams),
    responses((status = 200, body = Vec<AuditEntryView>),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_audit(
    State(state): State<AppState>,
    Query(params): Query<AuditParams>,
) -> Result<Json<Vec<AuditEntryView>>, ApiError> {
    let newest_first = match params.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "query parameter `order` is `{other}`; use `asc` or `desc`"
            )));
        }
    };
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::BadRequest(format!(
            "query parameter `limit` is {limit}; use 1 to 10000"
        )));
    }
    let query = AuditQuery {
        after_seq: params.after_seq,
        before_seq: params.before_seq,
        limit,
        subject: params.subject,
        action: params.action,
        newest_first,
    };
    let entries = state.store.read(move |tx| tx.list_audit(&query)).await?;
    Ok(Json(
        entries.into_iter().map(AuditEntryView::from).collect(),
    ))
}

/// Recomputes the hash chain and names the first entry that does not verify.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    security(("bearer" = [])),
    responses((status = 200, body = AuditVerificationView)))]
pub async fn verify_audit(
    State(state): State<AppState>,
) -> Result<Json<AuditVerificationView>, ApiError> {
    // On a read connection's snapshot: commits go on meanwhile.
    let verification = state.store.scan(|tx| tx.verify_audit()).await?;
    Ok(Json(verification.into()))
}
