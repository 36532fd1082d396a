//! Gates and hooks end to end (issue 15): the real binary runs the API, the router
//! and its own `sample-app` instances; hooks POST to a local receiver that answers
//! 200 or 500 on demand. Steps that wait for an operator need no judged traffic, so
//! these tests move the rollout with gates, not with load.
//!
//! Every wait is a poll with a bounded deadline; nothing asserts on elapsed time.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use support::receiver::{Mode, Receiver};
use support::{RampartServer, client, free_addr, history, run_cli_timeout, sample_app_service};

const SERVICE: &str = "shop";
const TIMEOUT: Duration = Duration::from_secs(60);

fn service(listen: SocketAddr, steps: &str, extra: &str) -> String {
    sample_app_service(
        SERVICE,
        listen,
        1,
        &format!(
            r#"[service.strategy]
steps = {steps}
scale_down_delay = "1s"

[service.router]
drain_grace = "1s"

{extra}"#
        ),
    )
}

fn create_token(server: &RampartServer, name: &str, role: &str) -> String {
    let (status, body) = server.post_json("/api/v1/tokens", &json!({ "name": name, "role": role }));
    assert_eq!(status, 201, "create token {name}: {body}");
    body["secret"].as_str().expect("secret").to_string()
}

fn cli(server: &RampartServer, token: &str, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--api", &server.api, "--token", token]);
    run_cli_timeout(&all, server.dir.path(), TIMEOUT)
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn rollout(detail: &Value) -> &Value {
    &detail["record"]["rollout"]
}

fn paused_for(detail: &Value, cause: &str) -> bool {
    let phase = &rollout(detail)["phase"];
    phase["state"] == "paused" && phase["cause"] == cause
}

fn wait_paused(server: &RampartServer, id: &str, cause: &str) -> Value {
    server.wait_deployment(id, TIMEOUT, &format!("paused for {cause}"), |d| {
        paused_for(d, cause)
    })
}

#[test]
fn an_until_promoted_gate_waits_under_load_test_traffic_until_promote() {
    let listen = free_addr();
    let server = RampartServer::start_serving(&service(
        listen,
        r#"[{ weight = 20, pause = "until_promoted" }, { weight = 50, hold = "1m" }]"#,
        r#"[[service.hook]]
name = "warm-up"
kind = "load_test"
rate = 40
"#,
    ));
    let id = server.deploy(SERVICE, "v2", json!({}));
    wait_paused(&server, &id, "until_promoted");

    // No timer: it still waits, while the load test feeds the canary its share.
    let status = server.wait_deployment(&id, TIMEOUT, "canary traffic from the load test", |_| {
        server.get_json(&format!("/api/v1/services/{SERVICE}/status"))["live"]["canary"]["requests"]
            .as_u64()
            .is_some_and(|n| n >= 10)
    });
    assert!(
        paused_for(&status, "until_promoted"),
        "{}",
        history(&status)
    );

    let shown = cli(&server, &server.admin_token, &["status", SERVICE]);
    let shown = text(&shown);
    assert!(
        shown.contains("waiting for  an operator (pause = until_promoted)"),
        "{shown}"
    );
    let metrics = client()
        .get(format!("{}/metrics", server.api))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(
        metrics.contains(&format!(
            "rampart_rollout_waiting{{service=\"{SERVICE}\",on=\"until_promoted\"}} 1"
        )),
        "{metrics}"
    );

    let promoted = cli(&server, &server.admin_token, &["promote", SERVICE]);
    assert!(promoted.status.success(), "{}", text(&promoted));
    let detail = server.wait_terminal(&id, TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
    let events = detail["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["kind"] == "hook"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("load test `warm-up` stopped"))),
        "{events:?}"
    );
}

#[test]
fn an_approval_by_the_wrong_token_is_refused_and_by_the_right_one_proceeds() {
    let listen = free_addr();
    let server = RampartServer::start_serving(&service(
        listen,
        r#"[{ weight = 20, pause = "until_promoted", approve = "release-manager" }]"#,
        "",
    ));
    let ci = create_token(&server, "ci", "operator");
    let alice = create_token(&server, "release-manager.alice", "viewer");

    let id = server.deploy(SERVICE, "v2", json!({}));
    wait_paused(&server, &id, "until_promoted");
    // Promote may not skip an approval still due.
    let (status, problem) =
        server.post_json(&format!("/api/v1/services/{SERVICE}/promote"), &json!({}));
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("needs approval by release-manager")),
        "{problem}"
    );

    let resumed = cli(&server, &ci, &["resume", SERVICE]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let waiting = wait_paused(&server, &id, "approval");
    let status = server.get_json(&format!("/api/v1/services/{SERVICE}/status"));
    assert!(
        status["active"]["waiting_for"]
            .as_str()
            .is_some_and(|w| w.starts_with("approval by release-manager")),
        "{status}"
    );

    let refused = cli(&server, &ci, &["approve", SERVICE]);
    assert!(!refused.status.success());
    let refused = text(&refused);
    assert!(
        refused.contains("token `ci` (role operator) cannot approve step 1 of shop's rollout"),
        "{refused}"
    );
    assert!(
        paused_for(&server.deployment(&id), "approval"),
        "{}",
        history(&waiting)
    );
    assert_eq!(server.audit_actions("deployment.approval_refused").len(), 1);

    let approved = cli(
        &server,
        &alice,
        &["approve", SERVICE, "--reason", "change window open"],
    );
    assert!(approved.status.success(), "{}", text(&approved));
    let detail = server.wait_terminal(&id, TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
    let approvals = &rollout(&detail)["approvals"];
    assert_eq!(approvals[0]["by"], "release-manager.alice", "{approvals}");
    let transitions = rollout(&detail)["history"].as_array().expect("history");
    let approval = transitions
        .iter()
        .find(|t| {
            t["reason"]
                .as_str()
                .is_some_and(|r| r.contains("approved by"))
        })
        .expect("the approval is in the history");
    assert_eq!(approval["actor"]["name"], "release-manager.alice");
    assert!(
        server
            .audit_actions("deployment.promoting")
            .iter()
            .any(|e| e["actor"] == "release-manager.alice"),
        "the approval is audited with its actor"
    );
}

#[test]
fn a_rejecting_confirm_hook_holds_the_rollout_until_it_accepts() {
    let confirm = Receiver::start(Mode::Answer(500));
    let steps = Receiver::start(Mode::Answer(200));
    let listen = free_addr();
    let server = RampartServer::start_serving(&service(
        listen,
        r#"[{ weight = 20, pause = "until_promoted" }, { weight = 50, pause = "until_promoted" }]"#,
        &format!(
            r#"[[service.hook]]
name = "gate"
kind = "confirm_traffic_increase"
url = "{}"
interval = "1s"
retries = 0

[[service.hook]]
name = "chat"
kind = "rollout_step"
url = "{}"
"#,
            confirm.url("/confirm"),
            steps.url("/steps")
        ),
    ));
    let id = server.deploy(SERVICE, "v2", json!({ "API_KEY": "s3cret" }));
    wait_paused(&server, &id, "until_promoted");
    let resumed = cli(&server, &server.admin_token, &["resume", SERVICE]);
    assert!(resumed.status.success(), "{}", text(&resumed));

    // The hook says no: held at step 1, its answer shown, asked again and again.
    let held = server.wait_deployment(&id, TIMEOUT, "the hook's no recorded", |d| {
        paused_for(d, "confirm_traffic_increase") && !rollout(d)["confirmation"].is_null()
    });
    assert_eq!(rollout(&held)["phase"]["step"], 0);
    assert!(
        rollout(&held)["confirmation"]["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("`gate`: HTTP 500")),
        "{}",
        rollout(&held)
    );
    server.wait_deployment(&id, TIMEOUT, "the hook asked again", |_| {
        confirm.got.lock().unwrap().len() >= 3
    });
    assert!(paused_for(
        &server.deployment(&id),
        "confirm_traffic_increase"
    ));

    confirm.set_mode(Mode::Answer(200));
    let detail =
        server.wait_deployment(&id, TIMEOUT, "step 2", |d| rollout(d)["phase"]["step"] == 1);
    assert!(
        history(&detail).contains("the confirm_traffic_increase hooks confirmed"),
        "{}",
        history(&detail)
    );
    let (_, body, _) = confirm.got.lock().unwrap()[0].clone();
    assert_eq!(body["kind"], "confirm_traffic_increase");
    assert_eq!(body["service"], SERVICE);
    assert_eq!(body["version"], "v2");
    assert!(
        !body.to_string().contains("s3cret"),
        "no per-deploy env in a payload: {body}"
    );

    let promoted = cli(&server, &server.admin_token, &["promote", SERVICE]);
    assert!(promoted.status.success(), "{}", text(&promoted));
    server.wait_terminal(&id, TIMEOUT);
    // The step notifications: entering step 1, then step 2.
    let seen = server.wait_deployment(&id, TIMEOUT, "two rollout_step notifications", |_| {
        steps.got.lock().unwrap().len() >= 2
    });
    let bodies: Vec<Value> = steps
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b, _)| b.clone())
        .collect();
    assert_eq!(bodies[0]["kind"], "rollout_step", "{bodies:?}");
    assert_eq!(bodies[0]["step"], 1);
    assert_eq!(bodies[1]["step"], 2, "{}", history(&seen));
}

#[test]
fn a_failing_pre_rollout_hook_fails_the_rollout_before_any_traffic_moves() {
    let hook = Receiver::start(Mode::Answer(500));
    let listen = free_addr();
    let server = RampartServer::start_serving(&service(
        listen,
        r#"[{ weight = 20, hold = "1m" }]"#,
        &format!(
            r#"[[service.hook]]
name = "acceptance"
kind = "pre_rollout"
url = "{}"
retries = 1
"#,
            hook.url("/acceptance")
        ),
    ));
    let id = server.deploy(SERVICE, "v2", json!({}));
    let detail = server.wait_terminal(&id, TIMEOUT);
    assert_eq!(detail["summary"]["state"], "failed", "{}", history(&detail));
    let reasons = history(&detail);
    assert!(
        reasons.contains("pre-rollout hooks failed (`acceptance`: HTTP 500"),
        "{reasons}"
    );
    assert!(reasons.contains("no traffic had reached v2"), "{reasons}");
    // Retried once, then given up; the canary never had a weight.
    assert_eq!(hook.got.lock().unwrap().len(), 2);
    assert!(
        !rollout(&detail)["history"]
            .as_array()
            .expect("history")
            .iter()
            .any(|t| t["to"]["state"] == "progressing" || t["to"]["state"] == "paused"),
        "{reasons}"
    );
    let status = server.get_json(&format!("/api/v1/services/{SERVICE}/status"));
    assert_eq!(status["stable_version"], "v1", "{status}");
}
