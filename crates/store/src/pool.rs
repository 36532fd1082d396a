//! Read-only connections: a pool for [`crate::Store::read`], and one for health
//! probes alone.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::BUSY_TIMEOUT;
use crate::error::{Result, StoreError};

/// A health probe would rather report a busy database than hang: readers wait only
/// during WAL recovery or an exclusive checkpoint, which take milliseconds.
const HEALTH_BUSY_TIMEOUT: Duration = Duration::from_millis(100);

/// Page cache of each read-only connection, in KiB (SQLite's default is 2 000 KiB).
/// Readers do short lookups and one sequential scan (`audit verify`); the OS page
/// cache holds the file for them anyway. With the default, the read pool's caches
/// filled towards 8 × 2 MB as the file grew, which a 500 requests/s soak saw as
/// 10-12 MB of RSS growth over its first minutes; now they are bounded at
/// `READ_CONCURRENCY` × 512 KiB.
const READER_CACHE_KIB: i64 = 512;

fn open_reader(path: &PathBuf, busy_timeout: Duration) -> Result<Connection> {
    let open = || -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    };
    open().map_err(|source| StoreError::Open {
        path: path.clone(),
        source,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A connection is put back only after its transaction ended, so a panic while
    // the lock was held left nothing half-done behind it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Idle read-only connections, opened on demand. How many run at once is bounded by
/// the store's read slots, so at most that many are ever kept.
pub(crate) struct ReadPool {
    path: PathBuf,
    max_idle: usize,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub fn new(path: PathBuf, max_idle: usize) -> Self {
        Self {
            path,
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn take(&self) -> Result<Connection> {
        if let Some(conn) = lock(&self.idle).pop() {
            return Ok(conn);
        }
        open_reader(&self.path, BUSY_TIMEOUT)
    }

    pub fn give_back(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}

/// The connection [`crate::Store::ping`] uses: never shared with reads, so a
/// readiness probe does not queue behind them.
pub(crate) struct HealthConnection {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl HealthConnection {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            conn: Mutex::new(None),
        }
    }

    pub fn ping(&self) -> Result<()> {
        let mut slot = lock(&self.conn);
        let conn = match slot.take() {
            Some(conn) => conn,
            None => open_reader(&self.path, HEALTH_BUSY_TIMEOUT)?,
        };
        conn.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))?;
        // Kept only after it answered: a broken connection is opened afresh next time.
        *slot = Some(conn);
        Ok(())
    }
}
