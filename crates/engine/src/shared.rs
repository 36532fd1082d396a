//! What every controller shares: the store, the clock, the event stream.

use std::path::PathBuf;
use std::sync::Arc;

use rampart_core::Clock;
use rampart_core::judge::Verdict;
use rampart_core::rollout::{RecoveryPolicy, Transition};
use rampart_store::Store;
use serde::Serialize;
use tokio::sync::broadcast;

/// Something that happened, for live subscribers (SSE, the dashboard, `deploy --wait`).
#[derive(Debug, Clone, Serialize)]
pub struct EngineEvent {
    pub service: String,
    pub deployment_id: Option<String>,
    #[serde(flatten)]
    pub kind: EngineEventKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EngineEventKind {
    Transition {
        transition: Transition,
    },
    Analysis {
        verdict: Verdict,
    },
    Traffic {
        canary_weight: f64,
    },
    VersionStopped {
        version: String,
    },
    /// An autoscaler or operator decision about a version's size.
    Scaling {
        record: Box<crate::scaling::ScalingRecord>,
    },
    /// An incident opened, repeated, was acknowledged, escalated, resolved, or one
    /// of its actions ran (`service` is empty for a host-wide incident).
    Incident {
        incident: crate::incidents::IncidentChange,
    },
    /// A notification hook answered or failed (`[[service.hook]]`).
    Hook {
        hook: String,
        kind: String,
        ok: bool,
        answer: String,
    },
}

pub(crate) struct Shared {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub events: broadcast::Sender<EngineEvent>,
    /// Relative paths in checks (working dirs) are resolved against this folder.
    pub base_dir: PathBuf,
    /// Where each rollout's judged samples are kept (`data_dir/samples`).
    pub samples_dir: PathBuf,
    pub on_restart: RecoveryPolicy,
    /// The `[[metric_provider]]`s, by name.
    pub metric_providers: crate::analysis::Providers,
    /// Resolves host names in static upstream addresses.
    pub resolver: crate::resolve::Resolver,
}

impl Shared {
    pub fn publish(&self, event: EngineEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }
}

/// The audit actor for what rampart does on its own (the engine, and the server at
/// start and stop).
pub const SYSTEM_ACTOR: &str = "rampart";
