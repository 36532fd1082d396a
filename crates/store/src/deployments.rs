//! Deployments, their event timeline, and the canary analysis measurements taken
//! during them. The engine owns the meaning of `state` and `record`; the store keeps
//! them durable and queryable.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Result, StoreError, is_foreign_key_violation, is_unique_violation};
use crate::sql::{SqlJson, SqlJsonRef, SqlTime, limit_param, opt_time};
use crate::{Store, Tx};

/// One deployment of one version of one service. Timestamps are stored with
/// microsecond precision (see [`crate::format_timestamp`]); [`crate::Store::now`]
/// already gives values at that precision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentRow {
    /// Random hex id, see [`crate::new_id`].
    pub id: String,
    pub service: String,
    pub version: String,
    /// The version serving before this deployment, if any.
    pub previous_version: Option<String>,
    /// Short state name (`validating`, `progressing`, `succeeded`, ...).
    pub state: String,
    /// The engine's full rollout state, enough to resume after a crash.
    pub record: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set once the deployment reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A timeline event to add to a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeploymentEvent {
    pub deployment_id: String,
    pub kind: String,
    pub message: String,
    pub data: Value,
}

/// A recorded deployment event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentEvent {
    pub id: i64,
    pub deployment_id: String,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub message: String,
    pub data: Value,
}

/// One analysis result to record for a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMeasurement {
    pub deployment_id: String,
    /// Index of the rollout step the measurement was taken in.
    pub step: u32,
    /// `pass`, `fail` or `inconclusive`.
    pub outcome: String,
    /// The judge's full verdict.
    pub verdict: Value,
}

/// A recorded analysis measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    pub id: i64,
    pub deployment_id: String,
    pub at: DateTime<Utc>,
    pub step: u32,
    pub outcome: String,
    pub verdict: Value,
}

const DEPLOYMENT_COLUMNS: &str = "id, service, version, previous_version, state, record, \
                                  created_at, updated_at, finished_at";

