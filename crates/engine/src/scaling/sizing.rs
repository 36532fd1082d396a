//! The one owner of a service's instance counts: what size its stable version should
//! run at, an operator's temporary floor, and the autoscalers' memory. Every change
//! of size (autoscaler, operator, incident action) goes through [`Sizing::lock`],
//! and promotion reads [`Sizing::stable_target`] (through `full_instances`), so they
//! never fight.

use std::collections::VecDeque;
use std::sync::Mutex;

use rampart_core::Timestamp;
use rampart_core::autoscale::Autoscaler;

/// A floor an operator set for a while.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorFloor {
    pub instances: u32,
    pub until: Timestamp,
    pub actor: String,
}

/// The autoscaler of one set, bound to the version it sizes.
pub(crate) struct SetScaler {
    pub version: String,
    pub scaler: Autoscaler,
}

#[derive(Default)]
pub(crate) struct SizingState {
    /// The stable version's size, once anything changed it; `None` is the config's.
    pub stable_target: Option<u32>,
    pub floor: Option<OperatorFloor>,
    pub stable: Option<SetScaler>,
    pub canary: Option<SetScaler>,
    /// Minutes of load being summed for the history: (minute start ms, metric sums, count).
    pub minute: Option<MinuteLoad>,
    /// Recent history loaded from the store, refreshed now and then.
    pub history: Option<CachedHistory>,
    /// Recent acting decisions' (time, new size), for the flapping recommendation.
    pub recent_sizes: VecDeque<(Timestamp, u32)>,
    /// The last stored decision per set, to store unchanged ones only when they say
    /// something new.
    pub last_stored: Vec<(super::record::Fingerprint, Timestamp)>,
    /// The forecast, recomputed once a minute: (minute, outcome).
    pub forecast: Option<(u64, rampart_core::autoscale::ForecastOutcome)>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MinuteLoad {
    pub start_ms: u64,
    pub cpu_total: f64,
    pub cpu_samples: u32,
    pub rps_total: f64,
    pub rps_samples: u32,
}

pub(crate) struct CachedHistory {
    pub cpu: Vec<(i64, f64)>,
    pub rps: Vec<(i64, f64)>,
}

#[derive(Default)]
pub struct Sizing {
    state: Mutex<SizingState>,
    /// Held while a size changes, so two changes never interleave.
    changing: tokio::sync::Mutex<()>,
}

impl Sizing {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, SizingState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changing.lock().await
    }

    /// The stable version's size when something (autoscaler, operator) set it.
    pub fn stable_target(&self) -> Option<u32> {
        self.state().stable_target
    }

    /// The operator's floor, if it still holds at `now`.
    pub fn floor_at(&self, now: Timestamp) -> Option<OperatorFloor> {
        self.state().floor.clone().filter(|f| f.until > now)
    }
}
