//! Analysis from the user's own metrics against a real Prometheus server, started
//! by the test on 127.0.0.1 with a 1 s scrape of rampart's own `/metrics` (the
//! router's per-version families). The router's judge is set so it never objects
//! (threshold judge, 100 % error ceiling): whatever happens is the Prometheus
//! metric's doing.
//!
//! Needs the `prometheus` binary (Debian package `prometheus`). Without it the tests
//! skip with a message, unless RAMPART_REQUIRE_PROMETHEUS is set (CI sets it).

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const SERVICE: &str = "web";

/// The new version's error ratio over the last 5 s, from rampart's own counters. A
/// blue-green preview's requests are counted under the service `web.preview`.
const ERROR_RATIO: &str = r#"sum(rate(rampart_router_errors_total{service=~"web|web.preview",version="{canary}"}[5s])) / sum(rate(rampart_router_requests_total{service=~"web|web.preview",version="{canary}"}[5s]))"#;

fn prometheus_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("RAMPART_REQUIRE_PROMETHEUS").is_none(),
            "RAMPART_REQUIRE_PROMETHEUS is set but no `prometheus` binary is on PATH (apt-get install prometheus)"
        );
        eprintln!("skipping: no `prometheus` binary on PATH (Debian package `prometheus`)");
    }
    found
}

/// A Prometheus server scraping `target`'s `/metrics` every second; killed on drop.
struct Prometheus {
    binary: PathBuf,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    child: Option<Child>,
}

