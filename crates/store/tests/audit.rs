//! The audit chain: appending, listing, and catching tampering done directly on the
//! SQLite file.

mod common;

use common::*;
use rampart_store::{AuditQuery, GENESIS_HASH, NewAuditEvent, Store, entry_hash};
use serde_json::json;
use sha2::{Digest, Sha256};

const CHAIN_LEN: u64 = 20;

/// Builds a 20-entry chain, lets `tamper` edit the file, and verifies after reopening.
fn verify_after(tamper: impl FnOnce(&rusqlite::Connection)) -> rampart_store::AuditVerification {
    let (dir, store) = open_temp();
    append_entries(&store, CHAIN_LEN);
    assert!(store.verify_audit().unwrap().ok);
    drop(store);

    let conn = attacker_connection(dir.path());
    tamper(&conn);
    drop(conn);

    let store = Store::open(dir.path()).unwrap();
    store.verify_audit().unwrap()
}

fn assert_bad(report: &rampart_store::AuditVerification, seq: u64, phrase: &str) {
    assert!(!report.ok, "tampering went unnoticed: {report:?}");
    assert_eq!(report.first_bad_seq, Some(seq), "{report:?}");
    let problem = report.problem.as_deref().unwrap();
    assert!(problem.starts_with(&format!("entry {seq}:")), "{problem}");
    assert!(problem.contains(phrase), "{problem}");
}

#[test]
fn untouched_chain_verifies_and_reports_its_head() {
    let (_dir, store) = open_temp();
    let empty = store.verify_audit().unwrap();
    assert!(empty.ok);
    assert_eq!(empty.entries_checked, 0);
    assert_eq!(empty.head_hash, None);

    let first = store.append_audit(&event(1)).unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev_hash, GENESIS_HASH);
    let second = store.append_audit(&event(2)).unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!(second.prev_hash, first.hash);

    let report = store.verify_audit().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries_checked, 2);
    assert_eq!(report.first_bad_seq, None);
    assert_eq!(report.problem, None);
    assert_eq!(report.head_hash.as_deref(), Some(second.hash.as_str()));
}

#[test]
fn stored_entries_rehash_to_their_recorded_hash() {
    let (_dir, store) = open_temp();
    let appended = store
        .append_audit(&NewAuditEvent {
            actor: "alice \"quoted\"".into(),
            action: "token.create".into(),
            subject: "token/ci".into(),
            details: json!({"z": {"b": [1, 2], "a": null}, "a": "ü\t"}),
        })
        .unwrap();
    let listed = store.list_audit(&AuditQuery::default()).unwrap();
    assert_eq!(listed, vec![appended.clone()]);
    assert_eq!(listed[0].compute_hash(), appended.hash);
    // The documented encoding, written out by hand.
    let at = rampart_store::format_timestamp(&appended.at);
    let encoded = format!(
        r#"[1,"{at}","alice \"quoted\"","token.create","token/ci",{{"a":"ü\t","z":{{"a":null,"b":[1,2]}}}},"{GENESIS_HASH}"]"#
    );
    assert_eq!(
        appended.hash,
        hex::encode(Sha256::digest(encoded.as_bytes()))
    );
}

#[test]
fn triggers_stop_ordinary_updates_and_deletes() {
    let (dir, store) = open_temp();
    append_entries(&store, 3);
    let conn = rusqlite::Connection::open(dir.path().join(rampart_store::DB_FILE_NAME)).unwrap();
    let update = conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", []);
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = conn.execute("DELETE FROM audit_log WHERE seq = 3", []);
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    assert!(store.verify_audit().unwrap().ok);
}

#[test]
fn edited_details_are_named() {
    let report = verify_after(|conn| {
        conn.execute(
            r#"UPDATE audit_log SET details = '{"n":7,"note":"entry 7","weight":0}' WHERE seq = 7"#,
            [],
        )
        .unwrap();
    });
    assert_bad(&report, 7, "hash does not match its contents");
    assert_eq!(report.entries_checked, 7);
}

#[test]
fn edited_actor_is_named() {
    let report = verify_after(|conn| {
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1", [])
            .unwrap();
    });
    assert_bad(&report, 1, "hash does not match its contents");
}

