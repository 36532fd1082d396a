//! Client commands for rollouts: deploy (optionally following it), status, operator
//! actions, validation, traffic, one deployment in full.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{DeployArgs, DeploymentArgs, OperateArgs, OutputFormat, ServiceArgs, TrafficArgs};
use crate::client::ApiClient;
use crate::exit::{CliError, CliResult, FAILURE};
use crate::output::{emit, print_json};

const TERMINAL_OK: &str = "succeeded";
const TERMINAL_BAD: [&str; 3] = ["rolled_back", "failed", "aborted"];

pub async fn deploy(args: DeployArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let env: serde_json::Map<String, Value> = args
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let body = json!({
        "version": args.version,
        "canary": args.canary,
        "env": env,
        "reason": args.reason,
    });
    let created: Value = client
        .request(
            Method::POST,
            &format!("/api/v1/services/{}/deployments", args.service),
            Some(&body),
        )
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    if !args.wait {
        emit(args.api.output, &created, || {
            println!(
                "deployment {id} of {} {} started",
                args.service, args.version
            );
        });
        return Ok(());
    }
    if matches!(args.api.output, OutputFormat::Table) {
        println!(
            "deployment {id} of {} {} started; following it (Ctrl-C stops following, not the rollout)",
            args.service, args.version
        );
    }
    let detail = follow(
        &client,
        &args.service,
        &id,
        Progress::for_output(args.api.output),
    )
    .await?;
    let state = detail["summary"]["state"].as_str().unwrap_or("unknown");
    match args.api.output {
        OutputFormat::Json => print_json(&detail),
        OutputFormat::Table => println!("{}", outcome_line(&detail)),
    }
    if state == TERMINAL_OK {
        Ok(())
    } else {
        Err(CliError {
            code: FAILURE,
            error: anyhow::anyhow!("deployment {id} ended {state}"),
        })
    }
}

/// How [`follow`] shows progress.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Nothing (JSON output).
    Quiet,
    /// One line updated in place (a terminal).
    Live,
    /// A line, with this prefix, whenever the progress changes (logs, the demo).
    Lines(&'static str),
}

impl Progress {
    /// Live on a terminal, a line per change in logs, nothing for JSON output.
    pub fn for_output(output: OutputFormat) -> Self {
        match output {
            OutputFormat::Json => Progress::Quiet,
            OutputFormat::Table if std::io::stdout().is_terminal() => Progress::Live,
            OutputFormat::Table => Progress::Lines(""),
        }
    }
}

fn is_terminal_state(state: &str) -> bool {
    state == TERMINAL_OK || TERMINAL_BAD.contains(&state)
}

/// Polls the deployment every second until it ends, showing progress, and returns
/// its final detail.
pub async fn follow(
    client: &ApiClient,
    service: &str,
    id: &str,
    progress: Progress,
) -> Result<Value, CliError> {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut last_line = String::new();
    loop {
        ticker.tick().await;
        let detail: Value = client
            .request(Method::GET, &format!("/api/v1/deployments/{id}"), None)
            .await?;
        let state = detail["summary"]["state"].as_str().unwrap_or("unknown");
        if !matches!(progress, Progress::Quiet) {
            let status: Value = client
                .request(
                    Method::GET,
                    &format!("/api/v1/services/{service}/status"),
                    None,
                )
                .await?;
            let line = progress_line(state, &status);
            match progress {
                Progress::Live => {
                    print!("\r\x1b[2K{line}");
                    let _ = std::io::stdout().flush();
                }
                Progress::Lines(prefix) if line != last_line => println!("{prefix}{line}"),
                _ => {}
            }
            last_line = line;
        }
        if is_terminal_state(state) {
            if matches!(progress, Progress::Live) {
                println!();
            }
            return Ok(detail);
        }
    }
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.2}%"))
        .unwrap_or_else(|| "-".into())
}

fn ms(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.1}ms"))
        .unwrap_or_else(|| "-".into())
}

