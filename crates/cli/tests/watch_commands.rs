//! Listing and watching through the real binary: `services`, `deployments`,
//! `events` following the live stream, and `status --watch` following a rollout to
//! its end and exiting by its outcome.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    LoadGen, RampartServer, free_addr, rampart_bin, run_cli_timeout, short_rollout_service,
};

const SERVICE: &str = "shop";
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);

fn api_args(server: &RampartServer) -> [String; 4] {
    [
        "--api".into(),
        server.api.clone(),
        "--token".into(),
        server.admin_token.clone(),
    ]
}

fn cli(server: &RampartServer, args: &[&str]) -> (Option<i32>, String, String) {
    let api = api_args(server);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(api.iter().map(String::as_str));
    let out = run_cli_timeout(&all, server.dir.path(), ROLLOUT_TIMEOUT);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `rampart events` in the background, its output in a file, killed on drop.
struct EventsFollower {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl EventsFollower {
    fn start(server: &RampartServer, extra: &[&str]) -> Self {
        let out = server
            .dir
            .path()
            .join(format!("events-{}.out", extra.len()));
        let child = Command::new(rampart_bin())
            .arg("events")
            .args(extra)
            .args(api_args(server))
            .stdout(Stdio::from(
                std::fs::File::create(&out).expect("events file"),
            ))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rampart events");
        Self { child, out }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until the output contains `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + ROLLOUT_TIMEOUT;
        loop {
            let text = self.text();
            if text.contains(needle) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for EventsFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn status_watch_follows_a_rollout_to_its_end_and_events_show_it_live() {
    let listen = free_addr();
    let server =
        RampartServer::start_serving(&short_rollout_service(SERVICE, listen, ["2s", "3s"], "30s"));

    // Before any rollout: the service is listed at v1, nothing to follow.
    let (code, stdout, stderr) = cli(&server, &["services"]);
    assert_eq!(code, Some(0), "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(SERVICE))
        .unwrap_or_else(|| panic!("shop is listed:\n{stdout}"));
    assert!(line.contains("v1"), "{stdout}");
    let (code, stdout, _) = cli(&server, &["status", SERVICE, "--watch"]);
    assert_eq!(code, Some(0), "no rollout in flight: the status, exit 0");
    assert!(stdout.contains("none in flight"), "{stdout}");

    let human = EventsFollower::start(&server, &[SERVICE]);
    let json_lines = EventsFollower::start(&server, &["-o", "json"]);
    // The followers must be subscribed before the rollout starts.
    std::thread::sleep(Duration::from_millis(500));
    let load = LoadGen::start(format!("http://{listen}/version"), 100);
    let (status, created) = server.post_json(
        &format!("/api/v1/services/{SERVICE}/deployments"),
        &json!({ "version": "v2" }),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();

    let (code, stdout, stderr) = cli(&server, &["status", SERVICE, "--watch"]);
    let report = load.stop();
    assert_eq!(
        code,
        Some(0),
        "a promoted rollout exits 0\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("following rollout {id}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("succeeded"),
        "the outcome is printed: {stdout}"
    );
    assert_eq!(report.failed, 0, "{report:?}");

    let events = human.wait_for("promoting");
    assert!(
        events.contains("transition") && events.contains("progressing at 20%"),
        "the steps are shown as they happen:\n{events}"
    );
    assert!(
        events.contains("traffic") && events.contains(SERVICE),
        "{events}"
    );
    let json_text = json_lines.wait_for("promoting");
    for line in json_text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["event"].is_string(), "{line}");
    }

    let (code, stdout, _) = cli(&server, &["deployments", SERVICE]);
    assert_eq!(code, Some(0));
    let row = stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("the deployment is listed:\n{stdout}"));
    assert!(row.contains("v2") && row.contains("succeeded"), "{row}");
    let (_, stdout, _) = cli(&server, &["services", "-o", "json"]);
    let services: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(services[0]["status"]["stable_version"], "v2", "{services}");
}

#[test]
fn status_watch_exits_1_when_the_rollout_is_rolled_back() {
    let listen = free_addr();
    let server =
        RampartServer::start_serving(&short_rollout_service(SERVICE, listen, ["2s", "3s"], "30s"));
    let load = LoadGen::start(format!("http://{listen}/version"), 100);
    // Three in ten of the canary's requests fail: the judge rolls it back.
    let (status, created) = server.post_json(
        &format!("/api/v1/services/{SERVICE}/deployments"),
        &json!({ "version": "v2", "env": { "SAMPLE_APP_ERROR_RATE": "0.3" } }),
    );
    assert_eq!(status, 201, "{created}");
    let (code, stdout, stderr) = cli(&server, &["status", SERVICE, "--watch"]);
    drop(load);
    assert_eq!(
        code,
        Some(1),
        "a rolled-back rollout exits 1\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("rolled_back"), "{stderr}");
}