#[test]
fn deleted_middle_entry_is_named_by_the_entry_after_the_gap() {
    let report = verify_after(|conn| {
        conn.execute("DELETE FROM audit_log WHERE seq = 10", [])
            .unwrap();
    });
    assert_bad(&report, 11, "sequence gap after 9 (entry deleted)");
}

#[test]
fn deleted_first_entry_is_noticed() {
    let report = verify_after(|conn| {
        conn.execute("DELETE FROM audit_log WHERE seq = 1", [])
            .unwrap();
    });
    assert_bad(&report, 2, "entries deleted");
}

#[test]
fn swapped_entries_are_named_by_the_first_of_them() {
    let report = verify_after(|conn| {
        conn.execute_batch(
            "UPDATE audit_log SET seq = -5 WHERE seq = 5;
             UPDATE audit_log SET seq = 5 WHERE seq = 9;
             UPDATE audit_log SET seq = 9 WHERE seq = -5;",
        )
        .unwrap();
    });
    assert_bad(
        &report,
        5,
        "prev_hash does not match entry 4 (inserted or reordered)",
    );
}

#[test]
fn swapped_contents_with_seq_kept_are_named_by_the_first_of_them() {
    let report = verify_after(|conn| {
        conn.execute_batch(
            "CREATE TEMP TABLE saved AS SELECT * FROM audit_log WHERE seq IN (5, 9);
             UPDATE audit_log SET (at, actor, action, subject, details, prev_hash, hash) =
                 (SELECT at, actor, action, subject, details, prev_hash, hash FROM saved
                  WHERE saved.seq = 14 - audit_log.seq)
             WHERE seq IN (5, 9);",
        )
        .unwrap();
    });
    assert_bad(&report, 5, "prev_hash does not match entry 4");
}

#[test]
fn forged_row_inserted_by_renumbering_is_named() {
    let report = verify_after(|conn| {
        // Make room at 10 by shifting 10..=20 up by one, then forge an entry there that
        // links to 9 but whose hash the forger could not compute correctly.
        conn.execute_batch(
            "UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= 10;
             UPDATE audit_log SET seq = -seq WHERE seq < 0;",
        )
        .unwrap();
        let prev = hash_of(conn, 9);
        let fake_hash = hex::encode(Sha256::digest(b"looks legitimate"));
        conn.execute(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash)
             VALUES (10, '2023-11-14T22:13:20.000000Z', 'alice', 'token.create',
                     'token/backdoor', '{}', ?1, ?2)",
            [prev, fake_hash],
        )
        .unwrap();
        let new_head = hash_of(conn, 21);
        conn.execute(
            "UPDATE meta SET value = '21' WHERE key = 'audit_head_seq'",
            [],
        )
        .unwrap();
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'audit_head_hash'",
            [new_head],
        )
        .unwrap();
    });
    assert_bad(&report, 10, "hash does not match its contents");
}

#[test]
fn forged_row_filling_a_gap_is_caught_even_with_a_correct_hash() {
    // The forger knows the encoding and hashes the fake entry correctly; the entry
    // after it still points at the original, so the chain breaks right there.
    let report = verify_after(|conn| {
        conn.execute("DELETE FROM audit_log WHERE seq = 10", [])
            .unwrap();
        let prev = hash_of(conn, 9);
        let at = "2023-11-14T22:13:20.000000Z";
        let hash = entry_hash(
            10,
            at,
            "alice",
            "token.create",
            "token/backdoor",
            "{}",
            &prev,
        );
        conn.execute(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash)
             VALUES (10, ?1, 'alice', 'token.create', 'token/backdoor', '{}', ?2, ?3)",
            [at, &prev, &hash],
        )
        .unwrap();
    });
    assert_bad(&report, 11, "prev_hash does not match entry 10");
}

#[test]
fn truncated_tail_is_reported() {
    let report = verify_after(|conn| {
        conn.execute("DELETE FROM audit_log WHERE seq > 17", [])
            .unwrap();
    });
    assert_bad(&report, 18, "truncated");
    assert_eq!(report.entries_checked, 17);
}

#[test]
fn fully_emptied_log_is_reported_as_truncated() {
    let report = verify_after(|conn| {
        conn.execute("DELETE FROM audit_log", []).unwrap();
    });
    assert_bad(&report, 1, "truncated");
}

