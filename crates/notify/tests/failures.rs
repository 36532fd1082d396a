//! Receivers that fail, refuse, rate-limit and time out; notifiers that are gone;
//! and messages a crashed worker had claimed.

mod support;

use std::time::Duration;

use rampart_core::notify::Topic;
use rampart_store::{AuditQuery, NotificationState, Store};
use support::*;

fn webhook(receiver: &Receiver, extra: &str) -> rampart_config::Config {
    config(&format!(
        r#"
[[notifier]]
name = "hook"
kind = "webhook"
url = "{}"
{extra}
"#,
        receiver.url("/hook")
    ))
}

#[tokio::test]
async fn a_server_error_is_retried_until_delivered() {
    let hook = Receiver::start().await;
    hook.script([
        Answer::status(500).body("database down"),
        Answer::status(502),
    ]);
    let store = Store::open_in_memory().unwrap();
    let worker = run_worker(&store, &webhook(&hook, ""));
    let id = enqueue(
        &store,
        "hook",
        &message(Topic::IncidentOpened, "incident-1"),
    );

    let first = wait_until(&store, id, "retried once", |r| r.attempts == 1).await;
    assert_eq!(first.state, NotificationState::Pending);
    assert_eq!(first.last_status, Some(500));
    assert_eq!(
        first.last_error.as_deref(),
        Some("HTTP 500 Internal Server Error: database down")
    );
    assert!(first.next_attempt_at > first.last_attempt_at.unwrap());

    let row = wait_for_state(&store, id, NotificationState::Delivered).await;
    assert_eq!(row.attempts, 3);
    let got = hook.received();
    assert_eq!(got.len(), 3);
    // Every retry is the same delivery, so the receiver can deduplicate.
    assert!(
        got.iter()
            .all(|r| r.header("x-rampart-delivery") == Some(id.to_string()))
    );
    assert_eq!(got[2].json()["attempt"], 3);
    worker.stop().await;
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let slack = Receiver::start().await;
    slack.script([Answer::status(429)
        .header("retry-after", "2")
        .body("rate_limited")]);
    let config = config(&format!(
        "[[notifier]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{}\"\n",
        slack.url("/services/x")
    ));
    let store = Store::open_in_memory().unwrap();
    let worker = run_worker(&store, &config);
    let id = enqueue(&store, "slack", &message(Topic::RolloutPaused, "rollout-1"));

    let limited = wait_until(&store, id, "rate-limited", |r| r.attempts == 1).await;
    assert_eq!(limited.last_status, Some(429));
    // Retry-After counts from the answer; the attempt is recorded a moment later.
    let wait = limited.next_attempt_at - limited.last_attempt_at.unwrap();
    assert!(
        wait >= chrono::TimeDelta::milliseconds(1900),
        "retried after {wait}"
    );

    let got = slack.wait_for(2).await;
    assert!(got[1].at.duration_since(got[0].at) >= Duration::from_secs(2));
    wait_for_state(&store, id, NotificationState::Delivered).await;
    worker.stop().await;
}

