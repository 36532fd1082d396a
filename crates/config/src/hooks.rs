//! `[[service.hook]]`: webhooks rampart calls at the points of a rollout (Flagger's
//! webhooks), and a load test that feeds a canary traffic while it is judged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// One hook, by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HookConfig {
    PreRollout(WebhookHook),
    RolloutStep(WebhookHook),
    ConfirmTrafficIncrease(ConfirmHook),
    ConfirmPromotion(ConfirmHook),
    PostRollout(WebhookHook),
    Rollback(WebhookHook),
    LoadTest(LoadTestHook),
}

/// A POST of the rollout's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookHook {
    /// Names the hook in events, errors and the payload.
    pub name: String,
    pub url: String,
    /// One attempt's limit.
    #[serde(default = "default_hook_timeout")]
    pub timeout: Duration,
    /// Extra attempts after a failed one (timeout, connection error, non-2xx).
    #[serde(default = "default_hook_retries")]
    pub retries: u32,
    /// Extra request headers (an authorization token, a routing header).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// A POST whose non-2xx answer holds the rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmHook {
    pub name: String,
    pub url: String,
    #[serde(default = "default_hook_timeout")]
    pub timeout: Duration,
    /// Extra attempts after a timeout or connection error; a "no" (non-2xx) is not
    /// retried, it is asked again every `interval`.
    #[serde(default = "default_hook_retries")]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How often a hook that said no is asked again.
    #[serde(default = "default_confirm_interval")]
    pub interval: Duration,
}

/// Requests through the service's listener while the canary takes traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadTestHook {
    pub name: String,
    /// Requests a second.
    #[serde(default = "default_load_rate")]
    pub rate: f64,
    /// How long it runs from the first step; absent: while the canary takes traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    #[serde(default = "default_load_path")]
    pub path: String,
    /// One request's limit.
    #[serde(default = "default_hook_timeout")]
    pub timeout: Duration,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl HookConfig {
    pub fn kind(&self) -> HookKind {
        match self {
            HookConfig::PreRollout(_) => HookKind::PreRollout,
            HookConfig::RolloutStep(_) => HookKind::RolloutStep,
            HookConfig::ConfirmTrafficIncrease(_) => HookKind::ConfirmTrafficIncrease,
            HookConfig::ConfirmPromotion(_) => HookKind::ConfirmPromotion,
            HookConfig::PostRollout(_) => HookKind::PostRollout,
            HookConfig::Rollback(_) => HookKind::Rollback,
            HookConfig::LoadTest(_) => HookKind::LoadTest,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            HookConfig::PreRollout(h)
            | HookConfig::RolloutStep(h)
            | HookConfig::PostRollout(h)
            | HookConfig::Rollback(h) => &h.name,
            HookConfig::ConfirmTrafficIncrease(h) | HookConfig::ConfirmPromotion(h) => &h.name,
            HookConfig::LoadTest(h) => &h.name,
        }
    }

    /// The POST's target, timeout, retries and headers; `None` for a load test.
    pub fn webhook(&self) -> Option<WebhookHook> {
        match self {
            HookConfig::PreRollout(h)
            | HookConfig::RolloutStep(h)
            | HookConfig::PostRollout(h)
            | HookConfig::Rollback(h) => Some(h.clone()),
            HookConfig::ConfirmTrafficIncrease(h) | HookConfig::ConfirmPromotion(h) => {
                Some(WebhookHook {
                    name: h.name.clone(),
                    url: h.url.clone(),
                    timeout: h.timeout,
                    retries: h.retries,
                    headers: h.headers.clone(),
                })
            }
            HookConfig::LoadTest(_) => None,
        }
    }

    /// A confirm hook's re-ask interval.
    pub fn confirm_interval(&self) -> Option<Duration> {
        match self {
            HookConfig::ConfirmTrafficIncrease(h) | HookConfig::ConfirmPromotion(h) => {
                Some(h.interval)
            }
            _ => None,
        }
    }

    pub fn headers(&self) -> &BTreeMap<String, String> {
        match self {
            HookConfig::PreRollout(h)
            | HookConfig::RolloutStep(h)
            | HookConfig::PostRollout(h)
            | HookConfig::Rollback(h) => &h.headers,
            HookConfig::ConfirmTrafficIncrease(h) | HookConfig::ConfirmPromotion(h) => &h.headers,
            HookConfig::LoadTest(h) => &h.headers,
        }
    }

    pub fn timeout(&self) -> Duration {
        match self {
            HookConfig::PreRollout(h)
            | HookConfig::RolloutStep(h)
            | HookConfig::PostRollout(h)
            | HookConfig::Rollback(h) => h.timeout,
            HookConfig::ConfirmTrafficIncrease(h) | HookConfig::ConfirmPromotion(h) => h.timeout,
            HookConfig::LoadTest(h) => h.timeout,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Before any traffic moves, against the ready canary: a failure fails the rollout.
    PreRollout,
    /// Each step entered (notification).
    RolloutStep,
    /// Before each weight increase: a non-2xx holds the step.
    ConfirmTrafficIncrease,
    /// Before promotion: a non-2xx holds the last step.
    ConfirmPromotion,
    /// The rollout ended promoted (notification).
    PostRollout,
    /// The rollout rolled back or failed (notification).
    Rollback,
    /// Load against the service while the canary takes traffic.
    LoadTest,
}

impl HookKind {
    pub const ALL: [HookKind; 7] = [
        HookKind::PreRollout,
        HookKind::RolloutStep,
        HookKind::ConfirmTrafficIncrease,
        HookKind::ConfirmPromotion,
        HookKind::PostRollout,
        HookKind::Rollback,
        HookKind::LoadTest,
    ];

    /// The `kind` value as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::PreRollout => "pre_rollout",
            HookKind::RolloutStep => "rollout_step",
            HookKind::ConfirmTrafficIncrease => "confirm_traffic_increase",
            HookKind::ConfirmPromotion => "confirm_promotion",
            HookKind::PostRollout => "post_rollout",
            HookKind::Rollback => "rollback",
            HookKind::LoadTest => "load_test",
        }
    }

    pub fn is_confirm(self) -> bool {
        matches!(
            self,
            HookKind::ConfirmTrafficIncrease | HookKind::ConfirmPromotion
        )
    }
}

pub(crate) fn default_hook_timeout() -> Duration {
    Duration::from_secs(10)
}
pub(crate) fn default_hook_retries() -> u32 {
    2
}
pub(crate) fn default_confirm_interval() -> Duration {
    Duration::from_secs(10)
}
pub(crate) fn default_load_rate() -> f64 {
    10.0
}
pub(crate) fn default_load_path() -> String {
    "/".to_string()
}
