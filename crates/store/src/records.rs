//! Smaller records kept for history and the dashboard: validation runs, incidents
//! and autoscaler decisions.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Result, StoreError, is_foreign_key_violation, is_unique_violation};
use crate::sql::{SqlJson, SqlJsonRef, SqlTime, limit_param, opt_time};
use crate::{Store, Tx};

/// One run of a service's pre-deploy checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationRunRow {
    pub id: String,
    pub service: String,
    /// The deployment the run gated, if it ran as part of one.
    pub deployment_id: Option<String>,
    pub started_at: DateTime<Utc>,
    /// Per-check results, as the engine reports them.
    pub result: Value,
    /// Whether no critical check failed.
    pub can_deploy: bool,
}

/// An incident: something went wrong with a service and may need a human.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentRow {
    pub id: String,
    pub service: String,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// `open`, `acknowledged`, `resolved`, ...
    pub status: String,
    pub severity: String,
    pub title: String,
    /// Triggering rule, observations, escalation history.
    pub details: Value,
}

/// An autoscaler decision to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScalingDecision {
    pub service: String,
    pub from_instances: u32,
    pub to_instances: u32,
    pub reason: String,
    /// `applied`, `failed`, `skipped`, ...
    pub status: String,
    /// The inputs the decision was made from.
    pub data: Value,
}

/// A recorded autoscaler decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingDecision {
    pub id: i64,
    pub service: String,
    pub at: DateTime<Utc>,
    pub from_instances: u32,
    pub to_instances: u32,
    pub reason: String,
    pub status: String,
    pub data: Value,
}

const VALIDATION_COLUMNS: &str = "id, service, deployment_id, started_at, result, can_deploy";
const INCIDENT_COLUMNS: &str =
    "id, service, opened_at, updated_at, closed_at, status, severity, title, details";
const SCALING_COLUMNS: &str = "id, service, at, from_instances, to_instances, reason, status, data";

fn validation_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ValidationRunRow> {
    Ok(ValidationRunRow {
        id: row.get(0)?,
        service: row.get(1)?,
        deployment_id: row.get(2)?,
        started_at: row.get::<_, SqlTime>(3)?.0,
        result: row.get::<_, SqlJson>(4)?.0,
        can_deploy: row.get(5)?,
    })
}

fn incident_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: row.get(0)?,
        service: row.get(1)?,
        opened_at: row.get::<_, SqlTime>(2)?.0,
        updated_at: row.get::<_, SqlTime>(3)?.0,
        closed_at: opt_time(row, 4)?,
        status: row.get(5)?,
        severity: row.get(6)?,
        title: row.get(7)?,
        details: row.get::<_, SqlJson>(8)?.0,
    })
}

fn scaling_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ScalingDecision> {
    Ok(ScalingDecision {
        id: row.get(0)?,
        service: row.get(1)?,
        at: row.get::<_, SqlTime>(2)?.0,
        from_instances: row.get(3)?,
        to_instances: row.get(4)?,
        reason: row.get(5)?,
        status: row.get(6)?,
        data: row.get::<_, SqlJson>(7)?.0,
    })
}

fn insert_error(err: rusqlite::Error, kind: &'static str, id: &str) -> StoreError {
    if is_unique_violation(&err) {
        StoreError::AlreadyExists {
            kind,
            key: id.to_string(),
        }
    } else {
        err.into()
    }
}

