//! The process backend against real processes on 127.0.0.1.
//!
//! The instance under test is `tests/support/test_server.py`, run by `python3`:
//! the sample-app binary lives in another package, and `cargo test -p
//! rampart-backends` does not build other packages' binaries, so relying on it would
//! make these tests depend on build order. python3 is present on every CI machine.
//! Waiting for asynchronous effects (a restart, a process disappearing) polls with a
//! deadline; no assertion depends on how long something took.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rampart_backends::{
    Backend, BackendError, BackendEventKind, InstanceState, ProcessBackend, VersionSpec,
};
use rampart_config::ProcessBackendConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/test_server.py");
const DEADLINE: Duration = Duration::from_secs(15);

fn server_command(extra: &str) -> String {
    format!(
        "exec python3 {SERVER} --port {{port}} --version {{version}} --instance {{instance}} {extra}"
    )
}

fn config(command: String) -> ProcessBackendConfig {
    ProcessBackendConfig {
        command,
        instances: 1,
        ready_path: "/healthz".into(),
        ready_timeout: rampart_config::Duration::from_secs(10),
        env: BTreeMap::new(),
        working_dir: None,
        stop_grace: rampart_config::Duration::from_secs(2),
        log_max_bytes: 1024 * 1024,
        initial_version: "v1".into(),
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

/// Gone, or a zombie waiting for a reaper that is not us.
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_gone(pid: u32) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !process_gone(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} is still alive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn read_pid(path: &Path) -> u32 {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no pid in {}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pid_files(data_dir: &Path, service: &str) -> Vec<PathBuf> {
    std::fs::read_dir(data_dir.join("run").join(service))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

async fn next_event_matching(
    events: &mut broadcast::Receiver<rampart_backends::BackendEvent>,
    wanted: impl Fn(&BackendEventKind) -> bool,
) -> rampart_backends::BackendEvent {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = events.recv().await.unwrap();
            if wanted(&event.kind) {
                return event;
            }
        }
    })
    .await
    .expect("the expected backend event never came")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_instances_with_substituted_command_env_and_working_dir() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut cfg = config(server_command(""));
    cfg.env.insert("GREETING".into(), "hello".into());
    cfg.working_dir = Some(work.path().to_path_buf());
    let backend = ProcessBackend::new("checkout", cfg, data.path()).unwrap();

    let instances = backend.start(VersionSpec::new("v7", 3)).await.unwrap();

    assert_eq!(instances.len(), 3);
    assert_eq!(backend.versions(), ["v7"]);
    let cwd = work.path().canonicalize().unwrap();
    for (index, instance) in instances.iter().enumerate() {
        assert_eq!(instance.id, format!("v7-{index}"));
        assert_eq!(instance.state, InstanceState::Ready);
        assert!(instance.addr.ip().is_loopback());
        assert!(instance.pid.is_some());
        let (status, body) = http_get(instance.addr, "/").await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            format!(
                "version=v7 instance={index} port={} greeting=hello cwd={}",
                instance.addr.port(),
                cwd.display()
            )
        );
    }
    assert_eq!(pid_files(data.path(), "checkout").len(), 3);

    let pids: Vec<u32> = instances.iter().filter_map(|i| i.pid).collect();
    backend.shutdown().await;
    for pid in pids {
        wait_gone(pid).await;
    }
    assert!(backend.versions().is_empty());
    assert!(pid_files(data.path(), "checkout").is_empty());
    assert!(matches!(
        backend.start(VersionSpec::new("v8", 1)).await,
        Err(BackendError::ShutDown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_timeout_is_a_clear_error_and_leaves_nothing_running() {
    let data = tempfile::tempdir().unwrap();
    let pids = tempfile::tempdir().unwrap();
    let mut cfg = config(format!(
        "echo $$ > {}/pid-{{instance}}; {}",
        pids.path().display(),
        server_command("--unhealthy")
    ));
    cfg.ready_timeout = rampart_config::Duration::from_millis(1500);
    let backend = ProcessBackend::new("checkout", cfg, data.path()).unwrap();

    let err = backend.start(VersionSpec::new("v2", 2)).await.unwrap_err();

    assert!(matches!(err, BackendError::NotReady { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("instance v2-"), "{message}");
    assert!(message.contains("not ready within 1.5s"), "{message}");
    assert!(message.contains("GET /healthz answered 503"), "{message}");
    assert!(
        message.contains("test server starting on port"),
        "{message}"
    );
    for instance in 0..2 {
        wait_gone(read_pid(&pids.path().join(format!("pid-{instance}"))).await).await;
    }
    assert!(backend.versions().is_empty());
    assert!(backend.instances("v2").is_empty());
    assert!(pid_files(data.path(), "checkout").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_exits_before_ready_reports_its_exit_and_stderr() {
    let data = tempfile::tempdir().unwrap();
    let cfg = config("echo 'config file missing' >&2; exit 7".into());
    let backend = ProcessBackend::new("checkout", cfg, data.path()).unwrap();

    let err = backend.start(VersionSpec::new("v1", 1)).await.unwrap_err();

    let message = err.to_string();
    assert!(
        matches!(err, BackendError::ExitedBeforeReady { .. }),
        "{err:?}"
    );
    assert!(
        message.contains("instance v1-0 exited before it was ready (exit code 7)"),
        "{message}"
    );
    assert!(message.contains("config file missing"), "{message}");
    assert!(backend.versions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instance_is_restarted_on_the_same_address() {
    let data = tempfile::tempdir().unwrap();
    let backend = ProcessBackend::new("checkout", config(server_command("")), data.path()).unwrap();
    let mut events = backend.subscribe();
    let before = backend
        .start(VersionSpec::new("v1", 1))
        .await
        .unwrap()
        .remove(0);
    let old_pid = before.pid.unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let crashed = next_event_matching(&mut events, |kind| {
        matches!(kind, BackendEventKind::InstanceCrashed { .. })
    })
    .await;
    assert_eq!(
        crashed.kind,
        BackendEventKind::InstanceCrashed {
            instance: "v1-0".into(),
            reason: "killed by SIGKILL".into()
        }
    );
    let restarted = next_event_matching(&mut events, |kind| {
        matches!(kind, BackendEventKind::InstanceRestarted { .. })
    })
    .await;
    let after = &restarted.instances[0];
    assert_eq!(after.addr, before.addr);
    assert_eq!(after.state, InstanceState::Ready);
    assert_eq!(after.restarts, 1);
    assert_ne!(after.pid, Some(old_pid));
    assert_eq!(backend.instances("v1"), restarted.instances);
    assert_eq!(http_get(after.addr, "/healthz").await, (200, "ok".into()));

    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_the_whole_process_group_including_grandchildren() {
    let data = tempfile::tempdir().unwrap();
    let pids = tempfile::tempdir().unwrap();
    let cfg = config(format!(
        "sleep 1000 & echo $! > {}/sleep-{{instance}}; {}",
        pids.path().display(),
        server_command("")
    ));
    let backend = ProcessBackend::new("checkout", cfg, data.path()).unwrap();
    let mut events = backend.subscribe();
    let instance = backend
        .start(VersionSpec::new("v1", 1))
        .await
        .unwrap()
        .remove(0);
    let sleep_pid = read_pid(&pids.path().join("sleep-0")).await;
    assert!(!process_gone(sleep_pid));

    backend.stop("v1").await.unwrap();

    wait_gone(sleep_pid).await;
    wait_gone(instance.pid.unwrap()).await;
    assert!(backend.versions().is_empty());
    let stopped = next_event_matching(&mut events, |kind| *kind == BackendEventKind::Stopped).await;
    assert!(stopped.instances.is_empty());
    // Stopping again is not an error: a controller may repeat it after a crash.
    backend.stop("v1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_escalates_to_sigkill_when_sigterm_is_ignored() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(format!("trap '' TERM; {}", server_command("")));
    cfg.stop_grace = rampart_config::Duration::from_millis(300);
    let backend = ProcessBackend::new("checkout", cfg, data.path()).unwrap();
    let instance = backend
        .start(VersionSpec::new("v1", 1))
        .await
        .unwrap()
        .remove(0);

    backend.stop("v1").await.unwrap();

    wait_gone(instance.pid.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_output_goes_to_bounded_log_files() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(server_command("--spam-bytes 100000"));
    cfg.log_max_bytes = 4096;
    let backend = ProcessBackend::new("checkout", cfg, data.path()).unwrap();
    backend.start(VersionSpec::new("v1", 1)).await.unwrap();
    let (stdout, stderr) = backend.log_paths("v1", 0);
    let rotated = PathBuf::from(format!("{}.1", stdout.display()));
    assert_eq!(stdout, data.path().join("logs/checkout/v1-0.stdout.log"));

    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !rotated.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stdout was never rotated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    backend.stop("v1").await.unwrap();

    let current = std::fs::metadata(&stdout).unwrap().len();
    let previous = std::fs::metadata(&rotated).unwrap().len();
    assert!(current + previous <= 4096, "{current} + {previous}");
    assert_eq!(previous, 2048);
    let stderr_text = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        stderr_text.contains("test server starting on port"),
        "{stderr_text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_previous_run_are_killed_when_the_backend_starts() {
    let data = tempfile::tempdir().unwrap();
    let run_dir = data.path().join("run/checkout");
    std::fs::create_dir_all(&run_dir).unwrap();
    let spawn_group = || {
        std::process::Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let start_time = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap()
    };
    // A group recorded by "the previous run", and a pid recorded with another start
    // time: that pid now belongs to an unrelated process, which must survive.
    let mut leftover = spawn_group();
    let mut unrelated = spawn_group();
    std::fs::write(
        run_dir.join("v1-0.pid"),
        format!("{} {}\n", leftover.id(), start_time(leftover.id())),
    )
    .unwrap();
    std::fs::write(
        run_dir.join("v1-1.pid"),
        format!("{} {}\n", unrelated.id(), start_time(unrelated.id()) + 1),
    )
    .unwrap();

    let _backend =
        ProcessBackend::new("checkout", config(server_command("")), data.path()).unwrap();

    let status = tokio::task::spawn_blocking(move || leftover.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.signal(), Some(9));
    assert!(unrelated.try_wait().unwrap().is_none());
    assert!(pid_files(data.path(), "checkout").is_empty());
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
}

#[test]
fn leftovers_of_a_service_no_longer_configured_are_killed_at_start() {
    let data = tempfile::tempdir().unwrap();
    let start_time = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap()
    };
    let spawn_recorded = |service: &str| {
        let dir = data.path().join("run").join(service);
        std::fs::create_dir_all(&dir).unwrap();
        let child = std::process::Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .unwrap();
        std::fs::write(
            dir.join("v1-0.pid"),
            format!("{} {}\n", child.id(), start_time(child.id())),
        )
        .unwrap();
        child
    };
    // "gone" was removed from the config; "checkout" is still configured, and its
    // own backend deals with its pid files.
    let mut gone = spawn_recorded("gone");
    let mut kept = spawn_recorded("checkout");

    let killed =
        rampart_backends::kill_leftovers_of_unconfigured(data.path(), &["checkout"]).unwrap();

    assert_eq!(killed, vec![gone.id()]);
    assert_eq!(gone.wait().unwrap().signal(), Some(9));
    assert!(
        kept.try_wait().unwrap().is_none(),
        "a configured service's instance is left to its backend"
    );
    assert!(!data.path().join("run/gone").exists());
    assert_eq!(pid_files(data.path(), "checkout").len(), 1);
    kept.kill().unwrap();
    kept.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_up_and_down() {
    let data = tempfile::tempdir().unwrap();
    let backend = ProcessBackend::new("checkout", config(server_command("")), data.path()).unwrap();
    let mut events = backend.subscribe();
    backend.start(VersionSpec::new("v1", 1)).await.unwrap();

    let grown = backend.scale("v1", 3).await.unwrap();
    let ids: Vec<&str> = grown.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["v1-0", "v1-1", "v1-2"]);
    for instance in &grown {
        assert_eq!(instance.state, InstanceState::Ready);
        assert_eq!(http_get(instance.addr, "/healthz").await.0, 200);
    }
    let scaled = next_event_matching(&mut events, |kind| *kind == BackendEventKind::Scaled).await;
    assert_eq!(scaled.instances.len(), 3);

    let shrunk = backend.scale("v1", 1).await.unwrap();
    assert_eq!(shrunk, vec![grown[0].clone()]);
    for removed in &grown[1..] {
        wait_gone(removed.pid.unwrap()).await;
    }

    assert!(matches!(
        backend.scale("v9", 2).await,
        Err(BackendError::UnknownVersion { .. })
    ));
    assert!(matches!(
        backend.scale("v1", 0).await,
        Err(BackendError::InvalidSpec { .. })
    ));
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_a_running_version_adopts_it() {
    let data = tempfile::tempdir().unwrap();
    let backend = ProcessBackend::new("checkout", config(server_command("")), data.path()).unwrap();
    let first = backend.start(VersionSpec::new("v1", 2)).await.unwrap();
    let again = backend.start(VersionSpec::new("v1", 2)).await.unwrap();
    assert_eq!(first, again);
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_specs_it_cannot_run() {
    let data = tempfile::tempdir().unwrap();
    let backend = ProcessBackend::new("checkout", config(server_command("")), data.path()).unwrap();
    let shell = backend
        .start(VersionSpec::new("v1;reboot", 1))
        .await
        .unwrap_err();
    assert!(
        shell.to_string().contains("not allowed in a version label"),
        "{shell}"
    );
    let none = backend.start(VersionSpec::new("v1", 0)).await.unwrap_err();
    assert!(none.to_string().contains("at least one instance"), "{none}");
    let addressed = backend
        .start(VersionSpec::new("v1", 1).with_addresses(vec!["127.0.0.1:9".parse().unwrap()]))
        .await
        .unwrap_err();
    assert!(
        addressed.to_string().contains("picks its own"),
        "{addressed}"
    );
    assert!(backend.versions().is_empty());
}

#[test]
fn needs_a_tokio_runtime() {
    let data = tempfile::tempdir().unwrap();
    let err = ProcessBackend::new("checkout", config(server_command("")), data.path())
        .err()
        .unwrap();
    assert!(matches!(err, BackendError::NoRuntime));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_restart_is_reported_and_retried_with_backoff() {
    let data = tempfile::tempdir().unwrap();
    let markers = tempfile::tempdir().unwrap();
    // Starts once; every later launch fails, as a release with a broken dependency would.
    let cfg = config(format!(
        "if [ -e {dir}/started ]; then echo 'database unreachable' >&2; exit 1; fi; touch {dir}/started; {server}",
        dir = markers.path().display(),
        server = server_command("")
    ));
    let backend = ProcessBackend::new("checkout", cfg, data.path()).unwrap();
    let mut events = backend.subscribe();
    let instance = backend
        .start(VersionSpec::new("v1", 1))
        .await
        .unwrap()
        .remove(0);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(instance.pid.unwrap() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let failed = next_event_matching(&mut events, |kind| {
        matches!(kind, BackendEventKind::RestartFailed { .. })
    })
    .await;
    let BackendEventKind::RestartFailed {
        instance: id,
        error,
        retry_in_ms,
    } = failed.kind
    else {
        unreachable!()
    };
    assert_eq!(id, "v1-0");
    assert!(
        error.contains("exit code 1") && error.contains("database unreachable"),
        "{error}"
    );
    // First retry came after 1s; the next waits twice as long.
    assert_eq!(retry_in_ms, 2000);
    assert_eq!(failed.instances[0].state, InstanceState::Crashed);
    assert_eq!(failed.instances[0].addr, instance.addr);

    backend.stop("v1").await.unwrap();
    assert!(backend.versions().is_empty());
}