/// "progressing step 2/3 weight 25% | canary err 0.00% p95 3.1ms (412 req) | stable ... | pass"
pub fn progress_line(state: &str, status: &Value) -> String {
    let active = &status["active"];
    let step = match (active["step"].as_u64(), active["steps"].as_u64()) {
        (Some(s), Some(n)) => format!(" step {s}/{n}"),
        _ => String::new(),
    };
    let weight = status["traffic"]["canary_weight"].as_f64().unwrap_or(0.0);
    let live = &status["live"];
    let set = |name: &str| {
        let s = &live[name];
        format!(
            "{name} err {} p95 {} ({} req)",
            pct(&s["error_rate_pct"]),
            ms(&s["p95_ms"]),
            s["requests"].as_u64().unwrap_or(0)
        )
    };
    let verdict = active["last_verdict"]["outcome"].as_str().unwrap_or("-");
    format!(
        "{state}{step} weight {weight:.0}% | {} | {} | judge: {verdict}",
        set("canary"),
        set("stable")
    )
}

/// Why the deployment ended as it did: the reason of the transition that decided it.
pub fn outcome_line(detail: &Value) -> String {
    let state = detail["summary"]["state"].as_str().unwrap_or("unknown");
    let history: &[Value] = detail["record"]["rollout"]["history"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let deciding = if matches!(state, "rolled_back" | "aborted") {
        history
            .iter()
            .rev()
            .find(|t| t["to"]["state"] == "rolling_back")
    } else {
        history.last()
    };
    let reason = deciding.and_then(|t| t["reason"].as_str()).unwrap_or("");
    format!(
        "{} {}: {state}{}",
        detail["summary"]["service"].as_str().unwrap_or(""),
        detail["summary"]["version"].as_str().unwrap_or(""),
        if reason.is_empty() {
            String::new()
        } else {
            format!(" ({reason})")
        }
    )
}

pub async fn status(args: ServiceArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let status: Value = client
        .request(
            Method::GET,
            &format!("/api/v1/services/{}/status", args.service),
            None,
        )
        .await?;
    emit(args.api.output, &status, || {
        println!("service      {}", status["service"].as_str().unwrap_or(""));
        println!("listen       {}", status["listen"].as_str().unwrap_or(""));
        println!("backend      {}", status["backend"].as_str().unwrap_or(""));
        println!(
            "stable       {}",
            status["stable_version"].as_str().unwrap_or("")
        );
        if let Some(target) = status["rollback_target"].as_str() {
            println!("rollback to  {target}");
        }
        match status["active"].as_object() {
            Some(_) => {
                let a = &status["active"];
                println!(
                    "rollout      {} {} ({})",
                    a["id"].as_str().unwrap_or(""),
                    a["version"].as_str().unwrap_or(""),
                    a["state"].as_str().unwrap_or("")
                );
                println!(
                    "             {}",
                    progress_line(a["state"].as_str().unwrap_or(""), &status)
                );
                if let Some(reason) = a["last_verdict"]["reason"].as_str() {
                    println!("judge        {reason}");
                }
            }
            None => println!("rollout      none in flight"),
        }
        if let Some(last) = status["last_deployment"].as_object() {
            println!(
                "last         {} {} {}",
                last.get("version").and_then(Value::as_str).unwrap_or(""),
                last.get("state").and_then(Value::as_str).unwrap_or(""),
                last.get("finished_at")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            );
        }
        let live = &status["live"];
        for set in ["stable", "canary"] {
            let s = &live[set];
            println!(
                "{set:<12} {} req, {} errors ({}), p50 {} p95 {} p99 {} over {}s",
                s["requests"].as_u64().unwrap_or(0),
                s["errors"].as_u64().unwrap_or(0),
                pct(&s["error_rate_pct"]),
                ms(&s["p50_ms"]),
                ms(&s["p95_ms"]),
                ms(&s["p99_ms"]),
                live["window_secs"].as_u64().unwrap_or(0)
            );
        }
    });
    Ok(())
}

pub async fn operate(action: &str, args: OperateArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let body = json!({ "reason": args.reason });
    let summary: Value = client
        .request(
            Method::POST,
            &format!("/api/v1/services/{}/{action}", args.service),
            Some(&body),
        )
        .await?;
    emit(args.api.output, &summary, || {
        println!(
            "{action}: deployment {} of {} {} is now {}",
            summary["id"].as_str().unwrap_or(""),
            args.service,
            summary["version"].as_str().unwrap_or(""),
            summary["state"].as_str().unwrap_or("")
        );
    });
    Ok(())
}

pub async fn validate(args: ServiceArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let result: Value = client
        .request(
            Method::POST,
            &format!("/api/v1/services/{}/validate", args.service),
            None,
        )
        .await?;
    let can_deploy = result["can_deploy"].as_bool().unwrap_or(false);
    emit(args.api.output, &result, || {
        for (list, label) in [("passed", "pass"), ("warnings", "WARN"), ("failed", "FAIL")] {
            for check in result[list].as_array().into_iter().flatten() {
                println!(
                    "{label:<4}  {:<24} {:>6} ms  {} attempt(s)  {}",
                    check["name"].as_str().unwrap_or(""),
                    check["duration_ms"].as_u64().unwrap_or(0),
                    check["attempts"].as_u64().unwrap_or(0),
                    check["message"].as_str().unwrap_or("")
                );
            }
        }
        println!(
            "can deploy: {}  ({} ms)",
            if can_deploy { "yes" } else { "NO" },
            result["execution_time_ms"].as_u64().unwrap_or(0)
        );
    });
    if can_deploy {
        Ok(())
    } else {
        Err(CliError {
            code: FAILURE,
            error: anyhow::anyhow!("a critical check failed"),
        })
    }
}

pub async fn traffic(args: TrafficArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let path = format!("/api/v1/services/{}/traffic", args.service);
    let changes = args.weight.is_some()
        || !args.canary.is_empty()
        || args.max_concurrency.is_some()
        || args.outlier_detection.is_some();
    let status: Value = if changes {
        let mut body = json!({});
        if let Some(weight) = args.weight {
            body["canary_weight"] = json!(weight);
        }
        if !args.canary.is_empty() {
            body["canary"] = json!(args.canary);
        }
        if let Some(limit) = args.max_concurrency {
            body["max_concurrency"] = json!(limit);
        }
        if let Some(on) = args.outlier_detection {
            body["outlier_detection"] = json!(on);
        }
        client.request(Method::PUT, &path, Some(&body)).await?
    } else {
        client.request(Method::GET, &path, None).await?
    };
    emit(args.api.output, &status, || {
        println!(
            "canary weight {}%",
            status["canary_weight"].as_f64().unwrap_or(0.0)
        );
        for set in ["stable", "canary"] {
            let s = &status[set];
            if s.is_null() {
                continue;
            }
            println!("{set} ({})", s["version"].as_str().unwrap_or(""));
            for i in s["instances"].as_array().into_iter().flatten() {
                println!(
                    "  {:<22} {:<9} in flight {}",
                    i["addr"].as_str().unwrap_or(""),
                    i["state"].as_str().unwrap_or(""),
                    i["in_flight"].as_u64().unwrap_or(0)
                );
            }
        }
    });
    Ok(())
}

pub async fn deployment(args: DeploymentArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    if args.samples {
        let lines = client
            .request_text(
                Method::GET,
                &format!("/api/v1/deployments/{}/samples", args.id),
                None,
            )
            .await?;
        print!("{lines}");
        return Ok(());
    }
    let detail: Value = client
        .request(
            Method::GET,
            &format!("/api/v1/deployments/{}", args.id),
            None,
        )
        .await?;
    emit(args.api.output, &detail, || {
        println!("{}", outcome_line(&detail));
        println!("transitions:");
        for t in detail["record"]["rollout"]["history"]
            .as_array()
            .into_iter()
            .flatten()
        {
            println!(
                "  {}  {} -> {}  by {}: {}",
                t["at"]
                    .as_u64()
                    .map(|ms| chrono::DateTime::from_timestamp_millis(ms as i64)
                        .map(|d| d.format("%H:%M:%S%.3f").to_string())
                        .unwrap_or_default())
                    .unwrap_or_default(),
                t["from"]["state"].as_str().unwrap_or(""),
                t["to"]["state"].as_str().unwrap_or(""),
                actor_text(&t["actor"]),
                t["reason"].as_str().unwrap_or("")
            );
        }
        let measurements = detail["measurements"].as_array().map(Vec::len).unwrap_or(0);
        println!("analysis measurements: {measurements}");
        if let Some(last) = detail["measurements"].as_array().and_then(|m| m.last()) {
            println!(
                "  last: step {} {}: {}",
                last["step"],
                last["outcome"].as_str().unwrap_or(""),
                last["verdict"]["reason"].as_str().unwrap_or("")
            );
        }
    });
    Ok(())
}

fn actor_text(actor: &Value) -> String {
    match actor["kind"].as_str() {
        Some("user") => actor["name"].as_str().unwrap_or("unknown").to_string(),
        _ => "rampart".into(),
    }
}
