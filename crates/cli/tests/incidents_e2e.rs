//! Incident response end to end on the real binary: a rule fires on the error rate
//! the router measures, its actions really act (the rollout is rolled back, load is
//! shed, deploys are frozen), the incident escalates when nobody acknowledges it,
//! and it resolves when the errors stop (or by hand), with every step on its
//! timeline, in the audit log and on the CLI.
//!
//! Every wait is a poll with a bounded deadline; nothing asserts on elapsed time.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::receiver::{Mode, Receiver};
use support::{LoadGen, RampartServer, free_addr, run_cli_timeout, sample_app_service};

const SERVICE: &str = "shop";

/// A canary the judge never concludes on (threshold judge, an unreachable
/// `min_requests`), so that it is the incident rule that ends the rollout.
fn shop(listen: SocketAddr, incidents: &str) -> String {
    let service = sample_app_service(
        SERVICE,
        listen,
        2,
        r#"[service.strategy]
steps = [{ weight = 50, hold = "10m" }]
scale_down_delay = "2s"
progress_deadline = "10m"

[service.analysis]
judge = "threshold"
max_error_rate = 90.0
min_requests = 100000000

[service.router]
drain_grace = "2s"
"#,
    );
    format!("{service}\n{incidents}")
}

fn wait_for(
    server: &RampartServer,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<Value>,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}\n--- log ---\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn incidents(server: &RampartServer, query: &str) -> Vec<Value> {
    server
        .get_json(&format!("/api/v1/incidents{query}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn timeline_actions(detail: &Value) -> Vec<Value> {
    detail["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "action")
        .map(|e| e["details"].clone())
        .collect()
}

#[test]
fn ten_percent_errors_fire_the_rule_roll_back_shed_load_and_resolve_when_errors_stop() {
    let listen = free_addr();
    let slack = Receiver::start(Mode::Answer(200));
    let pagerduty = Receiver::start(Mode::Answer(202));
    let rules = format!(
        r#"
[[incident_rule]]
name = "high_error_rate"
severity = "critical"
when = "service.error_rate > 5% for 2s"
actions = ["rollback", "shed_load"]
notify = ["oncall", "pagerduty"]
resolve_after = "3s"

[[incident_action]]
name = "shed_load"
kind = "shed_load"
lift_every = "1s"

[[notifier]]
name = "oncall"
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
    let server = RampartServer::start_serving(&shop(listen, &rules));
    let load = LoadGen::start(format!("http://{listen}/version"), 100);
    // Half the traffic to a version failing 20 %: the service fails 10 %.
    let id = server.deploy(SERVICE, "v2", json!({ "SAMPLE_APP_ERROR_RATE": "0.2" }));

    let detail = server.wait_deployment(&id, Duration::from_secs(90), "rolled back", |d| {
        d["summary"]["state"] == "rolled_back"
    });
    let history = detail["record"]["rollout"]["history"].to_string();
    assert!(
        history.contains("incident"),
        "the incident rolled it back: {history}"
    );

    let open = incidents(&server, "?service=shop&severity=critical");
    assert_eq!(
        open.len(),
        1,
        "one incident, however long the errors lasted: {open:?}"
    );
    let incident_id = open[0]["id"].as_str().expect("id").to_string();
    assert_eq!(open[0]["rule"], "high_error_rate");
    assert!(
        open[0]["title"]
            .as_str()
            .unwrap_or_default()
            .contains("service.error_rate"),
        "{}",
        open[0]
    );

    // Both actions ran, each with its result and timing.
    let detail = wait_for(
        &server,
        "both actions recorded",
        Duration::from_secs(30),
        || {
            let d = server.get_json(&format!("/api/v1/incidents/{incident_id}"));
            (timeline_actions(&d).len() >= 2).then_some(d)
        },
    );
    let actions = timeline_actions(&detail);
    assert_eq!(actions[0]["action"], "rollback", "{actions:?}");
    assert_eq!(actions[0]["result"], "done", "{actions:?}");
    assert!(actions[0]["took_ms"].as_f64().is_some(), "{actions:?}");
    assert_eq!(actions[1]["action"], "shed_load", "{actions:?}");
    assert_eq!(actions[1]["result"], "done", "{actions:?}");
    let limit = &actions[1]["effect"]["limits"][0]["max_concurrency"];
    assert!(
        limit.as_u64().is_some_and(|l| l >= 1),
        "a limit from what the service handled well: {actions:?}"
    );
    // The notifier named by the rule got the message (queued in the same transaction).
    let notified = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .any(|e| {
            e["kind"] == "notification"
                && e["details"]["notifier"] == "oncall"
                && e["details"]["message"]["topic"] == "incident_opened"
        });
    assert!(notified, "{}", detail["timeline"]);

    // The errors stopped with the rollback: the incident resolves by itself.
    let resolved = wait_for(
        &server,
        "the incident resolved",
        Duration::from_secs(60),
        || {
            let d = server.get_json(&format!("/api/v1/incidents/{incident_id}"));
            (d["status"] == "resolved").then_some(d)
        },
    );
    assert!(resolved["closed_at"].is_string(), "{resolved}");

    // The receivers got them: Slack a Block Kit message naming the rule, PagerDuty a
    // trigger and then a resolve of the same alert (dedup_key = the incident).
    slack.wait_until("the incident on Slack", |got| {
        got.iter().any(|(_, body)| {
            body["blocks"].is_array()
                && body["text"].is_string()
                && body["blocks"].to_string().contains("high_error_rate")
        })
    });
    pagerduty.wait_until("a trigger and a resolve on PagerDuty", |got| {
        let actions: Vec<&str> = got
            .iter()
            .filter(|(_, e)| e["dedup_key"] == format!("incident-{incident_id}").as_str())
            .filter_map(|(_, e)| e["event_action"].as_str())
            .collect();
        actions.first() == Some(&"trigger") && actions.contains(&"resolve")
    });
    let trigger = &pagerduty.delivered()[0].1;
    assert_eq!(trigger["payload"]["severity"], "critical", "{trigger}");
    assert_eq!(trigger["payload"]["source"], SERVICE, "{trigger}");
    // The shed limit is lifted in steps, back to none.
    wait_for(
        &server,
        "the concurrency limit lifted",
        Duration::from_secs(30),
        || {
            let traffic = server.get_json(&format!("/api/v1/services/{SERVICE}/traffic"));
            traffic["max_concurrency"].is_null().then_some(traffic)
        },
    );
    let report = load.stop();
    assert!(report.ok > 0, "{report:?}");

    // Audited, and visible on the CLI.
    for action in ["incident.open", "incident.action", "incident.resolve"] {
        assert!(
            !server.audit_actions(action).is_empty(),
            "no {action} in the audit log"
        );
    }
    let out = run_cli_timeout(
        &[
            "incidents",
            "--api",
            &server.api,
            "--token",
            &server.admin_token,
        ],
        server.dir.path(),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&incident_id) && stdout.contains("resolved"),
        "{stdout}"
    );
    let out = run_cli_timeout(
        &[
            "incident",
            "show",
            &incident_id,
            "--api",
            &server.api,
            "--token",
            &server.admin_token,
        ],
        server.dir.path(),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rollback") && stdout.contains("shed_load") && stdout.contains("resolved"),
        "{stdout}"
    );
}

#[test]
fn an_unacknowledged_incident_escalates_freezes_deploys_and_resolves_by_hand() {
    let listen = free_addr();
    let rules = r#"
[[incident_rule]]
name = "busy"
severity = "medium"
when = "service.request_rate > 5/s"
actions = ["freeze_deploys"]
escalation = "pager"
resolve_after = "10m"

[[escalation]]
name = "pager"
steps = [{ after = "1s", notify = ["oncall"] }, { after = "2s", notify = ["oncall"] }]

[[notifier]]
name = "oncall"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
"#;
    let server = RampartServer::start_serving(&shop(listen, rules));
    let load = LoadGen::start(format!("http://{listen}/version"), 50);
    let incident = wait_for(
        &server,
        "the incident escalated",
        Duration::from_secs(60),
        || {
            let list = incidents(&server, "?state=open");
            list.into_iter()
                .find(|i| i["rule"] == "busy" && i["escalations"] == 2)
        },
    );
    let id = incident["id"].as_str().expect("id").to_string();

    // Deploys are frozen while it is open; an operator is refused, with the way out.
    wait_for(&server, "the freeze", Duration::from_secs(30), || {
        let d = server.get_json(&format!("/api/v1/incidents/{id}"));
        timeline_actions(&d)
            .iter()
            .any(|a| a["action"] == "freeze_deploys" && a["result"] == "done")
            .then_some(d)
    });
    let (status, body) = server.post_json(
        &format!("/api/v1/services/{SERVICE}/deployments"),
        &json!({ "version": "v2" }),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or_default().contains(&id),
        "{body}"
    );

    // Bad filters are refused with the allowed values; unknown ids are 404.
    let response = support::client()
        .get(format!("{}/api/v1/incidents?state=closed", server.api))
        .bearer_auth(&server.admin_token)
        .send()
        .expect("GET");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        server
            .post_json("/api/v1/incidents/nope/acknowledge", &json!({}))
            .0,
        404
    );

    let (status, acked) = server.post_json(
        &format!("/api/v1/incidents/{id}/acknowledge"),
        &json!({ "reason": "looking" }),
    );
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    let (status, resolved) = server.post_json(
        &format!("/api/v1/incidents/{id}/resolve"),
        &json!({ "reason": "load test" }),
    );
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    // A resolved incident is final.
    assert_eq!(
        server
            .post_json(&format!("/api/v1/incidents/{id}/acknowledge"), &json!({}))
            .0,
        409
    );

    // The freeze is lifted with it.
    wait_for(
        &server,
        "deploys allowed again",
        Duration::from_secs(30),
        || {
            let (status, body) = server.post_json(
                &format!("/api/v1/services/{SERVICE}/deployments"),
                &json!({ "version": "v2" }),
            );
            (status == 201).then_some(body)
        },
    );
    load.stop();
    let detail = server.get_json(&format!("/api/v1/incidents/{id}"));
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in ["opened", "escalated", "acknowledged", "resolved", "action"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // Both policy steps told `oncall`, through the outbox: two escalation messages
    // queued, with the incident's key.
    let queued = server.get_json(&format!("/api/v1/notifications?key=incident-{id}&limit=50"));
    let escalated = queued
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|n| n["topic"] == "incident_escalated")
                .count()
        })
        .unwrap_or_default();
    assert_eq!(escalated, 2, "{queued}");
}

