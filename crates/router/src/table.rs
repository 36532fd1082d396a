//! The routing table: what the engine hands in (`UpstreamSet`, `RouteTable`) and the
//! resolved form the data plane reads (`ActiveTable`), swapped as a whole.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use rampart_core::rollout::Steering;

use crate::balance;
use crate::metrics::counters::SetCounters;
use crate::steering::CanaryMatch;
use crate::upstream::Upstream;

/// Which of a service's two sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetKind {
    Stable,
    Canary,
}

impl SetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SetKind::Stable => "stable",
            SetKind::Canary => "canary",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("stable") {
            Some(SetKind::Stable)
        } else if text.eq_ignore_ascii_case("canary") {
            Some(SetKind::Canary)
        } else {
            None
        }
    }
}

/// Who decided which set a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Assignment {
    /// The split, at random: the judge's evidence.
    Split,
    /// The client, with the version header: counted apart, never judged.
    Client,
    /// The step's header or cookie match: the canary's, judged with the split's.
    Matched,
    /// A copy of a request the split sent to stable, its response discarded: the
    /// canary's, judged with the split's.
    Mirrored,
}

/// Instances that run one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamSet {
    /// Version label, used in metrics and status.
    pub version: String,
    pub instances: Vec<SocketAddr>,
}

impl UpstreamSet {
    pub fn new(version: impl Into<String>, instances: Vec<SocketAddr>) -> Self {
        Self {
            version: version.into(),
            instances,
        }
    }
}

/// A whole routing table, for [`crate::ServiceHandle::swap`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteTable {
    pub stable: UpstreamSet,
    pub canary: Option<UpstreamSet>,
    /// Percent of traffic to the canary, 0..=100; fractions allowed.
    pub canary_weight: f64,
    /// Requests routed or mirrored to the canary besides the weight; none without a
    /// canary set.
    #[serde(default, skip_serializing_if = "Steering::is_none")]
    pub steering: Steering,
}

impl RouteTable {
    /// Stable only, no canary.
    pub fn stable_only(stable: UpstreamSet) -> Self {
        Self {
            stable,
            canary: None,
            canary_weight: 0.0,
            steering: Steering::default(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct ActiveSet {
    pub(crate) kind: SetKind,
    pub(crate) version: String,
    pub(crate) instances: Vec<Arc<Upstream>>,
    /// Requests the split sent here.
    pub(crate) counters: Arc<SetCounters>,
    /// Requests whose client picked this set.
    pub(crate) client_counters: Arc<SetCounters>,
    /// Requests the step's match sent here (canary only).
    pub(crate) matched_counters: Arc<SetCounters>,
    /// Mirrored copies sent here (canary only).
    pub(crate) mirrored_counters: Arc<SetCounters>,
}

impl ActiveSet {
    pub(crate) fn counters_for(&self, assignment: Assignment) -> &Arc<SetCounters> {
        match assignment {
            Assignment::Split => &self.counters,
            Assignment::Client => &self.client_counters,
            Assignment::Matched => &self.matched_counters,
            Assignment::Mirrored => &self.mirrored_counters,
        }
    }

    pub(crate) fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.instances.iter().map(|u| u.addr)
    }

    pub(crate) fn to_public(&self) -> UpstreamSet {
        UpstreamSet::new(self.version.clone(), self.addrs().collect())
    }
}

#[derive(Debug)]
pub(crate) struct ActiveTable {
    /// Changes when a set's version changes, so sticky cookies of an earlier rollout
    /// are decided anew.
    pub(crate) generation: u64,
    pub(crate) canary_weight: f64,
    /// `canary_weight` as a fixed-point fraction for [`crate::split::Splitter`].
    pub(crate) canary_step: u64,
    pub(crate) stable: ActiveSet,
    pub(crate) canary: Option<ActiveSet>,
    /// As handed in; what `to_public` gives back.
    pub(crate) steering: Steering,
    /// The step's match, ready to test requests; `None` without a canary.
    pub(crate) canary_match: Option<CanaryMatch>,
    /// The mirrored share of stable's requests for [`crate::split::Splitter`]; 0
    /// without a canary.
    pub(crate) mirror_step: u64,
}

impl ActiveTable {
    pub(crate) fn set(&self, kind: SetKind) -> Option<&ActiveSet> {
        match kind {
            SetKind::Stable => Some(&self.stable),
            SetKind::Canary => self.canary.as_ref(),
        }
    }

    /// An instance of the `preferred` set, or of the other set when the preferred one
    /// has nothing usable.
    pub(crate) fn pick(
        &self,
        preferred: SetKind,
        now_ms: u64,
        exclude: Option<SocketAddr>,
    ) -> Option<(&ActiveSet, &Arc<Upstream>)> {
        let other = match preferred {
            SetKind::Stable => SetKind::Canary,
            SetKind::Canary => SetKind::Stable,
        };
        [preferred, other].into_iter().find_map(|kind| {
            let set = self.set(kind)?;
            balance::pick(&set.instances, now_ms, exclude).map(|u| (set, u))
        })
    }

    pub(crate) fn to_public(&self) -> RouteTable {
        RouteTable {
            stable: self.stable.to_public(),
            canary: self.canary.as_ref().map(ActiveSet::to_public),
            canary_weight: self.canary_weight,
            steering: self.steering.clone(),
        }
    }

    pub(crate) fn contains(&self, addr: SocketAddr) -> bool {
        self.stable.addrs().any(|a| a == addr)
            || self
                .canary
                .as_ref()
                .is_some_and(|c| c.addrs().any(|a| a == addr))
    }
}
