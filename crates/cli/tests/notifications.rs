//! Notifications end to end, through the real binary: a rolled-back rollout
//! reaches a Slack-format and a PagerDuty-format receiver, and nothing in the
//! outbox is lost when rampart is killed with SIGKILL before delivering it.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::receiver::{Mode, Receiver};
use support::{LoadGen, RampartServer, free_addr, run_cli, short_rollout_service};

const SERVICE: &str = "shop";
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(120);

/// The rollout service of the other end-to-end tests, telling `notifiers`.
fn shop(listen: SocketAddr, notifiers: &str) -> String {
    let service = short_rollout_service(SERVICE, listen, ["3s", "3s"], "60s");
    let listen_line = format!("listen = \"{listen}\"\n");
    service.replacen(
        &listen_line,
        &format!("{listen_line}notify_rollouts = [{notifiers}]\n"),
        1,
    )
}

#[test]
fn a_rolled_back_rollout_reaches_slack_and_pagerduty() {
    let slack = Receiver::start(Mode::Answer(200));
    let pagerduty = Receiver::start(Mode::Answer(202));
    let listen = free_addr();
    let notifiers = format!(
        r#"
[[notifier]]
name = "slack"
kind = "slack"
url = "{}"

[[notifier]]
name = "pagerduty"
kind = "pagerduty"
routing_key = "0123456789abcdef0123456789abcdef"
url = "{}"
"#,
        slack.url("/services/T0/B0/X"),
        pagerduty.url("/v2/enqueue")
    );
    let server = RampartServer::start_with_server(
        "public_url = \"https://rampart.example.com\"",
        &format!("{}\n{notifiers}", shop(listen, "\"slack\", \"pagerduty\"")),
    );
    let load = LoadGen::start(format!("http://{listen}/"), 100);
    let id = server.deploy(SERVICE, "v2", json!({ "SAMPLE_APP_ERROR_RATE": "0.1" }));
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    load.stop();
    assert_eq!(detail["summary"]["state"], "rolled_back", "{detail}");
    let key = format!("rollout-{id}");

    // PagerDuty: one trigger for the rollback, nothing for the steps.
    pagerduty.wait_until("a PagerDuty trigger", |got| !got.is_empty());
    let (_, event) = &pagerduty.delivered()[0];
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["routing_key"], "0123456789abcdef0123456789abcdef");
    assert_eq!(event["dedup_key"], key.as_str());
    assert_eq!(event["payload"]["severity"], "error");
    assert_eq!(event["payload"]["source"], SERVICE);
    assert_eq!(event["payload"]["class"], "rollout_rolled_back");
    let summary = event["payload"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("shop: v2 rolled back: "), "{summary}");
    assert_eq!(
        event["links"][0]["href"],
        format!("https://rampart.example.com/api/v1/deployments/{id}").as_str()
    );

    // Slack: started, step advanced, rolled back, each as Block Kit.
    slack.wait_until("the rollback on Slack", |got| {
        got.iter().any(|(_, body)| {
            body["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("Rollout rolled back")
        })
    });
    let texts: Vec<String> = slack
        .delivered()
        .iter()
        .map(|(_, body)| body["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(texts[0].starts_with("Rollout started: shop"), "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Rollout step advanced: shop")),
        "{texts:?}"
    );
    let (_, rollback) = slack
        .delivered()
        .into_iter()
        .find(|(_, body)| {
            body["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("Rollout rolled back")
        })
        .unwrap();
    let blocks = rollback["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    let fields: Vec<&str> = blocks[2]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert!(fields.contains(&"*Service*\nshop"), "{fields:?}");
    assert!(fields.contains(&"*Severity*\nhigh"), "{fields:?}");
    assert!(
        fields.iter().any(|f| f.starts_with("*Reason*\n")),
        "{fields:?}"
    );

    // The API and the CLI show each delivery.
    let listed = server.get_json(&format!(
        "/api/v1/notifications?key={key}&notifier=pagerduty"
    ));
    let states: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    // Started and step advanced are skipped for PagerDuty; the rollback delivered.
    assert!(states.contains(&"delivered"), "{listed}");
    assert!(
        states.iter().all(|s| *s == "delivered" || *s == "skipped"),
        "{listed}"
    );
    let metrics = support::client()
        .get(format!("{}/metrics", server.api))
        .send()
        .and_then(|r| r.text())
        .expect("GET /metrics");
    assert!(
        metrics.contains(
            r#"rampart_notification_attempts_total{notifier="pagerduty",outcome="delivered"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"rampart_notification_delivery_seconds_count{notifier="slack"}"#),
        "{metrics}"
    );
    let out = run_cli(
        &[
            "notifications",
            "--api",
            &server.api,
            "--token",
            &server.admin_token,
            "--notifier",
            "slack",
        ],
        server.dir.path(),
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("rollout_rolled_back"), "{table}");
    assert!(table.contains("delivered"), "{table}");
}

#[test]
fn no_notification_is_lost_across_kill_9() {
    let hook = Receiver::start(Mode::Hang);
    let listen = free_addr();
    let notifiers = format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\ntimeout = \"60s\"\n",
        hook.url("/rampart")
    );
    let mut server =
        RampartServer::start_serving(&format!("{}\n{notifiers}", shop(listen, "\"hook\"")));
    let id = server.deploy(SERVICE, "v2", json!({}));
    server.wait_state(&id, "progressing", ROLLOUT_TIMEOUT);
    // The first message is in flight (the receiver holds it), the rest wait behind
    // it: nothing is delivered yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "nothing reached the receiver");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before: Vec<Value> = server
        .get_json("/api/v1/notifications?limit=1000")
        .as_array()
        .unwrap()
        .clone();
    assert!(before.len() >= 2, "started and step advanced: {before:?}");
    assert!(before.iter().all(|n| n["state"] == "pending"), "{before:?}");
    server.kill9();

    hook.set_mode(Mode::Answer(200));
    server.restart();
    // Every message written before the kill arrives (at least once), and the
    // rollback that the restart does is told as well.
    let wanted: Vec<i64> = before.iter().map(|n| n["id"].as_i64().unwrap()).collect();
    hook.wait_until("every message written before the kill", |got| {
        wanted.iter().all(|id| {
            got.iter().any(|(headers, _)| {
                headers
                    .iter()
                    .any(|(n, v)| n == "x-rampart-delivery" && *v == id.to_string())
            })
        })
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let after = server.get_json("/api/v1/notifications?limit=1000");
        let rows = after.as_array().unwrap();
        if rows.iter().all(|n| n["state"] == "delivered") && rows.len() > before.len() {
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered: {after}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
