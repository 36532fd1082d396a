//! Setting a service's traffic by hand through the API, against real upstreams.

mod support;

use support::{RampartServer, assert_serves, client, free_addr, sample_app, version_at};

fn put(server: &RampartServer, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = client()
        .put(format!("{}/api/v1/services/web/traffic", server.api))
        .bearer_auth(&server.admin_token)
        .json(&body)
        .send()
        .expect("PUT traffic");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or_default())
}

#[test]
fn the_split_and_the_protections_can_be_set_by_hand_and_are_audited() {
    let (stable_addr, canary_addr, listen) = (free_addr(), free_addr(), free_addr());
    let _stable = sample_app(stable_addr, "v1");
    let _canary = sample_app(canary_addr, "v2");
    let server = RampartServer::start_serving(&format!(
        "[[service]]\nname = \"web\"\nlisten = \"{listen}\"\n[service.backend]\nkind = \"static\"\nstable = [\"{stable_addr}\"]\n"
    ));
    let url = format!("http://{listen}/version");
    assert_eq!(version_at(&url).as_deref(), Some("v1"));

    let (status, traffic) = put(
        &server,
        serde_json::json!({ "canary_weight": 100, "canary": [canary_addr.to_string()], "version": "v2" }),
    );
    assert_eq!(status, 200, "{traffic}");
    assert_eq!(traffic["canary_weight"], 100.0);
    assert_eq!(traffic["canary"]["version"], "v2");
    assert_serves(&url, "v2", "the canary takes all traffic at weight 100");
    let (status, _) = put(&server, serde_json::json!({ "canary_weight": 0 }));
    assert_eq!(status, 200);
    assert_serves(&url, "v1", "stable takes all traffic at weight 0");

    let (status, traffic) = put(
        &server,
        serde_json::json!({ "max_concurrency": 5, "outlier_detection": false }),
    );
    assert_eq!(status, 200, "{traffic}");
    assert_eq!(traffic["max_concurrency"], 5);
    assert_eq!(traffic["outlier_detection"], false);
    let shown = server.get_json("/api/v1/services/web/traffic");
    assert_eq!(shown["max_concurrency"], 5);

    // Bad input changes nothing and says why.
    let (status, problem) = put(&server, serde_json::json!({ "canary_weight": 150 }));
    assert_eq!(status, 400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("0 to 100"),
        "{problem}"
    );
    let (status, _) = put(&server, serde_json::json!({}));
    assert_eq!(status, 400);
    let (status, _) = put(
        &server,
        serde_json::json!({ "canary_weight": 5, "unknown": 1 }),
    );
    assert_eq!(status, 400);
    assert_eq!(
        server.get_json("/api/v1/services/web/traffic")["canary_weight"],
        0.0
    );

    let audited = server.audit_actions("traffic.set");
    assert_eq!(audited.len(), 3, "{audited:?}");
    assert!(audited.iter().all(|e| e["actor"] == "admin"));
}

#[test]
fn a_rollout_owns_the_split_but_not_the_protections() {
    let (stable_addr, canary_addr, listen) = (free_addr(), free_addr(), free_addr());
    let _stable = sample_app(stable_addr, "v1");
    let _canary = sample_app(canary_addr, "v2");
    let server = RampartServer::start_serving(&format!(
        "[[service]]\nname = \"web\"\nlisten = \"{listen}\"\n[service.backend]\nkind = \"static\"\nstable = [\"{stable_addr}\"]\n\
         [service.strategy]\nsteps = [{{ weight = 50, hold = \"1h\" }}]\nprogress_deadline = \"1h\"\n"
    ));
    let (status, created) = server.post_json(
        "/api/v1/services/web/deployments",
        &serde_json::json!({ "version": "v2", "canary": [canary_addr.to_string()] }),
    );
    assert_eq!(status, 201, "{created}");
    let (status, problem) = put(&server, serde_json::json!({ "canary_weight": 0 }));
    assert_eq!(status, 409);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("owns the traffic split"),
        "{problem}"
    );
    // Pausing holds the rollout; it does not hand the split over, and the advice says
    // what does. Only a progressing rollout can be paused: the deploy call returns
    // while it is still starting.
    let id = created["id"].as_str().expect("deployment id");
    server.wait_state(id, "progressing", std::time::Duration::from_secs(30));
    let (status, _) = server.post_json("/api/v1/services/web/pause", &serde_json::json!({}));
    assert_eq!(status, 200);
    let (status, problem) = put(&server, serde_json::json!({ "canary_weight": 50 }));
    assert_eq!(status, 409);
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("a paused rollout too") && detail.contains("rampart abort web"),
        "{problem}"
    );
    let (status, _) = put(&server, serde_json::json!({ "max_concurrency": 100 }));
    assert_eq!(status, 200);
    let (status, _) = server.post_json(
        "/api/v1/services/web/abort",
        &serde_json::json!({ "reason": "test over" }),
    );
    assert_eq!(status, 200);
}