impl Prometheus {
    fn start(binary: PathBuf, target: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: rampart\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        let mut prometheus = Self {
            binary,
            dir,
            addr: free_addr(),
            child: None,
        };
        prometheus.run();
        prometheus
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts the server (again, on the same address and data) and waits until it
    /// answers queries.
    fn run(&mut self) {
        let dir = self.dir.path();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let child = Command::new(&self.binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={}", self.addr))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client()
                .get(format!("{}/-/ready", self.url()))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Waits until the query returns a sample (Prometheus has scraped rampart).
    fn wait_for_series(&self, query: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer: Option<serde_json::Value> = client()
                .get(format!("{}/api/v1/query", self.url()))
                .query(&[("query", query)])
                .send()
                .ok()
                .and_then(|r| r.json().ok());
            let has = answer.as_ref().is_some_and(|a| {
                a["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            });
            if has {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus never had {query}: {answer:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A canary of two steps whose analysis is one Prometheus metric.
fn canary(deadline: &str) -> String {
    format!(
        r#"[service.strategy]
steps = [{{ weight = 30, hold = "4s" }}, {{ weight = 60, hold = "4s" }}]
scale_down_delay = "1s"
progress_deadline = "{deadline}"
"#
    )
}

/// Blue-green with a preview on `preview`, the analysis windows in `windows` (none
/// when left out), and the switch as soon as the preview passed.
fn blue_green(preview: SocketAddr, windows: &str) -> String {
    format!(
        r#"[service.strategy]
kind = "blue_green"
preview_listen = "{preview}"
auto_promotion_seconds = 0
{windows}
scale_down_delay = "1s"
progress_deadline = "60s"
"#
    )
}

/// A sample-app service with `strategy`, whose analysis is one Prometheus metric:
/// the new version's error ratio below 5 %, measured every second.
fn service(listen: SocketAddr, prometheus: &str, strategy: &str) -> String {
    let metric = format!(
        r#"[[metric_provider]]
name = "prom"
kind = "prometheus"
address = "{prometheus}"
timeout = "2s"

"#
    );
    let service = sample_app_service(
        SERVICE,
        listen,
        1,
        &format!(
            r#"{strategy}
{JUDGE_NEVER_OBJECTS}
[[service.analysis.metric]]
name = "error_ratio"
provider = "prom"
query = '{ERROR_RATIO}'
success = "result < 0.05"
interval = "1s"
failure_limit = 2
inconclusive_limit = 30
error_limit = 0
unavailable_limit = "5m"

[service.router]
drain_grace = "1s"
"#
        ),
    );
    format!("{metric}{service}")
}

struct Setup {
    server: RampartServer,
    prometheus: Prometheus,
    load: LoadGen,
}

fn setup(binary: PathBuf, deadline: &str) -> Setup {
    setup_with(binary, free_addr(), &canary(deadline))
}

/// rampart serving the service on `listen` with `strategy`, a Prometheus scraping
/// it, and users' load on `listen`.
fn setup_with(binary: PathBuf, listen: SocketAddr, strategy: &str) -> Setup {
    // Prometheus must know where rampart's API is before rampart starts, and
    // rampart where Prometheus is: reserve both addresses first.
    let dir = tempfile::tempdir().expect("tempdir");
    let api = free_addr();
    let prometheus = Prometheus::start(binary, api);
    let config = format!(
        "[server]\nlisten = \"{api}\"\ndata_dir = \"data\"\n\n{}",
        service(listen, &prometheus.url(), strategy)
    );
    let config_path = dir.path().join("rampart.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut server = RampartServer::start_with(dir, config_path, api);
    server.wait_serving();
    let load = LoadGen::start(format!("http://{listen}/"), 60);
    prometheus.wait_for_series(r#"rampart_router_requests_total{service="web",version="v1"}"#);
    Setup {
        server,
        prometheus,
        load,
    }
}

#[test]
fn a_prometheus_metric_promotes_a_good_canary() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let s = setup(binary, "2m");
    let id = s.server.deploy(SERVICE, "v2", json!({}));
    let done = s.server.wait_terminal(&id, Duration::from_secs(90));
    assert_eq!(
        done["summary"]["state"],
        "succeeded",
        "{}",
        support::history(&done)
    );
    // The verdicts carried the metric's evidence.
    let text = done.to_string();
    assert!(text.contains("error_ratio"), "{}", support::history(&done));
    s.load.stop();
}

#[test]
fn a_prometheus_metric_rolls_back_a_bad_canary() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let s = setup(binary, "2m");
    // 30 % of the canary's requests fail: the router judge is told to let it be, the
    // Prometheus metric is not.
    let id = s
        .server
        .deploy(SERVICE, "v2", json!({ "SAMPLE_APP_ERROR_RATE": "0.3" }));
    let done = s.server.wait_terminal(&id, Duration::from_secs(90));
    assert_eq!(
        done["summary"]["state"],
        "rolled_back",
        "{}",
        support::history(&done)
    );
    let history = support::history(&done);
    assert!(history.contains("metric error_ratio"), "{history}");
    assert!(history.contains("fails `result < 0.05`"), "{history}");
    s.load.stop();
}

#[test]
fn a_prometheus_that_is_down_pauses_the_rollout_until_it_is_back() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    // A short progress deadline: an outage longer than it must still not roll back.
    let mut s = setup(binary, "8s");
    let id = s.server.deploy(SERVICE, "v2", json!({}));
    s.server
        .wait_state(&id, "progressing", Duration::from_secs(60));
    s.prometheus.stop();
    let paused = s.server.wait_state(&id, "paused", Duration::from_secs(20));
    let rollout = &paused["record"]["rollout"];
    assert_eq!(
        rollout["phase"]["cause"], "analysis_unavailable",
        "{rollout}"
    );
    let history = support::history(&paused);
    assert!(
        history.contains("analysis provider unavailable"),
        "{history}"
    );
    // Down for longer than the progress deadline: still paused, nothing rolled back.
    std::thread::sleep(Duration::from_secs(12));
    let still = s.server.deployment(&id);
    assert_eq!(
        still["summary"]["state"],
        "paused",
        "{}",
        support::history(&still)
    );
    // Back: the rollout resumes on its own and promotes.
    s.prometheus.run();
    let done = s.server.wait_terminal(&id, Duration::from_secs(90));
    assert_eq!(
        done["summary"]["state"],
        "succeeded",
        "{}",
        support::history(&done)
    );
    assert!(
        support::history(&done).contains("analysis provider answers again"),
        "{}",
        support::history(&done)
    );
    let report = s.load.stop();
    assert_eq!(report.failed, 0, "{:?}", report.failures);
}

/// A blue-green service with `windows`, and testers' load on its preview listener
/// (what the pre-promotion analysis judges); `None` without Prometheus.
fn blue_green_setup(windows: &str) -> Option<(Setup, LoadGen)> {
    let binary = prometheus_binary()?;
    let (listen, preview) = (free_addr(), free_addr());
    let setup = setup_with(binary, listen, &blue_green(preview, windows));
    let testers = LoadGen::start(format!("http://{preview}/"), 30);
    Some((setup, testers))
}

#[test]
fn a_prometheus_metric_judges_a_blue_green_preview_and_the_traffic_after_the_switch() {
    let Some((s, testers)) =
        blue_green_setup("pre_promotion_analysis = \"4s\"\npost_promotion_analysis = \"4s\"")
    else {
        return;
    };
    let id = s.server.deploy(SERVICE, "v2", json!({}));
    let done = s.server.wait_terminal(&id, Duration::from_secs(90));
    let history = support::history(&done);
    assert_eq!(done["summary"]["state"], "succeeded", "{history}");
    assert!(
        history.contains("pre-promotion analysis of v2 passed"),
        "{history}"
    );
    assert!(
        history.contains("post-promotion analysis passed"),
        "{history}"
    );
    assert!(done.to_string().contains("error_ratio"), "{history}");
    testers.stop();
    let users = s.load.stop();
    assert_eq!(users.failed, 0, "{:?}", users.failures);
}

#[test]
fn a_prometheus_metric_rolls_back_a_bad_blue_green_preview_before_any_user_sees_it() {
    let Some((s, testers)) = blue_green_setup("pre_promotion_analysis = \"30s\"") else {
        return;
    };
    // 30 % of the preview's requests fail; the router's judge lets it be.
    let id = s
        .server
        .deploy(SERVICE, "v2", json!({ "SAMPLE_APP_ERROR_RATE": "0.3" }));
    let done = s.server.wait_terminal(&id, Duration::from_secs(90));
    let history = support::history(&done);
    assert_eq!(done["summary"]["state"], "rolled_back", "{history}");
    assert!(history.contains("metric error_ratio"), "{history}");
    assert!(history.contains("fails `result < 0.05`"), "{history}");
    testers.stop();
    let users = s.load.stop();
    assert_eq!(users.failed, 0, "{:?}", users.failures);
    assert_eq!(users.versions.get("v2"), None, "{users:?}");
}

#[test]
fn a_prometheus_metric_failing_after_the_blue_green_switch_switches_back() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let (listen, preview) = (free_addr(), free_addr());
    // No preview window: the switch comes at once, and only the live traffic after
    // it is judged.
    let s = setup_with(
        binary,
        listen,
        &blue_green(preview, "post_promotion_analysis = \"60s\""),
    );
    // v2 answers its first 100 requests, then fails every one.
    let id = s
        .server
        .deploy(SERVICE, "v2", json!({ "SAMPLE_APP_FAIL_AFTER": "100" }));
    let done = s.server.wait_terminal(&id, Duration::from_secs(90));
    let history = support::history(&done);
    assert_eq!(done["summary"]["state"], "rolled_back", "{history}");
    assert!(history.contains("switching_back"), "{history}");
    assert!(history.contains("metric error_ratio"), "{history}");
    // Users met v2's failures between the switch and the switch back.
    let users = s.load.report();
    assert!(
        users
            .failures
            .iter()
            .any(|f| f.contains("injected failure")),
        "{users:?}"
    );
    support::assert_serves(
        &format!("http://{listen}/version"),
        "v1",
        "switched back to v1",
    );
    s.load.stop();
}
