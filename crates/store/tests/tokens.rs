//! API tokens: creation, authentication, revocation, and that secrets never reach
//! the disk.

mod common;

use std::time::Duration;

use common::*;
use rampart_store::{Role, StoreError, TOKEN_PREFIX};

#[test]
fn create_authenticate_list_revoke() {
    let (_dir, store) = open_temp();
    assert!(!store.has_active_admin_token().unwrap());

    let (admin, admin_secret) = store.create_token("admin", Role::Admin).unwrap();
    let (viewer, viewer_secret) = store.create_token("dashboard", Role::Viewer).unwrap();
    assert!(admin_secret.starts_with(TOKEN_PREFIX));
    assert_ne!(admin_secret, viewer_secret);
    assert!(store.has_active_admin_token().unwrap());

    let authed = store.authenticate(&admin_secret).unwrap().unwrap();
    assert_eq!(authed.id, admin.id);
    assert_eq!(authed.role, Role::Admin);
    assert!(authed.last_used_at.is_some());
    assert_eq!(
        store.authenticate(&viewer_secret).unwrap().unwrap().name,
        "dashboard"
    );

    // Wrong, truncated, unprefixed secrets.
    assert_eq!(store.authenticate("rpt_0000").unwrap(), None);
    assert_eq!(
        store
            .authenticate(&admin_secret[..admin_secret.len() - 1])
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .authenticate(admin_secret.trim_start_matches(TOKEN_PREFIX))
            .unwrap(),
        None
    );

    let revoked = store.revoke_token("admin").unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(store.authenticate(&admin_secret).unwrap(), None);
    assert!(!store.has_active_admin_token().unwrap());

    // Revoking again is harmless and keeps the original time.
    assert_eq!(
        store
            .revoke_token(&admin.id.to_string())
            .unwrap()
            .revoked_at,
        revoked.revoked_at
    );
    // By id.
    store.revoke_token(&viewer.id.to_string()).unwrap();
    assert_eq!(store.authenticate(&viewer_secret).unwrap(), None);

    let listed = store.list_tokens().unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["admin", "dashboard"]
    );
    assert!(listed.iter().all(|t| !t.is_active()));
}

#[test]
fn unknown_token_cannot_be_revoked() {
    let (_dir, store) = open_temp();
    let err = store.revoke_token("ghost").unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { kind: "token", .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "no token 'ghost' in the store");
    assert!(matches!(
        store.revoke_token("42").unwrap_err(),
        StoreError::NotFound { .. }
    ));
}

#[test]
fn duplicate_names_are_rejected_even_after_revocation() {
    let (_dir, store) = open_temp();
    store.create_token("ci", Role::Operator).unwrap();
    let err = store.create_token("ci", Role::Viewer).unwrap_err();
    assert!(
        matches!(&err, StoreError::TokenNameTaken { name } if name == "ci"),
        "{err:?}"
    );
    store.revoke_token("ci").unwrap();
    assert!(matches!(
        store.create_token("ci", Role::Viewer).unwrap_err(),
        StoreError::TokenNameTaken { .. }
    ));
    assert_eq!(store.list_tokens().unwrap().len(), 1);
}

#[test]
fn invalid_names_are_rejected() {
    let (_dir, store) = open_temp();
    let err = store.create_token("has space", Role::Viewer).unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidTokenName { .. }),
        "{err:?}"
    );
    assert!(store.list_tokens().unwrap().is_empty());
}

#[test]
fn secret_never_reaches_the_database_files() {
    let (dir, store) = open_temp();
    let mut secrets = Vec::new();
    for (i, role) in Role::ALL.into_iter().enumerate() {
        secrets.push(store.create_token(&format!("t{i}"), role).unwrap().1);
    }
    for secret in &secrets {
        store.authenticate(secret).unwrap().unwrap();
    }
    // Check the WAL and the checkpointed main file alike.
    let mut scanned = 0;
    let mut scan = || {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            scanned += bytes.len();
            for secret in &secrets {
                let hex_part = secret.trim_start_matches(TOKEN_PREFIX).as_bytes();
                assert!(
                    !bytes.windows(hex_part.len()).any(|w| w == hex_part),
                    "a token secret was written to disk"
                );
            }
        }
    };
    scan();
    drop(store);
    scan();
    assert!(scanned > 0);

    let listed = serde_json::to_string(
        &rampart_store::Store::open(dir.path())
            .unwrap()
            .list_tokens()
            .unwrap(),
    )
    .unwrap();
    for secret in &secrets {
        assert!(!listed.contains(secret.trim_start_matches(TOKEN_PREFIX)));
    }
    assert!(!listed.contains("hash"));
}

#[test]
fn authentication_writes_nothing_until_token_uses_are_flushed() {
    let (dir, store, clock) = open_temp_with_clock();
    let (_, secret) = store.create_token("ci", Role::Operator).unwrap();
    let stored_last_used = || {
        let conn =
            rusqlite::Connection::open(dir.path().join(rampart_store::DB_FILE_NAME)).unwrap();
        conn.query_row(
            "SELECT last_used_at FROM tokens WHERE name = 'ci'",
            [],
            |r| r.get::<_, Option<String>>(0),
        )
        .unwrap()
    };

    let first = store.authenticate(&secret).unwrap().unwrap();
    clock.advance(Duration::from_secs(30));
    let later = store.authenticate(&secret).unwrap().unwrap();
    assert_eq!(
        (later.last_used_at.unwrap() - first.last_used_at.unwrap()).num_seconds(),
        30
    );
    assert_eq!(stored_last_used(), None, "authentication only reads");
    // Listing shows the latest use even before it is written.
    assert_eq!(
        store.list_tokens().unwrap()[0].last_used_at,
        later.last_used_at
    );

    assert_eq!(store.flush_token_uses_blocking().unwrap(), 1);
    assert_eq!(
        stored_last_used().as_deref(),
        Some(rampart_store::format_timestamp(&later.last_used_at.unwrap()).as_str()),
        "one write for both uses"
    );
    assert_eq!(
        store.flush_token_uses_blocking().unwrap(),
        0,
        "nothing left"
    );
}

#[test]
fn token_uses_are_written_when_the_last_handle_is_dropped() {
    let (dir, store) = open_temp();
    let (_, secret) = store.create_token("ci", Role::Operator).unwrap();
    let used = store.authenticate(&secret).unwrap().unwrap().last_used_at;
    drop(store.clone());
    drop(store);
    let store = rampart_store::Store::open(dir.path()).unwrap();
    assert_eq!(store.get_token("ci").unwrap().unwrap().last_used_at, used);
}

#[test]
fn token_creation_and_its_audit_entry_commit_together() {
    let (_dir, store) = open_temp();
    let (info, _secret) = store
        .with_tx(|tx| {
            let created = tx.create_token("deployer", Role::Operator)?;
            tx.append_audit(&rampart_store::NewAuditEvent {
                actor: "admin".into(),
                action: "token.create".into(),
                subject: format!("token/{}", created.0.name),
                details: serde_json::json!({ "role": created.0.role }),
            })?;
            Ok(created)
        })
        .unwrap();
    let audit = store
        .list_audit(&rampart_store::AuditQuery::default())
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].subject, format!("token/{}", info.name));
    assert_eq!(audit[0].details["role"], "operator");
}
