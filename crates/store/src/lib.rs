//! rampart's durable state: one SQLite file (`<data_dir>/rampart.db`) holding
//! deployments, their events and analysis measurements, validation runs, incidents,
//! scaling decisions, API tokens, and the append-only, hash-chained audit log.
//!
//! # Concurrency
//!
//! One writer, many readers, and nothing that blocks an async runtime:
//!
//! - Writes go through a single [`rusqlite::Connection`] behind a mutex (SQLite
//!   serialises writers anyway, so one connection costs no throughput and removes
//!   `SQLITE_BUSY` between our own threads). Async code calls [`Store::write`], which
//!   runs the transaction on tokio's blocking pool; [`Store::with_tx`] is the same
//!   transaction on the calling thread, for code that is not async (the CLI's offline
//!   commands, tests).
//! - Reads go through a small pool of read-only connections. In WAL mode a reader
//!   never waits for the writer and sees the last committed state, so a long
//!   `audit verify` or a burst of viewers never delays a rollback's commit. Async
//!   code calls [`Store::read`] (bounded to [`READ_CONCURRENCY`] at once);
//!   [`Store::read_blocking`] is the synchronous form.
//! - [`Store::ping`] uses a connection of its own with a short busy timeout, so a
//!   readiness probe answers in well under a millisecond whatever else is running.
//! - Authentication only reads; when a token was last used is kept in memory and
//!   written in one batch by [`Store::flush_token_uses`] (every few seconds and at
//!   shutdown, see the `tokens` module).
//!
//! [`Store`] is a cheap `Clone` handle (an `Arc`) and is `Send + Sync`.
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
mod autoscale;
mod deployments;
mod error;
mod files;
mod incidents;
mod instances;
mod memory;
mod migrations;
mod notifications;
mod pool;
mod records;
mod scan;
mod sql;
mod tokens;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_core::Clock;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{Notify, Semaphore};

pub use audit::{
    AUDIT_LIST_LIMIT_MAX, AuditEntry, AuditQuery, AuditVerification, GENESIS_HASH, NewAuditEvent,
    canonical_json, entry_hash,
};
pub use autoscale::LoadPoint;
pub use deployments::{
    DeploymentEvent, DeploymentRow, Measurement, NewDeploymentEvent, NewMeasurement,
};
pub use error::{Result, StoreError};
pub use files::create_data_dir;
pub use incidents::{Incident, IncidentEvent, IncidentQuery, NewIncident, Opened};
pub use instances::InstanceRow;
pub use memory::{SQLITE_SOFT_HEAP_LIMIT, sqlite_memory};
pub use migrations::{MIGRATIONS, supported_version};
pub use notifications::{
    AttemptOutcome, NOTIFICATION_LIST_LIMIT_MAX, Notification, NotificationQuery, NotificationState,
};
pub use records::{IncidentRow, NewScalingDecision, ScalingDecision, ValidationRunRow};
pub use sql::{format_timestamp, new_id};
pub use tokens::{
    ParseRoleError, Role, TOKEN_PREFIX, TOKEN_USE_FLUSH_EVERY, TokenInfo,
    validate_name as validate_token_name,
};

use crate::pool::{HealthConnection, ReadPool};
use crate::tokens::PendingTokenUses;

/// The database file's name inside the data dir.
pub const DB_FILE_NAME: &str = "rampart.db";

/// How many [`Store::read`] transactions run at once; more wait (asynchronously) for
/// a free slot. Enough for the API's viewers alongside a long `audit verify` on a
/// small machine, few enough that the blocking pool is never flooded.
pub const READ_CONCURRENCY: usize = 8;

/// How long an operation waits for a lock held by another process (for example a
/// second rampart pointed at the same data dir) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle to the store. Clones share one writer, one read pool and one clock.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    readers: Readers,
    read_slots: Arc<Semaphore>,
    /// One permit: async writers queue here, in order (tokio's semaphore is fair),
    /// instead of each parking a blocking-pool thread on the writer's mutex, where a
    /// burst of writes took a thread apiece and was served in no particular order.
    write_slot: Arc<Semaphore>,
    path: PathBuf,
    clock: TimeSource,
    /// Audit entries committed through this handle since it was opened.
    audit_appended: Arc<AtomicU64>,
    token_uses: PendingTokenUses,
    /// Signalled after a commit that put notifications in the outbox.
    outbox: Arc<Notify>,
}

