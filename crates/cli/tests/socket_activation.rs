//! systemd socket activation and readiness, with the test playing systemd: it owns
//! the listening sockets of the API and of a service's router, starts rampart with
//! them as `LISTEN_FDS`, waits for `READY=1` on its `NOTIFY_SOCKET`, kills rampart
//! with SIGKILL under load and starts it again on the same sockets. While rampart is
//! down the kernel queues connections on the sockets the test holds: no connection
//! is refused, and the requests made during the outage are answered after restart.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{free_addr, rampart_bin, sample_app};

/// Starts `rampart serve` the way systemd does: the sockets as descriptors 3 and 4,
/// `LISTEN_FDS=2`, `LISTEN_PID` = rampart's own pid (set by the shell it replaces).
fn start_activated(
    config: &std::path::Path,
    sockets: [&TcpListener; 2],
    notify: &std::path::Path,
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
        .env("NOTIFY_SOCKET", notify)
        .env("RAMPART_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log));
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl).
    unsafe {
        command.pre_exec(move || {
            // Move the sockets to 3 and 4 without losing one to the other's dup2.
            let high = [nix::libc::dup(fds[0]), nix::libc::dup(fds[1])];
            for (target, fd) in [3, 4].into_iter().zip(high) {
                if fd < 0 || nix::libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // dup2 clears close-on-exec on the target: rampart inherits it.
            }
            Ok(())
        });
    }
    command.spawn().expect("spawn rampart")
}

fn wait_ready(notify: &UnixDatagram, child: &mut Child, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "rampart exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        match notify.recv(&mut buf) {
            Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("READY=1") => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("notify socket: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "no READY=1 from rampart:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// One request on a new connection; Err names what went wrong.
fn request(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(30))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
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

#[test]
fn a_killed_rampart_restarted_on_its_sockets_refuses_no_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = free_addr();
    let _app = sample_app(upstream, "v1");
    let api_socket = TcpListener::bind("127.0.0.1:0").expect("bind api");
    let router_socket = TcpListener::bind("127.0.0.1:0").expect("bind router");
    let api = api_socket.local_addr().expect("addr");
    let router = router_socket.local_addr().expect("addr");
    let config = dir.path().join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "{api}"
data_dir = "data"

[[service]]
name = "shop"
listen = "{router}"

[service.backend]
kind = "static"
stable = ["{upstream}"]
"#
        ),
    )
    .expect("config");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let log = dir.path().join("rampart.log");

    let mut rampart = start_activated(&config, [&api_socket, &router_socket], &notify_path, &log);
    wait_ready(&notify, &mut rampart, &log);
    request(router).expect("served through the inherited router socket");
    let live = reqwest::blocking::get(format!("http://{api}/health/live")).expect("api");
    assert!(
        live.status().is_success(),
        "the API answers on its inherited socket"
    );

    // Steady requests, each on a new connection, while rampart is killed and restarted.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                outcomes.push((started, request(router)));
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
    // An outage long enough for requests to queue on the sockets.
    std::thread::sleep(Duration::from_millis(700));
    let mut rampart = start_activated(&config, [&api_socket, &router_socket], &notify_path, &log);
    wait_ready(&notify, &mut rampart, &log);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let outcomes = load.join().expect("load thread");

    let refused: Vec<_> = outcomes
        .iter()
        .filter(|(_, r)| r.as_ref().is_err_and(|e| e.contains("refused")))
        .collect();
    assert!(refused.is_empty(), "connections refused: {refused:?}");
    // Requests begun after the kill waited in the queue and were answered.
    let during: Vec<_> = outcomes.iter().filter(|(t, _)| *t > killed_at).collect();
    assert!(!during.is_empty(), "requests were made during the outage");
    let failed_during: Vec<_> = during.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed_during.is_empty(),
        "requests made while rampart was down all complete after restart: {failed_during:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = rampart.kill();
    let _ = rampart.wait();
}
