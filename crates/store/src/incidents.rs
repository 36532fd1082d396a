//! Incidents as the responder keeps them: one open incident per rule and service
//! (a repeat is counted and timestamped on the open one), states open →
//! acknowledged → resolved, escalations, and a timeline of every change, action and
//! notification. Each change and its timeline event commit in one transaction.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Result, StoreError, is_unique_violation};
use crate::sql::{SqlJson, SqlJsonRef, SqlTime, limit_param, opt_time};
use crate::{Store, Tx};

/// An incident with everything the API shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub id: String,
    /// The rule that opened it; `None` for one the rollout controller opened.
    pub rule: Option<String>,
    /// The service, or `None` for a host-wide or security incident.
    pub service: Option<String>,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    pub severity: String,
    pub title: String,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub escalations: u32,
    pub closed_at: Option<DateTime<Utc>>,
    /// How often the condition came back while the incident was open.
    pub repeats: u32,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub details: Value,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentEvent {
    pub id: i64,
    pub incident_id: String,
    pub at: DateTime<Utc>,
    /// `opened`, `repeated`, `acknowledged`, `escalated`, `resolved`, `action`,
    /// `notification`.
    pub kind: String,
    pub actor: String,
    pub details: Value,
}

/// An incident to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    pub rule: String,
    pub service: Option<String>,
    pub severity: String,
    pub title: String,
    pub details: Value,
}

/// What [`Tx::open_or_repeat_incident`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    New(Incident),
    /// The rule already had an open incident for the service; its repeat count went up.
    Repeat(Incident),
}

impl Opened {
    pub fn incident(&self) -> &Incident {
        match self {
            Opened::New(i) | Opened::Repeat(i) => i,
        }
    }
}

/// Filters for listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentQuery {
    pub status: Option<String>,
    pub service: Option<String>,
    pub severity: Option<String>,
    /// Only incidents not resolved yet.
    pub unresolved: bool,
    pub limit: u32,
}

const COLUMNS: &str = "id, rule, service, status, severity, title, opened_at, updated_at, \
    acknowledged_at, escalated_at, escalations, closed_at, repeats, last_seen_at, details";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    let service: String = row.get(2)?;
    Ok(Incident {
        id: row.get(0)?,
        rule: row.get(1)?,
        service: (!service.is_empty()).then_some(service),
        status: row.get(3)?,
        severity: row.get(4)?,
        title: row.get(5)?,
        opened_at: row.get::<_, SqlTime>(6)?.0,
        updated_at: row.get::<_, SqlTime>(7)?.0,
        acknowledged_at: opt_time(row, 8)?,
        escalated_at: opt_time(row, 9)?,
        escalations: row.get(10)?,
        closed_at: opt_time(row, 11)?,
        repeats: row.get(12)?,
        last_seen_at: opt_time(row, 13)?,
        details: row.get::<_, SqlJson>(14)?.0,
    })
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentEvent> {
    Ok(IncidentEvent {
        id: row.get(0)?,
        incident_id: row.get(1)?,
        at: row.get::<_, SqlTime>(2)?.0,
        kind: row.get(3)?,
        actor: row.get(4)?,
        details: row.get::<_, SqlJson>(5)?.0,
    })
}

