//! Crash safety, end to end: `kill -9` rampart in the middle of a rollout. With
//! `instances_outlive = false` its instances must not outlive it (with the default,
//! they do and are re-adopted: instances_outlive.rs), and the next start must bring the rollout to the
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
    let mut server = RampartServer::start_with_server("instances_outlive = false", &shop(listen));
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
    let mut server = RampartServer::start_with_server(
        "on_restart = \"resume\"\ninstances_outlive = false",
        &shop(listen),
    );
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

// ---------------------------------------------------------------------------------
// Crash trials: `kill -9` at random moments of back-to-back rollouts.

/// Trials in CI; `RAMPART_CRASH_TRIALS=50` (or more) for a long run, and
/// `RAMPART_CRASH_SEED` to replay the moments of an earlier run.
const CI_TRIALS: u64 = 10;
/// The first this many milliseconds of a rollout hold its short phases (validating,
/// starting); every other trial kills in them.
const EARLY_SPAN_MS: u64 = 400;

/// The trial service: the short rollout with 2 s holds, each instance carrying a
/// marker in its environment so that this test's processes are told from any other
/// test's, whatever their ports and versions.
fn trial_service(listen: SocketAddr, marker: &str) -> String {
    short_rollout_service(SERVICE, listen, ["2s", "2s"], "60s").replacen(
        "stop_grace = \"3s\"",
        &format!("stop_grace = \"3s\"\nenv = {{ RAMPART_CRASH_TRIAL = \"{marker}\" }}"),
        1,
    )
}

/// Live processes whose environment holds `RAMPART_CRASH_TRIAL=<marker>`, as
/// `(pid, RAMPART_PORT)`.
fn marked_processes(marker: &str) -> Vec<(u32, Option<u16>)> {
    let needle = format!("RAMPART_CRASH_TRIAL={marker}");
    let mut found = Vec::new();
    for (pid, _) in processes_matching("sample-app") {
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if vars.contains(&needle) {
            let port = vars
                .iter()
                .find_map(|v| v.strip_prefix("RAMPART_PORT="))
                .and_then(|p| p.parse().ok());
            found.push((pid, port));
        }
    }
    found
}

/// The state the store holds for the deployment, read from the file while rampart
/// is down: what the next start recovers from.
fn committed_state(server: &RampartServer, id: &str) -> String {
    let db = rusqlite::Connection::open_with_flags(
        server.data_dir().join("rampart.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the store");
    db.query_row("SELECT state FROM deployments WHERE id = ?1", [id], |row| {
        row.get(0)
    })
    .expect("the deployment is in the store: the deploy call answered 201")
}

/// The end `server.on_restart = "rollback"` (the default) documents for a rollout
/// that was in `committed` when rampart died (docs/OPERATIONS.md).
fn documented_end(committed: &str) -> &'static str {
    match committed {
        "pending" | "validating" => "aborted",
        "starting" | "progressing" | "paused" | "promoting" | "rolling_back" => "rolled_back",
        "succeeded" => "succeeded",
        "rolled_back" => "rolled_back",
        "failed" => "failed",
        "aborted" => "aborted",
        other => panic!("unknown state {other}"),
    }
}

/// A small xorshift generator: the moments must be replayable from a printed seed.
struct Moments(u64);

impl Moments {
    fn next_below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Every transition of the deployment has its audit entry, and so does its creation:
/// they commit in one transaction, so a crash can lose both or neither.
fn assert_every_transition_audited(server: &RampartServer, id: &str, detail: &serde_json::Value) {
    let entries = server.get_json(&format!(
        "/api/v1/audit?subject=service/{SERVICE}/deployment/{id}&limit=1000"
    ));
    let actions: Vec<&str> = entries
        .as_array()
        .expect("audit entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    let transitions: Vec<String> = detail["record"]["rollout"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|t| {
            format!(
                "deployment.{}",
                t["to"]["state"]
                    .as_str()
                    .expect("the state a transition led to")
            )
        })
        .collect();
    let mut expected = vec!["deployment.create".to_string()];
    expected.extend(transitions);
    assert_eq!(
        actions,
        expected,
        "audit entries of deployment {id} against its history:\n{}",
        history(detail)
    );
}

