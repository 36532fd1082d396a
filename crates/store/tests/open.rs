//! Opening the store: directory handling, pragmas, migrations, schema versions.

mod common;

use common::*;
use rampart_store::{DB_FILE_NAME, Store, StoreError, supported_version};

#[test]
fn creates_missing_data_dir_and_configures_the_database() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("nested").join("rampart-data");
    let store = Store::open(&data_dir).unwrap();
    assert_eq!(store.db_path(), data_dir.join(DB_FILE_NAME));
    assert!(data_dir.join(DB_FILE_NAME).is_file());
    drop(store);

    let conn = rusqlite::Connection::open(data_dir.join(DB_FILE_NAME)).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal", "WAL is a persistent property of the file");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, supported_version());
}

#[test]
fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let (dir, store) = open_temp();
    append_entries(&store, 5);
    let (token, secret) = store
        .create_token("ci", rampart_store::Role::Operator)
        .unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store
            .list_audit(&rampart_store::AuditQuery::default())
            .unwrap()
            .len(),
        5
    );
    assert_eq!(store.authenticate(&secret).unwrap().unwrap().id, token.id);
    assert!(store.verify_audit().unwrap().ok);
}

#[test]
fn newer_schema_is_refused_with_both_versions_and_the_fix() {
    let (dir, store) = open_temp();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);

    let err = Store::open(dir.path()).unwrap_err();
    let supported = supported_version();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, supported: s, .. } if s == supported),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("999"), "{message}");
    assert!(
        message.contains(&format!("version {supported}")),
        "{message}"
    );
    assert!(message.contains("upgrade rampart"), "{message}");
    assert!(
        message.contains(&dir.path().join(DB_FILE_NAME).display().to_string()),
        "{message}"
    );
}

#[test]
fn data_dir_that_is_a_file_is_named_in_the_error() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&file).unwrap_err();
    assert!(matches!(err, StoreError::CreateDataDir { .. }), "{err:?}");
    assert!(err.to_string().contains(&file.display().to_string()));
}

#[cfg(unix)]
#[test]
fn read_only_data_dir_is_reported_as_not_writable() {
    use std::os::unix::fs::PermissionsExt;

    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores directory permissions; there is nothing to observe then.
    let enforced = std::fs::write(dir.join("probe"), b"x").is_err();
    if enforced {
        let err = Store::open(&dir).unwrap_err();
        assert!(
            matches!(err, StoreError::DataDirNotWritable { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string().split(':').next().unwrap(),
            format!("the data dir {} is not writable", dir.display())
        );
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn in_memory_store_works_for_unit_tests() {
    let store = Store::open_in_memory().unwrap();
    store.append_audit(&event(1)).unwrap();
    assert!(store.verify_audit().unwrap().ok);
}

#[test]
fn load_history_keeps_one_value_a_minute_and_prunes_with_old_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .with_tx(|tx| {
            for minute in 0..5 {
                tx.record_load(
                    "web",
                    "rps",
                    rampart_store::LoadPoint {
                        minute_ms: minute * 60_000,
                        value: minute as f64,
                    },
                )?;
            }
            // A later write of the same minute replaces it.
            tx.record_load(
                "web",
                "rps",
                rampart_store::LoadPoint {
                    minute_ms: 4 * 60_000,
                    value: 40.0,
                },
            )?;
            tx.insert_scaling_decision(&rampart_store::NewScalingDecision {
                service: "web".into(),
                from_instances: 2,
                to_instances: 3,
                reason: "test".into(),
                status: "applied".into(),
                data: serde_json::json!({}),
            })?;
            Ok(())
        })
        .unwrap();
    let points = store.load_history("web", "rps", 60_000).unwrap();
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    assert_eq!(values, vec![1.0, 2.0, 3.0, 40.0]);
    let gone = store
        .with_tx(|tx| {
            tx.prune_autoscale(
                2 * 60_000,
                chrono::Utc::now() + chrono::Duration::seconds(1),
            )
        })
        .unwrap();
    assert_eq!(gone, 2 + 1);
    assert_eq!(store.load_history("web", "rps", 0).unwrap().len(), 3);
    assert!(
        store
            .list_scaling_decisions(Some("web"), 10)
            .unwrap()
            .is_empty()
    );
}
