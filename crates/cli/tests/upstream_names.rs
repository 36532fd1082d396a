//! Static upstreams named by host name: resolved at start and at each deploy, routed
//! like IP addresses; a name that does not resolve stops the start with an error
//! naming it. Loopback only: `localhost`.

mod support;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::*;

/// Sample apps answering as `version` on every address `localhost:port` resolves
/// to here (127.0.0.1, and ::1 where the hosts file says so).
fn on_localhost(port: u16, version: &str) -> Vec<SampleApp> {
    let addrs: Vec<SocketAddr> = ("localhost", port)
        .to_socket_addrs()
        .expect("localhost resolves")
        .collect();
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    let mut seen = Vec::new();
    addrs
        .into_iter()
        .filter(|a| {
            let new = !seen.contains(a);
            seen.push(*a);
            new
        })
        .map(|addr| sample_app(addr, version))
        .collect()
}

/// v1 and v2 on a localhost port each: the ports, and the apps (serving while held).
fn v1_and_v2_on_localhost() -> (u16, u16, Vec<SampleApp>) {
    let stable_port = free_addr().port();
    let canary_port = free_addr().port();
    let mut apps = on_localhost(stable_port, "v1");
    apps.extend(on_localhost(canary_port, "v2"));
    (stable_port, canary_port, apps)
}

/// Service `web` on the static backend with `upstreams` (its `stable`, `canary` and
/// other backend keys), one step of 50 %. These tests are about addresses, not
/// judging: a judge that never objects.
fn named_service(listen: SocketAddr, upstreams: &str) -> String {
    format!(
        r#"[[service]]
name = "web"
listen = "{listen}"

[service.backend]
kind = "static"
{upstreams}

[service.strategy]
steps = [{{ weight = 50, hold = "1s" }}]
scale_down_delay = "1s"

{JUDGE_NEVER_OBJECTS}
[service.router]
drain_grace = "1s"
"#
    )
}

/// Waits for rollout `id` of v2 to succeed, and checks it ran on what the canary's
/// name resolved to (`127.0.0.1:canary_port`) and that `url` serves v2.
fn promoted_from(server: &RampartServer, id: &str, canary_port: u16, url: &str) {
    let done = server.wait_terminal(id, Duration::from_secs(60));
    assert_eq!(done["summary"]["state"], "succeeded", "{}", history(&done));
    let addresses = done["record"]["addresses"].to_string();
    assert!(
        addresses.contains(&format!("127.0.0.1:{canary_port}")),
        "{addresses}"
    );
    assert_serves(url, "v2", "the promoted canary named localhost:PORT");
}

#[test]
fn upstreams_named_by_host_name_serve_and_deploy() {
    let (stable_port, canary_port, _apps) = v1_and_v2_on_localhost();
    let listen = free_addr();
    let server = RampartServer::start_serving(&named_service(
        listen,
        &format!(
            "stable = [\"localhost:{stable_port}\"]\ncanary = [\"localhost:{canary_port}\"]\nresolve_every = \"1s\""
        ),
    ));
    let url = format!("http://{listen}/version");
    // Resolved at start; the re-resolution every second finds the same set and
    // changes nothing.
    assert_serves(&url, "v1", "the stable upstream named localhost:PORT");
    std::thread::sleep(Duration::from_millis(2500));
    assert_serves(&url, "v1", "after re-resolutions of an unchanged name");
    assert!(
        server.audit_actions("upstreams.changed").is_empty(),
        "an unchanged name must not change the set"
    );
    // The configured canary name is resolved at the deploy.
    let load = LoadGen::start(url.clone(), 50);
    let id = server.deploy("web", "v2", json!({}));
    promoted_from(&server, &id, canary_port, &url);
    let report = load.stop();
    assert_eq!(report.failed, 0, "{:?}", report.failures);
}

#[test]
fn a_name_that_does_not_resolve_at_start_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[server]\nlisten = \"{}\"\ndata_dir = \"data\"\n\n[[service]]\nname = \"web\"\nlisten = \"{}\"\nbackend = {{ kind = \"static\", stable = [\"nowhere.invalid:8080\"] }}\n",
        free_addr(),
        free_addr()
    );
    let path = dir.path().join("rampart.toml");
    std::fs::write(&path, config).expect("write config");
    let output = Command::new(rampart_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run rampart serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("backend.stable")
            && stderr.contains("`nowhere.invalid:8080` does not resolve"),
        "{stderr}"
    );
}

#[test]
fn a_canary_named_by_host_name_in_the_deploy_and_traffic_apis() {
    let (stable_port, canary_port, _apps) = v1_and_v2_on_localhost();
    let listen = free_addr();
    // No configured canary: the deploy names it.
    let server = RampartServer::start_serving(&named_service(
        listen,
        &format!("stable = [\"localhost:{stable_port}\"]"),
    ));
    let url = format!("http://{listen}/version");

    // Bad names are refused with the name and the fix, before anything starts.
    let (status, body) = server.post_json(
        "/api/v1/services/web/deployments",
        &json!({ "version": "v2", "canary": ["nowhere.invalid:8080"] }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("`nowhere.invalid:8080` does not resolve"),
        "{body}"
    );
    let (status, body) = server.post_json(
        "/api/v1/services/web/deployments",
        &json!({ "version": "v2", "canary": ["localhost"] }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("expected a host and a port"),
        "{body}"
    );

    // The traffic API takes a name too; weight 0 leaves users on stable.
    let (status, body) = server.put_json(
        "/api/v1/services/web/traffic",
        &json!({ "canary": [format!("localhost:{canary_port}")], "version": "v2", "canary_weight": 0 }),
    );
    assert!(status < 300, "{status} {body}");
    assert!(
        body.to_string()
            .contains(&format!("127.0.0.1:{canary_port}")),
        "the name was resolved: {body}"
    );
    let (status, body) = server.put_json(
        "/api/v1/services/web/traffic",
        &json!({ "canary": [], "canary_weight": 0 }),
    );
    assert!(status < 300, "{status} {body}");

    let load = LoadGen::start(url.clone(), 50);
    let (status, body) = server.post_json(
        "/api/v1/services/web/deployments",
        &json!({ "version": "v2", "canary": [format!("localhost:{canary_port}")] }),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("deployment id").to_string();
    promoted_from(&server, &id, canary_port, &url);
    let report = load.stop();
    assert_eq!(report.failed, 0, "{:?}", report.failures);
}