fn deployment_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeploymentRow> {
    Ok(DeploymentRow {
        id: row.get(0)?,
        service: row.get(1)?,
        version: row.get(2)?,
        previous_version: row.get(3)?,
        state: row.get(4)?,
        record: row.get::<_, SqlJson>(5)?.0,
        created_at: row.get::<_, SqlTime>(6)?.0,
        updated_at: row.get::<_, SqlTime>(7)?.0,
        finished_at: opt_time(row, 8)?,
    })
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeploymentEvent> {
    Ok(DeploymentEvent {
        id: row.get(0)?,
        deployment_id: row.get(1)?,
        at: row.get::<_, SqlTime>(2)?.0,
        kind: row.get(3)?,
        message: row.get(4)?,
        data: row.get::<_, SqlJson>(5)?.0,
    })
}

fn measurement_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Measurement> {
    Ok(Measurement {
        id: row.get(0)?,
        deployment_id: row.get(1)?,
        at: row.get::<_, SqlTime>(2)?.0,
        step: row.get(3)?,
        outcome: row.get(4)?,
        verdict: row.get::<_, SqlJson>(5)?.0,
    })
}

/// Maps a foreign-key failure on `deployment_id` to a clear "no such deployment".
fn missing_deployment(err: rusqlite::Error, id: &str) -> StoreError {
    if is_foreign_key_violation(&err) {
        StoreError::NotFound {
            kind: "deployment",
            key: id.to_string(),
        }
    } else {
        err.into()
    }
}

impl Tx<'_> {
    /// Inserts a new deployment. Timestamps are taken from the row as given.
    pub fn insert_deployment(&self, row: &DeploymentRow) -> Result<()> {
        let inserted = self
            .conn()
            .prepare_cached(&format!(
                "INSERT INTO deployments ({DEPLOYMENT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                row.id,
                row.service,
                row.version,
                row.previous_version,
                row.state,
                SqlJsonRef(&row.record),
                SqlTime(row.created_at),
                SqlTime(row.updated_at),
                row.finished_at.map(SqlTime),
            ]);
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
                kind: "deployment",
                key: row.id.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a new state and record, stamping `updated_at` with now. With `finished`,
    /// also sets `finished_at` (only the first time, so it keeps the real end time).
    pub fn update_deployment(
        &self,
        id: &str,
        state: &str,
        record: &Value,
        finished: bool,
    ) -> Result<()> {
        let now = SqlTime(self.now());
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE deployments SET state = ?2, record = ?3, updated_at = ?4, \
                 finished_at = CASE WHEN ?5 THEN COALESCE(finished_at, ?4) ELSE finished_at END \
                 WHERE id = ?1",
            )?
            .execute(params![id, state, SqlJsonRef(record), now, finished])?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "deployment",
                key: id.to_string(),
            });
        }
        Ok(())
    }

    pub fn get_deployment(&self, id: &str) -> Result<Option<DeploymentRow>> {
        let row = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?1"
            ))?
            .query_row([id], deployment_from_row)
            .optional()?;
        Ok(row)
    }

    /// Deployments newest first, optionally of one service only.
    pub fn list_deployments(
        &self,
        service: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeploymentRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments \
             WHERE (?1 IS NULL OR service = ?1) \
             ORDER BY created_at DESC, rowid DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![service, limit_param(limit)], deployment_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Deployments not yet finished, oldest first: what the engine resumes after a
    /// restart.
    pub fn active_deployments(&self) -> Result<Vec<DeploymentRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE finished_at IS NULL \
             ORDER BY created_at ASC, rowid ASC"
        ))?;
        let rows = stmt
            .query_map([], deployment_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// How many deployments ended in each state, per service: `(service, state, n)`
    /// (the rollout counters' starting values after a restart).
    pub fn finished_deployment_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT service, state, COUNT(*) FROM deployments \
             WHERE finished_at IS NOT NULL GROUP BY service, state ORDER BY service, state",
        )?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The records of the deployments that ended in `state`, as `(service, record)`.
    pub fn finished_deployment_records(&self, state: &str) -> Result<Vec<(String, Value)>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT service, record FROM deployments \
             WHERE finished_at IS NOT NULL AND state = ?1 ORDER BY created_at, rowid",
        )?;
        let rows = stmt
            .query_map(params![state], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, SqlJson>(1)?.0))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Adds an event to a deployment's timeline, stamped with now.
    pub fn append_deployment_event(&self, event: &NewDeploymentEvent) -> Result<DeploymentEvent> {
        let at = self.now();
        self.conn()
            .prepare_cached(
                "INSERT INTO deployment_events (deployment_id, at, kind, message, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                event.deployment_id,
                SqlTime(at),
                event.kind,
                event.message,
                SqlJsonRef(&event.data)
            ])
            .map_err(|e| missing_deployment(e, &event.deployment_id))?;
        Ok(DeploymentEvent {
            id: self.conn().last_insert_rowid(),
            deployment_id: event.deployment_id.clone(),
            at,
            kind: event.kind.clone(),
            message: event.message.clone(),
            data: event.data.clone(),
        })
    }

    /// A deployment's whole timeline, oldest first.
    pub fn deployment_events(&self, deployment_id: &str) -> Result<Vec<DeploymentEvent>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, deployment_id, at, kind, message, data FROM deployment_events \
             WHERE deployment_id = ?1 ORDER BY id ASC",
        )?;
        let events = stmt
            .query_map([deployment_id], event_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(events)
    }

    /// Records one analysis measurement, stamped with now.
    pub fn append_measurement(&self, measurement: &NewMeasurement) -> Result<Measurement> {
        let at = self.now();
        self.conn()
            .prepare_cached(
                "INSERT INTO analysis_measurements (deployment_id, at, step, outcome, verdict) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                measurement.deployment_id,
                SqlTime(at),
                measurement.step,
                measurement.outcome,
                SqlJsonRef(&measurement.verdict)
            ])
            .map_err(|e| missing_deployment(e, &measurement.deployment_id))?;
        Ok(Measurement {
            id: self.conn().last_insert_rowid(),
            deployment_id: measurement.deployment_id.clone(),
            at,
            step: measurement.step,
            outcome: measurement.outcome.clone(),
            verdict: measurement.verdict.clone(),
        })
    }

    /// The latest `limit` measurements of a deployment, in the order they were taken.
    pub fn measurements(&self, deployment_id: &str, limit: u32) -> Result<Vec<Measurement>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, deployment_id, at, step, outcome, verdict FROM ( \
                 SELECT * FROM analysis_measurements WHERE deployment_id = ?1 \
                 ORDER BY id DESC LIMIT ?2 \
             ) ORDER BY id ASC",
        )?;
        let rows = stmt
            .query_map(
                params![deployment_id, limit_param(limit)],
                measurement_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// A page of a deployment's measurements in the order they were taken: at most
    /// `limit`, skipping the first `offset`.
    pub fn measurements_page(
        &self,
        deployment_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Measurement>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, deployment_id, at, step, outcome, verdict FROM analysis_measurements \
             WHERE deployment_id = ?1 ORDER BY id ASC LIMIT ?2 OFFSET ?3",
        )?;
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(
                params![deployment_id, limit_param(limit), offset],
                measurement_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// How many measurements a deployment has, by outcome.
    pub fn measurement_counts(&self, deployment_id: &str) -> Result<BTreeMap<String, u64>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT outcome, COUNT(*) FROM analysis_measurements \
             WHERE deployment_id = ?1 GROUP BY outcome",
        )?;
        let rows = stmt
            .query_map(params![deployment_id], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?
            .map(|row| row.map(|(outcome, n)| (outcome, u64::try_from(n).unwrap_or(0))))
            .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
        Ok(rows)
    }
}

