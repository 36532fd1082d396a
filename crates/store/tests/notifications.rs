//! The notification outbox: enqueue in the change's transaction, claim, attempts,
//! per-key ordering, restart release, listing.

mod common;

use std::time::Duration;

use chrono::TimeDelta;
use common::open_temp_with_clock;
use rampart_core::notify::{Message, Severity, Topic};
use rampart_store::{AttemptOutcome, NotificationQuery, NotificationState, Store, StoreError};

fn message(topic: Topic, key: &str) -> Message {
    Message {
        topic,
        key: key.into(),
        service: Some("shop".into()),
        severity: Severity::High,
        summary: format!("{} {key}", topic.as_str()),
        fields: vec![("reason".into(), "error rate".into())],
        link: Some("/api/v1/incidents/1".into()),
        at: "2026-12-01T12:00:00Z".into(),
    }
}

#[test]
fn enqueued_with_the_change_or_not_at_all() {
    let (_dir, store, _clock) = open_temp_with_clock();
    let rolled_back: Result<(), StoreError> = store.with_tx(|tx| {
        tx.enqueue_notification("slack", &message(Topic::IncidentOpened, "incident-1"))?;
        Err(StoreError::Aborted("the change failed".into()))
    });
    assert!(rolled_back.is_err());
    assert!(store.list_notifications(&query()).unwrap().is_empty());

    let id = store
        .with_tx(|tx| {
            tx.enqueue_notification("slack", &message(Topic::IncidentOpened, "incident-1"))
        })
        .unwrap();
    let row = store.get_notification(id).unwrap().unwrap();
    assert_eq!(row.state, NotificationState::Pending);
    assert_eq!(row.attempts, 0);
    assert_eq!(row.message, message(Topic::IncidentOpened, "incident-1"));
}

#[tokio::test]
async fn a_commit_with_notifications_wakes_the_worker() {
    let (_dir, store, _clock) = open_temp_with_clock();
    let signal = store.outbox_signal();
    let waiting = tokio::spawn(async move { signal.notified().await });
    tokio::task::yield_now().await;
    store
        .write(|tx| tx.enqueue_notification("slack", &message(Topic::RolloutStarted, "rollout-a")))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the worker was woken")
        .unwrap();
}

#[test]
fn claims_are_exclusive_until_recorded_or_released() {
    let (_dir, store, _clock) = open_temp_with_clock();
    store
        .with_tx(|tx| {
            tx.enqueue_notification("slack", &message(Topic::RolloutStarted, "rollout-a"))?;
            tx.enqueue_notification("slack", &message(Topic::RolloutStarted, "rollout-b"))
        })
        .unwrap();
    let claimed = store.with_tx(|tx| tx.claim_due_notifications(10)).unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        store
            .with_tx(|tx| tx.claim_due_notifications(10))
            .unwrap()
            .is_empty()
    );
    // A restart releases what the dead process had claimed.
    assert_eq!(
        store
            .with_tx(|tx| tx.release_notification_claims())
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .with_tx(|tx| tx.claim_due_notifications(10))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn one_key_is_delivered_in_order_even_while_retrying() {
    let (_dir, store, clock) = open_temp_with_clock();
    let (trigger, resolve, other) = store
        .with_tx(|tx| {
            Ok((
                tx.enqueue_notification("pd", &message(Topic::IncidentOpened, "incident-1"))?,
                tx.enqueue_notification("pd", &message(Topic::IncidentResolved, "incident-1"))?,
                tx.enqueue_notification("pd", &message(Topic::IncidentOpened, "incident-2"))?,
            ))
        })
        .unwrap();
    let ids =
        |rows: Vec<rampart_store::Notification>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.with_tx(|tx| tx.claim_due_notifications(10)).unwrap()),
        [trigger, other]
    );

    let retry_at = store.now() + TimeDelta::seconds(30);
    let row = store
        .with_tx(|tx| {
            tx.record_notification_attempt(
                trigger,
                &AttemptOutcome::Retry {
                    status: Some(503),
                    error: "503 Service Unavailable".into(),
                    next_attempt_at: retry_at,
                },
            )
        })
        .unwrap();
    assert_eq!(row.state, NotificationState::Pending);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_status, Some(503));
    assert_eq!(row.next_attempt_at, retry_at);
    // The resolve waits behind the trigger being retried.
    assert!(
        store
            .with_tx(|tx| tx.claim_due_notifications(10))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .read_blocking(|tx| tx.next_notification_due())
            .unwrap(),
        Some(retry_at)
    );

    clock.advance(Duration::from_secs(30));
    assert_eq!(
        ids(store.with_tx(|tx| tx.claim_due_notifications(10)).unwrap()),
        [trigger]
    );
    let row = store
        .with_tx(|tx| {
            tx.record_notification_attempt(trigger, &AttemptOutcome::Delivered { status: 202 })
        })
        .unwrap();
    assert_eq!(row.state, NotificationState::Delivered);
    assert_eq!(row.finished_at, Some(store.now()));
    assert_eq!(
        ids(store.with_tx(|tx| tx.claim_due_notifications(10)).unwrap()),
        [resolve]
    );
}

