//! Instances outlive rampart (`[server] instances_outlive = true`, the default), end
//! to end on the real binary. Under socket activation (the test plays systemd: it
//! holds the listening sockets and passes them as `LISTEN_FDS`), `kill -9` of
//! rampart under load refuses no connection; the requests wait in the kernel's
//! queue and complete after the restart, served by the same instance processes,
//! re-adopted, none restarted. At a restart a dead instance is launched again on
//! its port, and a process no record claims that listens there is stopped.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{
    RampartServer, free_addr, kill_instances, rampart_bin, sample_app, sample_app_service,
};

const SERVICE: &str = "shop";

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// `rampart serve` as systemd starts it: the API and router sockets as descriptors 3
/// and 4, `LISTEN_FDS=2`, `LISTEN_PID` its own pid.
fn start_activated(
    config: &std::path::Path,
    sockets: [&TcpListener; 2],
    log: &std::path::Path,
) -> Child {
    let fds = [sockets[0].as_raw_fd(), sockets[1].as_raw_fd()];
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            r#"LISTEN_PID=$$ exec "$0" "$@""#,
            rampart_bin(),
            "serve",
            "--config",
        ])
        .arg(config)
        .env("LISTEN_FDS", "2")
        .env("RAMPART_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log));
    // SAFETY: between fork and exec only async-signal-safe calls (dup, dup2).
    unsafe {
        command.pre_exec(move || {
            let high = [nix::libc::dup(fds[0]), nix::libc::dup(fds[1])];
            for (target, fd) in [3, 4].into_iter().zip(high) {
                if fd < 0 || nix::libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command.spawn().expect("spawn rampart")
}

/// One request on a new connection; Err names what went wrong.
fn request(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(30))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /version HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    if response.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "answer: {}",
            response.lines().next().unwrap_or("(none)")
        ))
    }
}

fn pids(data_dir: &std::path::Path) -> std::collections::BTreeMap<String, u32> {
    let mut pids = std::collections::BTreeMap::new();
    for file in std::fs::read_dir(data_dir.join("run").join(SERVICE))
        .expect("run dir")
        .flatten()
    {
        let name = file.file_name().to_string_lossy().into_owned();
        if let (Some(id), Some(pid)) = (
            name.strip_suffix(".pid"),
            std::fs::read_to_string(file.path())
                .ok()
                .and_then(|t| t.split_whitespace().next()?.parse().ok()),
        ) {
            pids.insert(id.to_string(), pid);
        }
    }
    pids
}

fn wait_ready(api: SocketAddr, child: &mut Child, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "rampart exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let ready = reqwest::blocking::Client::new()
            .get(format!("http://{api}/health/liveness"))
            .timeout(Duration::from_secs(2))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rampart did not come up:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Cleanup(std::path::PathBuf, Option<Child>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(child) = &mut self.1 {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_instances(&self.0);
    }
}

#[test]
fn kill_9_under_socket_activation_refuses_nothing_and_re_adopts_every_instance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api_socket = TcpListener::bind("127.0.0.1:0").expect("bind api");
    let router_socket = TcpListener::bind("127.0.0.1:0").expect("bind router");
    let api = api_socket.local_addr().expect("addr");
    let router = router_socket.local_addr().expect("addr");
    let config = dir.path().join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{api}\"\ndata_dir = \"data\"\n\n{}",
            sample_app_service(SERVICE, router, 2, "")
        ),
    )
    .expect("config");
    let log = dir.path().join("rampart.log");
    let data_dir = dir.path().join("data");
    let mut cleanup = Cleanup(data_dir.clone(), None);

    let mut rampart = start_activated(&config, [&api_socket, &router_socket], &log);
    wait_ready(api, &mut rampart, &log);
    request(router).expect("served");
    let before = pids(&data_dir);
    assert_eq!(before.len(), 2);

    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                outcomes.push((Instant::now(), request(router)));
                std::thread::sleep(Duration::from_millis(20));
            }
            outcomes
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rampart.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = rampart.wait();
    // The instances live on without rampart.
    assert!(
        before.values().all(|pid| alive(*pid)),
        "instances outlived the kill"
    );
    std::thread::sleep(Duration::from_millis(700));
    let mut rampart = start_activated(&config, [&api_socket, &router_socket], &log);
    wait_ready(api, &mut rampart, &log);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let outcomes = load.join().expect("load thread");
    cleanup.1 = Some(rampart);

    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let failed: Vec<_> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}\n{text}");
    assert!(
        outcomes.iter().any(|(t, _)| *t > killed_at),
        "requests were made during the outage"
    );
    assert_eq!(pids(&data_dir), before, "the same processes serve");
    assert_eq!(
        text.matches("re-adopted a running instance").count(),
        2,
        "{text}"
    );
    assert!(!text.contains("instance restarted"), "{text}");
}

#[test]
fn a_restart_relaunches_the_dead_and_stops_what_no_record_claims() {
    let listen = free_addr();
    let mut server = RampartServer::start_serving(&sample_app_service(SERVICE, listen, 2, ""));
    let before = server.instance_pids(SERVICE);
    let addrs = server.instance_addrs(SERVICE);
    assert_eq!((before.len(), addrs.len()), (2, 2));
    server.kill9();
    // v1-0 dies while rampart is down, and another process takes its port.
    let dead = before["v1-0"];
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(dead as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(dead) {
        assert!(Instant::now() < deadline, "v1-0 died");
        std::thread::sleep(Duration::from_millis(20));
    }
    let dead_port = {
        // The recorded port of v1-0: the router's instance that no longer answers.
        // The leader thread turns zombie before the other threads have exited and
        // closed the socket they share: wait for the port to close.
        let deadline = Instant::now() + Duration::from_secs(10);
        let free = loop {
            let free: Vec<_> = addrs
                .iter()
                .filter(|a| TcpStream::connect(a).is_err())
                .collect();
            if !free.is_empty() || Instant::now() > deadline {
                break free;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(free.len(), 1, "{free:?}");
        *free[0]
    };
    let squatter = sample_app(dead_port, "squatter");
    let squatter_pid = squatter.0.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(dead_port).is_err() {
        assert!(Instant::now() < deadline, "the squatter listens");
        std::thread::sleep(Duration::from_millis(20));
    }

    server.restart();
    let after = server.instance_pids(SERVICE);
    assert_eq!(
        after["v1-1"], before["v1-1"],
        "the live instance was re-adopted"
    );
    assert_ne!(after["v1-0"], dead, "the dead instance was launched again");
    assert!(alive(after["v1-0"]));
    assert_eq!(
        server.instance_addrs(SERVICE),
        addrs,
        "on its recorded port"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(squatter_pid) {
        assert!(
            Instant::now() < deadline,
            "the squatter on a recorded port was stopped:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.log();
    assert!(
        log.contains("no record claims that listens on a recorded instance's port"),
        "{log}"
    );
    support::assert_serves(&format!("http://{listen}/version"), "v1", "v1 serves");
}
