//! What must survive rampart's own restart besides the deployments: the process
//! instances it started (re-adopted by the next rampart when pid and start time still
//! match), and the sequential judge's evidence of each rollout in flight.

use rusqlite::{OptionalExtension, params};

use crate::Tx;
use crate::error::Result;
use crate::sql::SqlTime;

/// One instance of a process backend as it was launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub service: String,
    /// `<version>-<index>`, stable across restarts of the instance.
    pub instance: String,
    pub version: String,
    pub index: u32,
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: tells the process from a later one that reused
    /// its pid.
    pub start_time: u64,
    pub port: u16,
}

impl Tx<'_> {
    /// Records (or replaces) an instance's process.
    pub fn save_instance(&self, row: &InstanceRow) -> Result<()> {
        let now = SqlTime(self.now());
        self.conn()
            .prepare_cached(
                "INSERT INTO instances (service, instance, version, idx, pid, start_time, port, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (service, instance) DO UPDATE SET version = excluded.version, \
                 idx = excluded.idx, pid = excluded.pid, start_time = excluded.start_time, \
                 port = excluded.port, recorded_at = excluded.recorded_at",
            )?
            .execute(params![
                row.service,
                row.instance,
                row.version,
                row.index,
                row.pid,
                // SQLite integers are signed; clock ticks since boot stay far below.
                i64::try_from(row.start_time).unwrap_or(i64::MAX),
                row.port,
                now
            ])?;
        Ok(())
    }

    /// Forgets an instance, but only the process `pid` (a newer launch of the same
    /// instance keeps its row).
    pub fn forget_instance(&self, service: &str, instance: &str, pid: u32) -> Result<()> {
        self.conn()
            .prepare_cached(
                "DELETE FROM instances WHERE service = ?1 AND instance = ?2 AND pid = ?3",
            )?
            .execute(params![service, instance, pid])?;
        Ok(())
    }

    /// A service's recorded instances, by instance id.
    pub fn instances_of(&self, service: &str) -> Result<Vec<InstanceRow>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT service, instance, version, idx, pid, start_time, port FROM instances \
             WHERE service = ?1 ORDER BY instance",
        )?;
        let rows = stmt
            .query_map(params![service], |row| {
                Ok(InstanceRow {
                    service: row.get(0)?,
                    instance: row.get(1)?,
                    version: row.get(2)?,
                    index: row.get(3)?,
                    pid: row.get(4)?,
                    start_time: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
                    port: row.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Stores the judge's evidence of a rollout (opaque JSON, replaced each time).
    pub fn save_judge_state(&self, deployment_id: &str, state: &str) -> Result<()> {
        let now = SqlTime(self.now());
        self.conn()
            .prepare_cached(
                "INSERT INTO judge_states (deployment_id, state, saved_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (deployment_id) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at",
            )?
            .execute(params![deployment_id, state, now])?;
        Ok(())
    }

    /// The judge's evidence last stored for a rollout.
    pub fn judge_state(&self, deployment_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT state FROM judge_states WHERE deployment_id = ?1")?
            .query_row(params![deployment_id], |row| row.get(0))
            .optional()?)
    }

    /// Drops the evidence of a rollout that ended.
    pub fn forget_judge_state(&self, deployment_id: &str) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM judge_states WHERE deployment_id = ?1")?
            .execute(params![deployment_id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn row(instance: &str, pid: u32) -> InstanceRow {
        InstanceRow {
            service: "shop".into(),
            instance: instance.into(),
            version: "v1".into(),
            index: 0,
            pid,
            start_time: 12345,
            port: 9001,
        }
    }

    #[tokio::test]
    async fn an_instance_row_is_replaced_by_its_newer_launch_and_forgotten_by_pid() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|tx| {
                tx.save_instance(&row("v1-0", 10))?;
                tx.save_instance(&row("v1-0", 11))?;
                // The older launch's exit must not erase the newer one's row.
                tx.forget_instance("shop", "v1-0", 10)
            })
            .await
            .unwrap();
        let rows = store.read(|tx| tx.instances_of("shop")).await.unwrap();
        assert_eq!(rows, vec![row("v1-0", 11)]);
        store
            .write(|tx| tx.forget_instance("shop", "v1-0", 11))
            .await
            .unwrap();
        assert!(
            store
                .read(|tx| tx.instances_of("shop"))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn judge_state_is_kept_until_forgotten() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|tx| {
                tx.save_judge_state("d1", "{\"a\":1}")?;
                tx.save_judge_state("d1", "{\"a\":2}")
            })
            .await
            .unwrap();
        let state = store.read(|tx| tx.judge_state("d1")).await.unwrap();
        assert_eq!(state.as_deref(), Some("{\"a\":2}"));
        store.write(|tx| tx.forget_judge_state("d1")).await.unwrap();
        assert_eq!(store.read(|tx| tx.judge_state("d1")).await.unwrap(), None);
    }
}
