//! Each fault the controller must survive, injected through the backend and routing
//! seams (`Backend`, `RouteWriter`) or a real SQLite lock: every rollout reaches a
//! documented end with the service serving and taking a new deploy. Time is tokio's
//! paused clock (deadlines of minutes pass at once), except where SQLite's own busy
//! timeout has to run out.

pub(crate) mod fakes;

pub(crate) use fakes::TokioClock;

use std::sync::atomic::Ordering;
use std::time::Duration;

use fakes::{SERVICE, harness};

use crate::Operation;

pub(crate) const LONG: Duration = Duration::from_secs(600);

#[tokio::test(start_paused = true)]
async fn a_router_that_refuses_tables_for_a_while_is_repaired_and_the_rollout_goes_on() {
    let h = harness().await;
    // Refuses the canary set, then the repairs, then gives in.
    h.routes.refuse(6);
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "progressing", LONG).await;
    h.wait_table("canary routed at the first step's weight", |t| {
        t.canary.as_ref().is_some_and(|c| c.version == "v2") && t.canary_weight == 20.0
    })
    .await;
    assert!(h.routes.refused.load(Ordering::SeqCst) >= 6);

    // The weight of a later step, refused, is set by the next tick's repair.
    h.engine
        .operate(SERVICE, Operation::Promote, "alice", None)
        .await
        .expect("promote");
    h.wait_state(&rollout.id, "succeeded", LONG).await;
    assert_eq!(h.table().stable.version, "v2");
    assert!(h.table().canary.is_none());
    let next = h
        .deploy("v3")
        .await
        .expect("the service takes a new deploy");
    h.wait_state(&next.id, "progressing", LONG).await;
}

#[tokio::test(start_paused = true)]
async fn a_canary_weight_the_router_refused_is_set_by_the_next_repair() {
    let h = harness().await;
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_table("first step", |t| t.canary_weight == 20.0)
        .await;
    // Pausing changes nothing in the table; a refused weight from outside does: put
    // the weight off by hand, as a lost update would leave it.
    h.routes.refuse(0);
    crate::routes::RouteWriter::apply(
        &*h.routes,
        rampart_router::RouteTable {
            canary_weight: 0.0,
            ..h.table()
        },
    )
    .expect("table");
    h.wait_table("weight repaired to the step's", |t| t.canary_weight == 20.0)
        .await;
    h.engine
        .operate(SERVICE, Operation::Abort, "alice", None)
        .await
        .expect("abort");
    h.wait_state(&rollout.id, "aborted", LONG).await;
}

#[tokio::test(start_paused = true)]
async fn a_router_that_refuses_every_table_still_lets_the_rollout_end_and_the_service_unlock() {
    let h = harness().await;
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "progressing", LONG).await;
    h.routes.refuse(u32::MAX);
    h.engine
        .operate(SERVICE, Operation::Promote, "alice", None)
        .await
        .expect("promote");
    // The swap is refused again and again: past the promotion deadline the rollout
    // rolls back; the canary cannot be taken out of the table either, so the rollback
    // ends at its deadline and stopping v2 goes on in the background.
    h.wait_state(&rollout.id, "rolled_back", LONG).await;
    assert!(
        h.last_reason(&rollout.id)
            .await
            .contains("rollback deadline")
    );
    assert_eq!(h.table().stable.version, "v1", "v1 kept the stable traffic");
    assert!(
        h.backend.runs("v2"),
        "not stopped while the router still routes to it"
    );

    // Unlocked: a new deploy is taken even before the router is back.
    let next = h
        .deploy("v3")
        .await
        .expect("the service takes a new deploy");
    h.routes.refuse(0);
    h.wait_until(
        "v2 stopped in the background once the router took the table",
        || !h.backend.runs("v2"),
    )
    .await;
    h.wait_state(&next.id, "progressing", LONG).await;
}

