//! Each channel's payload as a real receiver gets it: Slack Block Kit, PagerDuty
//! Events API v2, and the signed webhook.

mod support;

use rampart_core::notify::Topic;
use rampart_notify::{SIGNATURE_HEADER, TIMESTAMP_HEADER, verify};
use rampart_store::{NotificationState, Store};
use support::*;

#[tokio::test]
async fn slack_gets_block_kit_with_a_fallback_text() {
    let slack = Receiver::start().await;
    let config = config(&format!(
        r#"
[server]
public_url = "https://rampart.example.com"

[[notifier]]
name = "slack"
kind = "slack"
url = "{}"
"#,
        slack.url("/services/T0/B0/X")
    ));
    let store = Store::open_in_memory().unwrap();
    let worker = run_worker(&store, &config);
    let id = enqueue(
        &store,
        "slack",
        &message(Topic::IncidentOpened, "incident-42"),
    );

    let got = slack.wait_for(1).await;
    let body = got[0].json();
    assert_eq!(
        got[0].header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("Incident opened: shop (high)")
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("Incident opened: shop")
    );
    assert_eq!(blocks[1]["type"], "section");
    let fields: Vec<&str> = blocks[2]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "*Service*\nshop",
            "*Severity*\nhigh",
            "*Reason*\nerror rate 9.8 % &gt; 5 %",
            "*Rule*\nhigh_error_rate"
        ]
    );
    let button = &blocks.last().unwrap()["elements"][0];
    assert_eq!(button["type"], "button");
    assert_eq!(
        button["url"],
        "https://rampart.example.com/api/v1/incidents/42"
    );

    let row = wait_for_state(&store, id, NotificationState::Delivered).await;
    assert_eq!(row.last_status, Some(200));
    assert_eq!(row.attempts, 1);
    worker.stop().await;
}

#[tokio::test]
async fn pagerduty_gets_v2_events_in_order_for_one_incident() {
    let pagerduty = Receiver::start().await;
    pagerduty.otherwise(
        Answer::status(202)
            .body(r#"{"status":"success","message":"Event processed","dedup_key":"incident-42"}"#),
    );
    let config = config(&format!(
        r#"
[[notifier]]
name = "pagerduty"
kind = "pagerduty"
routing_key = "0123456789abcdef0123456789abcdef"
url = "{}"
rate_limit = 100
"#,
        pagerduty.url("/v2/enqueue")
    ));
    let store = Store::open_in_memory().unwrap();
    let ids = store
        .with_tx(|tx| {
            let mut ids = Vec::new();
            for topic in [
                Topic::IncidentOpened,
                Topic::IncidentAcknowledged,
                Topic::IncidentResolved,
            ] {
                ids.push(tx.enqueue_notification("pagerduty", &message(topic, "incident-42"))?);
            }
            // A rollout step is not a page.
            ids.push(tx.enqueue_notification(
                "pagerduty",
                &message(Topic::RolloutStepAdvanced, "rollout-ab"),
            )?);
            Ok(ids)
        })
        .unwrap();
    let worker = run_worker(&store, &config);

    let got = pagerduty.wait_for(3).await;
    let events: Vec<serde_json::Value> = got.iter().map(Received::json).collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    for event in &events {
        assert_eq!(event["routing_key"], "0123456789abcdef0123456789abcdef");
        assert_eq!(event["dedup_key"], "incident-42");
    }
    let payload = &events[0]["payload"];
    assert_eq!(payload["severity"], "error");
    assert_eq!(payload["source"], "shop");
    assert_eq!(
        payload["summary"],
        "high_error_rate on shop: error rate 9.8 % > 5 % for 30 s"
    );
    assert_eq!(payload["timestamp"], "2026-12-01T12:00:00Z");
    assert_eq!(payload["custom_details"]["Rule"], "high_error_rate");

    for id in &ids[..3] {
        let row = wait_for_state(&store, *id, NotificationState::Delivered).await;
        assert_eq!(row.last_status, Some(202));
    }
    let skipped = wait_for_state(&store, ids[3], NotificationState::Skipped).await;
    assert!(
        skipped
            .last_error
            .unwrap()
            .contains("rollout_step_advanced")
    );
    assert_eq!(pagerduty.received().len(), 3);
    worker.stop().await;
}

#[tokio::test]
async fn webhook_body_is_signed_over_timestamp_and_body() {
    let hook = Receiver::start().await;
    let secret = "a-long-random-shared-secret";
    let config = config(&format!(
        r#"
[[notifier]]
name = "hook"
kind = "webhook"
url = "{}"
secret = "{secret}"
"#,
        hook.url("/rampart")
    ));
    let store = Store::open_in_memory().unwrap();
    let worker = run_worker(&store, &config);
    let id = enqueue(
        &store,
        "hook",
        &message(Topic::RolloutRolledBack, "rollout-ab12"),
    );

    let got = &hook.wait_for(1).await[0];
    let timestamp: i64 = got.header(TIMESTAMP_HEADER).unwrap().parse().unwrap();
    let signature = got.header(SIGNATURE_HEADER).unwrap();
    assert!(verify(secret.as_bytes(), timestamp, &got.body, &signature));
    assert!(!verify(
        b"another-secret-entirely",
        timestamp,
        &got.body,
        &signature
    ));
    assert_eq!(got.header("x-rampart-delivery"), Some(id.to_string()));
    let body = got.json();
    assert_eq!(body["id"], id);
    assert_eq!(body["notifier"], "hook");
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["subject"]["kind"], "rollout");
    assert_eq!(body["subject"]["id"], "ab12");
    assert_eq!(body["message"]["topic"], "rollout_rolled_back");
    assert_eq!(body["message"]["key"], "rollout-ab12");
    wait_for_state(&store, id, NotificationState::Delivered).await;
    worker.stop().await;
}
