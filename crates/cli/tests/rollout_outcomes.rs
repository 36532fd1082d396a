//! How rollouts end, end to end: the real binary runs the API, the router and its
//! own `sample-app` as the service's instances; real HTTP load goes through the
//! router while the engine judges the canary.
//!
//! Every wait is a poll with a bounded deadline; nothing asserts on elapsed time.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use support::{
    LoadGen, RampartServer, assert_serves, free_addr, history, run_cli_timeout,
    short_rollout_service, version_at,
};

const SERVICE: &str = "shop";
/// Requests per second of the background load.
const RPS: u32 = 100;
/// Far more than any rollout here needs; only bounds a hang.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);

/// Short holds and the sequential judge (the default). The judge passes a step on
/// "no evidence of a regression so far", so the holds and `min_requests` must let
/// enough canary traffic through to convict a bad one: at 100 req/s about 250
/// canary requests reach the canary before promotion, where a 10 % error rate
/// crosses the rollback bar after well under 100 (with `min_requests = 10` and 1 s
/// holds, a 10 % canary is promoted before the evidence is in).
fn shop(listen: SocketAddr, progress_deadline: &str) -> String {
    short_rollout_service(SERVICE, listen, ["2s", "3s"], progress_deadline)
}

fn start_shop(progress_deadline: &str) -> (RampartServer, SocketAddr) {
    let listen = free_addr();
    let server = RampartServer::start_serving(&shop(listen, progress_deadline));
    (server, listen)
}

fn cli_deploy_wait(server: &RampartServer, version: &str, env: &[&str]) -> std::process::Output {
    let mut args = vec![
        "deploy",
        SERVICE,
        "--version",
        version,
        "--wait",
        "--api",
        &server.api,
        "--token",
        &server.admin_token,
    ];
    for pair in env {
        args.extend(["--env", pair]);
    }
    run_cli_timeout(&args, server.dir.path(), ROLLOUT_TIMEOUT)
}

fn latest_deployment_id(server: &RampartServer) -> String {
    let list = server.get_json(&format!("/api/v1/services/{SERVICE}/deployments?limit=1"));
    list[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no deployment in {list}"))
        .to_string()
}

fn state(detail: &Value) -> &str {
    detail["summary"]["state"].as_str().unwrap_or("?")
}

fn incidents_for(server: &RampartServer, deployment_id: &str) -> Vec<Value> {
    server
        .audit_actions("incident.open")
        .into_iter()
        .filter(|e| e["details"]["deployment_id"] == deployment_id)
        .collect()
}

#[test]
fn healthy_canary_is_promoted_and_deploy_wait_exits_0() {
    let (server, listen) = start_shop("30s");
    assert_eq!(
        version_at(&format!("http://{listen}/version")).as_deref(),
        Some("v1"),
        "{}",
        server.log()
    );
    let load = LoadGen::start(format!("http://{listen}/version"), RPS);

    let out = cli_deploy_wait(&server, "v2", &[]);
    let report = load.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = latest_deployment_id(&server);
    let detail = server.deployment(&id);
    assert_eq!(
        out.status.code(),
        Some(0),
        "deploy --wait of a healthy version exits 0\nstdout:\n{stdout}\nstderr:\n{stderr}\nhistory:\n{}",
        history(&detail)
    );
    assert_eq!(state(&detail), "succeeded", "{}", history(&detail));
    assert!(
        stdout.contains("succeeded"),
        "the outcome is printed: {stdout}"
    );
    // It went through every step on the way.
    let steps_seen = detail["record"]["rollout"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|t| t["to"]["state"] == "progressing")
        .count();
    assert!(steps_seen >= 2, "both steps ran:\n{}", history(&detail));

    let status = server.get_json(&format!("/api/v1/services/{SERVICE}/status"));
    assert_eq!(status["stable_version"], "v2", "{status}");
    assert_eq!(status["rollback_target"], "v1", "{status}");
    assert!(status["active"].is_null(), "{status}");
    assert_serves(
        &format!("http://{listen}/version"),
        "v2",
        "the promoted version answers through the router",
    );
    // The canary was judged on real traffic: both versions answered the load.
    assert!(
        report.versions.get("v1").copied().unwrap_or(0) > 0
            && report.versions.get("v2").copied().unwrap_or(0) > 0,
        "{report:?}"
    );
    assert_eq!(
        report.failed, 0,
        "a healthy rollout fails no request: {report:?}"
    );
}

#[test]
fn canary_with_ten_percent_errors_is_rolled_back_with_an_incident_and_deploy_wait_exits_1() {
    let (server, listen) = start_shop("30s");
    let load = LoadGen::start(format!("http://{listen}/version"), RPS);

    let out = cli_deploy_wait(&server, "v2", &["SAMPLE_APP_ERROR_RATE=0.1"]);
    let report = load.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = latest_deployment_id(&server);
    let detail = server.deployment(&id);
    assert_eq!(
        out.status.code(),
        Some(1),
        "deploy --wait of a rolled back version exits 1\nstdout:\n{stdout}\nstderr:\n{stderr}\nhistory:\n{}",
        history(&detail)
    );
    assert_eq!(state(&detail), "rolled_back", "{}", history(&detail));
    assert!(stderr.contains("rolled_back"), "{stderr}");
    // Rampart decided on its own, from the analysis.
    let fails = detail["analysis"]["by_outcome"]["fail"]
        .as_u64()
        .unwrap_or(0);
    assert!(fails >= 1, "a failing verdict was recorded: {detail}");
    let rollback = detail["record"]["rollout"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .find(|t| t["to"]["state"] == "rolling_back")
        .cloned()
        .unwrap_or_else(|| panic!("no rollback transition:\n{}", history(&detail)));
    assert_eq!(rollback["actor"]["kind"], "system", "{rollback}");

    let incidents = incidents_for(&server, &id);
    assert_eq!(incidents.len(), 1, "one incident opened for {id}");
    assert_eq!(incidents[0]["actor"], "rampart", "{}", incidents[0]);

    let status = server.get_json(&format!("/api/v1/services/{SERVICE}/status"));
    assert_eq!(status["stable_version"], "v1", "{status}");
    assert!(status["traffic"]["canary"].is_null(), "{status}");
    assert_eq!(
        version_at(&format!("http://{listen}/version")).as_deref(),
        Some("v1")
    );
    // Only the canary's injected errors failed; stable never did.
    assert!(
        report.failed > 0,
        "the canary's errors reached users: {report:?}"
    );
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.contains("injected failure")),
        "{report:?}"
    );
}

