//! Each tick, the routing table and the canary's instances are compared with what the
//! committed phase wants, and the difference is repaired: a weight the router refused,
//! a canary set lost or out of date, a stable set that names the wrong version, a
//! canary whose instances are all gone without the crash being heard.
//!
//! | phase                          | weight, steering | canary set                     |
//! |--------------------------------|------------------|--------------------------------|
//! | Pending, Validating, Starting  | 0, none          | left alone (set when ready)    |
//! | Progressing, Paused            | the step's       | the new version's instances    |
//! | RollingBack                    | 0, none          | taken out by the stop          |
//! | Promoting, Reverting, terminal | left alone (the swap is the controller's, inline) |
//!
//! In every phase the stable set must name the service's stable version.

use rampart_core::rollout::{Input, Phase};
use rampart_router::UpstreamSet;
use tokio::time::Instant;

use super::Controller;
use crate::service::{routable, upstream_set};

impl Controller {
    pub(super) fn reconcile(&mut self) {
        if self.repair_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let version = self.record.rollout.version.clone();
        let (weight, wants_canary) = match self.record.rollout.phase {
            Phase::Pending | Phase::Validating | Phase::Starting { .. } => (Some(0.0), false),
            Phase::Progressing { weight, .. } | Phase::Paused { weight, .. } => {
                (Some(weight), true)
            }
            Phase::RollingBack { .. } => (Some(0.0), false),
            _ => (None, false),
        };
        let table = self.svc.table();
        let mut repairs: Vec<String> = Vec::new();
        let mut failed = None;

        if wants_canary {
            let running = if self.svc.is_static() {
                self.record.addresses.clone()
            } else {
                routable(&self.svc.backend.instances(&version))
            };
            if running.is_empty() {
                // Every instance is gone and no crash event said so (a lagging
                // receiver): the same as a crash.
                self.pending.push_back(Input::CanaryCrashed {
                    reason: format!("no instance of {version} is running"),
                });
                return;
            }
            let routed = table
                .canary
                .as_ref()
                .is_some_and(|c| c.version == version && sorted(&c.instances) == sorted(&running));
            if !routed {
                let set = UpstreamSet::new(version.clone(), running);
                match self.svc.route(|t| t.canary = Some(set)) {
                    Ok(_) => repairs.push(format!("canary set routed to {version}'s instances")),
                    Err(e) => failed = Some(e),
                }
            }
        }
        if let Some(weight) = weight {
            // As it is now, after a canary set repaired above.
            let current = self.svc.table();
            if current.canary.is_some() && (current.canary_weight - weight).abs() > 1e-9 {
                match self.svc.route(|t| t.canary_weight = weight) {
                    Ok(_) => repairs.push(format!(
                        "canary weight {} % -> {weight} %",
                        current.canary_weight
                    )),
                    Err(e) => failed = Some(e),
                }
            }
        }
        if weight.is_some() {
            // The committed step's match and mirroring (none outside a step).
            let wanted = self.record.rollout.steering();
            let current = self.svc.table();
            if current.canary.is_some() && current.steering != wanted {
                match self.svc.route(|t| t.steering = wanted.clone()) {
                    Ok(_) => repairs.push(format!(
                        "canary steering {} -> {}",
                        current.steering.describe().unwrap_or_else(|| "none".into()),
                        wanted.describe().unwrap_or_else(|| "none".into())
                    )),
                    Err(e) => failed = Some(e),
                }
            }
        }
        let stable = self.svc.stable();
        if table.stable.version != stable.version && !stable.addresses.is_empty() {
            match self.svc.route(|t| t.stable = upstream_set(&stable)) {
                Ok(_) => repairs.push(format!(
                    "stable set {} -> {}",
                    table.stable.version, stable.version
                )),
                Err(e) => failed = Some(e),
            }
        }

        self.sync_preview();
        for repair in &repairs {
            tracing::warn!(deployment = %self.record.id, phase = self.record.rollout.phase.name(), "repaired the routing table: {repair}");
        }
        match failed {
            Some(e) => {
                let delay = self.repair_backoff.failed();
                tracing::warn!(deployment = %self.record.id, error = %e, retry_in = ?delay, failures = self.repair_backoff.failures(), "the router refused a repair; trying again");
                self.repair_at = Some(Instant::now() + delay);
            }
            None => {
                self.repair_backoff.succeeded();
                self.repair_at = None;
            }
        }
    }
}

fn sorted(addrs: &[std::net::SocketAddr]) -> Vec<std::net::SocketAddr> {
    let mut addrs = addrs.to_vec();
    addrs.sort();
    addrs
}
