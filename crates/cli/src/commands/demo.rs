//! `rampart demo`: the whole product on this machine in about two minutes. A service
//! of two local processes takes steady traffic; a healthy v2 is validated, shifted in
//! step by step, judged against v1 on the same live traffic and promoted; then a v3
//! that fails one request in ten is caught and rolled back on its own.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::cli::{ApiArgs, DemoArgs, OutputFormat};
use crate::client::ApiClient;
use crate::commands::rollout::{Progress, follow, outcome_line};
use crate::commands::serve::run_server;
use crate::exit::{CliError, CliResult, FAILURE};
use crate::loadgen::{LoadGenerator, LoadPlan, LoadSnapshot};
use crate::shutdown::shutdown_signal;

const SERVICE: &str = "shop";

pub async fn run(args: DemoArgs) -> CliResult {
    let dir = tempfile::Builder::new()
        .prefix("rampart-demo-")
        .tempdir()
        .context("creating the demo's data dir")?;
    let api_listen = resolve_port(args.api_listen)?;
    let service_listen = resolve_port(args.service_listen)?;
    let config_path = dir.path().join("rampart.toml");
    let exe = std::env::current_exe().context("finding the rampart binary")?;
    std::fs::write(&config_path, demo_config(&exe, api_listen, service_listen))
        .context("writing the demo config")?;

    println!(
        "rampart demo: one service, two local processes, real traffic through rampart's router"
    );
    println!("  data dir  {}", dir.path().display());
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = oneshot::channel();
    let server_config = config_path.clone();
    let server = tokio::spawn(async move {
        run_server(
            &server_config,
            async move {
                let _ = server_stopped.await;
            },
            Some(ready_tx),
        )
        .await
    });
    let ready = match ready_rx.await {
        Ok(ready) => ready,
        Err(_) => {
            return match server.await {
                Ok(Err(e)) => Err(e),
                _ => Err(anyhow!("the demo server stopped before it was ready").into()),
            };
        }
    };
    let token = ready.admin_token.clone().unwrap_or_default();
    println!("  API       http://{}   (admin token: {token})", ready.api);
    println!(
        "  dashboard http://{}/   (open it and sign in with the admin token above: the rollouts below show live)",
        ready.api
    );
    println!("  service   http://{service_listen}/   (try: curl http://{service_listen}/version)");
    println!(
        "  follow    rampart status {SERVICE} --api http://{} --token {token}",
        ready.api
    );
    println!();

    let client = ApiClient::new(
        &ApiArgs {
            api: format!("http://{}", ready.api),
            token: Some(token),
            ca: None,
            output: OutputFormat::Table,
        },
        None,
    )?;
    let load = LoadGenerator::start(LoadPlan::new(format!("http://{service_listen}/"), args.rps))
        .context("starting the load generator")?;
    println!(
        "[load] {} requests/s to http://{service_listen}/ (v1 serving)",
        args.rps
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let healthy = scenario(
        &client,
        &load,
        "v2",
        json!({}),
        "a healthy release: it should be promoted",
    )
    .await?;
    let faulty = scenario(
        &client,
        &load,
        "v3",
        json!({ "SAMPLE_APP_ERROR_RATE": "0.1" }),
        "a bad release that fails 10% of requests: it should be rolled back",
    )
    .await?;

    let verify: Value = client
        .request(Method::GET, "/api/v1/audit/verify", None)
        .await?;
    let totals = load.snapshot();
    println!();
    println!("summary");
    println!(
        "  v2: {}   users saw {} failed of {} requests during its rollout",
        healthy.state,
        healthy.load.failed(),
        healthy.load.total()
    );
    println!(
        "  v3: {}   users saw {} failed of {} requests; rollback {}",
        faulty.state,
        faulty.load.failed(),
        faulty.load.total(),
        faulty
            .time_to_rollback
            .map(|d| format!(
                "decided {:.1}s after the canary first took traffic",
                d.as_secs_f64()
            ))
            .unwrap_or_else(|| "did not happen".into())
    );
    println!(
        "  load: {} requests in all, {} failed",
        totals.total(),
        totals.failed()
    );
    println!(
        "  audit log: {} entries, chain {}",
        verify["entries_checked"],
        if verify["ok"] == true {
            "verified"
        } else {
            "BROKEN"
        }
    );
    let as_expected =
        healthy.state == "succeeded" && faulty.state == "rolled_back" && verify["ok"] == true;
    println!(
        "  outcome: {}",
        if as_expected {
            "as expected (v2 promoted, v3 rolled back)"
        } else {
            "NOT as expected"
        }
    );

    if !args.exit_when_done {
        println!();
        println!(
            "rampart keeps serving; explore the dashboard at http://{}/ and the API. Ctrl-C to stop.",
            ready.api
        );
        shutdown_signal().await;
    }
    load.stop().await;
    let _ = stop_server.send(());
    match server.await {
        Ok(result) => result?,
        Err(e) => return Err(anyhow!("the demo server task failed: {e}").into()),
    }
    if as_expected {
        Ok(())
    } else {
        Err(CliError {
            code: FAILURE,
            error: anyhow!("the demo did not end as expected"),
        })
    }
}

struct ScenarioResult {
    state: String,
    load: LoadSnapshot,
    time_to_rollback: Option<Duration>,
}

async fn scenario(
    client: &ApiClient,
    load: &LoadGenerator,
    version: &str,
    env: Value,
    what: &str,
) -> Result<ScenarioResult, CliError> {
    println!();
    println!("[deploy] {SERVICE} {version}: {what}");
    let before = load.snapshot();
    let created: Value = client
        .request(
            Method::POST,
            &format!("/api/v1/services/{SERVICE}/deployments"),
            Some(&json!({ "version": version, "env": env, "reason": format!("demo: {what}") })),
        )
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let detail = follow(client, SERVICE, &id, Progress::Lines("  ")).await?;
    println!("[result] {}", outcome_line(&detail));
    let state = detail["summary"]["state"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    Ok(ScenarioResult {
        state,
        load: load.snapshot().since(&before),
        time_to_rollback: time_to_rollback(&detail),
    })
}

/// From the deployment's own transitions: the canary's first step to the decision
/// to roll back.
fn time_to_rollback(detail: &Value) -> Option<Duration> {
    let history = detail["record"]["rollout"]["history"].as_array()?;
    let at = |state: &str| {
        history
            .iter()
            .find(|t| t["to"]["state"] == state)
            .and_then(|t| t["at"].as_u64())
    };
    let start = at("progressing")?;
    let end = at("rolling_back")?;
    Some(Duration::from_millis(end.saturating_sub(start)))
}

/// Port 0 means "any free port": pick one now, since the config names it.
fn resolve_port(addr: SocketAddr) -> Result<SocketAddr, CliError> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let listener =
        TcpListener::bind(addr).with_context(|| format!("finding a free port on {}", addr.ip()))?;
    Ok(listener.local_addr().context("reading the free port")?)
}

fn demo_config(exe: &Path, api: SocketAddr, service: SocketAddr) -> String {
    let exe = shell_quote(&exe.display().to_string());
    format!(
        r#"# Written by `rampart demo`.
[server]
listen = "{api}"
data_dir = "data"
# The demo's data dir is temporary: its instances end with it.
instances_outlive = false

[[service]]
name = "{SERVICE}"
listen = "{service}"

[service.backend]
kind = "process"
command = "{exe} sample-app --listen 127.0.0.1:{{port}} --version {{version}}"
instances = 2
ready_timeout = "20s"
stop_grace = "5s"

[service.strategy]
steps = [{{ weight = 10, hold = "8s" }}, {{ weight = 25, hold = "8s" }}, {{ weight = 50, hold = "8s" }}]
scale_down_delay = "10s"
progress_deadline = "2m"

[service.analysis]
judge = "sequential"   # the default; every other analysis setting is left at its default

[service.router]
drain_grace = "5s"

[[service.check]]
name = "config-is-valid"
kind = "command"
command = "{exe} check-config --config rampart.toml"
timeout = "30s"

[[service.check]]
name = "stable-answers"
kind = "http"
url = "http://{service}/healthz"
timeout = "5s"
retries = 2
critical = false
"#
    )
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
