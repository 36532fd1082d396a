//! What the API asks of incidents: list, show with the timeline, acknowledge,
//! escalate, resolve, and open one from an external source (Alertmanager, a
//! generic webhook).

use std::collections::HashMap;
use std::sync::Arc;

use rampart_store::{Incident, IncidentEvent, IncidentQuery, NewIncident, Opened};
use serde::Serialize;
use tokio::sync::mpsc;

use super::IncidentChange;
use super::record::{self, Transition};
use crate::error::EngineError;
use crate::shared::EngineEvent;
use crate::{Engine, EngineEventKind};

/// An incident with its timeline.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    pub timeline: Vec<IncidentEvent>,
}

/// Tells the responder about changes made outside its loop.
#[derive(Debug)]
pub(crate) enum Command {
    /// Resolved by hand or by its source: forget the firing state, undo actions.
    Resolved(Incident),
    /// Opened by an external source: run the rule's actions.
    ExternalOpened(Incident, Vec<String>),
    /// Acknowledged: escalation stops.
    Acknowledged(String),
}

/// A cheap, cloneable handle on the incidents.
#[derive(Clone)]
pub struct Incidents {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub engine: Engine,
    /// Rule name → its notifiers.
    pub notifiers: HashMap<String, Vec<String>>,
    /// Rule name → its actions (an external alert named like a rule runs them).
    pub actions: HashMap<String, Vec<String>>,
    pub commands: mpsc::UnboundedSender<Command>,
}

impl Incidents {
    pub(crate) fn notifiers_of(&self, incident: &Incident) -> Vec<String> {
        incident
            .rule
            .as_ref()
            .and_then(|r| self.inner.notifiers.get(r))
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn publish(
        &self,
        incident: &Incident,
        change: &str,
        detail: Option<serde_json::Value>,
    ) {
        publish(&self.inner.engine, incident, change, detail);
    }

    pub async fn list(&self, query: IncidentQuery) -> Result<Vec<Incident>, EngineError> {
        Ok(self
            .inner
            .engine
            .shared()
            .store
            .read(move |tx| tx.incidents(&query))
            .await?)
    }

    pub async fn get(&self, id: &str) -> Result<IncidentDetail, EngineError> {
        let key = id.to_string();
        let found = self
            .inner
            .engine
            .shared()
            .store
            .read(move |tx| {
                let incident = tx.incident(&key)?;
                let timeline = match &incident {
                    Some(_) => tx.incident_events(&key)?,
                    None => Vec::new(),
                };
                Ok(incident.map(|incident| IncidentDetail { incident, timeline }))
            })
            .await?;
        found.ok_or_else(|| EngineError::UnknownIncident(id.to_string()))
    }

    async fn change(
        &self,
        id: &str,
        change: Transition,
        actor: &str,
        reason: String,
    ) -> Result<Incident, EngineError> {
        let current = self.get(id).await?.incident;
        let notifiers = self.notifiers_of(&current);
        let store = &self.inner.engine.shared().store;
        let incident = record::transition(store, id, change, actor, reason, notifiers).await?;
        let name = match change {
            Transition::Acknowledge => "acknowledged",
            Transition::Escalate => "escalated",
            Transition::Resolve => "resolved",
        };
        self.publish(&incident, name, None);
        if change == Transition::Acknowledge {
            let _ = self
                .inner
                .commands
                .send(Command::Acknowledged(incident.id.clone()));
        }
        if change == Transition::Resolve {
            let _ = self
                .inner
                .commands
                .send(Command::Resolved(incident.clone()));
        }
        Ok(incident)
    }

    pub async fn acknowledge(
        &self,
        id: &str,
        actor: &str,
        reason: Option<String>,
    ) -> Result<Incident, EngineError> {
        let reason = reason.unwrap_or_else(|| format!("acknowledged by {actor}"));
        self.change(id, Transition::Acknowledge, actor, reason)
            .await
    }

    pub async fn escalate(
        &self,
        id: &str,
        actor: &str,
        reason: Option<String>,
    ) -> Result<Incident, EngineError> {
        let reason = reason.unwrap_or_else(|| format!("escalated by {actor}"));
        self.change(id, Transition::Escalate, actor, reason).await
    }

    pub async fn resolve(
        &self,
        id: &str,
        actor: &str,
        reason: Option<String>,
    ) -> Result<Incident, EngineError> {
        let reason = reason.unwrap_or_else(|| format!("resolved by {actor}"));
        self.change(id, Transition::Resolve, actor, reason).await
    }

    /// An alert from outside (Alertmanager, a webhook) fires: opens an incident for
    /// `rule` and the service, or counts a repeat on the open one. The config's rule
    /// of that name, if any, lends its notifiers and actions.
    pub async fn external_firing(
        &self,
        new: NewIncident,
        actor: &str,
    ) -> Result<Opened, EngineError> {
        let actions = self
            .inner
            .actions
            .get(&new.rule)
            .cloned()
            .unwrap_or_default();
        let notifiers = self
            .inner
            .notifiers
            .get(&new.rule)
            .cloned()
            .unwrap_or_default();
        let store = &self.inner.engine.shared().store;
        let opened = record::open(store, new, actor.to_string(), notifiers).await?;
        match &opened {
            Opened::New(incident) => {
                self.publish(incident, "opened", None);
                if !actions.is_empty() {
                    let _ = self
                        .inner
                        .commands
                        .send(Command::ExternalOpened(incident.clone(), actions));
                }
            }
            Opened::Repeat(incident) => self.publish(incident, "repeated", None),
        }
        Ok(opened)
    }

    /// The external alert of `rule` for `service` resolved: resolves its incident,
    /// if one is open. Returns it.
    pub async fn external_resolved(
        &self,
        rule: &str,
        service: Option<&str>,
        actor: &str,
        reason: String,
    ) -> Result<Option<Incident>, EngineError> {
        let (key, svc) = (rule.to_string(), service.map(str::to_string));
        let open = self
            .inner
            .engine
            .shared()
            .store
            .read(move |tx| tx.open_incident_for(&key, svc.as_deref()))
            .await?;
        match open {
            Some(incident) => self
                .resolve(&incident.id, actor, Some(reason))
                .await
                .map(Some),
            None => Ok(None),
        }
    }
}

pub(crate) fn publish(
    engine: &Engine,
    incident: &Incident,
    change: &str,
    detail: Option<serde_json::Value>,
) {
    engine.shared().publish(EngineEvent {
        service: incident.service.clone().unwrap_or_default(),
        deployment_id: None,
        kind: EngineEventKind::Incident {
            incident: IncidentChange {
                id: incident.id.clone(),
                change: change.to_string(),
                status: incident.status.clone(),
                severity: incident.severity.clone(),
                rule: incident.rule.clone(),
                title: incident.title.clone(),
                detail,
            },
        },
    });
}
