//! Header-match and mirror steps end to end: the real binary, its own sample-app as
//! the service's instances, real HTTP through the router.
//!
//! Every wait is a poll with a bounded deadline; nothing asserts on elapsed time.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use support::{
    LATENCY_SLACK, LoadGen, RampartServer, client, free_addr, history, sample_app_service,
    version_at,
};

const SERVICE: &str = "shop";
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);

fn service(listen: SocketAddr, steps: &str) -> String {
    sample_app_service(
        SERVICE,
        listen,
        2,
        &format!(
            r#"[service.strategy]
steps = {steps}
scale_down_delay = "2s"
progress_deadline = "60s"

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

/// The version that answered `/version` with these headers.
fn version_with(listen: SocketAddr, headers: &[(&str, &str)]) -> Option<String> {
    let mut request = client().get(format!("http://{listen}/version"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body: serde_json::Value = request.send().ok()?.json().ok()?;
    body["version"].as_str().map(str::to_string)
}

#[test]
fn a_header_step_routes_only_matching_requests_to_the_canary() {
    let listen = free_addr();
    let server = RampartServer::start_serving(&service(
        listen,
        r#"[{ match = { header = "x-tester", value = "yes" }, hold = "5m" }, { weight = 50, hold = "5s" }]"#,
    ));
    let id = server.deploy(SERVICE, "v2", json!({}));
    server.wait_state(&id, "progressing", ROLLOUT_TIMEOUT);
    // The canary is routed once the step's table is in; wait for the first match.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while version_with(listen, &[("x-tester", "yes")]).as_deref() != Some("v2") {
        assert!(
            std::time::Instant::now() < deadline,
            "testers never reached v2\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..30 {
        assert_eq!(
            version_with(listen, &[("x-tester", "yes")]).as_deref(),
            Some("v2"),
            "a matching request goes to the canary"
        );
        assert_eq!(
            version_with(listen, &[("x-tester", "no")]).as_deref(),
            Some("v1"),
            "another value does not"
        );
        assert_eq!(
            version_at(&format!("http://{listen}/version")).as_deref(),
            Some("v1"),
            "nor does a request without the header"
        );
    }
    let traffic = server.get_json(&format!("/api/v1/services/{SERVICE}/traffic"));
    assert_eq!(traffic["canary_weight"], 0.0, "{traffic}");
    assert_eq!(
        traffic["steering"]["match"]["name"], "x-tester",
        "{traffic}"
    );
    assert!(
        traffic["canary"]["matched"]["requests"].as_u64() >= Some(30),
        "{traffic}"
    );
    assert_eq!(traffic["canary"]["split"]["requests"], 0, "{traffic}");

    // Aborting takes the match out with the canary.
    let (status, body) = server.post_json(
        &format!("/api/v1/services/{SERVICE}/abort"),
        &json!({ "reason": "test over" }),
    );
    assert!(status < 300, "abort: {status} {body}");
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "aborted",
        "{}",
        history(&detail)
    );
    assert_eq!(
        version_with(listen, &[("x-tester", "yes")]).as_deref(),
        Some("v1")
    );
}

#[test]
fn a_canary_failing_mirrored_requests_is_rolled_back_and_no_user_sees_an_error() {
    let listen = free_addr();
    let server = RampartServer::start_serving(&service(
        listen,
        r#"[{ mirror = 50, hold = "30s" }, { weight = 50, hold = "5s" }]"#,
    ));
    let load = LoadGen::start(format!("http://{listen}/version"), 100);
    let id = server.deploy(SERVICE, "v2", json!({ "SAMPLE_APP_ERROR_RATE": "0.2" }));
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    let report = load.stop();
    assert_eq!(
        detail["summary"]["state"],
        "rolled_back",
        "{}",
        history(&detail)
    );
    assert_eq!(
        report.failed, 0,
        "no user saw the canary's errors: {report:?}"
    );
    assert_eq!(
        report.versions.get("v2"),
        None,
        "every user was answered by stable: {report:?}"
    );
    assert!(report.ok > 0, "{report:?}");
    // The rollback came from the analysis, at the mirror step.
    let rollback = detail["record"]["rollout"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .find(|t| t["to"]["state"] == "rolling_back")
        .cloned()
        .unwrap_or_else(|| panic!("no rollback:\n{}", history(&detail)));
    assert_eq!(rollback["actor"]["kind"], "system", "{rollback}");
    assert_eq!(rollback["from"]["step"], 0, "{rollback}");
    let traffic = server.get_json(&format!("/api/v1/services/{SERVICE}/traffic"));
    assert!(traffic["mirror"]["sent"].as_u64() > Some(0), "{traffic}");
    assert!(traffic["steering"].is_null(), "the mirror ended: {traffic}");
}
