//! The dashboard in a real headless Chromium against the real binary: log in, deploy
//! from the form and watch the rollout go through its steps live, see the judge's
//! charts, roll back in an emergency and see the canary at 0 %, verify the audit
//! chain, 20 services with an event per second each, a phone width, and a viewer
//! who sees no action buttons. Screenshots and figures go to
//! `target/dashboard-screenshots/`.
//!
//! Needs Debian's `chromium` and `dashboard/node_modules` (`cd dashboard && npm ci`).
//! Without them the test says so and passes, unless RAMPART_REQUIRE_BROWSER=1 (CI).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use std::net::{SocketAddr, TcpListener};

use support::{
    JUDGE_NEVER_OBJECTS, LoadGen, RampartServer, sample_app_service, short_rollout_service,
};

const SHOP: &str = "shop";
const STATIC_SERVICES: usize = 20;
const GATED: &str = "gated";

/// One instance, one step that waits for approval by release-manager; a judge that
/// passes the step as soon as it has a few requests.
fn gated_service(listen: SocketAddr) -> String {
    sample_app_service(
        GATED,
        listen,
        1,
        &format!(
            r#"[service.strategy]
steps = [{{ weight = 50, hold = "1s", approve = "release-manager" }}]
scale_down_delay = "1s"
progress_deadline = "2m"

{JUDGE_NEVER_OBJECTS}
[service.router]
drain_grace = "1s"
"#
        ),
    )
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What is missing to run the browser test, if anything.
fn missing_prerequisites(chromium: &Path, dashboard: &Path) -> Option<String> {
    if !chromium.exists() {
        return Some(format!(
            "no Chromium at {} (apt-get install chromium, or set RAMPART_CHROMIUM)",
            chromium.display()
        ));
    }
    if !dashboard.join("node_modules/playwright-core").exists() {
        return Some("no dashboard/node_modules (run `cd dashboard && npm ci`)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no `node` on PATH".into());
    }
    None
}

/// 20 services on the static backend: their split, set by hand once a second, is
/// the event load. Their upstreams are never sent a request.
fn static_services(listens: &[SocketAddr]) -> (String, Vec<String>) {
    let mut toml = String::new();
    let mut names = Vec::new();
    for (i, listen) in listens.iter().enumerate() {
        let name = format!("svc{:02}", i + 1);
        // The discard port: nothing is ever sent there.
        toml.push_str(&format!(
            "[[service]]\nname = \"{name}\"\nlisten = \"{listen}\"\n[service.backend]\nkind = \"static\"\nstable = [\"127.0.0.1:9\"]\n\n"
        ));
        names.push(name);
    }
    (toml, names)
}

/// `n` distinct free ports: all bound at once, then released (one at a time, two
/// could be the same port).
fn distinct_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr"))
        .collect()
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let dashboard = repo_root().join("dashboard");
    let chromium = PathBuf::from(
        std::env::var("RAMPART_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if let Some(missing) = missing_prerequisites(&chromium, &dashboard) {
        assert!(
            std::env::var("RAMPART_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "RAMPART_REQUIRE_BROWSER=1 but the browser test cannot run: {missing}"
        );
        eprintln!("SKIPPED the dashboard browser test: {missing}");
        return;
    }

    let mut addrs = distinct_addrs(STATIC_SERVICES + 2);
    let listen = addrs.pop().expect("an address");
    let gated_listen = addrs.pop().expect("an address");
    let (statics, static_names) = static_services(&addrs);
    let mut services = short_rollout_service(SHOP, listen, ["4s", "4s"], "2m");
    services.push('\n');
    services.push_str(&gated_service(gated_listen));
    services.push('\n');
    services.push_str(&statics);
    // The emergency rollback of v3 opens an incident, for the incident views.
    services.push_str(
        "[[incident_rule]]\nname = \"shop_rollout_failed\"\nseverity = \"high\"\nwhen = \"service.rollout_failed\"\nservice = \"shop\"\nactions = []\n",
    );
    let server = RampartServer::start_serving(&services);
    // Steady traffic so that the judge has evidence on every step.
    let load = LoadGen::start(format!("http://{listen}/version"), 80);
    let gated_load = LoadGen::start(format!("http://{gated_listen}/version"), 20);

    let screenshots = repo_root().join("target/dashboard-screenshots");
    let output = Command::new("node")
        .arg(dashboard.join("e2e/dashboard.e2e.mjs"))
        .current_dir(&dashboard)
        .env("RAMPART_API", &server.api)
        .env("RAMPART_ADMIN_TOKEN", &server.admin_token)
        .env("RAMPART_SCREENSHOTS", &screenshots)
        .env("RAMPART_CHROMIUM", &chromium)
        .env("RAMPART_SHOP", SHOP)
        .env("RAMPART_STATIC_SERVICES", static_names.join(","))
        .env("RAMPART_GATED", GATED)
        .output()
        .expect("run node");
    drop(load);
    drop(gated_load);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser test failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- rampart log (tail) ---\n{}",
        tail(&server.log(), 60)
    );
    eprintln!("{stdout}");

    // What the browser did is what the server recorded.
    let audit = server.get_json("/api/v1/audit?order=desc&limit=1000");
    assert!(
        audit.as_array().into_iter().flatten().any(|e| e["details"]
            .to_string()
            .contains("emergency rollback from the dashboard")),
        "the dashboard's rollback is in the audit log: {audit}"
    );
    for view in [
        "login",
        "overview",
        "deploy",
        "rollout",
        "service",
        "audit",
        "incidents",
        "incident",
        "overview-viewer",
        "overview-phone-dark",
        "rollout-approval",
    ] {
        let shot = screenshots.join(format!("{view}.png"));
        assert!(shot.exists(), "screenshot {} saved", shot.display());
    }
    let figures: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(screenshots.join("figures.json")).expect("figures.json"),
    )
    .expect("figures are JSON");
    assert!(
        figures["bundle"]["gzip"].as_u64().unwrap_or(u64::MAX) <= 200 * 1024,
        "{figures}"
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