impl Tx<'_> {
    /// Opens an incident for `new.rule` and `new.service`, or counts a repeat on the
    /// one already open. Either way a timeline event records it.
    pub fn open_or_repeat_incident(&self, new: &NewIncident, actor: &str) -> Result<Opened> {
        let service = new.service.clone().unwrap_or_default();
        if let Some(open) = self.open_incident_for(&new.rule, new.service.as_deref())? {
            let now = self.now();
            self.conn()
                .prepare_cached(
                    "UPDATE incidents SET repeats = repeats + 1, last_seen_at = ?2, updated_at = ?2 \
                     WHERE id = ?1",
                )?
                .execute(params![open.id, SqlTime(now)])?;
            self.add_incident_event(&open.id, "repeated", actor, &new.details)?;
            let updated = self.incident(&open.id)?.unwrap_or(open);
            return Ok(Opened::Repeat(updated));
        }
        let id = crate::new_id();
        let now = self.now();
        self.conn()
            .prepare_cached(
                "INSERT INTO incidents (id, rule, service, status, severity, title, opened_at, \
                 updated_at, last_seen_at, details) VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?6, ?6, ?7)",
            )?
            .execute(params![
                id,
                new.rule,
                service,
                new.severity,
                new.title,
                SqlTime(now),
                SqlJsonRef(&new.details)
            ])
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::AlreadyExists {
                        kind: "open incident",
                        key: format!("{}/{service}", new.rule),
                    }
                } else {
                    e.into()
                }
            })?;
        self.add_incident_event(&id, "opened", actor, &new.details)?;
        let incident = self.incident(&id)?.ok_or(StoreError::NotFound {
            kind: "incident",
            key: id.clone(),
        })?;
        Ok(Opened::New(incident))
    }

    /// The unresolved incident of a rule for a service (`None`: host-wide), if any.
    pub fn open_incident_for(&self, rule: &str, service: Option<&str>) -> Result<Option<Incident>> {
        let incident = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM incidents WHERE rule = ?1 AND service = ?2 AND closed_at IS NULL"
            ))?
            .query_row(params![rule, service.unwrap_or_default()], from_row)
            .optional()?;
        Ok(incident)
    }

    pub fn incident(&self, id: &str) -> Result<Option<Incident>> {
        let incident = self
            .conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"))?
            .query_row([id], from_row)
            .optional()?;
        Ok(incident)
    }

    /// Incidents newest first.
    pub fn incidents(&self, query: &IncidentQuery) -> Result<Vec<Incident>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM incidents \
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR service = ?2) \
             AND (?3 IS NULL OR severity = ?3) AND (NOT ?4 OR closed_at IS NULL) \
             ORDER BY opened_at DESC, rowid DESC LIMIT ?5"
        ))?;
        let rows = stmt
            .query_map(
                params![
                    query.status,
                    query.service,
                    query.severity,
                    query.unresolved,
                    limit_param(query.limit)
                ],
                from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Sets the status: `acknowledged` stamps `acknowledged_at`, `resolved` closes it.
    /// Returns the incident as it is now; `NotFound` if there is none.
    pub fn set_incident_status(&self, id: &str, status: &str) -> Result<Incident> {
        let now = SqlTime(self.now());
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE incidents SET status = ?2, updated_at = ?3, \
                 acknowledged_at = CASE WHEN ?2 = 'acknowledged' THEN COALESCE(acknowledged_at, ?3) ELSE acknowledged_at END, \
                 closed_at = CASE WHEN ?2 = 'resolved' THEN COALESCE(closed_at, ?3) ELSE closed_at END \
                 WHERE id = ?1",
            )?
            .execute(params![id, status, now])?;
        self.changed_incident(id, changed)
    }

    /// Counts an escalation.
    pub fn escalate_incident(&self, id: &str) -> Result<Incident> {
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE incidents SET escalations = escalations + 1, escalated_at = ?2, updated_at = ?2 \
                 WHERE id = ?1",
            )?
            .execute(params![id, SqlTime(self.now())])?;
        self.changed_incident(id, changed)
    }

    /// Replaces the details (the responder's notes: observations, action state).
    pub fn set_incident_details(&self, id: &str, details: &Value) -> Result<()> {
        let changed = self
            .conn()
            .prepare_cached("UPDATE incidents SET details = ?2, updated_at = ?3 WHERE id = ?1")?
            .execute(params![id, SqlJsonRef(details), SqlTime(self.now())])?;
        self.changed_incident(id, changed).map(|_| ())
    }

    fn changed_incident(&self, id: &str, changed: usize) -> Result<Incident> {
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "incident",
                key: id.to_string(),
            });
        }
        self.incident(id)?.ok_or(StoreError::NotFound {
            kind: "incident",
            key: id.to_string(),
        })
    }

    pub fn add_incident_event(
        &self,
        incident_id: &str,
        kind: &str,
        actor: &str,
        details: &Value,
    ) -> Result<IncidentEvent> {
        let at = self.now();
        self.conn()
            .prepare_cached(
                "INSERT INTO incident_events (incident_id, at, kind, actor, details) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                incident_id,
                SqlTime(at),
                kind,
                actor,
                SqlJsonRef(details)
            ])?;
        Ok(IncidentEvent {
            id: self.conn().last_insert_rowid(),
            incident_id: incident_id.to_string(),
            at,
            kind: kind.to_string(),
            actor: actor.to_string(),
            details: details.clone(),
        })
    }

    /// An incident's timeline, oldest first.
    pub fn incident_events(&self, incident_id: &str) -> Result<Vec<IncidentEvent>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, incident_id, at, kind, actor, details FROM incident_events \
             WHERE incident_id = ?1 ORDER BY id",
        )?;
        let events = stmt
            .query_map([incident_id], event_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(events)
    }
}

