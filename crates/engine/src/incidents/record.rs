//! Each incident change as one store transaction: the incident, its timeline event,
//! the audit entry and the notifications commit together.

use rampart_core::notify::{Message, Severity, Topic};
use rampart_store::{Incident, NewAuditEvent, NewIncident, Opened, Store, StoreError, Tx};
use serde_json::{Value, json};

use super::outbox;
use crate::error::EngineError;

/// The notification for a change of `incident`.
pub(crate) fn message(incident: &Incident, topic: Topic, summary: String, at: String) -> Message {
    let mut fields = vec![
        ("incident".to_string(), incident.id.clone()),
        ("status".to_string(), incident.status.clone()),
    ];
    if let Some(rule) = &incident.rule {
        fields.push(("rule".into(), rule.clone()));
    }
    if let Some(reason) = incident.details.get("reason").and_then(Value::as_str) {
        fields.push(("reason".into(), reason.to_string()));
    }
    Message {
        topic,
        key: format!("incident-{}", incident.id),
        service: incident.service.clone(),
        severity: Severity::parse(&incident.severity).unwrap_or(Severity::High),
        summary,
        fields,
        link: Some(format!("/api/v1/incidents/{}", incident.id)),
        at,
    }
}

fn subject(incident: &Incident) -> String {
    match &incident.service {
        Some(service) => format!("service/{service}/incident/{}", incident.id),
        None => format!("incident/{}", incident.id),
    }
}

fn audit(
    tx: &Tx<'_>,
    incident: &Incident,
    actor: &str,
    action: &str,
    details: Value,
) -> rampart_store::Result<()> {
    tx.append_audit(&NewAuditEvent {
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject(incident),
        details,
    })?;
    Ok(())
}

fn now_text(tx: &Tx<'_>) -> String {
    rampart_store::format_timestamp(&tx.now())
}

/// Opens an incident or counts a repeat on the open one.
pub(crate) async fn open(
    store: &Store,
    new: NewIncident,
    actor: String,
    notifiers: Vec<String>,
) -> Result<Opened, EngineError> {
    let opened = store
        .write(move |tx| {
            let opened = tx.open_or_repeat_incident(&new, &actor)?;
            if let Opened::New(incident) = &opened {
                audit(
                    tx,
                    incident,
                    &actor,
                    "incident.open",
                    json!({
                        "rule": incident.rule,
                        "severity": incident.severity,
                        "title": incident.title,
                        "details": incident.details,
                    }),
                )?;
                let summary = incident.title.clone();
                let message = message(incident, Topic::IncidentOpened, summary, now_text(tx));
                outbox::notify(tx, &incident.id, &notifiers, &message)?;
            }
            Ok(opened)
        })
        .await?;
    Ok(opened)
}

/// The states a change may start from, and the status it sets (`None`: unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Acknowledge,
    Escalate,
    Resolve,
}

impl Transition {
    fn name(self) -> &'static str {
        match self {
            Transition::Acknowledge => "acknowledged",
            Transition::Escalate => "escalated",
            Transition::Resolve => "resolved",
        }
    }

    fn topic(self) -> Topic {
        match self {
            Transition::Acknowledge => Topic::IncidentAcknowledged,
            Transition::Escalate => Topic::IncidentEscalated,
            Transition::Resolve => Topic::IncidentResolved,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Transition::Acknowledge => "acknowledge",
            Transition::Escalate => "escalate",
            Transition::Resolve => "resolve",
        }
    }
}

/// Acknowledges, escalates or resolves incident `id`; a conflict if its state does
/// not allow it (a resolved incident is final; only an open one is acknowledged).
pub(crate) async fn transition(
    store: &Store,
    id: &str,
    change: Transition,
    actor: &str,
    reason: String,
    notifiers: Vec<String>,
) -> Result<Incident, EngineError> {
    let key = id.to_string();
    let who = actor.to_string();
    let result = store
        .write(move |tx| {
            let incident = tx.incident(&key)?.ok_or(StoreError::NotFound {
                kind: "incident",
                key: key.clone(),
            })?;
            let allowed = match change {
                Transition::Acknowledge => incident.status == "open",
                Transition::Escalate | Transition::Resolve => incident.status != "resolved",
            };
            if !allowed {
                return Err(StoreError::Aborted(format!(
                    "incident {key} is {}; it cannot be {}",
                    incident.status,
                    change.name()
                )));
            }
            let updated = match change {
                Transition::Acknowledge => tx.set_incident_status(&key, "acknowledged")?,
                Transition::Escalate => tx.escalate_incident(&key)?,
                Transition::Resolve => tx.set_incident_status(&key, "resolved")?,
            };
            let details = json!({ "reason": reason, "escalations": updated.escalations });
            tx.add_incident_event(&key, change.name(), &who, &details)?;
            audit(
                tx,
                &updated,
                &who,
                &format!("incident.{}", change.verb()),
                details,
            )?;
            let summary = format!("{} {}: {}", updated.title, change.name(), reason);
            let message = message(&updated, change.topic(), summary, now_text(tx));
            outbox::notify(tx, &updated.id, &notifiers, &message)?;
            Ok(updated)
        })
        .await;
    match result {
        Err(StoreError::Aborted(why)) => Err(EngineError::Conflict(why)),
        Err(StoreError::NotFound { key, .. }) => Err(EngineError::UnknownIncident(key)),
        other => Ok(other?),
    }
}

/// Records an action's outcome on the timeline and in the audit log.
pub(crate) async fn action(
    store: &Store,
    id: &str,
    actor: &str,
    details: Value,
) -> Result<(), EngineError> {
    let key = id.to_string();
    let who = actor.to_string();
    store
        .write(move |tx| {
            let incident = tx.incident(&key)?.ok_or(StoreError::NotFound {
                kind: "incident",
                key: key.clone(),
            })?;
            tx.add_incident_event(&key, "action", &who, &details)?;
            audit(tx, &incident, &who, "incident.action", details)
        })
        .await?;
    Ok(())
}
