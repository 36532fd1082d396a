//! Runs the real `rampart` binary on loopback for end-to-end tests.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn rampart_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

/// A free port on 127.0.0.1 (bound then released; good enough for tests).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

pub struct RampartServer {
    pub child: Child,
    pub api: String,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub admin_token: String,
}

impl RampartServer {
    /// Starts `rampart serve` with `[server]` filled in and `services_toml` appended.
    pub fn start(services_toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = free_addr();
        let config =
            format!("[server]\nlisten = \"{addr}\"\ndata_dir = \"data\"\n\n{services_toml}");
        let config_path = dir.path().join("rampart.toml");
        std::fs::write(&config_path, config).expect("write config");
        Self::start_with(dir, config_path, addr)
    }

    pub fn start_with(dir: tempfile::TempDir, config_path: PathBuf, addr: SocketAddr) -> Self {
        let log = std::fs::File::create(dir.path().join("rampart.log")).expect("log file");
        let child = Command::new(rampart_bin())
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("RAMPART_LOG", "info")
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn rampart serve");
        let api = format!("http://{addr}");
        let mut server = RampartServer {
            child,
            api,
            addr,
            dir,
            config_path,
            admin_token: String::new(),
        };
        server.wait_live();
        server.admin_token = std::fs::read_to_string(server.data_dir().join("admin.token"))
            .expect("admin.token written on first start")
            .trim()
            .to_string();
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rampart.log")).unwrap_or_default()
    }

    fn wait_live(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rampart exited early with {status}:\n{}", self.log());
            }
            if std::net::TcpStream::connect(self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "rampart did not start listening on {}:\n{}",
            self.addr,
            self.log()
        );
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "rampart did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RampartServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run_cli(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(rampart_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("RAMPART_TOKEN")
        .env_remove("RAMPART_API")
        .output()
        .expect("run rampart")
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub fn client_from(local: [u8; 4]) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .local_address(std::net::IpAddr::from(local))
        .build()
        .expect("client")
}