/// Waits until every marked process is an instance the router knows (stable,
/// canary or draining): nothing runs that no record claims.
fn assert_no_unclaimed_instances(server: &RampartServer, marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let known: Vec<u16> = server
            .instance_addrs(SERVICE)
            .iter()
            .map(SocketAddr::port)
            .collect();
        let unclaimed: Vec<_> = marked_processes(marker)
            .into_iter()
            .filter(|(_, port)| port.is_none_or(|p| !known.contains(&p)))
            .collect();
        if unclaimed.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes no instance record claims: {unclaimed:?} (router knows ports {known:?})\n--- rampart log ---\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn killed_at_random_moments_every_rollout_ends_as_documented() {
    let trials = std::env::var("RAMPART_CRASH_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CI_TRIALS);
    let seed = std::env::var("RAMPART_CRASH_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("crash trials: {trials}, RAMPART_CRASH_SEED={seed}");
    let mut moments = Moments(seed);
    let marker = format!("{}-{seed}", std::process::id());
    let listen = free_addr();
    let mut server = RampartServer::start_with_server(
        "instances_outlive = false",
        &trial_service(listen, &marker),
    );
    let load = LoadGen::start(format!("http://{listen}/version"), RPS);
    let mut ends = std::collections::BTreeMap::<String, u32>::new();

    // One rollout undisturbed, to learn how long one takes on this machine now: the
    // kills are drawn over that span and a little past it.
    let started = Instant::now();
    let id = server.deploy(SERVICE, "v2", json!({}));
    let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
    let span_ms = started.elapsed().as_millis() as u64 + 1_000;
    let mut stable = "v2".to_string();
    eprintln!(
        "crash trials: an undisturbed rollout took {} ms",
        span_ms - 1_000
    );

    for trial in 0..trials {
        let version = format!("v{}", trial + 3);
        let id = server.deploy(SERVICE, &version, json!({}));
        let after = if trial.is_multiple_of(2) {
            moments.next_below(EARLY_SPAN_MS)
        } else {
            moments.next_below(span_ms)
        };
        std::thread::sleep(Duration::from_millis(after));
        server.kill9();

        // Every instance dies with rampart (parent-death signal), wherever it was.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !marked_processes(&marker).is_empty() {
            assert!(
                Instant::now() < deadline,
                "trial {trial} (killed {after} ms after deploying {version}): instances outlived rampart: {:?}",
                marked_processes(&marker)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let committed = committed_state(&server, &id);

        server.restart();
        let detail = server.wait_terminal(&id, ROLLOUT_TIMEOUT);
        let end = detail["summary"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            end,
            documented_end(&committed),
            "trial {trial}: killed {after} ms after deploying {version}, while {committed}:\n{}",
            history(&detail)
        );
        *ends.entry(format!("{committed} -> {end}")).or_default() += 1;
        if end == "succeeded" {
            stable = version.clone();
        }
        assert_eq!(stable_version(&server), stable, "trial {trial}");
        assert_serves(
            &format!("http://{listen}/version"),
            &stable,
            "the last successful version serves after the restart",
        );
        assert_every_transition_audited(&server, &id, &detail);
        assert_no_unclaimed_instances(&server, &marker);
    }
    eprintln!("crash trials: committed state at the kill -> end: {ends:?}");
    load.stop();

    let status = server.terminate();
    assert!(status.success(), "rampart exited with {status}");
    assert!(
        marked_processes(&marker).is_empty(),
        "left running after a clean stop: {:?}",
        marked_processes(&marker)
    );
    audit_verifies(&server);
}