impl Store {
    /// See [`Tx::incident`].
    pub fn incident_blocking(&self, id: &str) -> Result<Option<Incident>> {
        self.read_blocking(|tx| tx.incident(id))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn new(rule: &str, service: Option<&str>) -> NewIncident {
        NewIncident {
            rule: rule.into(),
            service: service.map(Into::into),
            severity: "high".into(),
            title: "errors".into(),
            details: json!({"value": 9.5}),
        }
    }

    #[test]
    fn one_open_incident_per_rule_and_service_repeats_counted() {
        let store = Store::open_in_memory().expect("store");
        let first = store
            .with_tx(|tx| tx.open_or_repeat_incident(&new("errors", Some("shop")), "rampart"))
            .expect("opens");
        let Opened::New(first) = first else {
            panic!("new")
        };
        let again = store
            .with_tx(|tx| tx.open_or_repeat_incident(&new("errors", Some("shop")), "rampart"))
            .expect("repeats");
        let Opened::Repeat(again) = again else {
            panic!("repeat")
        };
        assert_eq!(again.id, first.id);
        assert_eq!(again.repeats, 1);
        // Another service, and a host-wide one, are incidents of their own.
        let other = store
            .with_tx(|tx| tx.open_or_repeat_incident(&new("errors", Some("cart")), "rampart"))
            .expect("opens");
        assert!(matches!(other, Opened::New(_)));
        let host = store
            .with_tx(|tx| tx.open_or_repeat_incident(&new("errors", None), "rampart"))
            .expect("opens");
        assert_eq!(host.incident().service, None);

        let resolved = store
            .with_tx(|tx| tx.set_incident_status(&first.id, "resolved"))
            .expect("resolves");
        assert!(resolved.closed_at.is_some());
        let reopened = store
            .with_tx(|tx| tx.open_or_repeat_incident(&new("errors", Some("shop")), "rampart"))
            .expect("opens");
        assert!(matches!(reopened, Opened::New(ref i) if i.id != first.id));

        let kinds: Vec<String> = store
            .read_blocking(|tx| tx.incident_events(&first.id))
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["opened", "repeated"]);
    }

    #[test]
    fn filters_and_acknowledgement() {
        let store = Store::open_in_memory().expect("store");
        let a = store
            .with_tx(|tx| tx.open_or_repeat_incident(&new("errors", Some("shop")), "rampart"))
            .expect("opens");
        let id = a.incident().id.clone();
        let acked = store
            .with_tx(|tx| tx.set_incident_status(&id, "acknowledged"))
            .expect("acks");
        assert!(acked.acknowledged_at.is_some());
        assert!(acked.closed_at.is_none());
        let escalated = store
            .with_tx(|tx| tx.escalate_incident(&id))
            .expect("escalates");
        assert_eq!(escalated.escalations, 1);
        let query = |status: Option<&str>, service: Option<&str>| {
            store
                .read_blocking(|tx| {
                    tx.incidents(&IncidentQuery {
                        status: status.map(Into::into),
                        service: service.map(Into::into),
                        limit: 10,
                        ..IncidentQuery::default()
                    })
                })
                .expect("lists")
                .len()
        };
        assert_eq!(query(Some("acknowledged"), None), 1);
        assert_eq!(query(Some("open"), None), 0);
        assert_eq!(query(None, Some("cart")), 0);
        assert!(matches!(
            store.with_tx(|tx| tx.set_incident_status("nope", "resolved")),
            Err(StoreError::NotFound { .. })
        ));
    }
}