impl Tx<'_> {
    pub fn insert_validation_run(&self, run: &ValidationRunRow) -> Result<()> {
        let inserted = self
            .conn()
            .prepare_cached(&format!(
                "INSERT INTO validation_runs ({VALIDATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                run.id,
                run.service,
                run.deployment_id,
                SqlTime(run.started_at),
                SqlJsonRef(&run.result),
                run.can_deploy
            ]);
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound {
                kind: "deployment",
                key: run.deployment_id.clone().unwrap_or_default(),
            }),
            Err(e) => Err(insert_error(e, "validation run", &run.id)),
        }
    }

    pub fn get_validation_run(&self, id: &str) -> Result<Option<ValidationRunRow>> {
        let run = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {VALIDATION_COLUMNS} FROM validation_runs WHERE id = ?1"
            ))?
            .query_row([id], validation_from_row)
            .optional()?;
        Ok(run)
    }

    /// A service's validation runs, newest first.
    pub fn list_validation_runs(&self, service: &str, limit: u32) -> Result<Vec<ValidationRunRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {VALIDATION_COLUMNS} FROM validation_runs WHERE service = ?1 \
             ORDER BY started_at DESC, rowid DESC LIMIT ?2"
        ))?;
        let runs = stmt
            .query_map(params![service, limit_param(limit)], validation_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(runs)
    }

    /// A service's most recent validation run.
    pub fn latest_validation_run(&self, service: &str) -> Result<Option<ValidationRunRow>> {
        Ok(self.list_validation_runs(service, 1)?.into_iter().next())
    }

    pub fn insert_incident(&self, incident: &IncidentRow) -> Result<()> {
        self.conn()
            .prepare_cached(&format!(
                "INSERT INTO incidents ({INCIDENT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                incident.id,
                incident.service,
                SqlTime(incident.opened_at),
                SqlTime(incident.updated_at),
                incident.closed_at.map(SqlTime),
                incident.status,
                incident.severity,
                incident.title,
                SqlJsonRef(&incident.details)
            ])
            .map_err(|e| insert_error(e, "incident", &incident.id))?;
        Ok(())
    }

    /// Sets an incident's status and details, stamping `updated_at` with now. With
    /// `closed`, also sets `closed_at` (only the first time).
    pub fn update_incident(
        &self,
        id: &str,
        status: &str,
        details: &Value,
        closed: bool,
    ) -> Result<()> {
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE incidents SET status = ?2, details = ?3, updated_at = ?4, \
                 closed_at = CASE WHEN ?5 THEN COALESCE(closed_at, ?4) ELSE closed_at END \
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                status,
                SqlJsonRef(details),
                SqlTime(self.now()),
                closed
            ])?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "incident",
                key: id.to_string(),
            });
        }
        Ok(())
    }

    pub fn get_incident(&self, id: &str) -> Result<Option<IncidentRow>> {
        let incident = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"
            ))?
            .query_row([id], incident_from_row)
            .optional()?;
        Ok(incident)
    }

    /// Incidents newest first, optionally of one service, optionally only unclosed ones.
    pub fn list_incidents(
        &self,
        service: Option<&str>,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<IncidentRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents \
             WHERE (?1 IS NULL OR service = ?1) AND (NOT ?2 OR closed_at IS NULL) \
             ORDER BY opened_at DESC, rowid DESC LIMIT ?3"
        ))?;
        let incidents = stmt
            .query_map(
                params![service, open_only, limit_param(limit)],
                incident_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(incidents)
    }

    /// Records an autoscaler decision, stamped with now.
    pub fn insert_scaling_decision(
        &self,
        decision: &NewScalingDecision,
    ) -> Result<ScalingDecision> {
        let at = self.now();
        self.conn()
            .prepare_cached(
                "INSERT INTO scaling_decisions \
                 (service, at, from_instances, to_instances, reason, status, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                decision.service,
                SqlTime(at),
                decision.from_instances,
                decision.to_instances,
                decision.reason,
                decision.status,
                SqlJsonRef(&decision.data)
            ])?;
        Ok(ScalingDecision {
            id: self.conn().last_insert_rowid(),
            service: decision.service.clone(),
            at,
            from_instances: decision.from_instances,
            to_instances: decision.to_instances,
            reason: decision.reason.clone(),
            status: decision.status.clone(),
            data: decision.data.clone(),
        })
    }

    /// Autoscaler decisions newest first, optionally of one service.
    pub fn list_scaling_decisions(
        &self,
        service: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ScalingDecision>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {SCALING_COLUMNS} FROM scaling_decisions \
             WHERE (?1 IS NULL OR service = ?1) ORDER BY id DESC LIMIT ?2"
        ))?;
        let decisions = stmt
            .query_map(params![service, limit_param(limit)], scaling_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(decisions)
    }
}

impl Store {
    /// See [`Tx::insert_validation_run`].
    pub fn insert_validation_run(&self, run: &ValidationRunRow) -> Result<()> {
        self.with_tx(|tx| tx.insert_validation_run(run))
    }

    /// See [`Tx::get_validation_run`].
    pub fn get_validation_run(&self, id: &str) -> Result<Option<ValidationRunRow>> {
        self.read_blocking(|tx| tx.get_validation_run(id))
    }

    /// See [`Tx::list_validation_runs`].
    pub fn list_validation_runs(&self, service: &str, limit: u32) -> Result<Vec<ValidationRunRow>> {
        self.read_blocking(|tx| tx.list_validation_runs(service, limit))
    }

    /// See [`Tx::latest_validation_run`].
    pub fn latest_validation_run(&self, service: &str) -> Result<Option<ValidationRunRow>> {
        self.read_blocking(|tx| tx.latest_validation_run(service))
    }

    /// See [`Tx::insert_incident`].
    pub fn insert_incident(&self, incident: &IncidentRow) -> Result<()> {
        self.with_tx(|tx| tx.insert_incident(incident))
    }

    /// See [`Tx::update_incident`].
    pub fn update_incident(
        &self,
        id: &str,
        status: &str,
        details: &Value,
        closed: bool,
    ) -> Result<()> {
        self.with_tx(|tx| tx.update_incident(id, status, details, closed))
    }

    /// See [`Tx::get_incident`].
    pub fn get_incident(&self, id: &str) -> Result<Option<IncidentRow>> {
        self.read_blocking(|tx| tx.get_incident(id))
    }

    /// See [`Tx::list_incidents`].
    pub fn list_incidents(
        &self,
        service: Option<&str>,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<IncidentRow>> {
        self.read_blocking(|tx| tx.list_incidents(service, open_only, limit))
    }

    /// See [`Tx::insert_scaling_decision`].
    pub fn insert_scaling_decision(
        &self,
        decision: &NewScalingDecision,
    ) -> Result<ScalingDecision> {
        self.with_tx(|tx| tx.insert_scaling_decision(decision))
    }

    /// See [`Tx::list_scaling_decisions`].
    pub fn list_scaling_decisions(
        &self,
        service: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ScalingDecision>> {
        self.read_blocking(|tx| tx.list_scaling_decisions(service, limit))
    }
}
