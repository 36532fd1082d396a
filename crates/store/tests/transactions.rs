//! `with_tx`: a change and its audit entry land together or not at all, and clones
//! of one store share a single writer safely.

mod common;

use std::panic::AssertUnwindSafe;

use common::*;
use rampart_store::{AuditQuery, DeploymentRow, NewAuditEvent, Store, StoreError};
use serde_json::json;

fn deployment(store: &Store, id: &str) -> DeploymentRow {
    DeploymentRow {
        id: id.into(),
        service: "checkout".into(),
        version: "v2".into(),
        previous_version: Some("v1".into()),
        state: "validating".into(),
        record: json!({"step": 0}),
        created_at: store.now(),
        updated_at: store.now(),
        finished_at: None,
    }
}

fn start_audit(id: &str) -> NewAuditEvent {
    NewAuditEvent {
        actor: "alice".into(),
        action: "deployment.start".into(),
        subject: format!("deployment/{id}"),
        details: json!({"version": "v2"}),
    }
}

#[test]
fn error_in_the_closure_rolls_back_the_change_and_its_audit_entry() {
    let (_dir, store) = open_temp();
    let row = deployment(&store, "d1");
    let result: Result<(), StoreError> = store.with_tx(|tx| {
        tx.insert_deployment(&row)?;
        tx.append_audit(&start_audit("d1"))?;
        Err(StoreError::Aborted("backend refused to start v2".into()))
    });
    assert!(matches!(result, Err(StoreError::Aborted(_))));

    assert_eq!(store.get_deployment("d1").unwrap(), None);
    assert!(store.list_audit(&AuditQuery::default()).unwrap().is_empty());
    // The chain head was rolled back too: the next entry is still number 1.
    assert_eq!(store.append_audit(&start_audit("d2")).unwrap().seq, 1);
    assert!(store.verify_audit().unwrap().ok);
}

#[test]
fn failing_store_operation_rolls_back_earlier_work_in_the_same_tx() {
    let (_dir, store) = open_temp();
    store.insert_deployment(&deployment(&store, "d1")).unwrap();
    let err = store
        .with_tx(|tx| {
            tx.append_audit(&start_audit("d1"))?;
            tx.update_deployment("d1", "progressing", &json!({"step": 1}), false)?;
            // Duplicate id: fails, taking the audit entry and the update with it.
            tx.insert_deployment(&deployment(&store, "d1"))
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::AlreadyExists {
                kind: "deployment",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.get_deployment("d1").unwrap().unwrap().state,
        "validating"
    );
    assert!(store.list_audit(&AuditQuery::default()).unwrap().is_empty());
}

#[test]
fn panic_in_the_closure_rolls_back_and_leaves_the_store_usable() {
    let (_dir, store) = open_temp();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = store.with_tx(|tx| -> Result<(), StoreError> {
            tx.append_audit(&start_audit("d1"))?;
            panic!("bug in caller");
        });
    }));
    assert!(outcome.is_err());
    assert!(store.list_audit(&AuditQuery::default()).unwrap().is_empty());
    assert_eq!(store.append_audit(&start_audit("d1")).unwrap().seq, 1);
}

#[test]
fn committed_work_is_visible_after_reopening() {
    let (dir, store) = open_temp();
    store
        .with_tx(|tx| {
            tx.insert_deployment(&deployment(&store, "d1"))?;
            tx.append_audit(&start_audit("d1"))
        })
        .unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.get_deployment("d1").unwrap().is_some());
    assert_eq!(store.list_audit(&AuditQuery::default()).unwrap().len(), 1);
}

#[test]
fn concurrent_appends_from_clones_form_one_valid_chain() {
    let (_dir, store) = open_temp();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    store.append_audit(&event(t * 1000 + n)).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let report = store.verify_audit().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries_checked, 200);
}

#[test]
fn the_audit_counter_counts_committed_entries_only() {
    use std::sync::atomic::Ordering;
    let (_dir, store) = open_temp();
    let counter = store.audit_appended_counter();
    store
        .with_tx(|tx| {
            tx.append_audit(&start_audit("d1"))?;
            tx.append_audit(&start_audit("d2"))
        })
        .unwrap();
    let _: Result<(), StoreError> = store.with_tx(|tx| {
        tx.append_audit(&start_audit("d3"))?;
        Err(StoreError::Aborted("refused".into()))
    });
    // Clones share the count.
    store.clone().append_audit(&start_audit("d4")).unwrap();
    assert_eq!(counter.load(Ordering::Relaxed), 3);
}