#[tokio::test]
async fn a_4xx_fails_at_once_and_is_audited() {
    let slack = Receiver::start().await;
    slack.otherwise(Answer::status(404).body("no_service"));
    let config = config(&format!(
        "[[notifier]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{}\"\n",
        slack.url("/services/revoked")
    ));
    let store = Store::open_in_memory().unwrap();
    let worker = run_worker(&store, &config);
    let id = enqueue(
        &store,
        "slack",
        &message(Topic::IncidentOpened, "incident-3"),
    );

    let row = wait_for_state(&store, id, NotificationState::Failed).await;
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_status, Some(404));
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 404 Not Found: no_service")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(slack.received().len(), 1, "a 404 is not retried");

    let audit = store
        .list_audit(&AuditQuery {
            limit: 10,
            action: Some("notification.failed".into()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].subject, format!("notification/{id}"));
    assert_eq!(audit[0].details["status"], 404);
    worker.stop().await;
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_in_time_is_retried() {
    let hook = Receiver::start().await;
    hook.script([Answer::status(200).after(Duration::from_secs(5))]);
    let store = Store::open_in_memory().unwrap();
    let worker = run_worker(&store, &webhook(&hook, "timeout = \"300ms\""));
    let id = enqueue(
        &store,
        "hook",
        &message(Topic::IncidentOpened, "incident-4"),
    );

    let first = wait_until(&store, id, "timed out once", |r| r.attempts == 1).await;
    assert_eq!(first.last_status, None);
    assert_eq!(first.last_error.as_deref(), Some("timed out after 300ms"));
    let row = wait_for_state(&store, id, NotificationState::Delivered).await;
    assert_eq!(row.attempts, 2);
    worker.stop().await;
}

#[tokio::test]
async fn a_receiver_down_for_longer_than_retry_for_is_abandoned() {
    let hook = Receiver::start().await;
    hook.otherwise(Answer::status(503));
    let store = Store::open_in_memory().unwrap();
    let worker = run_worker(&store, &webhook(&hook, "retry_for = \"2s\""));
    let id = enqueue(
        &store,
        "hook",
        &message(Topic::IncidentOpened, "incident-5"),
    );

    let row = wait_for_state(&store, id, NotificationState::Abandoned).await;
    assert!(row.attempts >= 2, "retried before giving up: {row:?}");
    let error = row.last_error.unwrap();
    assert!(
        error.starts_with("HTTP 503 Service Unavailable; gave up after"),
        "{error}"
    );
    let audit = store
        .list_audit(&AuditQuery {
            limit: 10,
            action: Some("notification.abandoned".into()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(audit.len(), 1);
    worker.stop().await;
}

#[tokio::test]
async fn a_connection_refused_is_retried() {
    // A port nothing listens on: bind, note it, close.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let config = config(&format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n"
    ));
    let store = Store::open_in_memory().unwrap();
    let worker = run_worker(&store, &config);
    let id = enqueue(
        &store,
        "hook",
        &message(Topic::IncidentOpened, "incident-6"),
    );
    let row = wait_until(&store, id, "tried", |r| r.attempts >= 1).await;
    assert_eq!(row.state, NotificationState::Pending);
    assert!(row.last_error.unwrap().starts_with("could not connect"));
    worker.stop().await;
}

#[tokio::test]
async fn messages_for_a_notifier_no_longer_configured_are_abandoned() {
    let store = Store::open_in_memory().unwrap();
    let id = enqueue(
        &store,
        "removed",
        &message(Topic::IncidentOpened, "incident-7"),
    );
    let worker = run_worker(&store, &config(""));
    let row = wait_for_state(&store, id, NotificationState::Abandoned).await;
    assert!(
        row.last_error
            .unwrap()
            .contains("notifier 'removed' is not configured")
    );
    worker.stop().await;
}

#[tokio::test]
async fn the_notifiers_rate_is_kept() {
    let hook = Receiver::start().await;
    let store = Store::open_in_memory().unwrap();
    store
        .with_tx(|tx| {
            for n in 0..4 {
                tx.enqueue_notification(
                    "hook",
                    &message(Topic::RolloutStarted, &format!("rollout-{n}")),
                )?;
            }
            Ok(())
        })
        .unwrap();
    let worker = run_worker(&store, &webhook(&hook, "rate_limit = 2.0"));
    let got = hook.wait_for(4).await;
    // A burst of two (one second's worth), then one every half second.
    assert!(got[2].at.duration_since(got[0].at) >= Duration::from_millis(450));
    assert!(got[3].at.duration_since(got[2].at) >= Duration::from_millis(450));
    worker.stop().await;
}

#[tokio::test]
async fn claims_of_a_crashed_worker_are_sent_after_the_restart() {
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids: Vec<i64> = (0..3)
        .map(|n| {
            enqueue(
                &store,
                "hook",
                &message(Topic::IncidentOpened, &format!("incident-{n}")),
            )
        })
        .collect();
    // The dead process claimed them and never recorded an attempt.
    assert_eq!(
        store
            .with_tx(|tx| tx.claim_due_notifications(10))
            .unwrap()
            .len(),
        3
    );
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let worker = run_worker(&store, &webhook(&hook, ""));
    for id in ids {
        wait_for_state(&store, id, NotificationState::Delivered).await;
    }
    assert_eq!(hook.received().len(), 3);
    worker.stop().await;
}

#[tokio::test]
async fn a_slow_receivers_backlog_stays_in_the_store() {
    let hook = Receiver::start().await;
    let store = Store::open_in_memory().unwrap();
    store
        .with_tx(|tx| {
            for n in 0..1000 {
                tx.enqueue_notification(
                    "hook",
                    &message(Topic::RolloutStarted, &format!("rollout-{n}")),
                )?;
            }
            Ok(())
        })
        .unwrap();
    let worker = run_worker(&store, &webhook(&hook, "rate_limit = 1.0"));
    hook.wait_for(1).await;
    // However long the worker runs, it holds at most its sender's queue and one
    // batch; before, it claimed the whole outbox into memory at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let unclaimed = store
        .with_tx(|tx| tx.claim_due_notifications(10_000))
        .unwrap()
        .len();
    assert!(
        unclaimed >= 1000 - 2 * 100 - 100,
        "{unclaimed} left unclaimed"
    );
    worker.stop().await;
}