/// The real Alertmanager (Debian's `prometheus-alertmanager`), started here, with
/// alerts posted through its API: it delivers them to rampart's receiver with the
/// bearer token its `http_config.authorization` carries. In CI
/// (RAMPART_REQUIRE_ALERTMANAGER) the test cannot be skipped.
#[test]
fn alertmanager_webhook_opens_and_resolves_an_incident() {
    let Some(program) = ["prometheus-alertmanager", "alertmanager"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        assert!(
            std::env::var_os("RAMPART_REQUIRE_ALERTMANAGER").is_none(),
            "Alertmanager is required but is not installed (apt-get install prometheus-alertmanager)"
        );
        eprintln!("alertmanager not installed; skipping");
        return;
    };
    let listen = free_addr();
    let server = RampartServer::start_serving(&shop(listen, ""));
    // Alertmanager gets an operator token of its own.
    let (status, token) = server.post_json(
        "/api/v1/tokens",
        &json!({ "name": "alertmanager", "role": "operator" }),
    );
    assert_eq!(status, 201, "{token}");
    let secret = token["secret"].as_str().expect("secret");

    let am_addr = free_addr();
    let dir = server.dir.path();
    let config = format!(
        r#"route:
  receiver: rampart
  group_by: ['alertname', 'service']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: rampart
    webhook_configs:
      - url: {api}/api/v1/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {secret}
"#,
        api = server.api
    );
    std::fs::write(dir.join("alertmanager.yml"), config).expect("write alertmanager config");
    let log = std::fs::File::create(dir.join("alertmanager.log")).expect("log");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = std::process::Command::new(program)
        .arg(format!(
            "--config.file={}",
            dir.join("alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address={am_addr}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::from(log.try_clone().expect("clone")))
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .expect("spawn alertmanager");
    let _alertmanager = Kill(child);
    let am = format!("http://{am_addr}");
    let am_log = || std::fs::read_to_string(dir.join("alertmanager.log")).unwrap_or_default();
    wait_for(
        &server,
        "Alertmanager ready",
        Duration::from_secs(30),
        || {
            support::client()
                .get(format!("{am}/-/ready"))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| Value::Null)
        },
    );

    let post_alert = |ends_at: Option<String>| {
        let mut alert = json!({
            "labels": { "alertname": "DiskFilling", "service": SERVICE, "severity": "warning" },
            "annotations": { "summary": "disk 93% full" },
        });
        if let Some(ends_at) = ends_at {
            alert["endsAt"] = json!(ends_at);
        }
        let response = support::client()
            .post(format!("{am}/api/v2/alerts"))
            .json(&json!([alert]))
            .send()
            .expect("post to alertmanager");
        assert!(
            response.status().is_success(),
            "{:?}\n{}",
            response.status(),
            am_log()
        );
    };
    post_alert(None);
    let incident = wait_for(
        &server,
        "the alert's incident",
        Duration::from_secs(30),
        || {
            incidents(&server, "?service=shop")
                .into_iter()
                .find(|i| i["rule"] == "DiskFilling")
        },
    );
    assert_eq!(
        incident["severity"], "medium",
        "warning maps to medium: {incident}"
    );
    assert_eq!(incident["status"], "open");
    assert!(
        incident["title"]
            .as_str()
            .unwrap_or_default()
            .contains("disk 93% full"),
        "{incident}"
    );
    let opened_by = server.audit_actions("incident.open");
    assert!(
        opened_by.iter().any(|e| e["actor"] == "alertmanager"),
        "{opened_by:?}"
    );

    // Ending the alert at its source resolves the incident.
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    post_alert(Some(
        past.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ));
    let id = incident["id"].as_str().expect("id").to_string();
    wait_for(
        &server,
        "the incident resolved by Alertmanager",
        Duration::from_secs(60),
        || {
            let d = server.get_json(&format!("/api/v1/incidents/{id}"));
            (d["status"] == "resolved").then_some(d)
        },
    );

    // A payload of another version, and a request without a token, are refused.
    assert_eq!(
        server
            .post_json(
                "/api/v1/alerts/alertmanager",
                &json!({ "version": "3", "alerts": [] })
            )
            .0,
        400
    );
    let unauthenticated = support::client()
        .post(format!("{}/api/v1/alerts/alertmanager", server.api))
        .json(&json!({}))
        .send()
        .expect("post");
    assert_eq!(unauthenticated.status().as_u16(), 401);
}

#[test]
fn a_generic_webhook_alert_opens_repeats_and_resolves() {
    let server = RampartServer::start_serving(&shop(free_addr(), ""));
    let fire = json!({ "name": "queue_backlog", "service": SERVICE, "severity": "high", "summary": "12k messages waiting" });
    let (status, first) = server.post_json("/api/v1/alerts/webhook", &fire);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["opened"].as_array().map(Vec::len), Some(1), "{first}");
    let (_, again) = server.post_json("/api/v1/alerts/webhook", &fire);
    assert_eq!(
        again["repeated"], first["opened"],
        "the same alert again is a repeat: {again}"
    );
    let id = first["opened"][0].as_str().expect("id");
    assert_eq!(
        server.get_json(&format!("/api/v1/incidents/{id}"))["repeats"],
        1
    );
    let (_, resolved) = server.post_json(
        "/api/v1/alerts/webhook",
        &json!({ "name": "queue_backlog", "service": SERVICE, "status": "resolved" }),
    );
    assert_eq!(resolved["resolved"][0], id, "{resolved}");
    let (status, bad) = server.post_json(
        "/api/v1/alerts/webhook",
        &json!({ "name": "x", "service": "nope" }),
    );
    assert_eq!(status, 400, "{bad}");
}

#[test]
fn scale_up_adds_instances_through_the_owner_of_instance_counts() {
    let listen = free_addr();
    let rules = r#"
[[incident_rule]]
name = "busy"
severity = "medium"
when = "service.request_rate > 5/s"
actions = ["scale_up"]
resolve_after = "10m"

[[incident_action]]
name = "scale_up"
kind = "scale_up"
by = 1
max = 3
"#;
    let server = RampartServer::start_serving(&shop(listen, rules));
    let load = LoadGen::start(format!("http://{listen}/version"), 50);
    let detail = wait_for(
        &server,
        "the scale-up action done",
        Duration::from_secs(60),
        || {
            let open = incidents(&server, "?state=open");
            let id = open.iter().find(|i| i["rule"] == "busy")?["id"]
                .as_str()?
                .to_string();
            let d = server.get_json(&format!("/api/v1/incidents/{id}"));
            timeline_actions(&d)
                .iter()
                .any(|a| a["kind"] == "scale_up" && a["result"] == "done")
                .then_some(d)
        },
    );
    let scaling = wait_for(
        &server,
        "a third instance serving",
        Duration::from_secs(60),
        || {
            let s = server.get_json(&format!("/api/v1/services/{SERVICE}/scaling"));
            (s["stable"]["ready"] == 3).then_some(s)
        },
    );
    assert_eq!(scaling["stable"]["instances"], 3, "{scaling}");
    let decision = &scaling["decisions"][0];
    assert!(
        decision["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("incident:")),
        "the resize names the incident: {decision}\n{}",
        detail["timeline"]
    );
    let report = load.stop();
    assert_eq!(report.failed, 0, "scaling up fails no request: {report:?}");
}

#[test]
fn a_burst_of_failed_logins_locks_the_api_down_until_an_admin_resolves_it() {
    let listen = free_addr();
    // The default rule, as shipped: security.failed_auth > 100/min → lock_down.
    let server = RampartServer::start_serving(&shop(listen, ""));
    let (status, created) = server.post_json(
        "/api/v1/tokens",
        &json!({ "name": "new-operator", "role": "operator" }),
    );
    assert_eq!(status, 201, "{created}");
    let fresh = created["secret"].as_str().expect("secret").to_string();

    // 150 wrong tokens, each from its own loopback address so the per-address
    // limiter answers 401 (counted) rather than 429.
    for i in 0..150u32 {
        let http = support::client_from([127, 0, 3, (i % 250) as u8 + 1]);
        let status = http
            .get(format!("{}/api/v1/services", server.api))
            .bearer_auth(format!("rpt_guess{i}"))
            .send()
            .expect("request")
            .status()
            .as_u16();
        assert!(status == 401 || status == 429, "{status}");
    }
    let incident = wait_for(
        &server,
        "security_breach_detected opened",
        Duration::from_secs(30),
        || {
            incidents(&server, "?state=open")
                .into_iter()
                .find(|i| i["rule"] == "security_breach_detected")
        },
    );
    assert_eq!(incident["severity"], "critical", "{incident}");
    let id = incident["id"].as_str().expect("id").to_string();
    wait_for(
        &server,
        "the lock-down done",
        Duration::from_secs(30),
        || {
            let d = server.get_json(&format!("/api/v1/incidents/{id}"));
            timeline_actions(&d)
                .iter()
                .any(|a| a["kind"] == "lock_down" && a["result"] == "done")
                .then_some(d)
        },
    );
    // The token made minutes ago is revoked; the admin still acts, and resolving
    // the incident lifts the lock-down.
    let refused = support::client()
        .get(format!("{}/api/v1/services", server.api))
        .bearer_auth(&fresh)
        .send()
        .expect("request")
        .status()
        .as_u16();
    assert_eq!(refused, 401, "a token created just before is revoked");
    let (status, resolved) = server.post_json(
        &format!("/api/v1/incidents/{id}/resolve"),
        &json!({ "reason": "pen test" }),
    );
    assert_eq!(status, 200, "{resolved}");
    let (status, body) = server.post_json(
        "/api/v1/tokens",
        &json!({ "name": "after-lockdown", "role": "operator" }),
    );
    assert_eq!(status, 201, "tokens can be made again: {body}");
}

/// Failed authentications fire a security rule: `lock_down` turns the API read-only
/// below admin and revokes the recent operator token, the `run` command pages
/// (writing the incident id), a failing `run` is retried then escalates the
/// incident; resolving it lifts the lock-down.
#[test]
fn failed_authentications_lock_the_api_down_run_commands_and_escalate_a_failing_action() {
    let rules = r#"
[[incident_rule]]
name = "security_breach_detected"
when = "security.failed_auth > 100/min"
enabled = false

[[incident_rule]]
name = "intrusion"
severity = "critical"
when = "security.failed_auth > 10/min"
actions = ["lock_down", "page", "broken"]
resolve_after = "10m"

[[incident_action]]
name = "page"
kind = "run"
command = "echo \"$RAMPART_INCIDENT_ID $RAMPART_INCIDENT_RULE\" > paged.txt"
timeout = "10s"

[[incident_action]]
name = "broken"
kind = "run"
command = "echo no pager >&2; exit 3"
retries = 1
"#;
    let server = RampartServer::start_serving(&shop(free_addr(), rules));
    let (status, bot) = server.post_json(
        "/api/v1/tokens",
        &json!({ "name": "ci-bot", "role": "operator" }),
    );
    assert_eq!(status, 201, "{bot}");
    let bot = bot["secret"].as_str().expect("secret").to_string();

    // From another loopback address: the failed-auth limiter blocks the address
    // that guesses, and the test's own requests come from 127.0.0.1.
    let guesser = support::client_from([127, 0, 0, 2]);
    for _ in 0..25 {
        let _ = guesser
            .get(format!("{}/api/v1/services", server.api))
            .bearer_auth("rp_wrong")
            .send();
    }
    let client = support::client();
    let detail = wait_for(
        &server,
        "the intrusion incident with its actions",
        Duration::from_secs(60),
        || {
            let found = incidents(&server, "")
                .into_iter()
                .find(|i| i["rule"] == "intrusion")?;
            let d = server.get_json(&format!("/api/v1/incidents/{}", found["id"].as_str()?));
            (timeline_actions(&d).len() >= 3 && d["escalations"].as_u64() >= Some(1)).then_some(d)
        },
    );
    let id = detail["id"].as_str().expect("id").to_string();
    let actions = timeline_actions(&detail);
    assert_eq!(actions[0]["action"], "lock_down");
    assert_eq!(actions[0]["result"], "done", "{actions:?}");
    assert_eq!(
        actions[0]["effect"]["revoked_tokens"],
        json!(["ci-bot"]),
        "{actions:?}"
    );
    assert_eq!(actions[1]["result"], "done", "{actions:?}");
    assert_eq!(actions[2]["result"], "failed", "{actions:?}");
    assert_eq!(actions[2]["attempts"], 2, "one retry: {actions:?}");
    let paged = std::fs::read_to_string(server.dir.path().join("paged.txt"))
        .expect("the run command wrote paged.txt");
    assert_eq!(paged.trim(), format!("{id} intrusion"));

    // The recent operator token is revoked; a newer one may read but not change.
    let revoked = client
        .get(format!("{}/api/v1/services", server.api))
        .bearer_auth(&bot)
        .send()
        .expect("GET");
    assert_eq!(revoked.status().as_u16(), 401);
    let (_, late) = server.post_json(
        "/api/v1/tokens",
        &json!({ "name": "late", "role": "operator" }),
    );
    let late = late["secret"].as_str().expect("secret").to_string();
    let read = client
        .get(format!("{}/api/v1/incidents", server.api))
        .bearer_auth(&late)
        .send()
        .expect("GET");
    assert_eq!(read.status().as_u16(), 200);
    let change = client
        .post(format!("{}/api/v1/incidents/{id}/acknowledge", server.api))
        .bearer_auth(&late)
        .send()
        .expect("POST");
    assert_eq!(change.status().as_u16(), 403);
    assert!(change.text().unwrap_or_default().contains("lock-down"));

    // An admin resolves it: the API is read-write again.
    let (status, resolved) = server.post_json(
        &format!("/api/v1/incidents/{id}/resolve"),
        &json!({ "reason": "rotated credentials" }),
    );
    assert_eq!(status, 200, "{resolved}");
    wait_for(
        &server,
        "the lock-down lifted",
        Duration::from_secs(30),
        || {
            let answer = client
                .post(format!("{}/api/v1/incidents/{id}/acknowledge", server.api))
                .bearer_auth(&late)
                .send()
                .ok()?;
            // 409: the incident is resolved; no longer 403.
            (answer.status().as_u16() == 409).then_some(Value::Null)
        },
    );
    assert!(
        server
            .audit_actions("token.revoke")
            .iter()
            .any(|e| e["actor"] == "rampart")
    );
}