#[tokio::test(start_paused = true)]
async fn a_start_that_hangs_ends_failed_at_the_start_deadline_and_the_service_takes_a_new_deploy() {
    let h = harness().await;
    h.backend.faults().hang_start.insert("v2".into());
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "failed", LONG).await;
    assert!(h.last_reason(&rollout.id).await.contains("start deadline"));
    assert!(h.table().canary.is_none());
    assert_eq!(h.table().stable.version, "v1");
    h.wait_until("what v2 started is stopped", || {
        h.backend.stopped().contains(&"v2".to_string())
    })
    .await;

    let next = h
        .deploy("v3")
        .await
        .expect("the service takes a new deploy");
    h.wait_state(&next.id, "progressing", LONG).await;
}

#[tokio::test(start_paused = true)]
async fn a_start_that_panicked_is_retried() {
    let h = harness().await;
    h.backend.faults().panic_start.insert("v2".into(), 2);
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "progressing", LONG).await;
    assert_eq!(
        h.backend.faults().panic_start["v2"],
        0,
        "both panics were hit"
    );
}

#[tokio::test(start_paused = true)]
async fn a_promotion_that_panicked_once_is_retried_and_succeeds() {
    let h = harness().await;
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "progressing", LONG).await;
    h.backend.faults().panic_scale = 1;
    h.engine
        .operate(SERVICE, Operation::Promote, "alice", None)
        .await
        .expect("promote");
    h.wait_state(&rollout.id, "succeeded", LONG).await;
    assert_eq!(h.table().stable.version, "v2");
    assert_eq!(
        rampart_backends::Backend::instances(&*h.backend, "v2").len(),
        2,
        "at full size"
    );
}

#[tokio::test(start_paused = true)]
async fn a_promotion_that_always_panics_rolls_back_at_its_deadline() {
    let h = harness().await;
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "progressing", LONG).await;
    h.backend.faults().panic_scale = u32::MAX;
    h.engine
        .operate(SERVICE, Operation::Promote, "alice", None)
        .await
        .expect("promote");
    h.wait_state(&rollout.id, "rolled_back", LONG).await;
    let detail = h.engine.deployment(&rollout.id).await.expect("detail");
    assert!(
        detail
            .record
            .rollout
            .history
            .iter()
            .any(|t| t.reason.contains("promotion deadline")),
        "rolled back for the deadline"
    );
    assert_eq!(h.table().stable.version, "v1");
    assert!(h.table().canary.is_none());
    assert!(!h.backend.runs("v2"));
    h.backend.faults().panic_scale = 0;
    let next = h
        .deploy("v3")
        .await
        .expect("the service takes a new deploy");
    h.wait_state(&next.id, "progressing", LONG).await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_that_fails_is_retried_until_the_canary_is_stopped() {
    let h = harness().await;
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "progressing", LONG).await;
    h.backend.faults().fail_stop = 3;
    h.engine
        .operate(SERVICE, Operation::Rollback, "alice", None)
        .await
        .expect("rollback");
    h.wait_state(&rollout.id, "rolled_back", LONG).await;
    assert!(!h.backend.runs("v2"));
    assert!(h.table().canary.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_revert_goes_through_the_machine_and_stops_the_reverted_version() {
    let h = harness().await;
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "progressing", LONG).await;
    h.engine
        .operate(SERVICE, Operation::Promote, "alice", None)
        .await
        .expect("promote");
    h.wait_state(&rollout.id, "succeeded", LONG).await;
    // Past the scale-down delay v1 is stopped: the revert starts it again.
    h.wait_until("v1 scaled down", || !h.backend.runs("v1"))
        .await;

    let revert = h
        .engine
        .operate(
            SERVICE,
            Operation::Rollback,
            "alice",
            Some("v2 is bad".into()),
        )
        .await
        .expect("revert");
    assert_eq!(revert.state, "succeeded", "the call returns once it ended");
    assert_eq!(revert.version, "v1");
    assert_eq!(h.table().stable.version, "v1");
    let detail = h.engine.deployment(&revert.id).await.expect("detail");
    let phases: Vec<&str> = detail
        .record
        .rollout
        .history
        .iter()
        .map(|t| t.to.name())
        .collect();
    assert_eq!(phases, ["Reverting", "Succeeded"]);
    h.wait_until("v2 drained and stopped", || !h.backend.runs("v2"))
        .await;
    let status = h.engine.status(SERVICE).await.expect("status");
    assert_eq!(status.stable_version, "v1");
    assert_eq!(status.rollback_target.as_deref(), Some("v2"));
    h.deploy("v3")
        .await
        .expect("the service takes a new deploy");
}

