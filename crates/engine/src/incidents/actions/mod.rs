//! Incident actions that change the running system, with their guards: a cooldown
//! and a maximum per window per service, `dry_run`, and retries within a budget
//! (then the incident escalates). Each outcome, with its timing, goes on the
//! incident's timeline; what can be undone is undone when the incident resolves.

mod guard;
mod rollback;
mod run;
mod safety;
mod scale;
mod traffic;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_config::{ActionKind, IncidentActionConfig};
use rampart_core::Timestamp;
use rampart_store::Incident;
use serde_json::{Value, json};

pub(crate) use guard::Guards;
pub(crate) use traffic::LoadHistory;

use crate::Engine;

/// Something an action changed that resolving the incident gives back.
#[derive(Debug, Clone)]
pub(crate) enum Undo {
    /// Raise the concurrency limit in steps back to `previous`.
    ShedLoad {
        service: String,
        previous: Option<u32>,
        set: u32,
        lift_every: Duration,
    },
    /// Put ejected instances back and restore the limit and outlier detection.
    CircuitBreaker {
        service: String,
        previous_limit: Option<u32>,
        previous_outlier: bool,
        opened: bool,
        ejected: Vec<traffic::Ejected>,
    },
    Unfreeze,
    LiftLockdown,
}

/// What an action did.
pub(crate) struct Done {
    pub summary: String,
    pub details: Value,
    pub undo: Vec<Undo>,
}

/// Everything an action needs.
pub(crate) struct Context<'a> {
    pub engine: &'a Engine,
    pub incident: &'a Incident,
    /// The services it acts on: the incident's, or those the rule names for a
    /// host-wide incident.
    pub services: Vec<String>,
    pub action: &'a IncidentActionConfig,
    pub load: &'a LoadHistory,
}

/// Runs `action` once (no guards, no retries).
async fn attempt(cx: &Context<'_>) -> Result<Done, String> {
    match cx.action.kind {
        ActionKind::Rollback => rollback::rollback(cx).await,
        ActionKind::ShedLoad => traffic::shed_load(cx),
        ActionKind::CircuitBreaker => traffic::circuit_breaker(cx),
        ActionKind::IsolateInstance => traffic::isolate_instance(cx),
        ActionKind::FreezeDeploys => Ok(safety::freeze(cx)),
        ActionKind::LockDown => safety::lock_down(cx).await,
        ActionKind::Run => run::run(cx).await,
        ActionKind::ScaleUp | ActionKind::EmergencyScaleUp => scale::scale_up(cx).await,
    }
}

/// What [`execute`] reports.
pub(crate) struct Outcome {
    /// The timeline entry.
    pub details: Value,
    pub undo: Vec<Undo>,
    /// Failed after every retry: escalate.
    pub failed: bool,
}

/// Runs `cx.action` under its guards; `rule_dry_run` makes it a dry run too.
pub(crate) async fn execute(
    cx: &Context<'_>,
    guards: &Guards,
    now: Timestamp,
    rule_dry_run: bool,
) -> Outcome {
    let action = cx.action;
    let scope = cx.services.join(",");
    let base = json!({
        "action": action.name,
        "kind": action.kind.as_str(),
        "services": cx.services,
    });
    let with = |extra: Value| {
        let mut details = base.clone();
        if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        details
    };
    if let Err(why) = guards.admit(&action.name, &scope, action, now) {
        return Outcome {
            details: with(json!({ "result": "skipped", "reason": why })),
            undo: Vec::new(),
            failed: false,
        };
    }
    if action.dry_run || rule_dry_run {
        return Outcome {
            details: with(json!({ "result": "dry_run", "would": would(cx) })),
            undo: Vec::new(),
            failed: false,
        };
    }
    let started = Instant::now();
    let mut errors = Vec::new();
    for attempt_no in 0..=action.retries {
        if attempt_no > 0 {
            // A short, growing pause: the budget is about seconds, not minutes.
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt_no))).await;
        }
        match tokio::time::timeout(action.timeout.get(), attempt(cx)).await {
            Ok(Ok(done)) => {
                return Outcome {
                    details: with(json!({
                        "result": "done",
                        "summary": done.summary,
                        "effect": done.details,
                        "attempts": attempt_no + 1,
                        "took_ms": started.elapsed().as_secs_f64() * 1000.0,
                    })),
                    undo: done.undo,
                    failed: false,
                };
            }
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push(format!("timed out after {}", action.timeout)),
        }
    }
    Outcome {
        details: with(json!({
            "result": "failed",
            "errors": errors,
            "attempts": errors.len(),
            "took_ms": started.elapsed().as_secs_f64() * 1000.0,
        })),
        undo: Vec::new(),
        failed: true,
    }
}

fn would(cx: &Context<'_>) -> String {
    let services = cx.services.join(", ");
    match cx.action.kind {
        ActionKind::Rollback => format!("roll back {services}"),
        ActionKind::ShedLoad => format!("lower the concurrency limit of {services}"),
        ActionKind::CircuitBreaker => {
            format!("eject failing instances of {services}, or answer 503 if none is healthy")
        }
        ActionKind::IsolateInstance => {
            format!("take the worst instance of {services} out of routing")
        }
        ActionKind::FreezeDeploys => format!("refuse deploys to {services}"),
        ActionKind::LockDown => {
            "make the API read-only below admin and revoke recent tokens".into()
        }
        ActionKind::Run => match (&cx.action.command, &cx.action.url) {
            (Some(command), _) => format!("run `{command}`"),
            (_, Some(url)) => format!("POST the incident to {url}"),
            _ => "nothing".into(),
        },
        ActionKind::ScaleUp | ActionKind::EmergencyScaleUp => format!("scale up {services}"),
    }
}

/// Gives back what an action changed; the timeline entry describing it.
pub(crate) async fn undo(engine: &Engine, incident_id: &str, undo: Undo) -> Value {
    match undo {
        Undo::ShedLoad {
            service,
            previous,
            set,
            lift_every,
        } => {
            traffic::lift_shed_load(engine.clone(), service.clone(), previous, set, lift_every);
            json!({ "undo": "shed_load", "service": service, "lifting_every_ms": lift_every.as_millis() as u64, "to": previous })
        }
        Undo::CircuitBreaker {
            service,
            previous_limit,
            previous_outlier,
            opened,
            ejected,
        } => {
            let restored = traffic::close_circuit(
                engine,
                &service,
                previous_limit,
                previous_outlier,
                opened,
                &ejected,
            );
            json!({ "undo": "circuit_breaker", "service": service, "restored_instances": restored })
        }
        Undo::Unfreeze => {
            let services = engine.safeguards().unfreeze(incident_id);
            json!({ "undo": "freeze_deploys", "services": services })
        }
        Undo::LiftLockdown => {
            let lifted = engine.safeguards().lift_lockdown(incident_id);
            json!({ "undo": "lock_down", "lifted": lifted })
        }
    }
}

/// The undo list of every open incident, kept while it is open.
pub(crate) type UndoBook = Arc<Mutex<HashMap<String, Vec<Undo>>>>;
