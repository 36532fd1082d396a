//! What incident actions switch on and off in the rest of rampart: deploy freezes
//! (the engine refuses deploys) and the API lock-down (read-only below admin).
//! Each is held by the incidents that set it and lifts when the last one resolves.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::error::EngineError;

/// Incidents' holds on deploys and on the API. Cheap to query on every request.
#[derive(Debug, Default)]
pub struct Safeguards {
    /// Service (or `*` for all) → the incidents freezing its deploys.
    freezes: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Incidents holding the API in lock-down.
    lockdown: Mutex<BTreeSet<String>>,
}

impl Safeguards {
    pub fn freeze(&self, service: &str, incident: &str) {
        lock(&self.freezes)
            .entry(service.to_string())
            .or_default()
            .insert(incident.to_string());
    }

    /// Lifts `incident`'s freezes; returns the services that are deployable again
    /// (no other incident still freezes them).
    pub fn unfreeze(&self, incident: &str) -> Vec<String> {
        let mut freezes = lock(&self.freezes);
        let mut lifted = Vec::new();
        freezes.retain(|service, holders| {
            if holders.remove(incident) && holders.is_empty() {
                lifted.push(service.clone());
            }
            !holders.is_empty()
        });
        lifted
    }

    /// The incidents freezing deploys to `service`.
    pub fn frozen_by(&self, service: &str) -> Vec<String> {
        let freezes = lock(&self.freezes);
        [service, "*"]
            .iter()
            .filter_map(|s| freezes.get(*s))
            .flatten()
            .cloned()
            .collect()
    }

    /// Refuses a deploy to a frozen service unless overridden (by an admin).
    pub fn check_deploy(&self, service: &str, override_freeze: bool) -> Result<(), EngineError> {
        let holders = self.frozen_by(service);
        if holders.is_empty() || override_freeze {
            return Ok(());
        }
        Err(EngineError::Conflict(format!(
            "deploys to `{service}` are frozen by incident {}; resolve it (`rampart incident resolve {}`), \
             or deploy with an admin token and `override_freeze` (audited)",
            holders.join(", "),
            holders[0]
        )))
    }

    pub fn lock_down(&self, incident: &str) {
        lock(&self.lockdown).insert(incident.to_string());
    }

    /// Lifts `incident`'s lock-down; true if it held one.
    pub fn lift_lockdown(&self, incident: &str) -> bool {
        lock(&self.lockdown).remove(incident)
    }

    /// The incident holding the API in lock-down, if any.
    pub fn locked_down_by(&self) -> Option<String> {
        lock(&self.lockdown).iter().next().cloned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freeze_holds_until_its_last_incident_resolves() {
        let guards = Safeguards::default();
        guards.freeze("shop", "a");
        guards.freeze("shop", "b");
        assert!(guards.check_deploy("shop", false).is_err());
        assert!(guards.check_deploy("shop", true).is_ok(), "admin override");
        assert!(guards.check_deploy("cart", false).is_ok());
        assert!(guards.unfreeze("a").is_empty());
        assert!(guards.check_deploy("shop", false).is_err());
        assert_eq!(guards.unfreeze("b"), ["shop"]);
        assert!(guards.check_deploy("shop", false).is_ok());
        guards.freeze("*", "c");
        assert!(guards.check_deploy("cart", false).is_err());
    }

    #[test]
    fn lockdown_lifts_with_its_incident() {
        let guards = Safeguards::default();
        guards.lock_down("x");
        assert_eq!(guards.locked_down_by().as_deref(), Some("x"));
        assert!(guards.lift_lockdown("x"));
        assert_eq!(guards.locked_down_by(), None);
    }
}
