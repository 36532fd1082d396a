//! Changing a version's size without interrupting a request: new instances join the
//! router once ready (the backend's `Scaled` event, which the stable watcher and the
//! rollout controller follow); leaving instances are taken out of the router first
//! and stopped only after their in-flight requests finished (or `drain_grace` ran
//! out).

use rampart_backends::InstanceState;

use super::SetKind;
use crate::error::EngineError;
use crate::service::ServiceRuntime;

pub(crate) async fn resize(
    svc: &ServiceRuntime,
    set: SetKind,
    version: &str,
    from: u32,
    to: u32,
) -> Result<(), EngineError> {
    if set == SetKind::Stable {
        // Promotion reads this, so a new version starts at the size the load needs.
        svc.sizing.state().stable_target = Some(to);
    }
    if to < from {
        // The process backend stops the highest indices: drain exactly those.
        let instances = svc.backend.instances(version);
        let running: Vec<_> = instances
            .iter()
            .filter(|i| !matches!(i.state, InstanceState::Stopping | InstanceState::Stopped))
            .collect();
        let surplus = running.len().saturating_sub(to as usize);
        let leaving: Vec<_> = running.iter().rev().take(surplus).map(|i| i.addr).collect();
        let table = svc.table();
        let routed: Vec<_> = leaving
            .into_iter()
            .filter(|addr| {
                table.stable.instances.contains(addr)
                    || table
                        .canary
                        .as_ref()
                        .is_some_and(|c| c.instances.contains(addr))
            })
            .collect();
        if !routed.is_empty() {
            // Through the service's one routing writer, like every other change.
            let removed = svc.route(|table| {
                table.stable.instances.retain(|a| !routed.contains(a));
                if let Some(canary) = table.canary.as_mut() {
                    canary.instances.retain(|a| !routed.contains(a));
                }
            })?;
            for addr in removed {
                let report = svc.router.wait_drained(addr).await?;
                tracing::debug!(%addr, ?report, "drained before scale-down");
            }
        }
    }
    svc.backend.scale(version, to).await?;
    Ok(())
}