impl Store {
    /// See [`Tx::insert_deployment`].
    pub fn insert_deployment(&self, row: &DeploymentRow) -> Result<()> {
        self.with_tx(|tx| tx.insert_deployment(row))
    }

    /// See [`Tx::update_deployment`].
    pub fn update_deployment(
        &self,
        id: &str,
        state: &str,
        record: &Value,
        finished: bool,
    ) -> Result<()> {
        self.with_tx(|tx| tx.update_deployment(id, state, record, finished))
    }

    /// See [`Tx::get_deployment`].
    pub fn get_deployment(&self, id: &str) -> Result<Option<DeploymentRow>> {
        self.read_blocking(|tx| tx.get_deployment(id))
    }

    /// See [`Tx::list_deployments`].
    pub fn list_deployments(
        &self,
        service: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeploymentRow>> {
        self.read_blocking(|tx| tx.list_deployments(service, limit))
    }

    /// See [`Tx::active_deployments`].
    pub fn active_deployments(&self) -> Result<Vec<DeploymentRow>> {
        self.read_blocking(|tx| tx.active_deployments())
    }

    /// See [`Tx::append_deployment_event`].
    pub fn append_deployment_event(&self, event: &NewDeploymentEvent) -> Result<DeploymentEvent> {
        self.with_tx(|tx| tx.append_deployment_event(event))
    }

    /// See [`Tx::deployment_events`].
    pub fn deployment_events(&self, deployment_id: &str) -> Result<Vec<DeploymentEvent>> {
        self.read_blocking(|tx| tx.deployment_events(deployment_id))
    }

    /// See [`Tx::append_measurement`].
    pub fn append_measurement(&self, measurement: &NewMeasurement) -> Result<Measurement> {
        self.with_tx(|tx| tx.append_measurement(measurement))
    }

    /// See [`Tx::measurements`].
    pub fn measurements(&self, deployment_id: &str, limit: u32) -> Result<Vec<Measurement>> {
        self.read_blocking(|tx| tx.measurements(deployment_id, limit))
    }

    /// See [`Tx::measurements_page`].
    pub fn measurements_page(
        &self,
        deployment_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Measurement>> {
        self.read_blocking(|tx| tx.measurements_page(deployment_id, offset, limit))
    }

    /// See [`Tx::measurement_counts`].
    pub fn measurement_counts(&self, deployment_id: &str) -> Result<BTreeMap<String, u64>> {
        self.read_blocking(|tx| tx.measurement_counts(deployment_id))
    }
}
