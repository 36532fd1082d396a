//! `POST /api/v1/services/{name}/approve`: a named approval of a rollout step
//! (`approve = "release-manager"` in the step).
//!
//! Who may approve (docs/ROLLOUTS.md, "Approvals"): a token whose name is the
//! approval's name, or starts with it and a dot (`release-manager.alice`, one token
//! per person of the group); or, when the name is a role (`viewer`, `operator`,
//! `admin`), a token with that role or a higher one. Any role may call the route, so
//! an approver needs no right to deploy; a token that does not match gets a 403.
//! Every approval is audited with its actor (and refusals too).

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use rampart_store::{NewAuditEvent, Role};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::problem::{ApiError, Problem};
use crate::routes::deployments::to_json;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The step to approve, 1-based; default: the rollout's current step. A later
    /// step may be approved ahead of time.
    pub step: Option<usize>,
    /// Why; recorded in the audit log.
    pub reason: Option<String>,
}

/// Whether a token called `token` with `role` may give the approval `needed`.
pub fn may_approve(token: &str, role: Role, needed: &str) -> bool {
    let by_name = token == needed
        || token
            .strip_prefix(needed)
            .is_some_and(|rest| rest.starts_with('.'));
    let by_role = Role::from_str(needed).is_ok_and(|needed_role| role >= needed_role);
    by_name || by_role
}

/// Approves a step of the service's rollout in flight that needs a named approval.
#[utoipa::path(post, path = "/api/v1/services/{name}/approve", tag = "deployments",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "service name")),
    request_body(content = ApproveBody, description = "optional step (1-based) and reason", content_type = "application/json"),
    responses((status = 200, description = "the deployment, approved", body = Object),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "the token's name and role do not match the approval the step needs", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "no rollout, no approval needed at that step, already approved or passed", body = Problem, content_type = "application/problem+json")))]
pub async fn approve(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    // The body is optional: no body (or `{}`) approves the current step.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        serde_json::from_slice::<ApproveBody>(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                "invalid request body: {e}; send {{\"step\": 2, \"reason\": \"...\"}} or nothing"
            ))
        })?
    };
    let step = match body.step {
        Some(0) => {
            return Err(ApiError::BadRequest(
                "`step` is 1-based: the first step is 1".into(),
            ));
        }
        step => step.map(|s| s - 1),
    };
    let needed = state.engine.approval_needed(&name, step)?;
    let subject = format!("service/{name}/deployment/{}", needed.deployment_id);
    if !may_approve(&principal.token_name, principal.role, &needed.name) {
        let message = format!(
            "token `{}` (role {}) cannot approve step {} of {name}'s rollout: it needs approval by {needed_name}, given by a token named `{needed_name}` or `{needed_name}.<person>`{role_hint}",
            principal.token_name,
            principal.role,
            needed.step + 1,
            needed_name = needed.name,
            role_hint = if Role::from_str(&needed.name).is_ok() {
                format!(", or any token with role {} or higher", needed.name)
            } else {
                String::new()
            },
        );
        let audit = NewAuditEvent {
            actor: principal.token_name.clone(),
            action: "deployment.approval_refused".into(),
            subject,
            details: json!({ "step": needed.step + 1, "needs": needed.name, "reason": message }),
        };
        if let Err(e) = state
            .store
            .write(move |tx| tx.append_audit(&audit).map(|_| ()))
            .await
        {
            tracing::error!(error = %e, "cannot audit a refused approval");
        }
        return Err(ApiError::Forbidden(message));
    }
    let summary = state
        .engine
        .approve(&name, needed.step, &principal.token_name, body.reason)
        .await?;
    to_json(&summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_approves_by_its_name_its_group_or_its_role() {
        assert!(may_approve(
            "release-manager",
            Role::Viewer,
            "release-manager"
        ));
        assert!(may_approve(
            "release-manager.alice",
            Role::Viewer,
            "release-manager"
        ));
        assert!(!may_approve(
            "release-managers",
            Role::Admin,
            "release-manager"
        ));
        assert!(!may_approve("ci", Role::Operator, "release-manager"));
        assert!(may_approve("ci", Role::Admin, "operator"));
        assert!(may_approve("ci", Role::Operator, "operator"));
        assert!(!may_approve("ci", Role::Viewer, "operator"));
        assert!(!may_approve("ci", Role::Operator, "admin"));
    }
}