#[tokio::test(start_paused = true)]
async fn a_revert_that_cannot_start_the_version_fails_and_the_current_one_keeps_serving() {
    let h = harness().await;
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "progressing", LONG).await;
    h.engine
        .operate(SERVICE, Operation::Promote, "alice", None)
        .await
        .expect("promote");
    h.wait_state(&rollout.id, "succeeded", LONG).await;
    h.wait_until("v1 scaled down", || !h.backend.runs("v1"))
        .await;
    h.backend.faults().hang_start.insert("v1".into());
    let revert = h
        .engine
        .operate(SERVICE, Operation::Rollback, "alice", None)
        .await
        .expect("revert");
    assert_eq!(revert.state, "failed");
    assert_eq!(h.table().stable.version, "v2", "v2 goes on serving");
    h.deploy("v3")
        .await
        .expect("the service takes a new deploy");
}

#[tokio::test(start_paused = true)]
async fn a_controller_that_panics_is_restarted_and_rolls_the_canary_back() {
    let h = harness().await;
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "progressing", LONG).await;
    // The controller itself panics (not a background action): its supervisor reads
    // the rollout back and recovers it as after a restart, policy rollback.
    h.backend.faults().panic_instances.insert("v2".into(), 1);
    h.wait_state(&rollout.id, "rolled_back", LONG).await;
    let detail = h.engine.deployment(&rollout.id).await.expect("detail");
    assert!(
        detail
            .record
            .rollout
            .history
            .iter()
            .any(|t| t.reason.contains("restart policy is rollback")),
        "recovered by a new controller"
    );
    let panics = h
        .store
        .read(|tx| {
            tx.list_audit(&rampart_store::AuditQuery {
                action: Some("deployment.controller_panicked".into()),
                ..Default::default()
            })
        })
        .await
        .expect("audit");
    assert_eq!(panics.len(), 1, "the panic is audited");
    assert_eq!(h.table().stable.version, "v1");
    assert!(h.table().canary.is_none());
    let next = h
        .deploy("v3")
        .await
        .expect("the service takes a new deploy");
    h.wait_state(&next.id, "progressing", LONG).await;
}

/// SQLite's own busy timeout (5 s) has to run out for real here, so this test runs
/// in real time while another connection holds the database's write lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_database_delays_the_rollout_without_losing_a_step() {
    let h = harness().await;
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    h.backend.faults().start_gate = Some(gate.clone());
    let rollout = h.deploy("v2").await.expect("deploy");
    h.wait_state(&rollout.id, "starting", Duration::from_secs(20))
        .await;

    let db = h.store.db_path().to_path_buf();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).expect("open");
        conn.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        locked_tx.send(()).expect("signal");
        std::thread::sleep(Duration::from_secs(8));
        conn.execute_batch("COMMIT").expect("unlock");
    });
    locked_rx.recv().expect("locked");
    // v2 is ready while nothing can be committed: `InstancesReady` fails to commit
    // (`database is locked` after the busy timeout), is kept, and is committed once
    // the lock is gone.
    gate.notify_one();
    // A deploy cannot be recorded either: refused, and the service is not left
    // claimed by it.
    let refused = h.deploy("v9").await;
    assert!(refused.is_err(), "{refused:?}");
    holder.join().expect("holder");
    h.wait_state(&rollout.id, "progressing", Duration::from_secs(30))
        .await;
    let detail = h.engine.deployment(&rollout.id).await.expect("detail");
    let ready = detail
        .record
        .rollout
        .history
        .iter()
        .filter(|t| t.to.name() == "Progressing")
        .count();
    assert_eq!(ready, 1, "the step was entered once");
    h.wait_table("canary at the first step", |t| t.canary_weight == 20.0)
        .await;
    h.engine
        .operate(SERVICE, Operation::Abort, "alice", None)
        .await
        .expect("abort");
    h.wait_state(&rollout.id, "aborted", Duration::from_secs(30))
        .await;
    h.deploy("v3")
        .await
        .expect("the service takes a new deploy");
}
