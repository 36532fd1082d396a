//! `scale_up` and `emergency_scale_up`: more stable instances through the engine's
//! one owner of instance counts ([`Engine::scale`]), so the autoscaler, promotion
//! and rollback never fight over them. With autoscaling on, the new size holds as
//! the service's minimum for a while (the autoscaler may go higher, never lower) and
//! is clamped to the autoscaler's `max`; the action's own `max` caps it too.
//!
//! Not undone on resolve: once the incident is over, the autoscaler's scale-down
//! (with its stabilisation) brings the size back as the load allows, which is safer
//! than dropping capacity the moment an error rate dips.

use serde_json::json;

use rampart_config::ActionKind;

use super::{Context, Done};
use crate::scaling::ScaleRequest;

/// `scale_up` adds this many instances unless `by` or `factor` says otherwise.
const DEFAULT_ADD: u32 = 2;
/// `emergency_scale_up` multiplies the instances by this unless told otherwise.
const DEFAULT_EMERGENCY_FACTOR: f64 = 2.0;
/// How long the raised size holds as the autoscaler's minimum.
const HOLD_SECS: u64 = 30 * 60;

pub(super) async fn scale_up(cx: &Context<'_>) -> Result<Done, String> {
    let action = cx.action;
    let mut scaled = Vec::new();
    let mut failures = Vec::new();
    for service in &cx.services {
        let view = cx
            .engine
            .scaling(service, 1)
            .await
            .map_err(|e| format!("{service}: {e}"))?;
        let current = view.stable.instances.max(1);
        let wanted = match (action.by, action.factor, action.kind) {
            (Some(by), _, _) => current.saturating_add(by),
            (None, Some(factor), _) => (f64::from(current) * factor).ceil() as u32,
            (None, None, ActionKind::EmergencyScaleUp) => {
                (f64::from(current) * DEFAULT_EMERGENCY_FACTOR).ceil() as u32
            }
            (None, None, _) => current.saturating_add(DEFAULT_ADD),
        };
        let target = action.max.map_or(wanted, |max| wanted.min(max));
        if target <= current {
            scaled.push(json!({
                "service": service,
                "from": current,
                "to": current,
                "status": "unchanged",
                "reason": format!("already at {current}, the action's max"),
            }));
            continue;
        }
        let request = ScaleRequest {
            instances: Some(target),
            hold_secs: Some(HOLD_SECS),
            reason: Some(format!(
                "incident {} ({})",
                cx.incident.id,
                action.kind.as_str()
            )),
            actor: format!("incident:{}", cx.incident.id),
            ..ScaleRequest::default()
        };
        match cx.engine.scale(service, request).await {
            Ok(record) if record.status != "failed" => scaled.push(json!({
                "service": service,
                "from": record.from,
                "to": record.to,
                "status": record.status,
                "reason": record.reason,
            })),
            Ok(record) => failures.push(format!(
                "{service}: {}",
                record.error.unwrap_or_else(|| "the resize failed".into())
            )),
            Err(e) => failures.push(format!("{service}: {e}")),
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    let summary = scaled
        .iter()
        .map(|s| {
            format!(
                "{} {} → {}",
                s["service"].as_str().unwrap_or("?"),
                s["from"],
                s["to"]
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Done {
        summary: format!("scaled up {summary}"),
        details: json!({ "scaled": scaled }),
        undo: Vec::new(),
    })
}
