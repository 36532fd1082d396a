//! Reads run on their own connections and never wait for the writer; async callers
//! reach the store without blocking the runtime; the files are private.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use rampart_store::{AuditQuery, StoreError};

/// Holds the write lock (an open IMMEDIATE transaction) until told to let go.
fn hold_the_writer(
    store: &rampart_store::Store,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (release, released) = mpsc::channel::<()>();
    let (held, is_held) = mpsc::channel::<()>();
    let store = store.clone();
    let holder = std::thread::spawn(move || {
        store
            .with_tx(|tx| {
                tx.append_audit(&event(99))?;
                held.send(()).unwrap();
                released.recv().unwrap();
                Ok(())
            })
            .unwrap();
    });
    is_held.recv().unwrap();
    (release, holder)
}

#[test]
fn reads_and_pings_do_not_wait_for_a_writer_in_the_middle_of_a_transaction() {
    let (_dir, store) = open_temp();
    append_entries(&store, 3);
    let (release, holder) = hold_the_writer(&store);

    // The writer holds its transaction open; none of these may wait for it.
    let (done, finished) = mpsc::channel();
    let reader = store.clone();
    std::thread::spawn(move || {
        let listed = reader.list_audit(&AuditQuery::default()).map(|e| e.len());
        let verified = reader.verify_audit().map(|v| v.ok);
        let pinged = reader.ping_blocking().is_ok();
        done.send((listed.ok(), verified.ok(), pinged)).unwrap();
    });
    let outcome = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("a read waited for the writer");
    // The uncommitted entry 4 is not visible: reads see the last commit.
    assert_eq!(outcome, (Some(3), Some(true), true));

    release.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(store.list_audit(&AuditQuery::default()).unwrap().len(), 4);
}

#[test]
fn a_read_transaction_cannot_write() {
    let (_dir, store) = open_temp();
    let err = store
        .read_blocking(|tx| tx.append_audit(&event(1)))
        .unwrap_err();
    assert!(
        err.to_string().contains("readonly"),
        "writes through a read connection fail: {err}"
    );
    assert!(store.list_audit(&AuditQuery::default()).unwrap().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn async_write_and_read_run_off_the_runtime_thread() {
    let (_dir, store) = open_temp();
    let runtime_thread = std::thread::current().id();
    let (entry, writer_thread) = store
        .write(|tx| Ok((tx.append_audit(&event(1))?, std::thread::current().id())))
        .await
        .unwrap();
    assert_eq!(entry.seq, 1);
    assert_ne!(writer_thread, runtime_thread);

    let (listed, reader_thread) = store
        .read(|tx| {
            Ok((
                tx.list_audit(&AuditQuery::default())?,
                std::thread::current().id(),
            ))
        })
        .await
        .unwrap();
    assert_eq!(listed, vec![entry]);
    assert_ne!(reader_thread, runtime_thread);
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn the_runtime_keeps_running_while_the_writer_is_busy() {
    let (_dir, store) = open_temp();
    let (release, holder) = hold_the_writer(&store);
    // A write queues behind the held transaction without occupying the runtime's
    // only thread: a timer on the same thread still fires.
    let pending = tokio::spawn({
        let store = store.clone();
        async move { store.write(|tx| tx.append_audit(&event(2))).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!pending.is_finished());
    assert_eq!(
        store
            .read(|tx| tx.list_audit(&AuditQuery::default()))
            .await
            .unwrap()
            .len(),
        0
    );
    release.send(()).unwrap();
    assert_eq!(pending.await.unwrap().unwrap().seq, 2);
    holder.join().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn async_write_rolls_back_on_error_and_passes_a_panic_on() {
    let (_dir, store) = open_temp();
    let refused: Result<(), StoreError> = store
        .write(|tx| {
            tx.append_audit(&event(1))?;
            Err(StoreError::Aborted("refused".into()))
        })
        .await;
    assert!(matches!(refused, Err(StoreError::Aborted(_))));

    let panicked = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .write(|tx| -> Result<(), StoreError> {
                    tx.append_audit(&event(2))?;
                    panic!("bug in caller")
                })
                .await
        }
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());
    assert!(store.list_audit(&AuditQuery::default()).unwrap().is_empty());
    assert_eq!(
        store
            .write(|tx| tx.append_audit(&event(3)))
            .await
            .unwrap()
            .seq,
        1
    );
}

#[cfg(unix)]
#[test]
fn data_dir_is_created_0700_and_database_files_are_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("parent").join("data");
    let store = rampart_store::Store::open(&data_dir).unwrap();
    append_entries(&store, 1);
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(
        mode(data_dir.parent().unwrap()),
        0o700,
        "created parents too"
    );
    for name in ["rampart.db", "rampart.db-wal", "rampart.db-shm"] {
        assert_eq!(mode(&data_dir.join(name)), 0o600, "{name}");
    }
    drop(store);

    // Files an older rampart left readable are made private at the next open.
    for name in ["rampart.db", "rampart.db-wal", "rampart.db-shm"] {
        let path = data_dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let _store = rampart_store::Store::open(&data_dir).unwrap();
    for name in ["rampart.db", "rampart.db-wal", "rampart.db-shm"] {
        let path = data_dir.join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name} after reopening");
        }
    }
}