#[test]
fn crashing_canary_is_rolled_back() {
    let (server, listen) = start_shop("30s");
    let load = LoadGen::start(format!("http://{listen}/version"), RPS);

    let id = server.deploy(SERVICE, "v2", json!({ "SAMPLE_APP_CRASH_AFTER": "20" }));
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    let report = load.stop();
    assert_eq!(state(&detail), "rolled_back", "{}", history(&detail));
    assert!(
        history(&detail).contains("crashed"),
        "the crash is the reason:\n{}",
        history(&detail)
    );
    assert_eq!(incidents_for(&server, &id).len(), 1);
    // What the backend did on its own is audited too.
    let crashes = server.audit_actions("instance.crashed");
    assert!(
        crashes
            .iter()
            .any(|e| e["details"]["version"] == "v2" && e["actor"] == "rampart"),
        "{crashes:?}"
    );

    let status = server.get_json(&format!("/api/v1/services/{SERVICE}/status"));
    assert_eq!(status["stable_version"], "v1", "{status}");
    assert!(status["traffic"]["canary"].is_null(), "{status}");
    assert_eq!(
        version_at(&format!("http://{listen}/version")).as_deref(),
        Some("v1")
    );
    assert!(report.ok > 0, "{report:?}");
}

#[test]
fn canary_without_traffic_stays_inconclusive_then_fails_by_the_progress_deadline() {
    let (server, listen) = start_shop("4s");

    // No load at all: the judge never has evidence.
    let id = server.deploy(SERVICE, "v2", json!({}));
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    assert_eq!(state(&detail), "rolled_back", "{}", history(&detail));
    let page = server.get_json(&format!("/api/v1/deployments/{id}/measurements?limit=1000"));
    let measurements = page["items"].as_array().expect("measurements");
    assert!(!measurements.is_empty(), "the judge looked: {detail}");
    assert_eq!(
        page["total"].as_u64(),
        Some(measurements.len() as u64),
        "{page}"
    );
    assert!(
        measurements.iter().all(|m| m["outcome"] == "inconclusive"),
        "without traffic every verdict is inconclusive: {measurements:?}"
    );
    // Steps are numbered from 1, as everywhere else.
    assert!(
        measurements.iter().all(|m| m["step"].as_u64() >= Some(1)),
        "{page}"
    );
    assert_eq!(
        detail["analysis"]["measurements"].as_u64(),
        page["total"].as_u64(),
        "{detail}"
    );
    assert!(
        history(&detail).contains("progress deadline"),
        "the deadline is named as the reason:\n{}",
        history(&detail)
    );
    let status = server.get_json(&format!("/api/v1/services/{SERVICE}/status"));
    assert_eq!(status["stable_version"], "v1", "{status}");
    assert_eq!(
        version_at(&format!("http://{listen}/version")).as_deref(),
        Some("v1")
    );
}

#[test]
fn a_second_deploy_while_one_is_in_flight_is_refused_with_409() {
    // No load and a long deadline: the first rollout stays in flight until aborted.
    let (server, _listen) = start_shop("5m");
    let first = server.deploy(SERVICE, "v2", json!({}));

    let (code, body) = server.post_json(
        &format!("/api/v1/services/{SERVICE}/deployments"),
        &json!({ "version": "v3" }),
    );
    assert_eq!(code, 409, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("already has a rollout in progress") && detail.contains(&first),
        "the refusal says why and names the rollout in flight: {body}"
    );

    // The first one is untouched by the refusal and can still be driven.
    server.wait_state(&first, "progressing", ROLLOUT_TIMEOUT);
    let (code, body) = server.post_json(&format!("/api/v1/services/{SERVICE}/abort"), &json!({}));
    assert_eq!(code, 200, "{body}");
    let detail = server.wait_terminal(&first, ROLLOUT_TIMEOUT);
    assert_eq!(state(&detail), "aborted", "{}", history(&detail));
    let list = server.get_json(&format!("/api/v1/services/{SERVICE}/deployments"));
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "the refused deploy left no record: {list}"
    );
}
