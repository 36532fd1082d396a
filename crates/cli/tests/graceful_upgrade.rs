//! Graceful upgrade, end to end on the real binary: `rampart serve --upgrade` (and
//! SIGUSR2) under steady load hands the listening sockets, the data-dir lock, the
//! instances and the rollouts in flight to a new process. Not one request fails,
//! the instances keep their pids, and a rollout in flight finishes with its outcome.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    LoadGen, RampartServer, free_addr, history, sample_app_service, short_rollout_service,
};

const SERVICE: &str = "shop";
const RPS: u32 = 500;

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// The pid the data-dir lock names (its holder writes it).
fn lock_holder(server: &RampartServer) -> u32 {
    std::fs::read_to_string(server.data_dir().join("rampart.lock"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .expect("the lock file names its holder")
}

fn load_for(url: String, warm_up: Duration) -> LoadGen {
    let load = LoadGen::start(url, RPS);
    std::thread::sleep(warm_up);
    load
}

#[test]
fn an_upgrade_under_load_fails_no_request_and_keeps_every_instance() {
    let listen = free_addr();
    let mut server = RampartServer::start_serving(&sample_app_service(SERVICE, listen, 2, ""));
    let pids = server.instance_pids(SERVICE);
    assert_eq!(pids.len(), 2, "{pids:?}");
    let old_pid = server.child.id();

    let load = load_for(format!("http://{listen}/version"), Duration::from_secs(1));
    server.upgrade();
    let new_pid = server.child.id();
    assert_eq!(lock_holder(&server), new_pid, "the data-dir lock moved");
    // More traffic through the new process alone.
    std::thread::sleep(Duration::from_secs(1));

    // SIGUSR2 to the running rampart: it starts the successor itself.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(new_pid as i32),
        nix::sys::signal::Signal::SIGUSR2,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "SIGUSR2 did not hand over:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let third = lock_holder(&server);
    assert!(third != new_pid && third != old_pid && alive(third));
    let deadline = Instant::now() + Duration::from_secs(30);
    while support::client()
        .get(format!("{}/health/liveness", server.api))
        .send()
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the third rampart serves");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();

    assert_eq!(
        report.failed,
        0,
        "failed requests: {:?}\n{}",
        report.failures,
        server.log()
    );
    assert!(
        report.ok >= u64::from(RPS),
        "steady load was served: {report:?}"
    );
    assert_eq!(
        server.instance_pids(SERVICE),
        pids,
        "the same instances serve"
    );
    assert!(pids.values().all(|pid| alive(*pid)));
    let log = server.log();
    assert_eq!(
        log.matches("re-adopted a running instance").count(),
        4,
        "{log}"
    );
    assert!(!log.contains("instance restarted"), "{log}");

    // The successor started by SIGUSR2 is nobody's child here: stop it by its pid.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(third as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(third) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(third), "the last rampart stopped");
    // Instances outlive rampart by default.
    assert!(pids.values().all(|pid| alive(*pid)));
}

#[test]
fn a_failed_new_process_leaves_the_old_one_serving() {
    let listen = free_addr();
    let mut server = RampartServer::start_serving(&sample_app_service(SERVICE, listen, 1, ""));
    let pids = server.instance_pids(SERVICE);
    let config = std::fs::read_to_string(&server.config_path).expect("config");
    // The new process cannot start its API: the address in the config is taken (and
    // not one of the handed-over sockets).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let bad = config.replacen(
        &server.addr.to_string(),
        &taken.local_addr().expect("addr").to_string(),
        1,
    );
    let bad_path = server.dir.path().join("bad.toml");
    std::fs::write(&bad_path, bad).expect("write");
    let load = load_for(
        format!("http://{listen}/version"),
        Duration::from_millis(500),
    );
    let output = std::process::Command::new(support::rampart_bin())
        .args(["serve", "--upgrade", "--config"])
        .arg(&bad_path)
        .output()
        .expect("run rampart serve --upgrade");
    assert!(!output.status.success());
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "the old rampart serves on"
    );
    assert_eq!(lock_holder(&server), server.child.id());
    assert_eq!(server.instance_pids(SERVICE), pids);
    // ... and can still hand over once the cause is fixed.
    server.upgrade();
    assert_eq!(server.instance_pids(SERVICE), pids);
}

#[test]
fn a_rollout_in_flight_continues_across_an_upgrade_with_its_evidence() {
    let listen: SocketAddr = free_addr();
    // on_restart is "rollback" (the default): a planned handover resumes anyway.
    let mut server =
        RampartServer::start_serving(&short_rollout_service(SERVICE, listen, ["8s", "3s"], "90s"));
    let load = LoadGen::start(format!("http://{listen}/version"), 200);
    let id = server.deploy(SERVICE, "v2", json!({}));
    server.wait_state(&id, "progressing", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.report().versions.get("v2").copied().unwrap_or(0) < 50 {
        assert!(Instant::now() < deadline, "no canary traffic");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = server.instance_pids(SERVICE);
    assert!(
        before.keys().any(|id| id.starts_with("v2-")),
        "the canary runs: {before:?}"
    );
    assert_eq!(
        server.deployment(&id)["summary"]["state"],
        "progressing",
        "still on the first step at the upgrade"
    );
    server.upgrade();
    let detail = server.wait_terminal(&id, Duration::from_secs(120));
    let report = load.stop();

    assert_eq!(
        detail["summary"]["state"],
        "succeeded",
        "{}",
        history(&detail)
    );
    let history = history(&detail);
    assert!(
        history.contains("restart policy is resume"),
        "resumed after the upgrade: {history}"
    );
    let log = server.log();
    assert!(
        log.contains("the judge continues from its stored evidence"),
        "the evidence was carried over:\n{log}"
    );
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    // The canary's instances were re-adopted, not launched again.
    for (id, pid) in before.iter().filter(|(id, _)| id.starts_with("v2-")) {
        assert!(
            log.contains(&format!("instance={id} pid={pid}")),
            "canary instance {id} was re-adopted:\n{log}"
        );
    }
}
