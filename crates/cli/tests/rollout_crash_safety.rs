//! Crash safety, end to end: `kill -9` rampart in the middle of a rollout. Its
//! instances must not outlive it, and the next start must bring the rollout to the
//! documented end (`server.on_restart`: "rollback" by default, or "resume") with an
//! audit log that still verifies.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    LoadGen, RampartServer, assert_serves, free_addr, history, processes_matching, run_cli_timeout,
    short_rollout_service,
};

const SERVICE: &str = "shop";
const RPS: u32 = 100;
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);

fn shop(listen: SocketAddr) -> String {
    short_rollout_service(SERVICE, listen, ["4s", "2s"], "60s")
}

/// The sample-app processes serving `addr` (the `sh -c` wrapper and the app).
fn instance_processes(addr: SocketAddr) -> Vec<(u32, String)> {
    processes_matching(&format!("sample-app --listen {addr} "))
}

/// Deploys v2 under load, waits until the canary takes traffic, then `kill -9`s
/// rampart and checks that every instance it ran died with it. Returns the
/// deployment id; the load keeps running.
fn kill_rampart_mid_rollout(server: &mut RampartServer, load: &LoadGen) -> String {
    let id = server.deploy(SERVICE, "v2", json!({}));
    server.wait_state(&id, "progressing", ROLLOUT_TIMEOUT);
    let deadline = Instant::now() + ROLLOUT_TIMEOUT;
    while load.report().versions.get("v2").copied().unwrap_or(0) < 10 {
        assert!(Instant::now() < deadline, "no canary traffic");
        std::thread::sleep(Duration::from_millis(50));
    }

    let instances = server.instance_addrs(SERVICE);
    assert!(
        instances.len() >= 3,
        "two stable instances and a canary: {instances:?}"
    );
    for addr in &instances {
        assert!(
            !instance_processes(*addr).is_empty(),
            "instance {addr} is running before the kill"
        );
    }

    // The first step holds 4 s, so the rollout is still on it a moment later.
    let detail = server.deployment(&id);
    assert_eq!(
        detail["summary"]["state"],
        "progressing",
        "{}",
        history(&detail)
    );
    server.kill9();

    // No strays: the kernel's parent-death signal takes every instance down.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let strays: Vec<_> = instances
            .iter()
            .flat_map(|a| instance_processes(*a))
            .collect();
        if strays.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "instances outlived a killed rampart: {strays:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    id
}

fn audit_verifies(server: &RampartServer) {
    let data_dir = server.data_dir();
    let out = run_cli_timeout(
        &[
            "audit",
            "verify",
            "--data-dir",
            data_dir.to_str().expect("utf8 path"),
        ],
        server.dir.path(),
        Duration::from_secs(60),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "audit verify\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stable_version(server: &RampartServer) -> String {
    server.get_json(&format!("/api/v1/services/{SERVICE}/status"))["stable_version"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Stops rampart cleanly and checks that the instances of the second run are gone too.
fn stop_and_check_no_strays(server: &mut RampartServer) {
    let instances = server.instance_addrs(SERVICE);
    assert!(!instances.is_empty());
    let status = server.terminate();
    assert!(status.success(), "rampart exited with {status}");
    let strays: Vec<_> = instances
        .iter()
        .flat_map(|a| instance_processes(*a))
        .collect();
    assert!(
        strays.is_empty(),
        "left running after a clean stop: {strays:?}"
    );
}

#[test]
fn killed_mid_rollout_rolls_back_at_the_next_start_by_default() {
    let listen = free_addr();
    let mut server = RampartServer::start_with_server("", &shop(listen));
    let load = LoadGen::start(format!("http://{listen}/version"), RPS);
    let id = kill_rampart_mid_rollout(&mut server, &load);

    server.restart();
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "rolled_back",
        "{}",
        history(&detail)
    );
    assert!(
        detail["record"]["rollout"]["history"]
            .as_array()
            .expect("history")
            .iter()
            .any(|t| t["to"]["state"] == "rolling_back"
                && t["actor"]["kind"] == "system"
                && t["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("restart policy is rollback"))),
        "rampart rolled back on its own, at the restart:\n{}",
        history(&detail)
    );
    assert_eq!(stable_version(&server), "v1");
    assert_serves(
        &format!("http://{listen}/version"),
        "v1",
        "stable v1 serves after the restart",
    );
    let report = load.stop();
    assert!(report.versions.get("v1").copied().unwrap_or(0) > 0);

    stop_and_check_no_strays(&mut server);
    audit_verifies(&server);
}

#[test]
fn killed_mid_rollout_resumes_and_promotes_with_on_restart_resume() {
    let listen = free_addr();
    let mut server = RampartServer::start_with_server("on_restart = \"resume\"", &shop(listen));
    let load = LoadGen::start(format!("http://{listen}/version"), RPS);
    let id = kill_rampart_mid_rollout(&mut server, &load);

    server.restart();
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
    assert!(
        history(&detail).contains("restart policy is resume"),
        "the rollout was resumed, not redone:\n{}",
        history(&detail)
    );
    assert_eq!(stable_version(&server), "v2");
    assert_serves(
        &format!("http://{listen}/version"),
        "v2",
        "the resumed rollout's version serves",
    );
    load.stop();

    stop_and_check_no_strays(&mut server);
    audit_verifies(&server);
}
