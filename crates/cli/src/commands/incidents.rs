//! `rampart incidents` and `rampart incident show|ack|escalate|resolve ID`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{IncidentCommand, IncidentIdArgs, IncidentsArgs};
use crate::client::ApiClient;
use crate::exit::CliResult;
use crate::output::{emit, print_table};

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Query parameters, percent-encoded.
fn query(args: &IncidentsArgs) -> String {
    let mut url = reqwest::Url::parse("http://x/api/v1/incidents").expect("static URL");
    {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in [
            ("state", &args.state),
            ("service", &args.service),
            ("severity", &args.severity),
        ] {
            if let Some(value) = value {
                pairs.append_pair(key, value);
            }
        }
        pairs.append_pair("limit", &args.limit.to_string());
    }
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

pub async fn list(args: IncidentsArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let incidents: Value = client.request(Method::GET, &query(&args), None).await?;
    emit(args.api.output, &incidents, || {
        let rows: Vec<Vec<String>> = incidents
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|i| {
                        vec![
                            text(&i["id"]),
                            text(&i["status"]),
                            text(&i["severity"]),
                            text(&i["service"]),
                            text(&i["rule"]),
                            text(&i["opened_at"]),
                            text(&i["repeats"]),
                            text(&i["title"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        if rows.is_empty() {
            println!("no incidents");
        } else {
            print_table(
                &[
                    "ID", "STATUS", "SEVERITY", "SERVICE", "RULE", "OPENED", "REPEATS", "TITLE",
                ],
                &rows,
            );
        }
    });
    Ok(())
}

pub async fn run(command: IncidentCommand) -> CliResult {
    let (verb, args): (Option<&str>, IncidentIdArgs) = match command {
        IncidentCommand::Show(args) => (None, args),
        IncidentCommand::Ack(args) => (Some("acknowledge"), args),
        IncidentCommand::Escalate(args) => (Some("escalate"), args),
        IncidentCommand::Resolve(args) => (Some("resolve"), args),
    };
    let client = ApiClient::new(&args.api, None)?;
    let path = format!("/api/v1/incidents/{}", args.id);
    if let Some(verb) = verb {
        let body = json!({ "reason": args.reason });
        let incident: Value = client
            .request(Method::POST, &format!("{path}/{verb}"), Some(&body))
            .await?;
        emit(args.api.output, &incident, || {
            println!(
                "incident {} is {}",
                text(&incident["id"]),
                text(&incident["status"])
            );
        });
        return Ok(());
    }
    let detail: Value = client.request(Method::GET, &path, None).await?;
    emit(args.api.output, &detail, || print_detail(&detail));
    Ok(())
}

fn print_detail(detail: &Value) {
    println!(
        "incident {}: {}",
        text(&detail["id"]),
        text(&detail["title"])
    );
    println!(
        "  status {}, severity {}, service {}, rule {}",
        text(&detail["status"]),
        text(&detail["severity"]),
        text(&detail["service"]),
        text(&detail["rule"])
    );
    println!(
        "  opened {}, acknowledged {}, escalations {}, resolved {}, repeats {}",
        text(&detail["opened_at"]),
        text(&detail["acknowledged_at"]),
        text(&detail["escalations"]),
        text(&detail["closed_at"]),
        text(&detail["repeats"])
    );
    println!("timeline:");
    for event in detail["timeline"].as_array().into_iter().flatten() {
        let d = &event["details"];
        let what = match event["kind"].as_str() {
            Some("action") => format!(
                "{} {}{}",
                text(&d["action"]),
                text(&d["result"]),
                d.get("summary")
                    .or(d.get("reason"))
                    .map(|s| format!(": {}", text(s)))
                    .unwrap_or_default()
            ),
            Some("notification") => format!("to {} ({})", text(&d["notifier"]), text(&d["status"])),
            _ => d.get("reason").map(text).unwrap_or_default(),
        };
        println!(
            "  {}  {:<13} {:<10} {}",
            text(&event["at"]),
            text(&event["kind"]),
            text(&event["actor"]),
            what
        );
    }
}