/// Where reads run.
enum Readers {
    /// A file database: read-only connections of their own, plus one for health.
    Pool {
        pool: ReadPool,
        health: Box<HealthConnection>,
    },
    /// An in-memory database exists only on the writer's connection.
    Writer,
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
    /// schema. Timestamps come from the wall clock. A data dir rampart creates is
    /// private to its user (0700), and the database files are always 0600: they hold
    /// per-deploy environment values and the audit log.
    pub fn open(data_dir: &Path) -> Result<Store> {
        Self::open_with(data_dir, TimeSource::Wall)
    }

    /// Like [`Store::open`], but timestamps the store stamps itself (audit entries,
    /// events, `updated_at`, ...) come from `clock`.
    pub fn open_with_clock(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<Store> {
        Self::open_with(data_dir, TimeSource::Injected(clock))
    }

    /// A private in-memory database, for unit tests of code built on the store.
    /// Nothing is durable; reads share the writer's connection.
    pub fn open_in_memory() -> Result<Store> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::finish_open(conn, path, TimeSource::Wall, Readers::Writer)
    }

    fn open_with(data_dir: &Path, clock: TimeSource) -> Result<Store> {
        memory::limit_sqlite_memory();
        create_data_dir(data_dir)?;
        files::check_writable(data_dir)?;
        let path = data_dir.join(DB_FILE_NAME);
        files::make_private(&path)?;
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let readers = Readers::Pool {
            pool: ReadPool::new(path.clone(), READ_CONCURRENCY),
            health: Box::new(HealthConnection::new(path.clone())),
        };
        Self::finish_open(conn, path, clock, readers)
    }

    fn finish_open(
        mut conn: Connection,
        path: PathBuf,
        clock: TimeSource,
        readers: Readers,
    ) -> Result<Store> {
        configure(&conn).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        migrations::migrate(&mut conn, &path)?;
        if path != Path::new(":memory:") {
            // WAL mode created the -wal and -shm files with the database's mode;
            // files left by an older rampart may still be readable by others.
            files::make_companions_private(&path)?;
        }
        tracing::debug!(path = %path.display(), "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Mutex::new(conn),
                readers,
                read_slots: Arc::new(Semaphore::new(READ_CONCURRENCY)),
                write_slot: Arc::new(Semaphore::new(1)),
                path,
                clock,
                audit_appended: Arc::new(AtomicU64::new(0)),
                token_uses: PendingTokenUses::default(),
                outbox: Arc::new(Notify::new()),
            }),
        })
    }

    /// The number of audit entries committed through this store (and its clones)
    /// since it was opened, shared so a metrics collector can read it at scrape time.
    pub fn audit_appended_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.inner.audit_appended)
    }

    /// Signalled (`notify_one`) after every commit that enqueued a notification, so
    /// the delivery worker sends it at once instead of at its next poll.
    pub fn outbox_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.outbox)
    }

    /// Path of the database file (`:memory:` for an in-memory store).
    pub fn db_path(&self) -> &Path {
        &self.inner.path
    }

    /// Cheap liveness check for readiness probes: the database file is still where
    /// it was opened and answers a query. Never waits for the writer or for a read
    /// slot: it has a connection of its own with a short busy timeout.
    pub async fn ping(&self) -> Result<()> {
        let store = self.clone();
        join(tokio::task::spawn_blocking(move || store.ping_blocking()).await)
    }

    /// [`Store::ping`] on the calling thread.
    pub fn ping_blocking(&self) -> Result<()> {
        match &self.inner.readers {
            Readers::Pool { health, .. } => {
                if !self.inner.path.exists() {
                    return Err(StoreError::Corrupt(format!(
                        "the database file {} has disappeared; restore it or restart rampart",
                        self.inner.path.display()
                    )));
                }
                health.ping()
            }
            Readers::Writer => self.read_blocking(|tx| {
                tx.tx
                    .query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))?;
                Ok(())
            }),
        }
    }

    /// The current time as the store stamps it (microsecond precision).
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Runs `f` in one write transaction off the async runtime (on tokio's blocking
    /// pool). Commits (durably, see the crate docs) if `f` returns `Ok`; rolls back
    /// everything `f` did if it returns `Err` or panics (the panic then continues in
    /// the caller). Once started, the transaction runs to its end even if the
    /// returned future is dropped.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::clone(&self.inner.write_slot)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Aborted("the store is closing".into()))?;
        let store = self.clone();
        join(
            tokio::task::spawn_blocking(move || {
                let result = store.with_tx(f);
                drop(slot);
                result
            })
            .await,
        )
    }

    /// Runs a read-only `f` on one consistent snapshot, off the async runtime, on a
    /// read connection (never waiting for the writer). Writing through its `Tx` fails.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::clone(&self.inner.read_slots)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Aborted("the store is closing".into()))?;
        let store = self.clone();
        join(
            tokio::task::spawn_blocking(move || {
                let result = store.read_blocking(f);
                drop(slot);
                result
            })
            .await,
        )
    }

    /// [`Store::write`] on the calling thread: blocks it for the whole transaction,
    /// including the fsync. Not for async code.
    pub fn with_tx<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock_writer();
        let (value, counts) = run(
            &mut conn,
            TransactionBehavior::Immediate,
            &self.inner.clock,
            f,
        )?;
        drop(conn);
        // Counted only once committed: a rolled-back entry never existed.
        self.inner
            .audit_appended
            .fetch_add(counts.audit_appended, Ordering::Relaxed);
        if counts.notifications_enqueued > 0 {
            self.inner.outbox.notify_one();
        }
        Ok(value)
    }

    /// [`Store::read`] on the calling thread. Not for async code.
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        match &self.inner.readers {
            Readers::Pool { pool, .. } => {
                let mut conn = pool.take()?;
                let result = run(
                    &mut conn,
                    TransactionBehavior::Deferred,
                    &self.inner.clock,
                    f,
                );
                pool.give_back(conn);
                result.map(|(value, _)| value)
            }
            Readers::Writer => {
                let mut conn = self.lock_writer();
                run(
                    &mut conn,
                    TransactionBehavior::Deferred,
                    &self.inner.clock,
                    f,
                )
                .map(|(value, _)| value)
            }
        }
    }

    fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock means a closure panicked mid-transaction. The transaction was
        // rolled back when it was dropped during unwinding, so the connection is in a
        // clean state and can be reused.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is going away: token uses not yet written would be lost.
        let conn = self
            .writer
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = self.token_uses.flush(conn, &self.clock) {
            tracing::warn!(error = %e, "could not record when tokens were last used");
        }
    }
}

