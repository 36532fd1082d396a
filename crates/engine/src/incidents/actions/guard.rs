//! Cooldown and runs-per-window, per action and service scope.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rampart_config::IncidentActionConfig;
use rampart_core::Timestamp;
use rampart_core::incident::format_duration;

#[derive(Debug, Default)]
pub(crate) struct Guards {
    runs: Mutex<HashMap<(String, String), VecDeque<Timestamp>>>,
}

impl Guards {
    /// Admits a run at `now` (and counts it), or says why not.
    pub fn admit(
        &self,
        action: &str,
        scope: &str,
        config: &IncidentActionConfig,
        now: Timestamp,
    ) -> Result<(), String> {
        let mut runs = self
            .runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let history = runs
            .entry((action.to_string(), scope.to_string()))
            .or_default();
        let window = config.window.get();
        while history.front().is_some_and(|at| now.since(*at) >= window) {
            history.pop_front();
        }
        if let Some(last) = history.back() {
            let since = now.since(*last);
            if since < config.cooldown.get() {
                return Err(format!(
                    "cooling down: ran {} ago, cooldown {}",
                    format_duration(std::time::Duration::from_secs(since.as_secs())),
                    config.cooldown
                ));
            }
        }
        if history.len() >= config.max_per_window as usize {
            return Err(format!(
                "ran {} times in the last {} (max_per_window {})",
                history.len(),
                config.window,
                config.max_per_window
            ));
        }
        history.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rampart_config::{ActionKind, Duration};

    use super::*;

    #[test]
    fn cooldown_then_max_per_window() {
        let mut config = IncidentActionConfig::builtin(ActionKind::ShedLoad);
        config.cooldown = Duration::from_secs(10);
        config.max_per_window = 2;
        config.window = Duration::from_secs(60);
        let guards = Guards::default();
        let at = |s: u64| Timestamp(s * 1000);
        assert!(guards.admit("shed_load", "shop", &config, at(0)).is_ok());
        assert!(
            guards
                .admit("shed_load", "shop", &config, at(5))
                .unwrap_err()
                .contains("cooling down")
        );
        assert!(
            guards.admit("shed_load", "cart", &config, at(5)).is_ok(),
            "per scope"
        );
        assert!(guards.admit("shed_load", "shop", &config, at(11)).is_ok());
        assert!(
            guards
                .admit("shed_load", "shop", &config, at(30))
                .unwrap_err()
                .contains("max_per_window")
        );
        assert!(
            guards.admit("shed_load", "shop", &config, at(61)).is_ok(),
            "the first run left the window"
        );
    }
}