#[test]
fn failed_and_abandoned_rows_are_final_and_listed() {
    let (_dir, store, _clock) = open_temp_with_clock();
    let (a, b) = store
        .with_tx(|tx| {
            Ok((
                tx.enqueue_notification("slack", &message(Topic::RolloutPaused, "rollout-a"))?,
                tx.enqueue_notification("hook", &message(Topic::RolloutPaused, "rollout-a"))?,
            ))
        })
        .unwrap();
    store.with_tx(|tx| tx.claim_due_notifications(10)).unwrap();
    store
        .with_tx(|tx| {
            tx.record_notification_attempt(
                a,
                &AttemptOutcome::Failed {
                    status: Some(404),
                    error: "404 no_service".into(),
                },
            )?;
            tx.record_notification_attempt(
                b,
                &AttemptOutcome::Abandoned {
                    status: None,
                    error: "notifier 'hook' is not configured".into(),
                },
            )
        })
        .unwrap();
    // A final row cannot be recorded again.
    let again = store.with_tx(|tx| {
        tx.record_notification_attempt(a, &AttemptOutcome::Delivered { status: 200 })
    });
    assert!(matches!(again, Err(StoreError::NotFound { .. })));

    let failed = store
        .list_notifications(&NotificationQuery {
            state: Some(NotificationState::Failed),
            ..query()
        })
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_error.as_deref(), Some("404 no_service"));
    let hook = store
        .list_notifications(&NotificationQuery {
            notifier: Some("hook".into()),
            ..query()
        })
        .unwrap();
    assert_eq!(hook[0].state, NotificationState::Abandoned);
    let counts = store.read_blocking(|tx| tx.notification_counts()).unwrap();
    assert_eq!(counts.get(&NotificationState::Failed), Some(&1));
    assert_eq!(counts.get(&NotificationState::Pending), None);
}

#[test]
fn listing_pages_newest_first() {
    let store = Store::open_in_memory().unwrap();
    store
        .with_tx(|tx| {
            for n in 0..5 {
                tx.enqueue_notification(
                    "slack",
                    &message(Topic::RolloutStepAdvanced, &format!("rollout-{n}")),
                )?;
            }
            Ok(())
        })
        .unwrap();
    let first = store
        .list_notifications(&NotificationQuery {
            limit: 2,
            ..query()
        })
        .unwrap();
    assert_eq!(
        first
            .iter()
            .map(|r| r.message.key.as_str())
            .collect::<Vec<_>>(),
        ["rollout-4", "rollout-3"]
    );
    let next = store
        .list_notifications(&NotificationQuery {
            limit: 2,
            before_id: Some(first[1].id),
            ..query()
        })
        .unwrap();
    assert_eq!(
        next.iter()
            .map(|r| r.message.key.as_str())
            .collect::<Vec<_>>(),
        ["rollout-2", "rollout-1"]
    );
}

fn query() -> NotificationQuery {
    NotificationQuery {
        limit: 100,
        ..NotificationQuery::default()
    }
}

#[test]
fn pruning_keeps_pending_and_recent_rows() {
    let (_dir, store, clock) = open_temp_with_clock();
    let (done, waiting) = store
        .with_tx(|tx| {
            Ok((
                tx.enqueue_notification("slack", &message(Topic::RolloutStarted, "rollout-a"))?,
                tx.enqueue_notification("hook", &message(Topic::RolloutStarted, "rollout-b"))?,
            ))
        })
        .unwrap();
    store.with_tx(|tx| tx.claim_due_notifications(10)).unwrap();
    store
        .with_tx(|tx| {
            tx.record_notification_attempt(done, &AttemptOutcome::Delivered { status: 200 })
        })
        .unwrap();
    let cutoff = store.now();
    assert_eq!(
        store.with_tx(|tx| tx.prune_notifications(cutoff)).unwrap(),
        0
    );
    clock.advance(Duration::from_secs(1));
    let cutoff = store.now();
    assert_eq!(
        store.with_tx(|tx| tx.prune_notifications(cutoff)).unwrap(),
        1
    );
    assert!(store.get_notification(done).unwrap().is_none());
    assert!(store.get_notification(waiting).unwrap().is_some());
}
