//! What the engine keeps about one deployment in the store: the rollout state machine
//! plus what is needed to act on it again after a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rampart_core::rollout::{Phase, Rollout};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    /// A canary rollout of a new version.
    Rollout,
    /// An emergency switch back to the previous version after a promotion.
    Revert,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: String,
    pub kind: DeploymentKind,
    pub rollout: Rollout,
    /// Static backend: where the new version runs.
    pub addresses: Vec<SocketAddr>,
    /// Process backend: extra environment for the new version's instances.
    pub env: BTreeMap<String, String>,
    /// Who asked for the deployment, and why.
    pub actor: String,
    pub reason: String,
    /// Static backend: where the version this deployment replaces runs, so that a
    /// revert can route back to it.
    pub previous_addresses: Vec<SocketAddr>,
    /// Process backend: the environment the replaced version was deployed with, so
    /// that a revert (or a restart after one) starts it with the same. Absent from
    /// records written before it existed.
    #[serde(default)]
    pub previous_env: BTreeMap<String, String>,
}

impl DeploymentRecord {
    /// The short state name stored next to the record (`progressing`, `succeeded`, ...).
    pub fn state_name(&self) -> String {
        state_name(&self.rollout.phase)
    }
}

pub fn state_name(phase: &Phase) -> String {
    let name = phase.name();
    let mut out = String::with_capacity(name.len() + 2);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_snake_case() {
        assert_eq!(
            state_name(&Phase::RollingBack {
                ends_as: rampart_core::rollout::RollbackEnd::RolledBack
            }),
            "rolling_back"
        );
        assert_eq!(state_name(&Phase::Succeeded), "succeeded");
    }
}
