//! `freeze_deploys` and `lock_down`: holds on the rest of rampart that the incident
//! keeps until it resolves.

use std::time::Duration;

use rampart_store::{NewAuditEvent, Role};
use serde_json::json;

use super::{Context, Done, Undo};
use crate::shared::SYSTEM_ACTOR;

/// Tokens younger than this are revoked by `lock_down` unless the action says.
const DEFAULT_REVOKE_WITHIN: Duration = Duration::from_secs(15 * 60);

pub(super) fn freeze(cx: &Context<'_>) -> Done {
    let id = &cx.incident.id;
    let guards = cx.engine.safeguards();
    for service in &cx.services {
        guards.freeze(service, id);
    }
    Done {
        summary: format!("deploys frozen for {}", cx.services.join(", ")),
        details: json!({ "frozen": cx.services }),
        undo: vec![Undo::Unfreeze],
    }
}

pub(super) async fn lock_down(cx: &Context<'_>) -> Result<Done, String> {
    cx.engine.safeguards().lock_down(&cx.incident.id);
    let within = cx
        .action
        .revoke_tokens_created_within
        .map_or(DEFAULT_REVOKE_WITHIN, |d| d.get());
    let incident = cx.incident.id.clone();
    let store = cx.engine.shared().store.clone();
    let revoked = store
        .write(move |tx| {
            let since = tx.now() - chrono::Duration::from_std(within).unwrap_or_default();
            let mut revoked = Vec::new();
            for token in tx.list_tokens()? {
                if token.role == Role::Admin || !token.is_active() || token.created_at < since {
                    continue;
                }
                tx.revoke_token(&token.id.to_string())?;
                tx.append_audit(&NewAuditEvent {
                    actor: SYSTEM_ACTOR.into(),
                    action: "token.revoke".into(),
                    subject: format!("token/{}", token.name),
                    details: json!({ "reason": format!("lock_down by incident {incident}") }),
                })?;
                revoked.push(token.name);
            }
            Ok(revoked)
        })
        .await
        .map_err(|e| format!("revoking recent tokens: {e}"))?;
    Ok(Done {
        summary: format!(
            "API read-only below admin; {} recent token(s) revoked",
            revoked.len()
        ),
        details: json!({ "read_only": true, "revoked_tokens": revoked, "created_within_secs": within.as_secs() }),
        undo: vec![Undo::LiftLockdown],
    })
}