/// What a committed transaction added that someone outside it counts or waits for.
struct Committed {
    audit_appended: u64,
    notifications_enqueued: u64,
}

/// Runs `f` in one transaction on `conn`: commit on `Ok`, roll back on `Err` (and,
/// through the transaction's drop, on panic).
fn run<T>(
    conn: &mut Connection,
    behavior: TransactionBehavior,
    clock: &TimeSource,
    f: impl FnOnce(&Tx<'_>) -> Result<T>,
) -> Result<(T, Committed)> {
    let tx = Tx {
        tx: conn.transaction_with_behavior(behavior)?,
        clock,
        audit_appended: Cell::new(0),
        notifications_enqueued: Cell::new(0),
    };
    match f(&tx) {
        Ok(value) => {
            let counts = Committed {
                audit_appended: tx.audit_appended.get(),
                notifications_enqueued: tx.notifications_enqueued.get(),
            };
            tx.tx.commit()?;
            Ok((value, counts))
        }
        Err(err) => {
            if let Err(rollback) = tx.tx.rollback() {
                tracing::warn!(error = %rollback, "rolling back a store transaction failed");
            }
            Err(err)
        }
    }
}

/// The result of a store task on the blocking pool; a panic in the caller's closure
/// continues in the caller, as it would have on the caller's own thread.
fn join<T>(joined: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Aborted(format!(
            "the store task ended early: {e}"
        ))),
    }
}

/// An open transaction. Obtained from [`Store::write`], [`Store::read`] and their
/// blocking forms; all store operations are methods on it (see the `audit`,
/// `tokens`, `deployments` and `records` impls).
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
    clock: &'a TimeSource,
    /// Audit entries appended in this transaction.
    audit_appended: Cell<u64>,
    /// Notifications put in the outbox in this transaction.
    notifications_enqueued: Cell<u64>,
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
