//! Health and metrics over real HTTP against the real binary.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{RampartServer, client};

#[test]
fn health_endpoints_answer_without_auth() {
    let server = RampartServer::start("");
    let http = client();
    for path in [
        "/health/live",
        "/health/liveness",
        "/health/ready",
        "/health/readiness",
        "/health",
    ] {
        let response = http
            .get(format!("{}{path}", server.api))
            .send()
            .expect(path);
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/health+json",
            "{path}"
        );
        let body: serde_json::Value = response.json().expect("json");
        assert_eq!(body["status"], "pass", "{path}: {body}");
    }
    let detailed: serde_json::Value = http
        .get(format!("{}/health", server.api))
        .send()
        .and_then(|r| r.json())
        .expect("health");
    assert_eq!(
        detailed["checks"]["store:responsive"][0]["status"], "pass",
        "{detailed}"
    );
}

#[test]
fn health_warns_with_the_error_rate_when_the_only_upstream_refuses_connections() {
    // Nothing listens on `closed`: every routed request fails with 502.
    let (closed, listen) = (support::free_addr(), support::free_addr());
    let server = RampartServer::start_serving(&format!(
        "[[service]]\nname = \"web\"\nlisten = \"{listen}\"\n[service.backend]\nkind = \"static\"\nstable = [\"{closed}\"]\n"
    ));
    let http = client();
    let before: serde_json::Value = http
        .get(format!("{}/health", server.api))
        .send()
        .and_then(|r| r.json())
        .expect("health");
    assert_eq!(before["status"], "pass", "no traffic yet: {before}");
    for _ in 0..20 {
        let routed = http
            .get(format!("http://{listen}/"))
            .send()
            .expect("routed request");
        assert!(routed.status().is_server_error(), "{}", routed.status());
    }
    let response = http
        .get(format!("{}/health", server.api))
        .send()
        .expect("health");
    assert_eq!(response.status(), 200, "warn is still 200");
    assert_eq!(
        response.headers()["content-type"],
        "application/health+json"
    );
    let body: serde_json::Value = response.json().expect("json");
    assert_eq!(body["status"], "warn", "{body}");
    let check = &body["checks"]["service:web:error_rate"][0];
    assert_eq!(check["status"], "warn", "{body}");
    assert_eq!(check["observedValue"], 100.0, "{body}");
    assert!(
        check["output"]
            .as_str()
            .unwrap_or_default()
            .contains("20 of 20 requests failed"),
        "{body}"
    );
    // Readiness is about rampart doing its job: still ready, and says why it warns.
    let ready = http
        .get(format!("{}/health/ready", server.api))
        .send()
        .expect("ready");
    assert_eq!(ready.status(), 200);
}

