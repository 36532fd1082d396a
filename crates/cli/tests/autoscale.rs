//! Autoscaling end to end on the real binary: load through the router scales a
//! process service up and, when it stops, back down without failing a request; during
//! a rollout stable and canary are sized each from its own load; an operator's scale
//! holds as the minimum.

mod support;

use std::time::{Duration, Instant};

use support::{LoadGen, RampartServer};

/// `per_instance` requests per second per instance (low rates, so a busy test machine still sends
/// them), decisions every second, a 5 s scale-down window, telemetry every second.
fn autoscaled(
    per_instance: u32,
    name: &str,
    listen: std::net::SocketAddr,
    instances: u32,
    max: u32,
    rest: &str,
) -> String {
    support::sample_app_service(
        name,
        listen,
        instances,
        &format!(
            r#"[service.autoscale]
min = 1
max = {max}
targets = [{{ metric = "rps_per_instance", value = {per_instance} }}]
sync = "1s"
scale_down_stabilization = "5s"

{rest}"#
        ),
    )
}

const TELEMETRY: &str = "\n[telemetry]\ninterval = \"1s\"";

fn scaling(server: &RampartServer, service: &str) -> serde_json::Value {
    server.get_json(&format!("/api/v1/services/{service}/scaling?limit=200"))
}

