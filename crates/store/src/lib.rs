//! rampart's durable state: one SQLite file (`<data_dir>/rampart.db`) holding
//! deployments, their events and analysis measurements, validation runs, incidents,
//! scaling decisions, API tokens, and the append-only, hash-chained audit log.
//!
//! # Concurrency
//!
//! There is one writer: a single [`rusqlite::Connection`] behind a mutex. [`Store`] is
//! a cheap `Clone` handle (an `Arc`) and is `Send + Sync`; every operation takes the
//! mutex for the length of one transaction. SQLite serialises writers anyway, so one
//! connection costs no write throughput and removes `SQLITE_BUSY` between our own
//! threads.
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous=FULL`. In that mode SQLite fsyncs
//! the write-ahead log as part of every commit, so when [`Store::with_tx`] returns
//! `Ok`, the transaction is on stable storage and survives a crash or power loss.
//! The rule that follows for callers: write the change and its audit entry, let
//! the transaction commit, and only then act on it (move traffic, stop a process).
//! An action is therefore never taken without its record existing first.
//!
//! # Atomicity
//!
//! [`Store::with_tx`] hands a closure a [`Tx`]. Everything done through that `Tx`
//! commits together when the closure returns `Ok`, and is rolled back entirely when
//! it returns `Err` (or panics): a state change and its audit entry are never
//! half-applied. Every operation exists on [`Tx`]; [`Store`] has wrappers that run
//! one operation in its own transaction.

mod audit;
mod deployments;
mod error;
mod migrations;
mod records;
mod sql;
mod tokens;

use std::cell::Cell;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_core::Clock;
use rusqlite::{Connection, TransactionBehavior};

pub use audit::{
    AUDIT_LIST_LIMIT_MAX, AuditEntry, AuditQuery, AuditVerification, GENESIS_HASH, NewAuditEvent,
    canonical_json, entry_hash,
};
pub use deployments::{
    DeploymentEvent, DeploymentRow, Measurement, NewDeploymentEvent, NewMeasurement,
};
pub use error::{Result, StoreError};
pub use migrations::{MIGRATIONS, supported_version};
pub use records::{IncidentRow, NewScalingDecision, ScalingDecision, ValidationRunRow};
pub use sql::{format_timestamp, new_id};
pub use tokens::{ParseRoleError, Role, TOKEN_PREFIX, TokenInfo};

/// The database file's name inside the data dir.
pub const DB_FILE_NAME: &str = "rampart.db";

/// How long an operation waits for a lock held by another process (for example a
/// second rampart pointed at the same data dir) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle to the store. Clones share one connection.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    path: PathBuf,
    clock: TimeSource,
    /// Audit entries committed through this handle since it was opened.
    audit_appended: Arc<AtomicU64>,
}

/// Where "now" comes from for timestamps the store stamps itself.
enum TimeSource {
    /// `chrono::Utc::now()`, microsecond precision.
    Wall,
    /// The same injected clock the engine uses, so replayed runs are reproducible.
    Injected(Arc<dyn Clock>),
}

impl TimeSource {
    fn now(&self) -> DateTime<Utc> {
        let now = match self {
            TimeSource::Wall => Utc::now(),
            TimeSource::Injected(clock) => {
                let ms = i64::try_from(clock.now().as_millis()).unwrap_or(i64::MAX);
                DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
        };
        sql::to_stored_precision(now)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) `data_dir/rampart.db` and migrates it to the current
    /// schema. Timestamps come from the wall clock.
    pub fn open(data_dir: &Path) -> Result<Store> {
        Self::open_with(data_dir, TimeSource::Wall)
    }

    /// Like [`Store::open`], but timestamps the store stamps itself (audit entries,
    /// events, `updated_at`, ...) come from `clock`.
    pub fn open_with_clock(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<Store> {
        Self::open_with(data_dir, TimeSource::Injected(clock))
    }

    /// A private in-memory database, for unit tests of code built on the store.
    /// Nothing is durable.
    pub fn open_in_memory() -> Result<Store> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::finish_open(conn, path, TimeSource::Wall)
    }

    fn open_with(data_dir: &Path, clock: TimeSource) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        check_writable(data_dir)?;
        let path = data_dir.join(DB_FILE_NAME);
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::finish_open(conn, path, clock)
    }

    fn finish_open(mut conn: Connection, path: PathBuf, clock: TimeSource) -> Result<Store> {
        configure(&conn).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        migrations::migrate(&mut conn, &path)?;
        tracing::debug!(path = %path.display(), "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                path,
                clock,
                audit_appended: Arc::new(AtomicU64::new(0)),
            }),
        })
    }

    /// The number of audit entries committed through this store (and its clones)
    /// since it was opened, shared so a metrics collector can read it at scrape time.
    pub fn audit_appended_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.inner.audit_appended)
    }

    /// Path of the database file (`:memory:` for an in-memory store).
    pub fn db_path(&self) -> &Path {
        &self.inner.path
    }

    /// Cheap liveness check for readiness probes: the database file is still where
    /// it was opened and answers a query.
    pub fn ping(&self) -> Result<()> {
        if self.inner.path != Path::new(":memory:") && !self.inner.path.exists() {
            return Err(StoreError::Corrupt(format!(
                "the database file {} has disappeared; restore it or restart rampart",
                self.inner.path.display()
            )));
        }
        self.read(|tx| {
            tx.tx
                .query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
    }

    /// The current time as the store stamps it (microsecond precision).
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Runs `f` in one write transaction. Commits (durably, see the crate docs) if `f`
    /// returns `Ok`; rolls back everything `f` did if it returns `Err` or panics.
    pub fn with_tx<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.run(TransactionBehavior::Immediate, f)
    }

    /// Runs a read-only `f` in a deferred transaction: one consistent snapshot,
    /// without claiming the write lock.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.run(TransactionBehavior::Deferred, f)
    }

    fn run<T>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock();
        let tx = Tx {
            tx: conn.transaction_with_behavior(behavior)?,
            clock: &self.inner.clock,
            audit_appended: Cell::new(0),
        };
        match f(&tx) {
            Ok(value) => {
                let appended = tx.audit_appended.get();
                tx.tx.commit()?;
                // Counted only once committed: a rolled-back entry never existed.
                self.inner
                    .audit_appended
                    .fetch_add(appended, Ordering::Relaxed);
                Ok(value)
            }
            Err(err) => {
                if let Err(rollback) = tx.tx.rollback() {
                    tracing::warn!(error = %rollback, "rolling back a store transaction failed");
                }
                Err(err)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock means a closure panicked mid-transaction. The transaction was
        // rolled back when it was dropped during unwinding, so the connection is in a
        // clean state and can be reused.
        self.inner
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An open transaction. Obtained from [`Store::with_tx`]; all store operations are
/// methods on it (see the `audit`, `tokens`, `deployments` and `records` impls).
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
    clock: &'a TimeSource,
    /// Audit entries appended in this transaction.
    audit_appended: Cell<u64>,
}

impl Tx<'_> {
    /// The current time as the store stamps it.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn conn(&self) -> &Connection {
        &self.tx
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        // Still durable (synchronous=FULL applies to rollback journals too), only slower.
        tracing::warn!(journal_mode = %mode, "SQLite refused WAL mode; continuing with {mode}");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Fails early, with a message about the directory rather than a generic SQLite
/// "unable to open database file", when the data dir cannot be written.
fn check_writable(data_dir: &Path) -> Result<()> {
    let probe = data_dir.join(".rampart-write-probe");
    let result = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe);
    match result {
        Ok(file) => {
            drop(file);
            // Leaving the probe behind is harmless; failing to remove it is not an error.
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(source) => Err(StoreError::DataDirNotWritable {
            path: data_dir.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<Store>();
    }

    #[test]
    fn injected_clock_drives_timestamps() {
        let clock = Arc::new(rampart_core::ManualClock::new(rampart_core::Timestamp(
            1_700_000_000_123,
        )));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with_clock(dir.path(), clock.clone()).unwrap();
        assert_eq!(
            format_timestamp(&store.now()),
            "2023-11-14T22:13:20.123000Z"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            format_timestamp(&store.now()),
            "2023-11-14T22:13:21.123000Z"
        );
    }
}