#[test]
fn appending_after_truncation_does_not_hide_it() {
    let (dir, store) = open_temp();
    append_entries(&store, CHAIN_LEN);
    drop(store);
    attacker_connection(dir.path())
        .execute("DELETE FROM audit_log WHERE seq > 17", [])
        .unwrap();

    let store = Store::open(dir.path()).unwrap();
    let next = store.append_audit(&event(99)).unwrap();
    assert_eq!(
        next.seq,
        CHAIN_LEN + 1,
        "append continues from the recorded head"
    );
    let report = store.verify_audit().unwrap();
    assert_bad(&report, 21, "sequence gap after 17");
}

#[test]
fn rows_appended_behind_the_stores_back_block_appends_and_fail_verification() {
    let (dir, store) = open_temp();
    append_entries(&store, 3);
    let conn = rusqlite::Connection::open(dir.path().join(rampart_store::DB_FILE_NAME)).unwrap();
    let prev = hash_of(&conn, 3);
    let at = "2023-11-14T22:13:20.000000Z";
    let hash = entry_hash(4, at, "mallory", "x", "y", "{}", &prev);
    conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash)
         VALUES (4, ?1, 'mallory', 'x', 'y', '{}', ?2, ?3)",
        [at, &prev, &hash],
    )
    .unwrap();

    let report = store.verify_audit().unwrap();
    assert_bad(&report, 4, "forged");
    let err = store.append_audit(&event(5)).unwrap_err();
    assert!(
        matches!(
            err,
            rampart_store::StoreError::AuditHeadMismatch {
                head_seq: 3,
                max_seq: 4
            }
        ),
        "{err}"
    );
}

#[test]
fn hundred_thousand_entries_append_and_verify() {
    const TOTAL: u64 = 100_000;
    const BATCH: u64 = 25_000;
    let (_dir, store) = open_temp();
    let mut last_hash = String::new();
    for batch in 0..TOTAL / BATCH {
        last_hash = store
            .with_tx(|tx| {
                let mut hash = String::new();
                for n in 1..=BATCH {
                    hash = tx.append_audit(&event(batch * BATCH + n))?.hash;
                }
                Ok(hash)
            })
            .unwrap();
    }
    let report = store.verify_audit().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries_checked, TOTAL);
    assert_eq!(report.head_hash, Some(last_hash));
}

#[test]
fn listing_filters_pages_and_orders() {
    let (_dir, store) = open_temp();
    append_entries(&store, CHAIN_LEN);

    let all = store
        .list_audit(&AuditQuery {
            limit: 1_000,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );

    let page = store
        .list_audit(&AuditQuery {
            after_seq: Some(15),
            limit: 3,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![16, 17, 18]
    );

    let newest = store
        .list_audit(&AuditQuery {
            limit: 2,
            newest_first: true,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(
        newest.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![20, 19]
    );

    let older = store
        .list_audit(&AuditQuery {
            before_seq: Some(19),
            limit: 2,
            newest_first: true,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(
        older.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![18, 17]
    );

    let by_subject = store
        .list_audit(&AuditQuery {
            subject: Some("service/svc1".into()),
            action: Some("deployment.step".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .unwrap();
    // n % 4 == 1 and n % 3 != 0: 1, 5, 13, 17
    assert_eq!(
        by_subject.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 5, 13, 17]
    );
    assert!(by_subject.iter().all(|e| e.details["n"] == json!(e.seq)));
}

#[test]
fn listing_limit_is_capped() {
    let (_dir, store) = open_temp();
    append_entries(&store, 10_005);
    let listed = store
        .list_audit(&AuditQuery {
            limit: u32::MAX,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(listed.len(), rampart_store::AUDIT_LIST_LIMIT_MAX as usize);
}

#[test]
fn audit_timestamps_come_from_the_injected_clock() {
    let (_dir, store, clock) = open_temp_with_clock();
    let a = store.append_audit(&event(1)).unwrap();
    clock.advance(std::time::Duration::from_millis(1_500));
    let b = store.append_audit(&event(2)).unwrap();
    assert_eq!(
        rampart_store::format_timestamp(&a.at),
        "2023-11-14T22:13:20.000000Z"
    );
    assert_eq!(
        rampart_store::format_timestamp(&b.at),
        "2023-11-14T22:13:21.500000Z"
    );
    assert!(store.verify_audit().unwrap().ok);
}
