//! Config reload on the real binary: `rampart reload` (the API) and SIGHUP add,
//! change and remove services while an unchanged one serves under load; a bad file
//! or a change that needs a restart changes nothing and says why; every reload is
//! audited.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;

/// The `[server]` table the harness writes, so a rewritten config keeps it.
fn server_table(server: &RampartServer) -> String {
    format!(
        "[server]\nlisten = \"{}\"\ndata_dir = \"data\"\n\n",
        server.addr
    )
}

fn write_config(server: &RampartServer, services: &str) {
    std::fs::write(
        &server.config_path,
        format!("{}{services}", server_table(server)),
    )
    .expect("write config");
}

fn get_status(url: &str) -> Result<u16, String> {
    client()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn refused(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err()
}

fn reload_cli(server: &RampartServer) -> std::process::Output {
    run_cli_timeout(
        &[
            "reload",
            "--api",
            &server.api,
            "--token",
            &server.admin_token,
        ],
        server.dir.path(),
        Duration::from_secs(60),
    )
}

fn sighup(server: &RampartServer) {
    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("send SIGHUP");
}

/// The config-reload audit entries, oldest first.
fn reload_audits(server: &RampartServer) -> Vec<serde_json::Value> {
    let mut entries = server.audit_actions("config.reload");
    entries.sort_by_key(|e| e["seq"].as_u64());
    entries
}

#[test]
fn a_reload_adds_changes_and_removes_services_without_failing_the_unchanged_one() {
    let steady_addr = free_addr();
    let legacy_addr = free_addr();
    let tuned_addr = free_addr();
    let fresh_addr = free_addr();
    let steady = sample_app_service("steady", steady_addr, 2, "");
    let legacy = sample_app_service("legacy", legacy_addr, 1, "");
    // Answers after 300 ms, well within the default request timeout.
    let tuned = |instances: u32, rest: &str| {
        sample_app_service("tuned", tuned_addr, instances, rest).replace(
            "--version {version}",
            "--version {version} --latency-ms 300",
        )
    };
    let mut server = RampartServer::start_serving(&format!("{steady}{legacy}{}", tuned(1, "")));
    server.wait_serving();
    let tuned_url = format!("http://{tuned_addr}/");
    assert_eq!(get_status(&tuned_url), Ok(200));
    assert_eq!(get_status(&format!("http://{legacy_addr}/")), Ok(200));

    let load = LoadGen::start(format!("http://{steady_addr}/"), 200);
    std::thread::sleep(Duration::from_secs(1));

    // legacy removed, fresh added, tuned: a shorter request timeout, one more
    // instance, other step weights.
    let changed_tuned = tuned(
        2,
        "[service.router]\nrequest_timeout = \"100ms\"\n\n[service.strategy]\nsteps = [{ weight = 20, hold = \"30s\" }, { weight = 60, hold = \"30s\" }]\n",
    );
    let fresh = sample_app_service("fresh", fresh_addr, 1, "");
    write_config(&server, &format!("{steady}{changed_tuned}{fresh}"));
    let output = reload_cli(&server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "rampart reload failed: {stdout}{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    assert!(stdout.contains("+ service fresh added"), "{stdout}");
    assert!(stdout.contains("- service legacy removed"), "{stdout}");
    assert!(
        stdout.contains("~ service tuned: router.request_timeout 30s → 100ms"),
        "{stdout}"
    );
    assert!(
        stdout.contains("~ service tuned: strategy.steps"),
        "{stdout}"
    );
    assert!(
        stdout.contains("~ service tuned: backend.instances 1 → 2"),
        "{stdout}"
    );

    // Added: routed and serving. Removed: its port is closed.
    assert_eq!(get_status(&format!("http://{fresh_addr}/")), Ok(200));
    assert!(
        refused(legacy_addr),
        "the removed service's port must be closed"
    );
    // Changed: the shorter timeout is in force, the size follows the config.
    assert_eq!(get_status(&tuned_url), Ok(504), "request_timeout = 100ms");
    wait_until("tuned runs 2 instances", Duration::from_secs(30), || {
        server.instance_addrs("tuned").len() == 2
    });
    let names: Vec<String> = server
        .get_json("/api/v1/services")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["steady", "tuned", "fresh"]);

    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();
    assert!(report.ok > 200, "the load ran: {report:?}");
    assert_eq!(
        report.failed, 0,
        "the unchanged service failed requests during the reload: {:?}",
        report.failures
    );

    // Audited with the actor and what changed.
    let audits = reload_audits(&server);
    let last = audits.last().expect("the reload is audited");
    assert_eq!(last["actor"], "admin");
    let details = &last["details"];
    assert_eq!(details["outcome"], "applied");
    assert_eq!(details["added"], serde_json::json!(["fresh"]));
    assert_eq!(details["removed"], serde_json::json!(["legacy"]));
    assert_eq!(details["changed"][0]["service"], "tuned");

    // The removed service's instances were stopped; the process still runs.
    assert!(server.child.try_wait().expect("poll").is_none());
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn a_bad_config_or_a_restart_only_change_changes_nothing_and_says_why() {
    let steady_addr = free_addr();
    let steady = sample_app_service("steady", steady_addr, 1, "");
    let mut server = RampartServer::start_serving(&steady);
    server.wait_serving();
    let steady_url = format!("http://{steady_addr}/");

    // A typo: the API answers 422 with check-config's own diagnostics.
    let extra_addr = free_addr();
    let broken = format!(
        "{steady}{}",
        sample_app_service("extra", extra_addr, 1, "").replace("instances = 1", "instanses = 1")
    );
    write_config(&server, &broken);
    let check = run_cli(
        &[
            "check-config",
            "--config",
            server.config_path.to_str().unwrap(),
        ],
        server.dir.path(),
    );
    assert_eq!(check.status.code(), Some(2));
    let diagnostics = String::from_utf8_lossy(&check.stderr).to_string();
    assert!(diagnostics.contains("instanses"), "{diagnostics}");
    let response = client()
        .post(format!("{}/api/v1/reload", server.api))
        .bearer_auth(&server.admin_token)
        .send()
        .expect("POST /api/v1/reload");
    assert_eq!(response.status().as_u16(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().expect("problem");
    let detail = problem["detail"].as_str().unwrap_or_default();
    // The same rustc-style text: the location line and the snippet.
    let located = diagnostics
        .lines()
        .find(|l| l.contains("-->"))
        .expect("check-config prints a location");
    assert!(
        detail.contains(located.trim()),
        "{detail}\n---\n{diagnostics}"
    );
    assert!(detail.contains("instanses"), "{detail}");
    assert!(refused(extra_addr), "nothing of the bad file was applied");

    // The CLI says the same and exits 2, as check-config does.
    let output = reload_cli(&server);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("instanses"));

    // The same file by SIGHUP: logged, audited, nothing changed, still serving.
    sighup(&server);
    wait_until(
        "the SIGHUP reload is audited",
        Duration::from_secs(20),
        || {
            reload_audits(&server)
                .iter()
                .any(|a| a["actor"] == "SIGHUP")
        },
    );
    let audits = reload_audits(&server);
    let by_signal = audits.iter().find(|a| a["actor"] == "SIGHUP").unwrap();
    assert_eq!(by_signal["details"]["outcome"], "invalid");
    assert!(server.log().contains("configuration not reloaded"));
    assert!(server.log().contains("instanses"));
    assert_eq!(get_status(&steady_url), Ok(200));
    assert!(
        server.child.try_wait().expect("poll").is_none(),
        "SIGHUP must not stop rampart"
    );

    // Valid, but the data dir cannot move under a running rampart: refused by name.
    std::fs::write(
        &server.config_path,
        format!(
            "[server]\nlisten = \"{}\"\ndata_dir = \"elsewhere\"\n\n{steady}{}",
            server.addr,
            sample_app_service("extra", extra_addr, 1, "")
        ),
    )
    .unwrap();
    let (status, problem) = server.post_json("/api/v1/reload", &serde_json::json!({}));
    assert_eq!(status, 409, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("`server.data_dir`") && detail.contains("restart"),
        "{detail}"
    );
    assert!(refused(extra_addr), "a refused reload applies nothing");

    // Fixed: SIGHUP applies it.
    write_config(
        &server,
        &format!("{steady}{}", sample_app_service("extra", extra_addr, 1, "")),
    );
    sighup(&server);
    wait_until("the added service serves", Duration::from_secs(30), || {
        get_status(&format!("http://{extra_addr}/")) == Ok(200)
    });
    // The reload is audited once it has been applied, a moment after the new
    // service answers.
    wait_until(
        "the SIGHUP reload is audited",
        Duration::from_secs(10),
        || reload_audits(&server).len() == 5,
    );
    let audits = reload_audits(&server);
    let outcomes: Vec<(&str, &str)> = audits
        .iter()
        .map(|a| {
            (
                a["actor"].as_str().unwrap_or_default(),
                a["details"]["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("admin", "invalid"),
            ("admin", "invalid"),
            ("SIGHUP", "invalid"),
            ("admin", "refused"),
            ("SIGHUP", "applied"),
        ]
    );
    assert_eq!(get_status(&steady_url), Ok(200));
    assert_eq!(server.terminate().code(), Some(0));
}
