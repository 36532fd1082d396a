//! Revisions end to end (issue 15): `rampart history` lists the versions a service
//! ran, `rampart rollback --to` rolls an earlier one out again with the environment
//! it was deployed with, and refuses one that can no longer be started.
//!
//! Steps that wait for an operator move these rollouts (`promote`), not load.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    RampartServer, assert_serves, free_addr, history, run_cli_timeout, sample_app,
    sample_app_service, version_at,
};

const SERVICE: &str = "shop";
const TIMEOUT: Duration = Duration::from_secs(60);
const STRATEGY: &str = r#"[service.strategy]
steps = [{ weight = 20, pause = "until_promoted" }]
scale_down_delay = "1s"

[service.router]
drain_grace = "1s"
"#;

fn cli(server: &RampartServer, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--api", &server.api, "--token", &server.admin_token]);
    run_cli_timeout(&all, server.dir.path(), TIMEOUT)
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Deploys `version`, waits at its gate, promotes it and waits until it serves.
fn roll_out(server: &RampartServer, version: &str, env: Value) -> String {
    let id = server.deploy(SERVICE, version, env);
    promote_at_gate(server, &id);
    id
}

fn promote_at_gate(server: &RampartServer, id: &str) {
    server.wait_state(id, "paused", TIMEOUT);
    let (status, body) =
        server.post_json(&format!("/api/v1/services/{SERVICE}/promote"), &json!({}));
    assert_eq!(status, 200, "{body}");
    let detail = server.wait_terminal(id, TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
}

#[test]
fn history_lists_the_versions_and_rollback_to_returns_to_an_older_one_with_its_env() {
    let listen = free_addr();
    let server = RampartServer::start_serving(&sample_app_service(SERVICE, listen, 1, STRATEGY));
    let url = format!("http://{listen}/version");
    let v2 = roll_out(&server, "v2", json!({ "SAMPLE_APP_LATENCY_MS": "1" }));
    roll_out(&server, "v3", json!({}));
    assert_serves(&url, "v3", "v3 promoted");

    let revisions = server.get_json(&format!("/api/v1/services/{SERVICE}/history"));
    let rows = revisions.as_array().expect("revisions");
    let summary: Vec<(u64, &str, &str, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap_or(99),
                r["version"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or(""),
                r["serving"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, "v1", "initial", false),
            (1, "v2", "succeeded", false),
            (2, "v3", "succeeded", true)
        ],
        "{revisions}"
    );
    assert_eq!(rows[1]["deployed_by"], "admin", "{revisions}");
    assert!(rows[1]["replaced_at"].is_string(), "{revisions}");

    let shown = text(&cli(&server, &["history", SERVICE]));
    assert!(
        shown.contains("REV") && shown.contains("succeeded (serving)"),
        "{shown}"
    );

    // An unknown version and an unknown revision: clear errors, nothing started.
    let unknown = cli(&server, &["rollback", SERVICE, "--to", "v9", "--no-wait"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("never ran v9; versions it ran: v1, v2, v3"),
        "{}",
        text(&unknown)
    );
    let missing = cli(&server, &["rollback", SERVICE, "--to", "7", "--no-wait"]);
    assert!(
        text(&missing).contains("has no revision 7"),
        "{}",
        text(&missing)
    );

    // Back to v2 by revision number: a rollout of its own, with v2's environment.
    let started = cli(
        &server,
        &[
            "rollback",
            SERVICE,
            "--to",
            "1",
            "--no-wait",
            "--reason",
            "v3 slows checkout",
            "-o",
            "json",
        ],
    );
    assert!(started.status.success(), "{}", text(&started));
    let created: Value = serde_json::from_slice(&started.stdout).expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["version"], "v2");
    promote_at_gate(&server, &id);
    assert_serves(&url, "v2", "rolled back to v2");
    let detail = server.deployment(&id);
    assert_eq!(
        detail["record"]["env"],
        server.deployment(&v2)["record"]["env"],
        "the rollback re-uses v2's per-deploy environment"
    );
    assert!(
        detail["record"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("rollback to v2 (revision 1): v3 slows checkout")),
        "{}",
        detail["record"]["reason"]
    );
    let revisions = server.get_json(&format!("/api/v1/services/{SERVICE}/history"));
    let last = revisions
        .as_array()
        .and_then(|r| r.last())
        .cloned()
        .expect("revision 3");
    assert_eq!(
        (last["revision"].as_u64(), last["version"].as_str()),
        (Some(3), Some("v2"))
    );
    assert_eq!(last["serving"], true);
    // Already serving: refused.
    let again = cli(&server, &["rollback", SERVICE, "--to", "v2", "--no-wait"]);
    assert!(
        text(&again).contains("already the stable version"),
        "{}",
        text(&again)
    );
}

#[test]
fn a_revision_whose_upstream_is_gone_cannot_be_rolled_back_to() {
    let (v1_addr, v2_addr) = (free_addr(), free_addr());
    let v1 = sample_app(v1_addr, "v1");
    let _v2 = sample_app(v2_addr, "v2");
    let listen = free_addr();
    let server = RampartServer::start_serving(&format!(
        "[[service]]\nname = \"{SERVICE}\"\nlisten = \"{listen}\"\n\
         [service.backend]\nkind = \"static\"\nstable = [\"{v1_addr}\"]\ncanary = [\"{v2_addr}\"]\n\n{STRATEGY}"
    ));
    roll_out(&server, "v2", json!({}));
    assert_eq!(
        version_at(&format!("http://{listen}/version")).as_deref(),
        Some("v2")
    );
    drop(v1);
    let refused = cli(&server, &["rollback", SERVICE, "--to", "v1", "--no-wait"]);
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(
        said.contains(&format!(
            "v1 (revision 0) ran at {v1_addr}, which no longer accepts connections"
        )),
        "{said}"
    );
    let list = server.get_json(&format!("/api/v1/services/{SERVICE}/deployments"));
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "nothing was started: {list}"
    );
}
