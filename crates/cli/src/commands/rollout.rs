//! Client commands for rollouts: deploy (optionally following it), status, operator
//! actions, validation, traffic, one deployment in full.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{DeployArgs, DeploymentArgs, OperateArgs, OutputFormat, ServiceArgs, TrafficArgs};
use crate::client::ApiClient;
use crate::exit::{CliError, CliResult, FAILURE};
use crate::output::{emit, print_json, print_table};

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
    follow_to_the_end(&client, &args.service, &id, args.api.output).await
}

/// Follows deployment `id` until it ends, prints its outcome, and exits by it: 0
/// promoted, 1 otherwise (`deploy --wait`, `status --watch`).
pub async fn follow_to_the_end(
    client: &ApiClient,
    service: &str,
    id: &str,
    output: OutputFormat,
) -> CliResult {
    let detail = follow(client, service, id, Progress::for_output(output)).await?;
    let state = detail["summary"]["state"].as_str().unwrap_or("unknown");
    match output {
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
            // The service may already be busy with a later rollout; only this one's
            // step and numbers belong on its line.
            // The status is read after the deployment, so when it still shows this
            // rollout its state is the newer one, and the one its step belongs to.
            let active = Some(&status["active"]).filter(|a| a["id"] == id);
            let line = progress_line(
                active.and_then(|a| a["state"].as_str()).unwrap_or(state),
                active,
                &detail["record"]["rollout"]["last_verdict"],
                &status["live"],
            );
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

/// One line on a rollout, e.g.
/// "progressing step 2/3 at 25% | last 8s: canary 412 req err 0.24% p95 3.1ms, stable
/// 1650 req err 0.00% p95 2.9ms | judge: pass on 749 canary req (err 0.13% vs stable 0.00%)".
///
/// Step and live numbers appear only while a step runs (`active` is this rollout's
/// view from the service status): before that no weight is set, after it the
/// numbers would be another rollout's. The judge part is the verdict's own numbers,
/// so it agrees with the reason a rollback gives.
pub fn progress_line(state: &str, active: Option<&Value>, verdict: &Value, live: &Value) -> String {
    let mut line = step_text(state, active);
    if let Some(waiting) = active.and_then(|a| a["waiting_for"].as_str()) {
        line.push_str(&format!(" | waiting for {waiting}"));
    }
    if active.is_some_and(|a| a["step"].is_u64()) {
        line.push_str(&format!(
            " | last {}s: {}, {}",
            live["window_secs"].as_u64().unwrap_or(0),
            set_numbers("canary", &live["canary"]),
            set_numbers("stable", &live["stable"])
        ));
    }
    if let Some(judge) = judge_text(verdict) {
        line.push_str(&format!(" | {judge}"));
    }
    line
}

/// "progressing step 2/3 at 25%", or the state alone when no step runs.
fn step_text(state: &str, active: Option<&Value>) -> String {
    let step = active.and_then(|a| {
        Some((
            a["step"].as_u64()?,
            a["steps"].as_u64()?,
            a["canary_weight"].as_f64().unwrap_or(0.0),
        ))
    });
    match step {
        Some((step, steps, weight)) => {
            format!("{state} step {step}/{steps} at {}", weight_text(weight))
        }
        None => state.to_string(),
    }
}

fn set_numbers(name: &str, s: &Value) -> String {
    format!(
        "{name} {} req err {} p95 {}",
        s["requests"].as_u64().unwrap_or(0),
        pct(&s["error_rate_pct"]),
        ms(&s["p95_ms"])
    )
}

fn weight_text(weight: f64) -> String {
    if weight.fract() == 0.0 {
        format!("{weight:.0}%")
    } else {
        format!("{weight}%")
    }
}

/// "judge: fail on 749 canary req (error rate 16.98% vs stable 0.00%)", from a
/// verdict: the numbers that failed, else the error rates.
fn judge_text(verdict: &Value) -> Option<String> {
    let outcome = verdict["outcome"].as_str()?;
    let evidence: &[Value] = verdict["evidence"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let shown = evidence
        .iter()
        .find(|e| e["outcome"] == "fail")
        .or_else(|| evidence.iter().find(|e| e["metric"] == "error_rate_pct"))
        .map(|e| format!(" ({})", evidence_text(e)))
        .unwrap_or_default();
    Some(format!(
        "judge: {outcome} on {} canary req{shown}",
        verdict["canary_requests"].as_u64().unwrap_or(0)
    ))
}

/// "p95 latency 9.1ms vs stable 1.8ms" from the metric "p95_latency_ms".
fn evidence_text(evidence: &Value) -> String {
    let metric = evidence["metric"].as_str().unwrap_or("");
    let plain = |v: &Value| v.as_f64().map_or_else(|| "-".into(), |x| format!("{x:.3}"));
    let (name, canary, stable) = if let Some(name) = metric.strip_suffix("_pct") {
        (name, pct(&evidence["canary"]), pct(&evidence["stable"]))
    } else if let Some(name) = metric.strip_suffix("_ms") {
        (name, ms(&evidence["canary"]), ms(&evidence["stable"]))
    } else {
        (
            metric,
            plain(&evidence["canary"]),
            plain(&evidence["stable"]),
        )
    };
    format!("{} {canary} vs stable {stable}", name.replace('_', " "))
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

pub fn print_status(status: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let traffic = &status["traffic"];
    let canary_weight = traffic["canary_weight"].as_f64().unwrap_or(0.0);
    println!(
        "service      {} ({} backend, routed on {})",
        text(&status["service"]),
        text(&status["backend"]),
        text(&status["listen"])
    );
    println!("stable       {}", text(&status["stable_version"]));
    match traffic["canary"]["version"].as_str() {
        Some(version) => println!("canary       {version} at {}", weight_text(canary_weight)),
        None => println!("canary       none"),
    }
    let active = status["active"].as_object().map(|_| &status["active"]);
    match active {
        Some(a) => {
            println!(
                "rollout      {} of {}: {}",
                text(&a["id"]),
                text(&a["version"]),
                step_text(&text(&a["state"]), Some(a))
            );
            if let Some(waiting) = a["waiting_for"].as_str() {
                println!("waiting for  {waiting}");
            }
            if let Some(judge) = judge_text(&a["last_verdict"]) {
                println!("judge        {}", judge.trim_start_matches("judge: "));
                if let Some(reason) = a["last_verdict"]["reason"].as_str() {
                    println!("             {reason}");
                }
            }
        }
        None => println!("rollout      none in flight"),
    }
    if let Some(target) = status["rollback_target"].as_str() {
        println!("rollback to  {target}");
    }
    if let Some(last) = status["last_deployment"].as_object() {
        let field = |k: &str| last.get(k).and_then(Value::as_str).unwrap_or("");
        println!(
            "last         {} {} {} {}",
            field("id"),
            field("version"),
            field("state"),
            field("finished_at")
        );
    }
    let live = &status["live"];
    let window = live["window_secs"].as_u64().unwrap_or(0);
    println!(
        "live, last {window}s{}:",
        if active.is_some() {
            " of this rollout"
        } else {
            ""
        }
    );
    let mut rows = vec![set_row(
        "stable",
        &text(&traffic["stable"]["version"]),
        100.0 - canary_weight,
        &live["stable"],
    )];
    let canary_version = traffic["canary"]["version"].as_str();
    if canary_version.is_some() || live["canary"]["requests"].as_u64().unwrap_or(0) > 0 {
        rows.push(set_row(
            "canary",
            canary_version.unwrap_or("-"),
            canary_weight,
            &live["canary"],
        ));
    }
    print_table(
        &[
            "  SET", "VERSION", "WEIGHT", "REQUESTS", "ERRORS", "ERROR %", "P50", "P95", "P99",
        ],
        &rows,
    );
}

fn set_row(set: &str, version: &str, weight: f64, s: &Value) -> Vec<String> {
    vec![
        format!("  {set}"),
        version.to_string(),
        weight_text(weight),
        s["requests"].as_u64().unwrap_or(0).to_string(),
        s["errors"].as_u64().unwrap_or(0).to_string(),
        pct(&s["error_rate_pct"]),
        ms(&s["p50_ms"]),
        ms(&s["p95_ms"]),
        ms(&s["p99_ms"]),
    ]
}

pub async fn operate(action: &str, args: OperateArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let body = json!({ "reason": args.reason });
    let mut summary: Value = client
        .request(
            Method::POST,
            &format!("/api/v1/services/{}/{action}", args.service),
            Some(&body),
        )
        .await?;
    let table = matches!(args.api.output, OutputFormat::Table);
    let state = summary["state"].as_str().unwrap_or("").to_string();
    let describe = |summary: &Value| {
        format!(
            "deployment {} of {} {}",
            summary["id"].as_str().unwrap_or(""),
            args.service,
            summary["version"].as_str().unwrap_or("")
        )
    };
    // Pause and resume take effect at once; the others end the rollout, which takes
    // as long as draining and stopping the version take.
    let ends_rollout = matches!(action, "promote" | "abort" | "rollback");
    if ends_rollout && !is_terminal_state(&state) {
        if args.no_wait {
            if table {
                println!(
                    "{action}: {} is {state}; it goes on without you (follow it with `rampart status {}`)",
                    describe(&summary),
                    args.service
                );
            } else {
                print_json(&summary);
            }
            return Ok(());
        }
        if table {
            println!(
                "{action}: {} is {state}; waiting for it to end (Ctrl-C stops waiting, not the {action})",
                describe(&summary)
            );
        }
        let id = summary["id"].as_str().unwrap_or_default().to_string();
        let detail = follow(&client, &args.service, &id, Progress::Quiet).await?;
        summary = detail["summary"].clone();
    }
    emit(args.api.output, &summary, || {
        let state = summary["state"].as_str().unwrap_or("");
        let verb = if is_terminal_state(state) {
            "ended"
        } else {
            "is now"
        };
        println!("{action}: {} {verb} {state}", describe(&summary));
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
    let mut detail: Value = client
        .request(
            Method::GET,
            &format!("/api/v1/deployments/{}", args.id),
            None,
        )
        .await?;
    let measurements = if args.measurements {
        Some(all_measurements(&client, &args.id).await?)
    } else {
        None
    };
    if let (OutputFormat::Json, Some(list)) = (args.api.output, &measurements) {
        detail["measurements"] = Value::Array(list.clone());
    }
    emit(args.api.output, &detail, || {
        print_deployment(&detail, measurements.as_deref())
    });
    Ok(())
}

/// Every measurement of a deployment, a page at a time.
async fn all_measurements(client: &ApiClient, id: &str) -> Result<Vec<Value>, CliError> {
    const PAGE: usize = 1000;
    let mut all = Vec::new();
    loop {
        let page: Value = client
            .request(
                Method::GET,
                &format!(
                    "/api/v1/deployments/{id}/measurements?offset={}&limit={PAGE}",
                    all.len()
                ),
                None,
            )
            .await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let done = items.len() < PAGE;
        all.extend(items);
        if done {
            return Ok(all);
        }
    }
}

fn print_deployment(detail: &Value, measurements: Option<&[Value]>) {
    println!("{}", outcome_line(detail));
    let rollout = &detail["record"]["rollout"];
    let steps: Vec<String> = rollout["spec"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            format!(
                "{} for {}s",
                weight_text(s["weight"].as_f64().unwrap_or(0.0)),
                s["hold_ms"].as_u64().unwrap_or(0) / 1000
            )
        })
        .collect();
    println!("steps: {}", steps.join(", "));
    println!("transitions:");
    for t in rollout["history"].as_array().into_iter().flatten() {
        println!(
            "  {}  {} -> {}  by {}: {}",
            time_of_day(t["at"].as_u64()),
            phase_text(&t["from"]),
            phase_text(&t["to"]),
            actor_text(&t["actor"]),
            t["reason"].as_str().unwrap_or("")
        );
    }
    let analysis = &detail["analysis"];
    let by_outcome = analysis["by_outcome"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{} {k}", v.as_u64().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    println!(
        "analysis: {} measurements{}",
        analysis["measurements"].as_u64().unwrap_or(0),
        if by_outcome.is_empty() {
            String::new()
        } else {
            format!(" ({by_outcome})")
        }
    );
    match measurements {
        Some(list) => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|m| {
                    vec![
                        format!("  {}", m["at"].as_str().unwrap_or("")),
                        m["step"].as_u64().unwrap_or(0).to_string(),
                        m["outcome"].as_str().unwrap_or("").to_string(),
                        m["verdict"]["canary_requests"]
                            .as_u64()
                            .unwrap_or(0)
                            .to_string(),
                        m["verdict"]["reason"].as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            print_table(&["  AT", "STEP", "OUTCOME", "CANARY REQ", "REASON"], &rows);
        }
        None => {
            if let Some(last) = analysis["last"].as_object() {
                println!(
                    "  last: step {} {}: {}",
                    last.get("step").and_then(Value::as_u64).unwrap_or(0),
                    last.get("outcome").and_then(Value::as_str).unwrap_or(""),
                    last.get("verdict")
                        .and_then(|v| v["reason"].as_str())
                        .unwrap_or("")
                );
                println!("  (every measurement: --measurements)");
            }
        }
    }
}

fn time_of_day(ms: Option<u64>) -> String {
    ms.and_then(|ms| chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?))
        .map(|d| d.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// "progressing (step 2, 25%)": phases name their step from 1, as the user counts.
fn phase_text(phase: &Value) -> String {
    let state = phase["state"].as_str().unwrap_or("");
    match (phase["step"].as_u64(), phase["weight"].as_f64()) {
        (Some(step), Some(weight)) => {
            format!("{state} (step {}, {})", step + 1, weight_text(weight))
        }
        _ => state.to_string(),
    }
}

fn actor_text(actor: &Value) -> String {
    match actor["kind"].as_str() {
        Some("user") => actor["name"].as_str().unwrap_or("unknown").to_string(),
        _ => "rampart".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verdict(outcome: &str, evidence: Value) -> Value {
        json!({ "outcome": outcome, "canary_requests": 222, "evidence": evidence })
    }

    #[test]
    fn the_judge_part_shows_the_numbers_that_failed() {
        let evidence = json!([
            { "metric": "error_rate_pct", "canary": 0.0, "stable": 0.0, "outcome": "pass" },
            { "metric": "p95_latency_ms", "canary": 9.1, "stable": 1.8, "outcome": "fail" },
        ]);
        assert_eq!(
            judge_text(&verdict("fail", evidence.clone())).unwrap(),
            "judge: fail on 222 canary req (p95 latency 9.1ms vs stable 1.8ms)"
        );
        let passing = json!([{ "metric": "error_rate_pct", "canary": 0.5, "stable": 0.25, "outcome": "pass" }]);
        assert_eq!(
            judge_text(&verdict("pass", passing)).unwrap(),
            "judge: pass on 222 canary req (error rate 0.50% vs stable 0.25%)"
        );
        assert_eq!(judge_text(&Value::Null), None);
    }

    #[test]
    fn a_step_and_live_numbers_appear_only_while_a_step_runs() {
        let live =
            json!({ "window_secs": 4, "canary": { "requests": 7 }, "stable": { "requests": 90 } });
        // Validating: the view has no step yet, so no weight is claimed.
        let validating = json!({ "step": null, "steps": 3, "canary_weight": 0.0 });
        assert_eq!(
            progress_line("validating", Some(&validating), &Value::Null, &live),
            "validating"
        );
        let progressing = json!({ "step": 1, "steps": 3, "canary_weight": 5.0 });
        let line = progress_line("progressing", Some(&progressing), &Value::Null, &live);
        assert!(
            line.starts_with("progressing step 1/3 at 5% | last 4s: canary 7 req"),
            "{line}"
        );
        // At a gate: what it waits for, right after the step.
        let gated = json!({ "step": 2, "steps": 3, "canary_weight": 25.0,
                            "waiting_for": "approval by release-manager" });
        let line = progress_line("paused", Some(&gated), &Value::Null, &live);
        assert!(
            line.starts_with(
                "paused step 2/3 at 25% | waiting for approval by release-manager | last 4s"
            ),
            "{line}"
        );
        // Over: the state and the verdict, never another rollout's numbers.
        assert_eq!(
            progress_line("rolled_back", None, &Value::Null, &live),
            "rolled_back"
        );
    }
}
