//! Helpers shared by the integration tests: real SQLite files in temp dirs.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use rampart_core::{ManualClock, Timestamp};
use rampart_store::{NewAuditEvent, Store};
use serde_json::json;
use tempfile::TempDir;

/// 2023-11-14T22:13:20Z
pub const START_MS: u64 = 1_700_000_000_000;

pub fn open_temp() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

pub fn open_temp_with_clock() -> (TempDir, Store, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(START_MS)));
    let store = Store::open_with_clock(dir.path(), clock.clone()).unwrap();
    (dir, store, clock)
}

pub fn event(n: u64) -> NewAuditEvent {
    NewAuditEvent {
        actor: ["alice", "engine"][(n % 2) as usize].to_string(),
        action: ["deployment.promote", "deployment.step", "deployment.step"][(n % 3) as usize]
            .to_string(),
        subject: format!("service/svc{}", n % 4),
        details: json!({ "n": n, "weight": n * 5, "note": format!("entry {n}") }),
    }
}

/// Appends `count` entries in one transaction.
pub fn append_entries(store: &Store, count: u64) {
    store
        .with_tx(|tx| {
            for n in 1..=count {
                tx.append_audit(&event(n))?;
            }
            Ok(())
        })
        .unwrap();
}

/// A raw connection to the store's file, as an attacker with file access would have,
/// with the append-only triggers removed.
pub fn attacker_connection(data_dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(data_dir.join(rampart_store::DB_FILE_NAME)).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    conn
}

pub fn hash_of(conn: &rusqlite::Connection, seq: i64) -> String {
    conn.query_row("SELECT hash FROM audit_log WHERE seq = ?1", [seq], |r| {
        r.get(0)
    })
    .unwrap()
}