#[test]
fn readiness_fails_with_the_failing_check_when_the_store_is_gone() {
    let server = RampartServer::start("");
    let ready = client()
        .get(format!("{}/health/ready", server.api))
        .send()
        .expect("ready");
    assert_eq!(ready.status(), 200);
    // Someone removes the data dir under the running server. Readiness reads the
    // store's last ping (every 500 ms, off the request path): it fails by the next.
    std::fs::remove_dir_all(server.data_dir()).expect("remove data dir");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let response = loop {
        let response = client()
            .get(format!("{}/health/ready", server.api))
            .send()
            .expect("ready");
        if response.status() == 503 || std::time::Instant::now() > deadline {
            break response;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/health+json"
    );
    let body: serde_json::Value = response.json().expect("json");
    assert_eq!(body["status"], "fail");
    let check = &body["checks"]["store:responsive"][0];
    assert_eq!(check["status"], "fail", "{body}");
    assert!(
        check["output"]
            .as_str()
            .unwrap_or_default()
            .contains("disappeared"),
        "{body}"
    );
    // Liveness is unaffected: the process is up, it just cannot do its job.
    let live = client()
        .get(format!("{}/health/live", server.api))
        .send()
        .expect("live");
    assert_eq!(live.status(), 200);
}

#[test]
fn metrics_are_valid_prometheus_text_and_count_requests_and_auth_failures() {
    // A routed service with traffic, so the router's per-version families are in
    // the exposition too.
    let (upstream, listen) = (support::free_addr(), support::free_addr());
    let _app = support::sample_app(upstream, "v1");
    let server = RampartServer::start_serving(&format!(
        "[[service]]\nname = \"web\"\nlisten = \"{listen}\"\n[service.backend]\nkind = \"static\"\nstable = [\"{upstream}\"]\n"
    ));
    let http = client();
    for _ in 0..5 {
        let routed = http
            .get(format!("http://{listen}/"))
            .send()
            .expect("routed request");
        assert_eq!(routed.status(), 200);
    }
    // One authorised and one unauthorised request, so both families have samples.
    let ok = http
        .get(format!("{}/api/v1/services", server.api))
        .bearer_auth(&server.admin_token)
        .send()
        .expect("services");
    assert_eq!(ok.status(), 200);
    let denied = http
        .get(format!("{}/api/v1/services", server.api))
        .send()
        .expect("services");
    assert_eq!(denied.status(), 401);

    let response = http
        .get(format!("{}/metrics", server.api))
        .send()
        .expect("metrics");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4"),
    );
    let text = response.text().expect("text");
    assert!(
        text.contains(
            "rampart_http_requests_total{route=\"/api/v1/services\",method=\"GET\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("rampart_auth_failures_total{reason=\"missing\"} 1"),
        "{text}"
    );
    assert!(text.contains("rampart_build_info{version=\""), "{text}");
    assert!(text.contains("rampart_audit_entries_total"), "{text}");
    // Counted where every writer commits: the first admin token and server.start.
    let audit_entries: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("rampart_audit_entries_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("an audit entries sample");
    assert!(audit_entries >= 2, "{text}");
    assert!(
        text.contains(
            "rampart_router_requests_total{service=\"web\",set=\"stable\",version=\"v1\"} 5"
        ),
        "{text}"
    );
    assert!(
        text.contains("# TYPE rampart_router_request_duration_seconds histogram"),
        "{text}"
    );

    promtool_check(&text);
}

/// Scrapes `/metrics` until `done` holds for the exposition; panics with the last
/// one after 20 s.
fn metrics_when(server: &RampartServer, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = client()
            .get(format!("{}/metrics", server.api))
            .send()
            .and_then(|r| r.text())
            .expect("metrics");
        if done(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the expected series did not appear:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Scrapes `/metrics` until `needle` appears (the first collection runs as rampart
/// starts, alongside the first requests).
fn metrics_with(server: &RampartServer, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = client()
            .get(format!("{}/metrics", server.api))
            .send()
            .and_then(|r| r.text())
            .expect("metrics");
        if text.contains(needle) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn metrics_carry_host_and_instance_families_that_promtool_accepts() {
    let listen = support::free_addr();
    let server = RampartServer::start_with_server(
        "\n[telemetry]\ninterval = \"1s\"",
        &support::sample_app_service("shop", listen, 2, ""),
    );
    // CPU percent needs two collections of the same instance.
    let text = metrics_with(&server, "rampart_instance_cpu_percent{");
    for needle in [
        "# TYPE rampart_host_cpu_seconds_total counter",
        "rampart_host_cpu_seconds_total{cpu=\"0\",mode=\"user\"} ",
        "rampart_host_memory_available_bytes ",
        "rampart_host_memory_total_bytes ",
        "rampart_host_swap_free_bytes ",
        "rampart_host_load1 ",
        "rampart_host_filesystem_avail_bytes{device=",
        "mountpoint=\"/\"",
        "rampart_host_network_receive_bytes_total{device=\"lo\"} ",
        "rampart_host_processes ",
        "rampart_host_tcp_connection_states{state=\"listen\"} ",
        "rampart_instance_resident_memory_bytes{service=\"shop\",version=\"v1\",instance=\"v1-0\"} ",
        "rampart_instance_open_fds{service=\"shop\",version=\"v1\",instance=\"v1-1\"} ",
        "rampart_instance_cpu_seconds_total{service=\"shop\",version=\"v1\",instance=\"v1-0\"} ",
        "rampart_instance_cpu_percent{service=\"shop\",version=\"v1\",instance=\"v1-0\"} ",
        "rampart_instance_restarts_total{service=\"shop\",version=\"v1\",instance=\"v1-0\"} 0",
        "rampart_instance_up{service=\"shop\",version=\"v1\",instance=\"v1-1\"} 1",
        "rampart_telemetry_collection_seconds ",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    let rss: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "rampart_instance_resident_memory_bytes{service=\"shop\",version=\"v1\",instance=\"v1-0\"} ",
            )
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("an RSS sample");
    assert!(
        rss > 1_000_000.0,
        "a running sample app uses over 1 MB: {rss}"
    );
    promtool_check(&text);
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn rollout_metrics_follow_a_rollout_and_its_counters_survive_a_restart() {
    let listen = support::free_addr();
    let mut server = RampartServer::start_with_server(
        "",
        &support::short_rollout_service("web", listen, ["3s", "3s"], "60s"),
    );
    let timeout = std::time::Duration::from_secs(90);
    // Before any rollout: only the counters, at 0.
    let text = metrics_with(&server, "rampart_rollouts_total{");
    assert_eq!(
        sample(
            &text,
            "rampart_rollouts_total{service=\"web\",outcome=\"succeeded\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert!(!text.contains("rampart_rollout_phase{"), "{text}");

    let load = support::LoadGen::start(format!("http://{listen}/version"), 100);
    let id = server.deploy("web", "v2", serde_json::json!({}));
    server.wait_state(&id, "progressing", timeout);
    // During the rollout: progressing at a step's weight, with the judge's e-values.
    let during = metrics_when(&server, |t| {
        t.contains("rampart_rollout_phase{service=\"web\",phase=\"progressing\"} 1")
            && t.contains("rampart_rollout_e_value{service=\"web\"")
    });
    let phase = |text: &str, phase: &str| {
        sample(
            text,
            &format!("rampart_rollout_phase{{service=\"web\",phase=\"{phase}\"}}"),
        )
    };
    assert_eq!(phase(&during, "progressing"), Some(1.0), "{during}");
    assert_eq!(phase(&during, "reverting"), Some(0.0), "{during}");
    let step = sample(&during, "rampart_rollout_step{service=\"web\"}").expect("a step");
    let weight = sample(
        &during,
        "rampart_rollout_canary_weight_percent{service=\"web\"}",
    )
    .expect("a weight");
    assert!(
        (step, weight) == (1.0, 20.0) || (step, weight) == (2.0, 50.0),
        "step {step} weight {weight}\n{during}"
    );
    let info = format!(
        "rampart_rollout_info{{service=\"web\",deployment=\"{id}\",version=\"v2\",previous_version=\"v1\"}}"
    );
    assert_eq!(sample(&during, &info), Some(1.0), "{during}");
    let verdicts: f64 = ["pass", "fail", "inconclusive"]
        .iter()
        .filter_map(|o| {
            sample(
                &during,
                &format!("rampart_rollout_verdict{{service=\"web\",outcome=\"{o}\"}}"),
            )
        })
        .sum();
    assert_eq!(verdicts, 1.0, "one verdict outcome is current\n{during}");
    let threshold = sample(
        &during,
        "rampart_rollout_e_value_threshold{service=\"web\",test=\"error_rate_pct\"}",
    )
    .expect("the error test's threshold");
    assert!(threshold > 1.0, "{during}");
    promtool_check(&during);

    let detail = server.wait_terminal(&id, timeout);
    load.stop();
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        support::history(&detail)
    );
    let after = metrics_with(&server, "phase=\"succeeded\"} 1");
    assert_eq!(phase(&after, "succeeded"), Some(1.0), "{after}");
    assert_eq!(phase(&after, "progressing"), Some(0.0), "{after}");
    assert_eq!(
        sample(&after, "rampart_rollout_step{service=\"web\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &after,
            "rampart_rollouts_total{service=\"web\",outcome=\"succeeded\"}"
        ),
        Some(1.0),
        "{after}"
    );
    promtool_check(&after);

    // Counted from the store at start: the same after a restart.
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    server.restart();
    let restarted = metrics_with(&server, "rampart_rollouts_total{");
    assert_eq!(
        sample(
            &restarted,
            "rampart_rollouts_total{service=\"web\",outcome=\"succeeded\"}"
        ),
        Some(1.0),
        "{restarted}"
    );
    assert_eq!(phase(&restarted, "succeeded"), Some(1.0), "{restarted}");
    assert_eq!(sample(&restarted, &info), Some(1.0), "{restarted}");
    promtool_check(&restarted);

    // An operator rolls the next rollout back: counted as rolled back, by an operator.
    let id = server.deploy("web", "v3", serde_json::json!({}));
    server.wait_state(&id, "progressing", timeout);
    let (status, body) = server.post_json(
        "/api/v1/services/web/rollback",
        &serde_json::json!({ "reason": "end-to-end test" }),
    );
    assert!((200..300).contains(&status), "{status}: {body}");
    let detail = server.wait_terminal(&id, timeout);
    assert_eq!(detail["summary"]["state"], "rolled_back", "{detail}");
    let rolled_back = metrics_with(&server, "phase=\"rolled_back\"} 1");
    for (series, value) in [
        (
            "rampart_rollouts_total{service=\"web\",outcome=\"rolled_back\"}",
            1.0,
        ),
        (
            "rampart_rollouts_total{service=\"web\",outcome=\"succeeded\"}",
            1.0,
        ),
        (
            "rampart_rollout_rollbacks_total{service=\"web\",cause=\"operator\"}",
            1.0,
        ),
        (
            "rampart_rollout_rollbacks_total{service=\"web\",cause=\"automatic\"}",
            0.0,
        ),
        (
            "rampart_rollout_phase{service=\"web\",phase=\"rolled_back\"}",
            1.0,
        ),
    ] {
        assert_eq!(
            sample(&rolled_back, series),
            Some(value),
            "{series}\n{rolled_back}"
        );
    }
    promtool_check(&rolled_back);

    // The rollback's cause is read back from the store's record after a restart.
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    server.restart();
    let again = metrics_with(&server, "rampart_rollout_rollbacks_total{");
    assert_eq!(
        sample(
            &again,
            "rampart_rollout_rollbacks_total{service=\"web\",cause=\"operator\"}"
        ),
        Some(1.0),
        "{again}"
    );
}

/// Runs `promtool check metrics` on the exposition; CI installs promtool and sets
/// RAMPART_REQUIRE_PROMTOOL so the check cannot be skipped there.
fn promtool_check(text: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var_os("RAMPART_REQUIRE_PROMTOOL").is_none(),
                "promtool is required but could not run: {e}"
            );
            eprintln!("promtool not installed; skipping the exposition lint");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}\n{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_is_audited() {
    let mut server = RampartServer::start("");
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    let output = support::run_cli(
        &[
            "audit",
            "list",
            "--data-dir",
            server.data_dir().to_str().expect("utf8"),
            "--output",
            "json",
        ],
        server.dir.path(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("json");
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["token.create", "server.start", "server.stop"]);
}

#[test]
fn token_uses_are_shown_at_once_and_written_by_shutdown() {
    let mut server = RampartServer::start("");
    server.wait_serving();
    let listed = server.get_json("/api/v1/tokens");
    // The request that lists the tokens authenticated with the admin token, so its
    // use shows, although authentication itself writes nothing.
    assert!(
        listed[0]["last_used_at"].is_string(),
        "the use is visible before it is written: {listed}"
    );
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    let output = support::run_cli(
        &[
            "token",
            "list",
            "--data-dir",
            server.data_dir().to_str().expect("utf8"),
            "--output",
            "json",
        ],
        server.dir.path(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tokens: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("json");
    assert!(
        tokens[0]["last_used_at"].is_string(),
        "written at shutdown: {tokens:?}"
    );
}
