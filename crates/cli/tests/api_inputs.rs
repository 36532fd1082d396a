//! Input the API refuses, and secrets it keeps from viewers: versions that would
//! be read as paths or options, canaries that point back into rampart, bodies over
//! the limit, per-deploy environment values. Plus: a version brought back by a
//! revert or a restart gets its environment again.

mod support;

use std::time::Duration;

use support::{RampartServer, client, free_addr, processes_matching, sample_app};

fn static_service(listen: std::net::SocketAddr, stable: std::net::SocketAddr) -> String {
    format!(
        "[[service]]\nname = \"web\"\nlisten = \"{listen}\"\n[service.backend]\nkind = \"static\"\nstable = [\"{stable}\"]\n"
    )
}

fn post(server: &RampartServer, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    server.post_json(path, body)
}

fn create_token(server: &RampartServer, name: &str, role: &str) -> String {
    let (status, body) = post(
        server,
        "/api/v1/tokens",
        &serde_json::json!({ "name": name, "role": role }),
    );
    assert_eq!(status, 201, "{body}");
    body["secret"].as_str().expect("secret").to_string()
}

#[test]
fn versions_that_are_paths_or_options_are_refused_with_the_rule() {
    let (stable, canary, listen) = (free_addr(), free_addr(), free_addr());
    let _stable = sample_app(stable, "v1");
    let server = RampartServer::start_serving(&static_service(listen, stable));
    let cases = [
        ("..", "`.` and `..` name directories"),
        (".", "`.` and `..` name directories"),
        ("-v", "starts with `-`"),
        ("--help", "starts with `-`"),
        ("v2/../../etc", "path separator"),
        ("v2\u{1b}[31m", "control character"),
    ];
    for (version, rule) in cases {
        let (status, problem) = post(
            &server,
            "/api/v1/services/web/deployments",
            &serde_json::json!({ "version": version, "canary": [canary.to_string()] }),
        );
        assert_eq!(status, 400, "{version:?}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("`version`"), "names the field: {detail}");
        assert!(detail.contains(rule), "{version:?}: {detail}");
    }
    let long = "v".repeat(129);
    let (status, problem) = post(
        &server,
        "/api/v1/services/web/deployments",
        &serde_json::json!({ "version": long, "canary": [canary.to_string()] }),
    );
    assert_eq!(status, 400, "{problem}");
    assert!(
        server
            .get_json("/api/v1/deployments")
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[test]
fn a_canary_cannot_point_at_rampart_s_own_listeners() {
    let (stable, listen) = (free_addr(), free_addr());
    let _stable = sample_app(stable, "v1");
    let server = RampartServer::start_serving(&static_service(listen, stable));
    let api_port = server.addr.port();
    for (canary, what) in [
        (listen.to_string(), "the router of service `web`"),
        (format!("127.0.0.1:{api_port}"), "rampart's API"),
        (
            format!("[::ffff:127.0.0.1]:{}", listen.port()),
            "the router of service `web`",
        ),
    ] {
        let (status, problem) = post(
            &server,
            "/api/v1/services/web/deployments",
            &serde_json::json!({ "version": "v2", "canary": [canary] }),
        );
        assert_eq!(status, 400, "{canary}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("`canary`") && detail.contains(what),
            "{detail}"
        );
    }
    // The hand-set split refuses it too.
    let response = client()
        .put(format!("{}/api/v1/services/web/traffic", server.api))
        .bearer_auth(&server.admin_token)
        .json(&serde_json::json!({ "canary_weight": 10, "canary": [listen.to_string()] }))
        .send()
        .expect("PUT traffic");
    assert_eq!(response.status(), 400);
    assert_eq!(
        server.get_json("/api/v1/services/web/traffic")["canary_weight"],
        0.0
    );
}

#[test]
fn a_body_over_the_limit_is_413_problem_json() {
    let (stable, listen) = (free_addr(), free_addr());
    let _stable = sample_app(stable, "v1");
    let server = RampartServer::start_serving(&static_service(listen, stable));
    let huge = format!(
        "{{\"version\":\"v2\",\"reason\":\"{}\"}}",
        "x".repeat(3 << 20)
    );
    for path in [
        "/api/v1/services/web/deployments",
        "/api/v1/services/web/rollback",
    ] {
        let response = client()
            .post(format!("{}{path}", server.api))
            .bearer_auth(&server.admin_token)
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .expect("POST");
        assert_eq!(response.status(), 413, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let problem: serde_json::Value = response.json().expect("problem json");
        assert_eq!(problem["status"], 413);
    }
}

#[test]
fn viewers_see_the_names_of_per_deploy_environment_values_only() {
    let (stable, canary, listen) = (free_addr(), free_addr(), free_addr());
    let _stable = sample_app(stable, "v1");
    let _canary = sample_app(canary, "v2");
    let server = RampartServer::start_serving(&static_service(listen, stable));
    let (status, body) = post(
        &server,
        "/api/v1/services/web/deployments",
        &serde_json::json!({ "version": "v2", "canary": [canary.to_string()],
                             "env": { "DATABASE_PASSWORD": "hunter2" } }),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id");
    let viewer = create_token(&server, "dashboard", "viewer");
    let operator = create_token(&server, "deployer", "operator");
    let detail = |token: &str| -> serde_json::Value {
        client()
            .get(format!("{}/api/v1/deployments/{id}", server.api))
            .bearer_auth(token)
            .send()
            .expect("GET deployment")
            .json()
            .expect("json")
    };
    let seen_by_viewer = detail(&viewer);
    assert!(
        !seen_by_viewer.to_string().contains("hunter2"),
        "{seen_by_viewer}"
    );
    assert!(seen_by_viewer["record"]["env"]["DATABASE_PASSWORD"].is_string());
    assert_eq!(
        detail(&operator)["record"]["env"]["DATABASE_PASSWORD"],
        "hunter2"
    );
    // The audit log (viewers read it) names the variable, never its value.
    let audit = server.get_json("/api/v1/audit");
    assert!(!audit.to_string().contains("hunter2"));
}

/// The value of `name` in the environment of every running sample-app instance of
/// `version` that has it. Only instances with the variable count: other tests (and
/// other test runs on the machine) run `--version v2` sample apps of their own, and a
/// revert that forgot the environment shows as no instance at all.
fn instance_env(version: &str, name: &str) -> Vec<Option<String>> {
    processes_matching(&format!("--version {version}"))
        .into_iter()
        .filter(|(_, cmdline)| cmdline.contains("sample-app"))
        .map(|(pid, _)| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            environ
                .split(|b| *b == 0)
                .filter_map(|kv| std::str::from_utf8(kv).ok())
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
        })
        .filter(Option::is_some)
        .collect()
}

fn deploy_and_promote(server: &RampartServer, version: &str, env: serde_json::Value) {
    let id = server.deploy("envsvc", version, env);
    server.wait_state(&id, "progressing", Duration::from_secs(60));
    let (status, body) = post(
        server,
        "/api/v1/services/envsvc/promote",
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{body}");
    server.wait_state(&id, "succeeded", Duration::from_secs(60));
}

#[test]
fn a_reverted_or_restarted_version_gets_its_environment_again() {
    let listen = free_addr();
    let mark = "RAMPART_TEST_ENV_MARK";
    let mut server = RampartServer::start_with_server(
        "",
        &support::short_rollout_service("envsvc", listen, ["1h", "1h"], "1h"),
    );
    deploy_and_promote(
        &server,
        "v2",
        serde_json::json!({ mark: "deployed-with-v2" }),
    );
    deploy_and_promote(&server, "v3", serde_json::json!({}));
    // Past the scale-down delay v2 is stopped: the revert has to start it again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !instance_env("v2", mark).is_empty() {
        assert!(std::time::Instant::now() < deadline, "v2 was not stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = post(
        &server,
        "/api/v1/services/envsvc/rollback",
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let env = instance_env("v2", mark);
    assert!(!env.is_empty(), "v2 runs again");
    assert!(
        env.iter().all(|v| v.as_deref() == Some("deployed-with-v2")),
        "after the revert: {env:?}"
    );

    // A restart brings the reverted-to version back with it too.
    let stopped = server.terminate();
    assert!(stopped.success(), "exit status {stopped}");
    server.restart();
    let env = instance_env("v2", mark);
    assert!(!env.is_empty(), "v2 runs after the restart");
    assert!(
        env.iter().all(|v| v.as_deref() == Some("deployed-with-v2")),
        "after the restart: {env:?}"
    );
}

#[test]
fn the_last_active_admin_token_cannot_be_revoked_through_the_api() {
    let (listen, stable) = (free_addr(), free_addr());
    let _stable = sample_app(stable, "v1");
    let server = RampartServer::start_serving(&static_service(listen, stable));
    let revoke = |name: &str, token: &str| {
        let response = client()
            .delete(format!("{}/api/v1/tokens/{name}", server.api))
            .bearer_auth(token)
            .send()
            .expect("revoke");
        let status = response.status().as_u16();
        (status, response.text().unwrap_or_default())
    };
    let (status, problem) = revoke("admin", &server.admin_token);
    assert_eq!(status, 409, "{problem}");
    assert!(problem.contains("last active admin token"), "{problem}");
    // With a second admin, the first can go; the second is then the last.
    let second = create_token(&server, "second-admin", "admin");
    let (status, body) = revoke("admin", &second);
    assert_eq!(status, 200, "{body}");
    let (status, problem) = revoke("second-admin", &second);
    assert_eq!(status, 409, "{problem}");
}
