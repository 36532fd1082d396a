//! Instances that outlive rampart (`[server] instances_outlive`): a backend that
//! hands over leaves them running, and the next backend over the same ledger takes
//! them over (same pids), launches the dead ones again, and stops what no record
//! claims. Real processes on 127.0.0.1 (`tests/support/test_server.py`, as in
//! `process_backend.rs`); waits poll with a deadline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_backends::{
    Backend, BoxFuture, InstanceLedger, InstanceRecord, ProcessBackend, ProcessOptions, VersionSpec,
};
use rampart_config::ProcessBackendConfig;

const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/test_server.py");
const DEADLINE: Duration = Duration::from_secs(15);

/// The store's part, in memory.
#[derive(Default)]
struct MemoryLedger(Mutex<BTreeMap<String, InstanceRecord>>);

impl InstanceLedger for MemoryLedger {
    fn recorded(&self, service: &str) -> BoxFuture<'_, Result<Vec<InstanceRecord>, String>> {
        let records = self
            .0
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.service == service)
            .cloned()
            .collect();
        Box::pin(async move { Ok(records) })
    }
    fn save(&self, record: InstanceRecord) -> BoxFuture<'_, Result<(), String>> {
        self.0
            .lock()
            .unwrap()
            .insert(record.instance.clone(), record);
        Box::pin(async { Ok(()) })
    }
    fn forget(
        &self,
        _service: &str,
        instance: &str,
        pid: u32,
    ) -> BoxFuture<'_, Result<(), String>> {
        let mut records = self.0.lock().unwrap();
        if records.get(instance).is_some_and(|r| r.pid == pid) {
            records.remove(instance);
        }
        Box::pin(async { Ok(()) })
    }
}

fn config() -> ProcessBackendConfig {
    ProcessBackendConfig {
        command: format!(
            "exec python3 {SERVER} --port {{port}} --version {{version}} --instance {{instance}} --spam-bytes 0"
        ),
        instances: 2,
        ready_path: "/healthz".into(),
        ready_timeout: rampart_config::Duration::from_secs(10),
        env: BTreeMap::new(),
        working_dir: None,
        stop_grace: rampart_config::Duration::from_secs(2),
        log_max_bytes: 1024 * 1024,
        initial_version: "v1".into(),
    }
}

fn backend(dir: &Path, ledger: &Arc<MemoryLedger>) -> ProcessBackend {
    ProcessBackend::with_options(
        "shop",
        config(),
        dir,
        ProcessOptions {
            outlive: true,
            ledger: Some(ledger.clone() as Arc<dyn InstanceLedger>),
        },
    )
    .expect("backend")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kill_group(pid: u32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

async fn answers(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_outlive_the_backend_and_the_next_one_re_adopts_them() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(MemoryLedger::default());

    let first = backend(dir.path(), &ledger);
    let started = first.start(VersionSpec::new("v1", 2)).await.expect("start");
    let pids: Vec<u32> = started.iter().map(|i| i.pid.unwrap()).collect();
    assert_eq!(ledger.0.lock().unwrap().len(), 2, "both launches recorded");
    // rampart exits on purpose: the instances stay.
    first.shutdown().await;
    drop(first);
    for (instance, pid) in started.iter().zip(&pids) {
        assert!(alive(*pid), "{} kept running", instance.id);
        assert!(answers(instance.addr).await);
    }

    // The next rampart takes them over: same pids, same addresses, not restarted.
    let second = backend(dir.path(), &ledger);
    let adopted = second
        .start(VersionSpec::new("v1", 2))
        .await
        .expect("adopt");
    assert_eq!(
        adopted.iter().map(|i| i.pid.unwrap()).collect::<Vec<_>>(),
        pids
    );
    assert_eq!(
        adopted.iter().map(|i| i.addr).collect::<Vec<_>>(),
        started.iter().map(|i| i.addr).collect::<Vec<_>>()
    );
    assert!(adopted.iter().all(|i| i.restarts == 0 && i.is_ready()));
    // An adopted instance that dies is noticed and launched again on its address.
    kill_group(pids[0]);
    wait_until("the adopted instance is restarted", || {
        second.instances("v1")[0]
            .pid
            .is_some_and(|pid| pid != pids[0] && second.instances("v1")[0].is_ready())
    })
    .await;
    assert_eq!(second.instances("v1")[0].addr, started[0].addr);
    // Stopping the version stops adopted processes too (they are not our children).
    second.stop("v1").await.expect("stop");
    wait_until("the adopted instance stopped", || !alive(pids[1])).await;
    assert!(ledger.0.lock().unwrap().is_empty(), "records forgotten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_are_relaunched_and_what_no_record_claims_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(MemoryLedger::default());
    let first = backend(dir.path(), &ledger);
    let started = first.start(VersionSpec::new("v1", 2)).await.expect("start");
    let canary = first
        .start(VersionSpec::new("v2", 1))
        .await
        .expect("canary");
    first.shutdown().await;
    drop(first);
    let dead = started[0].pid.unwrap();
    let kept = started[1].pid.unwrap();
    let canary_pid = canary[0].pid.unwrap();
    kill_group(dead);
    wait_until("the instance died", || !alive(dead)).await;
    // Something else took the dead instance's port meanwhile: a process no record
    // claims, on a recorded port.
    let squatter = std::process::Command::new("python3")
        .args([SERVER, "--port", &started[0].addr.port().to_string()])
        .spawn()
        .expect("squatter");
    let squatter_pid = squatter.id();
    wait_until("the squatter listens", || {
        std::net::TcpStream::connect(started[0].addr).is_ok()
    })
    .await;
    // Reap the squatter when it is stopped, or it stays a zombie of this test.
    let reaper = std::thread::spawn(move || {
        let mut squatter = squatter;
        squatter.wait()
    });

    let second = backend(dir.path(), &ledger);
    let now = second
        .start(VersionSpec::new("v1", 2))
        .await
        .expect("start");
    let relaunched = now[0].pid.unwrap();
    assert_ne!(relaunched, dead, "the dead instance was launched again");
    assert_eq!(now[0].addr, started[0].addr, "on its recorded port");
    assert_eq!(now[1].pid, Some(kept), "the live one was re-adopted");
    assert!(reaper.join().unwrap().is_ok(), "the squatter was stopped");
    assert!(!alive(squatter_pid));
    // v2 is wanted by no deployment: its instance is stopped.
    second.stop_unwanted(&["v1".to_string()]).await;
    wait_until("the unwanted canary stopped", || !alive(canary_pid)).await;
    second.stop("v1").await.expect("stop");
}
