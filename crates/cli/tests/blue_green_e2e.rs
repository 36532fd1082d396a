//! Blue-green end to end: the real binary, its own sample-app as the service's
//! instances, real HTTP load through the router and the preview listener.
//!
//! Every wait is a poll with a bounded deadline; nothing asserts on elapsed time.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    LATENCY_SLACK, LoadGen, RampartServer, assert_serves, free_addr, history, sample_app_service,
    version_at,
};

const SERVICE: &str = "shop";
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(120);

fn blue_green(listen: SocketAddr, preview: SocketAddr, strategy: &str) -> String {
    sample_app_service(
        SERVICE,
        listen,
        2,
        &format!(
            r#"[service.strategy]
kind = "blue_green"
preview_listen = "{preview}"
scale_down_delay = "2s"
progress_deadline = "60s"
{strategy}

[service.analysis]
judge = "sequential"
min_requests = 50
{LATENCY_SLACK}

[service.router]
drain_grace = "2s"
"#
        ),
    )
}

fn wait_for_version(url: &str, version: &str, server: &RampartServer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while version_at(url).as_deref() != Some(version) {
        assert!(
            Instant::now() < deadline,
            "{url} never served {version}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_preview_serves_the_new_version_first_then_one_switch_moves_all_traffic_without_a_failure() {
    let (listen, preview) = (free_addr(), free_addr());
    let server = RampartServer::start_serving(&blue_green(
        listen,
        preview,
        "auto_promotion_enabled = false",
    ));
    let main_url = format!("http://{listen}/version");
    let preview_url = format!("http://{preview}/version");
    // Before any rollout the preview listener serves the stable version.
    assert_serves(&preview_url, "v1", "the idle preview serves stable");
    let load = LoadGen::start(main_url.clone(), 100);

    let id = server.deploy(SERVICE, "v2", json!({}));
    server.wait_state(&id, "awaiting_promotion", ROLLOUT_TIMEOUT);
    wait_for_version(&preview_url, "v2", &server);
    assert_serves(&preview_url, "v2", "the preview serves the new version");
    assert_serves(
        &main_url,
        "v1",
        "users stay on the old version until the switch",
    );
    let before = load.report();
    assert_eq!(
        before.versions.get("v2"),
        None,
        "no user request reached v2 before the switch: {before:?}"
    );

    let (status, body) = server.post_json(
        &format!("/api/v1/services/{SERVICE}/promote"),
        &json!({ "reason": "preview looks good" }),
    );
    assert!(status < 300, "promote: {status} {body}");
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    // Some load after the switch too.
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
    assert_eq!(report.failed, 0, "the switch failed no request: {report:?}");
    assert!(
        report.versions.get("v1").copied().unwrap_or(0) > 0
            && report.versions.get("v2").copied().unwrap_or(0) > 0,
        "{report:?}"
    );
    assert_serves(&main_url, "v2", "all traffic is on v2 after the switch");
    // The traffic moved in one swap: no step, no canary weight, ever.
    let phases: Vec<String> = detail["record"]["rollout"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|t| t["to"]["state"].as_str().unwrap_or("?").to_string())
        .collect();
    assert!(!phases.iter().any(|p| p == "progressing"), "{phases:?}");
    assert!(
        phases.iter().any(|p| p == "awaiting_promotion"),
        "{phases:?}"
    );
    let status = server.get_json(&format!("/api/v1/services/{SERVICE}/status"));
    assert_eq!(status["stable_version"], "v2", "{status}");
}

#[test]
fn a_failing_post_promotion_analysis_switches_back_to_the_old_version() {
    let (listen, preview) = (free_addr(), free_addr());
    let server = RampartServer::start_serving(&blue_green(
        listen,
        preview,
        "post_promotion_analysis = \"30s\"",
    ));
    let main_url = format!("http://{listen}/version");
    let load = LoadGen::start(main_url.clone(), 100);
    // A baseline of the old version's traffic before the switch.
    std::thread::sleep(Duration::from_secs(5));

    let id = server.deploy(SERVICE, "v2", json!({ "SAMPLE_APP_ERROR_RATE": "0.3" }));
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();
    assert_eq!(
        detail["summary"]["state"],
        "rolled_back",
        "{}",
        history(&detail)
    );
    let history_json = detail["record"]["rollout"]["history"]
        .as_array()
        .expect("history")
        .clone();
    let switch_back = history_json
        .iter()
        .find(|t| t["to"]["state"] == "switching_back")
        .unwrap_or_else(|| panic!("no switch back:\n{}", history(&detail)));
    assert_eq!(
        switch_back["from"]["state"], "post_promotion",
        "{switch_back}"
    );
    assert_eq!(switch_back["actor"]["kind"], "system", "{switch_back}");
    assert!(
        switch_back["reason"]
            .as_str()
            .unwrap_or("")
            .contains("post-promotion analysis failed"),
        "{switch_back}"
    );
    assert_serves(&main_url, "v1", "the old version serves again");
    let status = server.get_json(&format!("/api/v1/services/{SERVICE}/status"));
    assert_eq!(status["stable_version"], "v1", "{status}");
    // Users did get v2's injected errors between the switch and the switch back, and
    // nothing else failed.
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.contains("injected failure")),
        "{report:?}"
    );
    let incidents: Vec<_> = server
        .audit_actions("incident.open")
        .into_iter()
        .filter(|e| e["details"]["deployment_id"] == id.as_str())
        .collect();
    assert_eq!(incidents.len(), 1, "one incident for the switch back");
}

#[test]
fn a_preview_failing_its_pre_promotion_analysis_is_rolled_back_before_any_user_saw_it() {
    let (listen, preview) = (free_addr(), free_addr());
    let server = RampartServer::start_serving(&blue_green(
        listen,
        preview,
        "pre_promotion_analysis = \"30s\"",
    ));
    let users = LoadGen::start(format!("http://{listen}/version"), 100);
    // Testers (or a smoke-test job) on the preview listener.
    let testers = LoadGen::start(format!("http://{preview}/version"), 100);

    let id = server.deploy(SERVICE, "v2", json!({ "SAMPLE_APP_ERROR_RATE": "0.3" }));
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    let users = users.stop();
    let testers = testers.stop();
    assert_eq!(
        detail["summary"]["state"],
        "rolled_back",
        "{}",
        history(&detail)
    );
    let rollback = detail["record"]["rollout"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .find(|t| t["to"]["state"] == "rolling_back")
        .cloned()
        .unwrap_or_else(|| panic!("no rollback:\n{}", history(&detail)));
    assert_eq!(rollback["from"]["state"], "previewing", "{rollback}");
    assert!(
        rollback["reason"]
            .as_str()
            .unwrap_or("")
            .contains("pre-promotion analysis failed"),
        "{rollback}"
    );
    assert_eq!(users.failed, 0, "users never reached v2: {users:?}");
    assert_eq!(users.versions.get("v2"), None, "{users:?}");
    assert!(
        testers.failed > 0,
        "the preview served v2's errors: {testers:?}"
    );
    // The preview listener serves the stable version again.
    assert_serves(
        &format!("http://{preview}/version"),
        "v1",
        "the preview is back on stable",
    );
}
