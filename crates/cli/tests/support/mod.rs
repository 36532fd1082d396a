//! Runs the real `rampart` binary on loopback for end-to-end tests.
#![allow(dead_code)]

pub mod certs;
pub mod receiver;

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
        // Appending: a successor (graceful upgrade) writes to the same file meanwhile.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("rampart.log"))
            .expect("log file");
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
        kill_instances(&self.data_dir());
    }
}

/// Instances outlive rampart (`instances_outlive`, the default): a test that ends
/// stops those its pid files name, or they would run on after it.
pub fn kill_instances(data_dir: &Path) {
    let Ok(services) = std::fs::read_dir(data_dir.join("run")) else {
        return;
    };
    for service in services.flatten() {
        let Ok(files) = std::fs::read_dir(service.path()) else {
            continue;
        };
        for file in files.flatten() {
            let pid = std::fs::read_to_string(file.path())
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse::<i32>().ok());
            if let Some(pid) = pid.filter(|pid| *pid > 1) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
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

// ---------------------------------------------------------------------------------
// Rollout end-to-end helpers: services made of this binary's own `sample-app`, the
// API as JSON, a steady load generator, and a look at the process table.

/// A `[[service]]` on the process backend whose instances are this binary's own
/// `sample-app`, listening on `listen`; `rest` adds its strategy, analysis, etc.
pub fn sample_app_service(name: &str, listen: SocketAddr, instances: u32, rest: &str) -> String {
    let exe = rampart_bin().replace('\'', r"'\''");
    format!(
        r#"[[service]]
name = "{name}"
listen = "{listen}"

[service.backend]
kind = "process"
command = "'{exe}' sample-app --listen 127.0.0.1:{{port}} --version {{version}}"
instances = {instances}
ready_timeout = "20s"
stop_grace = "3s"

{rest}
"#
    )
}

/// Terminal deployment states.
pub const TERMINAL_STATES: [&str; 4] = ["succeeded", "rolled_back", "failed", "aborted"];

impl RampartServer {
    /// Starts `rampart serve` with `server_extra` added to `[server]` (e.g.
    /// `on_restart = "resume"`) and `services_toml` appended.
    pub fn start_with_server(server_extra: &str, services_toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = free_addr();
        let config = format!(
            "[server]\nlisten = \"{addr}\"\ndata_dir = \"data\"\n{server_extra}\n\n{services_toml}"
        );
        let config_path = dir.path().join("rampart.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut server = Self::start_with(dir, config_path, addr);
        server.wait_serving();
        server
    }

    /// Like [`RampartServer::start`], but returns only once the API answers, that is
    /// once every service's stable version has started (the API's port is bound
    /// before that, so a bare connect succeeds early).
    pub fn start_serving(services_toml: &str) -> Self {
        let mut server = Self::start(services_toml);
        server.wait_serving();
        server
    }

    /// `kill -9`: no shutdown code of rampart's runs.
    pub fn kill9(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Starts rampart again on the same config, data dir and API address (the log
    /// is appended to). The previous process must have exited.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.path().join("rampart.log"))
            .expect("log file");
        self.child = Command::new(rampart_bin())
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .env("RAMPART_LOG", "info")
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn rampart serve");
        self.wait_serving();
    }

    /// `rampart serve --upgrade` on the same config: the new process takes over and
    /// the old one (this server's child) drains and exits, successfully. The new one
    /// becomes this server's child.
    pub fn upgrade(&mut self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.path().join("rampart.log"))
            .expect("log file");
        let new = Command::new(rampart_bin())
            .args(["serve", "--upgrade", "--config"])
            .arg(&self.config_path)
            .env("RAMPART_LOG", "info")
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn rampart serve --upgrade");
        let mut old = std::mem::replace(&mut self.child, new);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Ok(Some(status)) = old.try_wait() {
                break status;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let _ = old.kill();
                panic!("the new rampart exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the old rampart did not hand over:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "the old rampart exited with {status}:\n{}",
            self.log()
        );
        self.wait_serving();
    }

    /// The pid of each instance of `service`, by instance id, from the pid files.
    pub fn instance_pids(&self, service: &str) -> std::collections::BTreeMap<String, u32> {
        let mut pids = std::collections::BTreeMap::new();
        let Ok(files) = std::fs::read_dir(self.data_dir().join("run").join(service)) else {
            return pids;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".pid") else {
                continue;
            };
            if let Some(pid) = std::fs::read_to_string(file.path())
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse().ok())
            {
                pids.insert(id.to_string(), pid);
            }
        }
        pids
    }

    /// Polls until the API answers its liveness probe over HTTP.
    pub fn wait_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = client();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rampart exited early with {status}:\n{}", self.log());
            }
            let live = client
                .get(format!("{}/health/liveness", self.api))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if live {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "rampart did not come back on {}:\n{}",
            self.addr,
            self.log()
        );
    }

    /// GET an API path with the admin token; panics unless it answers 2xx.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let response = client()
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.admin_token)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let text = response.text().unwrap_or_default();
        assert!(status.is_success(), "GET {path}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// POST a JSON body with the admin token; the status code and the parsed body.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send_json(reqwest::Method::POST, path, body)
    }

    /// PUT a JSON body with the admin token; the status code and the parsed body.
    pub fn put_json(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send_json(reqwest::Method::PUT, path, body)
    }

    fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = client()
            .request(method.clone(), format!("{}{path}", self.api))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, value)
    }

    /// Starts a rollout and returns the deployment id; panics unless it was accepted.
    pub fn deploy(&self, service: &str, version: &str, env: serde_json::Value) -> String {
        let (status, body) = self.post_json(
            &format!("/api/v1/services/{service}/deployments"),
            &serde_json::json!({ "version": version, "env": env, "reason": "end-to-end test" }),
        );
        assert_eq!(status, 201, "deploy {service} {version}: {body}");
        body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {body}"))
            .to_string()
    }

    /// The deployment in full (`summary`, `record`, `analysis`, `events`, ...).
    pub fn deployment(&self, id: &str) -> serde_json::Value {
        self.get_json(&format!("/api/v1/deployments/{id}"))
    }

    /// Polls the deployment until `done` holds for it; panics with the deployment and
    /// the log after `timeout`.
    pub fn wait_deployment(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let detail = self.deployment(id);
            if done(&detail) {
                return detail;
            }
            if Instant::now() >= deadline {
                panic!(
                    "deployment {id} did not reach {what} within {timeout:?}: state {}\n{}\n--- rampart log ---\n{}",
                    detail["summary"]["state"],
                    serde_json::to_string_pretty(&detail["record"]["rollout"]["history"])
                        .unwrap_or_default(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the deployment ends and returns its detail.
    pub fn wait_terminal(&self, id: &str, timeout: Duration) -> serde_json::Value {
        self.wait_deployment(id, timeout, "a terminal state", |d| {
            d["summary"]["state"]
                .as_str()
                .is_some_and(|s| TERMINAL_STATES.contains(&s))
        })
    }

    /// Waits until the deployment is in `state`.
    pub fn wait_state(&self, id: &str, state: &str, timeout: Duration) -> serde_json::Value {
        self.wait_deployment(id, timeout, state, |d| d["summary"]["state"] == state)
    }

    /// Audit entries with this action, oldest first.
    pub fn audit_actions(&self, action: &str) -> Vec<serde_json::Value> {
        self.get_json(&format!("/api/v1/audit?action={action}&limit=1000"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls until an audit entry with `action` exists; returns them all.
    pub fn wait_audit(&self, action: &str, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let entries = self.audit_actions(action);
            if !entries.is_empty() {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "no audit entry `{action}` within {timeout:?}\n--- rampart log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The listen addresses of every instance the router knows for the service
    /// (stable, canary and removed ones).
    pub fn instance_addrs(&self, service: &str) -> Vec<SocketAddr> {
        let traffic = self.get_json(&format!("/api/v1/services/{service}/traffic"));
        let mut addrs = Vec::new();
        let mut collect = |list: &serde_json::Value| {
            for instance in list.as_array().into_iter().flatten() {
                if let Some(addr) = instance["addr"].as_str().and_then(|a| a.parse().ok()) {
                    addrs.push(addr);
                }
            }
        };
        collect(&traffic["stable"]["instances"]);
        collect(&traffic["canary"]["instances"]);
        collect(&traffic["removed"]);
        addrs.sort();
        addrs.dedup();
        addrs
    }
}

/// Live (non-zombie) processes whose command line contains `needle`, as
/// `(pid, command line)`.
pub fn processes_matching(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if !cmdline.contains(needle) {
            continue;
        }
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s == "Z"))
            })
            .unwrap_or(true);
        if !zombie {
            found.push((pid, cmdline));
        }
    }
    found
}

/// GET `url` and the `version` field of its JSON body.
pub fn version_at(url: &str) -> Option<String> {
    let response = client().get(url).send().ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: serde_json::Value = response.json().ok()?;
    body["version"].as_str().map(str::to_string)
}

/// What a load generator saw.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    /// The first failures, as "status or error" text.
    pub failures: Vec<String>,
    /// Successful answers by the version that gave them.
    pub versions: std::collections::BTreeMap<String, u64>,
}

#[derive(Default)]
struct LoadCounters {
    sent: std::sync::atomic::AtomicU64,
    ok: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    details: std::sync::Mutex<(Vec<String>, std::collections::BTreeMap<String, u64>)>,
}

/// Real HTTP GETs of `url` at a steady rate from a few threads, each request
/// counted as ok (2xx) or failed (anything else, or no answer), until stopped.
pub struct LoadGen {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Requests per second, changeable while running ([`LoadGen::set_rps`]).
    rps: std::sync::Arc<std::sync::atomic::AtomicU32>,
    counters: std::sync::Arc<LoadCounters>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl LoadGen {
    const WORKERS: u32 = 4;
    const MAX_FAILURES_KEPT: usize = 20;

    pub fn start(url: String, rps: u32) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counters = std::sync::Arc::new(LoadCounters::default());
        let rate = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(rps.max(1)));
        let period_of =
            |rps: u32| Duration::from_secs_f64(f64::from(Self::WORKERS) / f64::from(rps.max(1)));
        let workers = (0..Self::WORKERS)
            .map(|i| {
                let rate = rate.clone();
                let stop = stop.clone();
                let counters = counters.clone();
                let url = url.clone();
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(15))
                        .build()
                        .expect("client");
                    let mut next = Instant::now() + period_of(rps) * i / Self::WORKERS;
                    while !stop.load(Ordering::SeqCst) {
                        let period = period_of(rate.load(Ordering::Relaxed));
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        } else if now - next > Duration::from_secs(1) {
                            // Far behind (a stalled request): carry on from now, no burst.
                            next = now;
                        }
                        next += period;
                        counters.sent.fetch_add(1, Ordering::SeqCst);
                        let outcome = client
                            .get(&url)
                            .send()
                            .map_err(|e| format!("no answer: {e}"))
                            .and_then(|r| {
                                let status = r.status();
                                let body = r.text().map_err(|e| format!("body: {e}"))?;
                                if status.is_success() {
                                    Ok(body)
                                } else {
                                    Err(format!("{status}: {body}"))
                                }
                            });
                        match outcome {
                            Ok(body) => {
                                counters.ok.fetch_add(1, Ordering::SeqCst);
                                let version = serde_json::from_str::<serde_json::Value>(&body)
                                    .ok()
                                    .and_then(|v| v["version"].as_str().map(str::to_string))
                                    .unwrap_or_else(|| "?".into());
                                let mut details =
                                    counters.details.lock().unwrap_or_else(|p| p.into_inner());
                                *details.1.entry(version).or_default() += 1;
                            }
                            Err(text) => {
                                counters.failed.fetch_add(1, Ordering::SeqCst);
                                let mut details =
                                    counters.details.lock().unwrap_or_else(|p| p.into_inner());
                                if details.0.len() < Self::MAX_FAILURES_KEPT {
                                    details.0.push(text);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        LoadGen {
            stop,
            rps: rate,
            counters,
            workers,
        }
    }

    /// Changes the rate from the next request of each worker on.
    pub fn set_rps(&self, rps: u32) {
        self.rps
            .store(rps.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn report(&self) -> LoadReport {
        use std::sync::atomic::Ordering;
        let details = self
            .counters
            .details
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        LoadReport {
            sent: self.counters.sent.load(Ordering::SeqCst),
            ok: self.counters.ok.load(Ordering::SeqCst),
            failed: self.counters.failed.load(Ordering::SeqCst),
            failures: details.0.clone(),
            versions: details.1.clone(),
        }
    }

    /// Stops sending, waits for requests in flight, and reports.
    pub fn stop(mut self) -> LoadReport {
        self.stop_workers();
        self.report()
    }

    fn stop_workers(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// Like [`run_cli`], but kills the command and panics if it runs longer than
/// `timeout`. Output goes through files, so a chatty command never blocks on a pipe.
pub fn run_cli_timeout(args: &[&str], cwd: &Path, timeout: Duration) -> std::process::Output {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    let mut child = Command::new(rampart_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("RAMPART_TOKEN")
        .env_remove("RAMPART_API")
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::fs::File::create(&stdout_path).expect("stdout file"),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(&stderr_path).expect("stderr file"),
        ))
        .spawn()
        .expect("run rampart");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for rampart") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`rampart {}` did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                std::fs::read_to_string(&stdout_path).unwrap_or_default(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read(&stderr_path).unwrap_or_default(),
    }
}

/// Latency slack for the judge in the rollout tests. They are about what rampart
/// does with verdicts and traffic, not about latency, and on a 2-core machine busy
/// with builds a few milliseconds of scheduling noise between processes is real
/// and would be judged as such: 50 ms slack.
pub const LATENCY_SLACK: &str = "latency_tolerance_ms = 50.0";

/// `[service.analysis]` for tests about something other than judging: a judge that
/// never objects, judging every second from the first request.
pub const JUDGE_NEVER_OBJECTS: &str = r#"[service.analysis]
judge = "threshold"
interval = "1s"
min_requests = 1
max_error_rate = 100
max_latency_regression = 100000
warmup = "1s"
"#;

/// The reasons of every transition of a deployment, for assertion messages.
pub fn history(detail: &serde_json::Value) -> String {
    detail["record"]["rollout"]["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{} -> {}: {}",
                t["from"]["state"].as_str().unwrap_or("?"),
                t["to"]["state"].as_str().unwrap_or("?"),
                t["reason"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `rampart sample-app` process run by the test itself (an upstream rampart does
/// not own); killed on drop.
pub struct SampleApp(pub std::process::Child);

impl Drop for SampleApp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rampart sample-app` on `addr` and waits until it accepts connections.
pub fn sample_app(addr: SocketAddr, version: &str) -> SampleApp {
    let child = Command::new(rampart_bin())
        .args([
            "sample-app",
            "--listen",
            &addr.to_string(),
            "--version",
            version,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sample-app");
    let app = SampleApp(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "sample-app did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    app
}

/// A two-instance sample-app service with short holds, for end-to-end rollouts: steps
/// of 20 % and 50 % holding `holds`, the sequential judge with `min_requests = 50`
/// and [`LATENCY_SLACK`], 2 s scale-down delay and drain grace.
pub fn short_rollout_service(
    name: &str,
    listen: SocketAddr,
    holds: [&str; 2],
    progress_deadline: &str,
) -> String {
    let [first, second] = holds;
    sample_app_service(
        name,
        listen,
        2,
        &format!(
            r#"[service.strategy]
steps = [{{ weight = 20, hold = "{first}" }}, {{ weight = 50, hold = "{second}" }}]
scale_down_delay = "2s"
progress_deadline = "{progress_deadline}"

[service.analysis]
judge = "sequential"
min_requests = 50
{LATENCY_SLACK}

[service.router]
drain_grace = "2s"
"#
        ),
    )
}

/// Asserts that 20 requests in a row to `url` are answered by `version`.
pub fn assert_serves(url: &str, version: &str, what: &str) {
    for _ in 0..20 {
        assert_eq!(version_at(url).as_deref(), Some(version), "{what}");
    }
}