/// Polls the scaling view until `done` holds; panics with it and the log otherwise.
fn wait_scaling(
    server: &RampartServer,
    service: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let view = scaling(server, service);
        if done(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached in {timeout:?}:\n{view:#}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn routed_stable(server: &RampartServer, service: &str) -> usize {
    let traffic = server.get_json(&format!("/api/v1/services/{service}/traffic"));
    traffic["stable"]["instances"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn a_service_scales_up_under_load_and_back_down_draining_without_a_failed_request() {
    let listen = support::free_addr();
    // Every answer takes 150 ms, so requests are in flight whenever an instance leaves.
    let service = autoscaled(
        4,
        "web",
        listen,
        1,
        4,
        "[service.backend.env]\nSAMPLE_APP_LATENCY_MS = \"150\"\n",
    );
    let server = RampartServer::start_with_server(TELEMETRY, &service);
    assert_eq!(scaling(&server, "web")["stable"]["instances"], 1);

    // 14 requests per second need at least 3 instances at 4 each.
    let load = LoadGen::start(format!("http://{listen}/"), 14);
    let up = wait_scaling(
        &server,
        "web",
        Duration::from_secs(60),
        "scale-up to 3",
        // The size changes before the decision that made it is stored: wait for both.
        |v| {
            v["stable"]["instances"].as_u64() >= Some(3)
                && v["stable"]["ready"].as_u64() >= Some(3)
                && v["decisions"].as_array().is_some_and(|all| {
                    all.iter()
                        .any(|d| d["status"] == "applied" && d["to"].as_u64() > d["from"].as_u64())
                })
        },
    );
    let decision = up["decisions"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|d| d["status"] == "applied" && d["to"].as_u64() > d["from"].as_u64())
        })
        .cloned()
        .unwrap_or_else(|| panic!("no applied scale-up decision: {up:#}"));
    let metric = &decision["decision"]["metrics"][0];
    assert_eq!(metric["metric"], "rps_per_instance", "{decision:#}");
    assert!(
        metric["proposal"].as_u64().unwrap_or(0) >= 2,
        "{decision:#}"
    );
    assert!(
        decision["reason"]
            .as_str()
            .unwrap_or("")
            .contains("rps_per_instance asks for"),
        "{decision:#}"
    );
    // The new instances take traffic.
    let deadline = Instant::now() + Duration::from_secs(10);
    while routed_stable(&server, "web") < 3 {
        assert!(
            Instant::now() < deadline,
            "new instances never joined the router"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Load falls to a trickle: back to one instance, draining the others.
    load.set_rps(2);
    let down = wait_scaling(
        &server,
        "web",
        Duration::from_secs(60),
        "scale-down to 1",
        // The size changes before the decision that made it is stored: wait for both.
        |v| {
            v["stable"]["instances"] == 1
                && v["decisions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|d| d["status"] == "applied" && d["to"] == 1)
        },
    );
    assert!(
        down["decisions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["status"] == "applied" && d["to"] == 1),
        "{down:#}"
    );
    // Keep sending a little longer, then count: not one request failed.
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    assert!(report.ok > 20, "{report:?}");
    assert_eq!(
        report.failed, 0,
        "requests failed across scale-up and scale-down: {report:?}"
    );

    let ups = server.wait_audit("scale.up", Duration::from_secs(5));
    let downs = server.wait_audit("scale.down", Duration::from_secs(5));
    assert!(!ups.is_empty() && !downs.is_empty());
    assert_eq!(ups[0]["actor"], "rampart");
    assert_eq!(ups[0]["subject"], "service/web/version/v1");

    // The CLI shows the decisions with their reasons.
    let out = support::run_cli(
        &[
            "scaling",
            "web",
            "--api",
            &server.api,
            "--token",
            &server.admin_token,
        ],
        &server.data_dir(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("autoscaling reactive: min 1, max 4"),
        "{text}"
    );
    assert!(text.contains("rps_per_instance asks for"), "{text}");
}

#[test]
fn during_a_rollout_stable_and_canary_are_sized_each_from_its_own_load() {
    let listen = support::free_addr();
    let service = autoscaled(
        1,
        "shop",
        listen,
        2,
        8,
        r#"[service.strategy]
steps = [{ weight = 20, hold = "10m" }]

[service.analysis]
judge = "threshold"
max_error_rate = 50.0
max_latency_regression = 1000.0
"#,
    );
    let server = RampartServer::start_with_server(TELEMETRY, &service);
    let load = LoadGen::start(format!("http://{listen}/"), 12);
    let id = server.deploy("shop", "v2", serde_json::json!({}));
    server.wait_state(&id, "progressing", Duration::from_secs(30));
    // 12 req/s (fewer if the machine is busy): stable takes 80 % (→ about 5 instances
    // at 1 each), the canary 20 % (→ 1 or 2), each from its own numbers; an average
    // over both would size them alike.
    let view = wait_scaling(
        &server,
        "shop",
        Duration::from_secs(60),
        "independent sizes",
        |v| {
            let stable = v["stable"]["instances"].as_u64().unwrap_or(0);
            let canary_decided = v["decisions"]
                .as_array()
                .is_some_and(|all| all.iter().any(|d| d["set"] == "canary"));
            stable >= 3
                && canary_decided
                && v["canary"]["instances"]
                    .as_u64()
                    .is_some_and(|c| (1..=3).contains(&c) && c < stable)
        },
    );
    let decisions = view["decisions"].as_array().cloned().unwrap_or_default();
    let canary = decisions
        .iter()
        .find(|d| d["set"] == "canary")
        .unwrap_or_else(|| panic!("no canary decision: {view:#}"));
    assert_eq!(canary["version"], "v2");
    let observed = canary["decision"]["metrics"][0]["observed"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        observed < 4.0,
        "the canary's own rate per instance: {canary:#}"
    );
    let stable = decisions
        .iter()
        .find(|d| d["set"] == "stable")
        .unwrap_or_else(|| panic!("no stable decision: {view:#}"));
    assert_eq!(stable["version"], "v1");
    // The canary is never below its weight's share of the stable size.
    let bounds = &canary["decision"]["bounds"];
    assert!(bounds["weight_min"].as_u64() >= Some(1), "{canary:#}");
    let report = load.stop();
    assert_eq!(report.failed, 0, "{report:?}");
    let (status, body) = server.post_json(
        "/api/v1/services/shop/abort",
        &serde_json::json!({ "reason": "test over" }),
    );
    assert!(status < 300, "{status} {body}");
}

#[test]
fn an_operator_scale_holds_as_the_minimum_and_bad_requests_are_refused() {
    let listen = support::free_addr();
    let mut server =
        RampartServer::start_with_server(TELEMETRY, &autoscaled(4, "api", listen, 1, 3, ""));
    let (status, body) = server.post_json(
        "/api/v1/services/api/scale",
        &serde_json::json!({ "instances": 3, "for": "10m", "reason": "sale at noon" }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["to"], 3, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or("")
            .contains("sale at noon"),
        "{body}"
    );
    let view = scaling(&server, "api");
    assert_eq!(view["stable"]["instances"], 3);
    assert_eq!(view["operator_floor"]["instances"], 3);
    // No load, yet it stays: the floor holds for ten minutes.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(scaling(&server, "api")["stable"]["instances"], 3);

    let (status, body) = server.post_json(
        "/api/v1/services/api/scale",
        &serde_json::json!({ "instances": 0 }),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.post_json(
        "/api/v1/services/api/scale",
        &serde_json::json!({ "instances": 2, "for": "soon" }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("`for`"),
        "{body}"
    );
    let audit = server.wait_audit("scale.up", Duration::from_secs(5));
    assert_eq!(audit[0]["actor"], "admin", "{audit:?}");

    // `rampart top` renders the host, the service's version and its three instances.
    let out = support::run_cli(
        &[
            "top",
            "--once",
            "--api",
            &server.api,
            "--token",
            &server.admin_token,
        ],
        &server.data_dir(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("host  cpu "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("api") && l.contains("v1 (stable)")),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("v1-"))
            .count(),
        3,
        "{text}"
    );

    // And across a restart: the config says 1 instance, the floor still says 3.
    server.terminate();
    server.restart();
    let view = wait_scaling(
        &server,
        "api",
        Duration::from_secs(60),
        "the floor restored after a restart",
        |v| v["operator_floor"]["instances"] == 3 && v["stable"]["instances"] == 3,
    );
    assert_eq!(view["operator_floor"]["actor"], "admin", "{view:#}");
}
