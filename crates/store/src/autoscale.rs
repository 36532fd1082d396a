//! The autoscaler's memory: 1-minute load totals per service (what the predictive
//! mode forecasts from) and the pruning that keeps it and the decision log bounded.

use chrono::{DateTime, Utc};
use rusqlite::params;

use crate::error::Result;
use crate::sql::SqlTime;
use crate::{Store, Tx};

/// One minute of one metric's total load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadPoint {
    /// Start of the minute, milliseconds since the epoch.
    pub minute_ms: i64,
    pub value: f64,
}

impl Tx<'_> {
    /// Records (or replaces) one minute of a service's load.
    pub fn record_load(&self, service: &str, metric: &str, point: LoadPoint) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO load_history (service, metric, minute, value) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (service, metric, minute) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![service, metric, point.minute_ms, point.value])?;
        Ok(())
    }

    /// A service's load history of one metric from `since_ms` on, oldest first.
    pub fn load_history(
        &self,
        service: &str,
        metric: &str,
        since_ms: i64,
    ) -> Result<Vec<LoadPoint>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT minute, value FROM load_history \
             WHERE service = ?1 AND metric = ?2 AND minute >= ?3 ORDER BY minute",
        )?;
        let points = stmt
            .query_map(params![service, metric, since_ms], |row| {
                Ok(LoadPoint {
                    minute_ms: row.get(0)?,
                    value: row.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(points)
    }

    /// Forgets load history before `before_ms` and scaling decisions before
    /// `decisions_before`; returns how many rows went.
    pub fn prune_autoscale(
        &self,
        before_ms: i64,
        decisions_before: DateTime<Utc>,
    ) -> Result<usize> {
        let history = self
            .conn()
            .prepare_cached("DELETE FROM load_history WHERE minute < ?1")?
            .execute(params![before_ms])?;
        let decisions = self
            .conn()
            .prepare_cached("DELETE FROM scaling_decisions WHERE at < ?1")?
            .execute(params![SqlTime(decisions_before)])?;
        Ok(history + decisions)
    }
}

impl Store {
    /// See [`Tx::load_history`].
    pub fn load_history(
        &self,
        service: &str,
        metric: &str,
        since_ms: i64,
    ) -> Result<Vec<LoadPoint>> {
        self.read_blocking(|tx| tx.load_history(service, metric, since_ms))
    }
}
