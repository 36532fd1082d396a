//! Embedded schema migrations, tracked with `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to version `i + 1`. Entries are
//! only ever appended: an applied migration is never edited, because existing
//! databases have already run it.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Result, StoreError};

/// Migration scripts in order. Version N is reached after running the first N.
pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_subject ON audit_log(subject, seq);
CREATE INDEX audit_log_action ON audit_log(action, seq);

-- History is append-only. These stop accidental code, not an attacker with the
-- file; the hash chain is what catches the attacker.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be updated'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be deleted'); END;

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
) STRICT;

CREATE TABLE deployments (
    id               TEXT PRIMARY KEY NOT NULL,
    service          TEXT NOT NULL,
    version          TEXT NOT NULL,
    previous_version TEXT,
    state            TEXT NOT NULL,
    record           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
) STRICT;
CREATE INDEX deployments_service ON deployments(service, created_at);
CREATE INDEX deployments_created ON deployments(created_at);
CREATE INDEX deployments_active ON deployments(created_at) WHERE finished_at IS NULL;

CREATE TABLE deployment_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    at            TEXT NOT NULL,
    kind          TEXT NOT NULL,
    message       TEXT NOT NULL,
    data          TEXT NOT NULL
) STRICT;
CREATE INDEX deployment_events_deployment ON deployment_events(deployment_id, id);

CREATE TABLE analysis_measurements (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    at            TEXT NOT NULL,
    step          INTEGER NOT NULL,
    outcome       TEXT NOT NULL,
    verdict       TEXT NOT NULL
) STRICT;
CREATE INDEX analysis_measurements_deployment ON analysis_measurements(deployment_id, id);

CREATE TABLE validation_runs (
    id            TEXT PRIMARY KEY NOT NULL,
    service       TEXT NOT NULL,
    deployment_id TEXT REFERENCES deployments(id),
    started_at    TEXT NOT NULL,
    result        TEXT NOT NULL,
    can_deploy    INTEGER NOT NULL CHECK (can_deploy IN (0, 1))
) STRICT;
CREATE INDEX validation_runs_service ON validation_runs(service, started_at);

CREATE TABLE incidents (
    id         TEXT PRIMARY KEY NOT NULL,
    service    TEXT NOT NULL,
    opened_at  TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    closed_at  TEXT,
    status     TEXT NOT NULL,
    severity   TEXT NOT NULL,
    title      TEXT NOT NULL,
    details    TEXT NOT NULL
) STRICT;
CREATE INDEX incidents_service ON incidents(service, opened_at);
CREATE INDEX incidents_opened ON incidents(opened_at);

CREATE TABLE scaling_decisions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    service        TEXT NOT NULL,
    at             TEXT NOT NULL,
    from_instances INTEGER NOT NULL,
    to_instances   INTEGER NOT NULL,
    reason         TEXT NOT NULL,
    status         TEXT NOT NULL,
    data           TEXT NOT NULL
) STRICT;
CREATE INDEX scaling_decisions_service ON scaling_decisions(service, id);
"#,
    // 2: the autoscaler's load history (1-minute totals per service and metric), so
    // predictive scaling has days of it across restarts; decisions pruned by time.
    r#"
CREATE TABLE load_history (
    service TEXT NOT NULL,
    metric  TEXT NOT NULL,
    minute  INTEGER NOT NULL,
    value   REAL NOT NULL,
    PRIMARY KEY (service, metric, minute)
) STRICT, WITHOUT ROWID;
CREATE INDEX scaling_decisions_at ON scaling_decisions(at);
"#,
    // 3: incident response: the rule and scope an incident belongs to (one open
    // incident per rule and service), acknowledgement, escalation and repeats, and
    // each incident's timeline. Incidents the rollout controller opens have no rule.
    r#"
ALTER TABLE incidents ADD COLUMN rule TEXT;
ALTER TABLE incidents ADD COLUMN acknowledged_at TEXT;
ALTER TABLE incidents ADD COLUMN escalated_at TEXT;
ALTER TABLE incidents ADD COLUMN escalations INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN last_seen_at TEXT;
CREATE UNIQUE INDEX incidents_one_open ON incidents(rule, service)
    WHERE closed_at IS NULL AND rule IS NOT NULL;
CREATE INDEX incidents_status ON incidents(status, opened_at);

CREATE TABLE incident_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    details     TEXT NOT NULL
) STRICT;
CREATE INDEX incident_events_incident ON incident_events(incident_id, id);
"#,
    // 4: the notification outbox. A row is written in the same transaction as the
    // change it reports and delivered at least once by the engine's delivery worker.
    r#"
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    notifier        TEXT NOT NULL,
    topic           TEXT NOT NULL,
    key             TEXT NOT NULL,
    service         TEXT,
    severity        TEXT NOT NULL,
    message         TEXT NOT NULL,
    state           TEXT NOT NULL
                    CHECK (state IN ('pending', 'delivered', 'skipped', 'failed', 'abandoned')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    claimed_at      TEXT,
    last_attempt_at TEXT,
    last_status     INTEGER,
    last_error      TEXT,
    finished_at     TEXT
) STRICT;
CREATE INDEX notifications_due ON notifications(next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX notifications_pending_key ON notifications(notifier, key, id)
    WHERE state = 'pending';
CREATE INDEX notifications_state ON notifications(state, id);
CREATE INDEX notifications_notifier ON notifications(notifier, id);
"#,
    // 5: severities are critical | high | medium | low (rampart_core::notify::Severity);
    // incidents of rolled-back rollouts were written as `warning` before.
    r#"
UPDATE incidents SET severity = 'medium' WHERE severity = 'warning';
"#,
    // 6: process-backend instances that outlive rampart (re-adopted at the next
    // start: pid and start time identify the process), and the sequential judge's
    // evidence of a rollout in flight, so an upgrade or restart continues it.
    r#"
CREATE TABLE instances (
    service     TEXT NOT NULL,
    instance    TEXT NOT NULL,
    version     TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    pid         INTEGER NOT NULL,
    start_time  INTEGER NOT NULL,
    port        INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (service, instance)
);
CREATE TABLE judge_states (
    deployment_id TEXT PRIMARY KEY,
    state         TEXT NOT NULL,
    saved_at      TEXT NOT NULL
);
"#,
];

/// The newest schema version this binary knows.
pub fn supported_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the database up to [`supported_version`], all pending steps in one
/// transaction: either every step lands together with its `user_version`, or none.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let supported = supported_version();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    if found < 0 {
        return Err(StoreError::Corrupt(format!(
            "{} has a negative schema version ({found})",
            path.display()
        )));
    }
    for (index, script) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        let step = tx
            .execute_batch(script)
            .and_then(|()| tx.pragma_update(None, "user_version", version));
        step.map_err(|source| StoreError::Migration {
            path: path.to_path_buf(),
            version,
            source,
        })?;
        tracing::info!(path = %path.display(), version, "applied store migration");
    }
    tx.commit().map_err(|source| StoreError::Migration {
        path: path.to_path_buf(),
        version: supported,
        source,
    })
}
