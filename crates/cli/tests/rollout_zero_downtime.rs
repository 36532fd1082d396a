//! Zero downtime, end to end: a client sends real requests at a steady rate through
//! the router for the whole of a rollout — promotion and the old version's scale-down,
//! an abort, a rollback mid-rollout, an emergency rollback after promotion — and not
//! one of them may fail.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    LoadGen, LoadReport, RampartServer, free_addr, history, short_rollout_service, version_at,
};

const SERVICE: &str = "shop";
const RPS: u32 = 100;
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);
/// A meaningful sample: a few seconds of load at `RPS`.
const MIN_REQUESTS: u64 = 300;

fn shop(listen: SocketAddr, first_hold: &str) -> String {
    short_rollout_service(SERVICE, listen, [first_hold, "2s"], "60s")
}

/// Keeps the load going until `more` further requests have been answered, so the
/// moments right after a change are covered too.
fn let_more_requests_through(load: &LoadGen, more: u64) {
    let target = load.report().sent + more;
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.report().ok + load.report().failed < target {
        assert!(
            Instant::now() < deadline,
            "the load stalled: {:?}",
            load.report()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Until the canary has answered `n` requests of the load.
fn wait_canary_traffic(load: &LoadGen, version: &str, n: u64) {
    let deadline = Instant::now() + ROLLOUT_TIMEOUT;
    while load.report().versions.get(version).copied().unwrap_or(0) < n {
        assert!(
            Instant::now() < deadline,
            "{version} got no traffic: {:?}",
            load.report()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_no_failures(report: &LoadReport, server: &RampartServer) {
    assert!(
        report.sent >= MIN_REQUESTS,
        "too few requests to mean anything: {report:?}"
    );
    assert_eq!(report.sent, report.ok + report.failed, "{report:?}");
    assert_eq!(
        report.failed,
        0,
        "users saw failures: {report:?}\n--- rampart log ---\n{}",
        server.log()
    );
}

fn operate(server: &RampartServer, action: &str) {
    let (code, body) = server.post_json(
        &format!("/api/v1/services/{SERVICE}/{action}"),
        &json!({ "reason": "end-to-end test" }),
    );
    assert_eq!(code, 200, "{action}: {body}");
}

fn stable_version(server: &RampartServer) -> String {
    server.get_json(&format!("/api/v1/services/{SERVICE}/status"))["stable_version"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn versions_stopped(server: &RampartServer) -> Vec<String> {
    server
        .audit_actions("version.stop")
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .filter_map(|s| s.rsplit('/').next().map(str::to_string))
        .collect()
}

fn wait_version_stopped(server: &RampartServer, version: &str) {
    let deadline = Instant::now() + ROLLOUT_TIMEOUT;
    while !versions_stopped(server).iter().any(|v| v == version) {
        assert!(
            Instant::now() < deadline,
            "{version} was never stopped\n--- rampart log ---\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_promoted_rollout_and_the_old_versions_scale_down_fail_no_request() {
    let listen = free_addr();
    let server = RampartServer::start_serving(&shop(listen, "2s"));
    let load = LoadGen::start(format!("http://{listen}/version"), RPS);
    let_more_requests_through(&load, 100);

    let id = server.deploy(SERVICE, "v2", json!({}));
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
    // v1 keeps serving until the scale-down delay ends; then it drains and stops.
    wait_version_stopped(&server, "v1");
    let_more_requests_through(&load, 100);
    let report = load.stop();

    assert_no_failures(&report, &server);
    assert!(
        report.versions.get("v1").copied().unwrap_or(0) > 0
            && report.versions.get("v2").copied().unwrap_or(0) > 0,
        "{report:?}"
    );
    assert_eq!(stable_version(&server), "v2");
    assert_eq!(
        version_at(&format!("http://{listen}/version")).as_deref(),
        Some("v2")
    );
}

#[test]
fn an_abort_and_a_rollback_mid_rollout_fail_no_request() {
    // A long first hold: the operator acts while the canary takes its share.
    let listen = free_addr();
    let server = RampartServer::start_serving(&shop(listen, "60s"));
    let load = LoadGen::start(format!("http://{listen}/version"), RPS);
    let_more_requests_through(&load, 100);

    let first = server.deploy(SERVICE, "v2", json!({}));
    server.wait_state(&first, "progressing", ROLLOUT_TIMEOUT);
    wait_canary_traffic(&load, "v2", 30);
    operate(&server, "abort");
    let detail = server.wait_terminal(&first, ROLLOUT_TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "aborted",
        "{}",
        history(&detail)
    );
    let_more_requests_through(&load, 100);

    let second = server.deploy(SERVICE, "v3", json!({}));
    server.wait_state(&second, "progressing", ROLLOUT_TIMEOUT);
    wait_canary_traffic(&load, "v3", 30);
    operate(&server, "rollback");
    let detail = server.wait_terminal(&second, ROLLOUT_TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "rolled_back",
        "{}",
        history(&detail)
    );
    let_more_requests_through(&load, 100);
    let report = load.stop();

    assert_no_failures(&report, &server);
    assert_eq!(stable_version(&server), "v1");
    assert_eq!(
        version_at(&format!("http://{listen}/version")).as_deref(),
        Some("v1")
    );
    // Neither canary opened an incident: people stopped them, not rampart.
    assert!(server.audit_actions("incident.open").is_empty());
}

#[test]
fn an_emergency_rollback_after_promotion_fails_no_request() {
    let listen = free_addr();
    let server = RampartServer::start_serving(&shop(listen, "2s"));
    let load = LoadGen::start(format!("http://{listen}/version"), RPS);
    let_more_requests_through(&load, 100);

    let id = server.deploy(SERVICE, "v2", json!({}));
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
    wait_version_stopped(&server, "v1");
    let_more_requests_through(&load, 100);

    // v1 no longer runs: rampart starts it again, switches, then drains v2.
    operate(&server, "rollback");
    assert_eq!(stable_version(&server), "v1");
    wait_version_stopped(&server, "v2");
    let_more_requests_through(&load, 100);
    let report = load.stop();

    assert_no_failures(&report, &server);
    assert_eq!(
        version_at(&format!("http://{listen}/version")).as_deref(),
        Some("v1")
    );
}
