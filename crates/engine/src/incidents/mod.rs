//! The incident responder: evaluates the incident rules every [`TICK`] over what
//! rampart measures (router windows, instances, host telemetry, the API's
//! authentication counters), opens one incident per rule and scope, runs the rule's
//! actions with their guards, escalates unacknowledged incidents, and resolves them
//! when the condition has been clear for the rule's `resolve_after`.
//!
//! Every change is one store transaction: the incident row, its timeline event,
//! the audit entry and the notifications (see [`outbox`]) commit together, and
//! only then is the change published or acted on.

mod actions;
mod handle;
mod outbox;
mod readings;
mod record;
mod responder;
mod safeguards;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use handle::{IncidentDetail, Incidents};
pub use readings::{HostNumbers, Sources};
pub use safeguards::Safeguards;

/// How often the rules are evaluated.
pub const TICK: Duration = Duration::from_millis(250);

/// An incident change, as the event stream carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentChange {
    pub id: String,
    /// `opened`, `repeated`, `acknowledged`, `escalated`, `resolved`, `action`.
    pub change: String,
    pub status: String,
    pub severity: String,
    pub rule: Option<String>,
    pub title: String,
    /// For `action`: the action's name and outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// Starts the responder for `config`'s rules; the returned handle serves the API.
pub fn start(
    engine: &crate::Engine,
    config: &rampart_config::Config,
    sources: Arc<dyn Sources>,
) -> Incidents {
    responder::start(engine, config, sources)
}
