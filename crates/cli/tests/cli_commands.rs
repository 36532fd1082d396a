//! The CLI's commands and exit codes: 0 ok, 1 failure, 2 usage or config error.

mod support;

use support::{RampartServer, run_cli};

#[test]
fn check_config_accepts_good_and_rejects_bad_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[server]\nlisten = \"127.0.0.1:7070\"\n").expect("write");
    let out = run_cli(
        &["check-config", "--config", good.to_str().expect("utf8")],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisen = \"127.0.0.1:7070\"\n").expect("write");
    let out = run_cli(
        &["check-config", "--config", bad.to_str().expect("utf8")],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:2:1"), "{stderr}");
    assert!(stderr.contains("listen"), "{stderr}");
}

#[test]
fn serve_refuses_a_bad_config_before_starting_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("rampart.toml");
    std::fs::write(
        &config,
        "[server]\ndata_dir = \"data\"\n[[service]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\n[service.backend]\nkind = \"static\"\nstable = []\n",
    )
    .expect("write");
    let out = run_cli(
        &["serve", "--config", config.to_str().expect("utf8")],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dir.path().join("data").exists(),
        "no data dir is created for a bad config"
    );
}

#[test]
fn usage_errors_exit_2_and_version_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_cli(&["no-such-command"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let out = run_cli(&["--version"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rampart "));
}

#[test]
fn tokens_offline_and_through_the_api() {
    let mut server = RampartServer::start("");
    let data_dir = server.data_dir();
    let data_dir = data_dir.to_str().expect("utf8");
    let cwd = server.dir.path().to_path_buf();

    // Through the API, with the admin token from the data dir.
    let out = run_cli(
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--role",
            "operator",
            "--api",
            &server.api,
            "--token",
            &server.admin_token,
        ],
        &cwd,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(secret.starts_with("rpt_"), "{secret}");

    // The new operator token cannot manage tokens: 403 is a failure (exit 1).
    let out = run_cli(
        &["token", "list", "--api", &server.api, "--token", &secret],
        &cwd,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));

    server.terminate();

    // Offline, straight on the data dir.
    let out = run_cli(
        &[
            "token",
            "create",
            "--name",
            "viewer1",
            "--role",
            "viewer",
            "--data-dir",
            data_dir,
        ],
        &cwd,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_cli(
        &[
            "token",
            "create",
            "--name",
            "viewer1",
            "--role",
            "viewer",
            "--data-dir",
            data_dir,
        ],
        &cwd,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "duplicate names are a usage error"
    );
    let out = run_cli(
        &[
            "token",
            "create",
            "--name",
            "x",
            "--role",
            "root",
            "--data-dir",
            data_dir,
        ],
        &cwd,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("viewer"),
        "lists allowed roles"
    );
    let out = run_cli(&["token", "revoke", "ci", "--data-dir", data_dir], &cwd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_cli(
        &["token", "list", "--data-dir", data_dir, "--output", "json"],
        &cwd,
    );
    let tokens: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = tokens.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["admin", "ci", "viewer1"]);
    assert!(tokens[1]["revoked_at"].is_string());

    let out = run_cli(&["audit", "verify", "--data-dir", data_dir], &cwd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified"));
}

#[test]
fn audit_verify_exits_1_and_names_the_entry_when_tampered() {
    let mut server = RampartServer::start("");
    server.terminate();
    let db = server.data_dir().join("rampart.db");
    // An attacker with the file: drop the append-only guards and edit history.
    let conn = rusqlite::Connection::open(&db).expect("open db");
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("triggers");
    for t in triggers {
        conn.execute(&format!("DROP TRIGGER {t}"), [])
            .expect("drop trigger");
    }
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", [])
        .expect("edit");
    drop(conn);
    let data_dir = server.data_dir();
    let out = run_cli(
        &[
            "audit",
            "verify",
            "--data-dir",
            data_dir.to_str().expect("utf8"),
        ],
        server.dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("#2"), "{stderr}");
}

#[test]
fn the_first_admin_token_is_saved_readable_only_by_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let server = RampartServer::start("");
    let meta = std::fs::metadata(server.data_dir().join("admin.token")).expect("admin.token");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // The secret is stored only as a hash.
    let db = std::fs::read(server.data_dir().join("rampart.db")).expect("db");
    let needle = server.admin_token.as_bytes();
    assert!(!db.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let server = RampartServer::start("");
    // Same config (same data dir), another API port.
    let config = std::fs::read_to_string(&server.config_path).expect("config");
    let other = support::free_addr();
    let second_config = server.dir.path().join("second.toml");
    std::fs::write(
        &second_config,
        config.replace(&server.addr.to_string(), &other.to_string()),
    )
    .expect("write");
    let out = run_cli(
        &["serve", "--config", second_config.to_str().expect("utf8")],
        server.dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already serving from"), "{stderr}");
    assert!(
        stderr.contains(&server.child.id().to_string()),
        "names the holder: {stderr}"
    );
    // The first server is unaffected.
    let live = support::client()
        .get(format!("{}/health/live", server.api))
        .send()
        .expect("live");
    assert_eq!(live.status(), 200);
}
