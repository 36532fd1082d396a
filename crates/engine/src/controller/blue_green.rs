//! What a blue-green rollout needs of its controller beyond the canary's: the
//! preview listener pointed at the right version, the judge's evidence from the
//! preview (before the switch) or from live traffic against the seconds before the
//! switch (after it), and the switch back.
//!
//! | phase                                   | preview listener serves        |
//! |-----------------------------------------|--------------------------------|
//! | Previewing, AwaitingPromotion, Promoting | the new version's instances    |
//! | every other                             | the service's stable version   |

use rampart_core::rollout::{Command, Input, Phase};
use rampart_core::{Timestamp, WindowSample};

use super::Controller;
use crate::service::{ServingVersion, routable, upstream_set};

impl Controller {
    fn is_blue_green(&self) -> bool {
        self.record.rollout.spec.strategy.blue_green().is_some()
    }

    /// Points the preview listener at the version the committed phase wants there.
    pub(super) fn sync_preview(&mut self) {
        let Some(preview) = self.svc.preview.clone() else {
            return;
        };
        if !self.is_blue_green() {
            return;
        }
        let version = &self.record.rollout.version;
        let wanted = match self.record.rollout.phase {
            Phase::Previewing | Phase::AwaitingPromotion { .. } | Phase::Promoting => {
                let addresses = if self.svc.is_static() {
                    self.record.addresses.clone()
                } else {
                    routable(&self.svc.backend.instances(version))
                };
                if addresses.is_empty() {
                    // Nothing runs yet (or any more): the crash is reported elsewhere.
                    return;
                }
                rampart_router::UpstreamSet::new(version.clone(), addresses)
            }
            _ => upstream_set(&self.svc.stable()),
        };
        if wanted.instances.is_empty() {
            return;
        }
        let current = preview.table();
        let sorted = |mut addrs: Vec<std::net::SocketAddr>| {
            addrs.sort();
            addrs
        };
        if current.stable.version == wanted.version
            && sorted(current.stable.instances.clone()) == sorted(wanted.instances.clone())
        {
            return;
        }
        let table = rampart_router::RouteTable::stable_only(wanted);
        match preview.swap(table) {
            Ok(_) => tracing::info!(
                deployment = %self.record.id,
                phase = self.record.rollout.phase.name(),
                "preview listener routed"
            ),
            Err(e) => {
                tracing::warn!(deployment = %self.record.id, error = %e, "the router refused the preview's table; trying again at the next tick")
            }
        }
    }

    /// One second of evidence for a blue-green analysis; `None` for a canary.
    ///
    /// Previewing: the preview listener's requests (all served by the new version)
    /// against the live stable's of the same second. PostPromotion: live traffic (now
    /// the new version) against the old version's just before the switch, the n-th
    /// second after it against the n-th before it.
    pub(super) fn blue_green_sample(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> Option<WindowSample> {
        let spec = self.record.rollout.spec.strategy.blue_green()?;
        let live = self.svc.router.window_between(start, end);
        match self.record.rollout.phase {
            Phase::Previewing => {
                let preview = self.svc.preview.as_ref()?.window_between(start, end);
                Some(WindowSample {
                    start,
                    end,
                    stable: live.stable,
                    canary: preview.stable,
                })
            }
            Phase::PostPromotion => {
                let switched = super::floor_second(self.record.rollout.step_started_at);
                let window = spec.post_promotion_analysis.as_secs().max(1);
                let since = start.as_secs().saturating_sub(switched.as_secs());
                // The last second before the switch pairs with the first after it, and so on
                // backwards, cycling through a window of equal length.
                let baseline_second = switched.as_secs().saturating_sub(1 + since % window);
                let baseline_start = Timestamp(baseline_second * 1000);
                let baseline = self
                    .svc
                    .router
                    .window_between(baseline_start, Timestamp(baseline_start.as_millis() + 1000));
                Some(WindowSample {
                    start,
                    end,
                    stable: baseline.stable,
                    canary: live.stable,
                })
            }
            _ => None,
        }
    }

    /// In one swap, the version stable before the switch (still running) takes all
    /// traffic again. Refused or impossible: tried again until the phase's deadline.
    pub(super) fn switch_back(&mut self, command: Command) -> Option<Input> {
        let previous = self.svc.lock().previous.clone();
        let wanted = self.record.rollout.previous_version.clone();
        let Some(mut previous) = previous.filter(|p| Some(&p.version) == wanted.as_ref()) else {
            // Already switched back (a re-issued command after a restart), or nothing
            // to return to: the stable version is what it must be.
            if Some(self.svc.stable().version) == wanted {
                return Some(Input::SwitchedBack);
            }
            self.redo_later(
                command,
                "the version before the switch is not known to this service".into(),
            );
            return None;
        };
        if !self.svc.is_static() {
            previous.addresses = routable(&self.svc.backend.instances(&previous.version));
        }
        if previous.addresses.is_empty() {
            self.redo_later(
                command,
                format!(
                    "no instance of {} is running to switch back to",
                    previous.version
                ),
            );
            return None;
        }
        let returning = ServingVersion {
            version: previous.version.clone(),
            addresses: previous.addresses.clone(),
            env: previous.env.clone(),
        };
        match self.svc.make_stable(returning) {
            Ok(_) => {
                // The failed version is no rollback target.
                self.svc.set_previous(None);
                self.sync_preview();
                Some(Input::SwitchedBack)
            }
            Err(e) => {
                self.redo_later(command, format!("the router refused the table: {e}"));
                None
            }
        }
    }
}
