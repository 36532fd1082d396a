//! `rollback`: the service's rollout in flight, or the last promotion while it is
//! within the action's window.

use rampart_core::rollout::Phase;
use serde_json::json;

use super::{Context, Done};
use crate::engine::Operation;
use crate::error::EngineError;
use crate::shared::SYSTEM_ACTOR;

pub(super) async fn rollback(cx: &Context<'_>) -> Result<Done, String> {
    let mut done = Vec::new();
    for service in &cx.services {
        let Some(svc) = cx.engine.runtime(service) else {
            continue;
        };
        let (in_flight, promoted_ago) = {
            let state = svc.lock();
            let in_flight = state.active.is_some();
            let now = cx.engine.shared().clock.now();
            let promoted_ago = state.last_record.as_ref().and_then(|r| {
                (r.rollout.phase == Phase::Succeeded)
                    .then(|| r.rollout.history.last().map(|t| now.since(t.at)))
                    .flatten()
            });
            (in_flight, promoted_ago)
        };
        if !in_flight {
            match promoted_ago {
                Some(ago) if ago <= cx.action.window.get() => {}
                Some(ago) => {
                    return Err(format!(
                        "`{service}` has no rollout in flight and its last promotion was {}s ago, beyond the action's window of {}",
                        ago.as_secs(),
                        cx.action.window
                    ));
                }
                None => {
                    return Err(format!(
                        "`{service}` has no rollout in flight and no promotion to roll back"
                    ));
                }
            }
        }
        let reason = format!(
            "incident {} ({}): {}",
            cx.incident.id,
            cx.incident.rule.as_deref().unwrap_or("-"),
            cx.incident.title
        );
        let summary = cx
            .engine
            .operate(service, Operation::Rollback, SYSTEM_ACTOR, Some(reason))
            .await
            .map_err(|e: EngineError| format!("{service}: {e}"))?;
        done.push(json!({ "service": service, "deployment": summary.id, "kind": if in_flight { "rollout" } else { "promotion" } }));
    }
    if done.is_empty() {
        return Err("no service to roll back".into());
    }
    Ok(Done {
        summary: format!("rolled back {}", cx.services.join(", ")),
        details: json!({ "rolled_back": done }),
        undo: Vec::new(),
    })
}
