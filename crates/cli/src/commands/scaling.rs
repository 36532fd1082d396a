//! Client commands for autoscaling: a service's size and decisions, scaling by hand,
//! recommendations.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{ApiOnlyArgs, ScaleArgs, ScalingArgs};
use crate::client::ApiClient;
use crate::exit::CliResult;
use crate::output::{emit, print_table};

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn show(args: ScalingArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let path = format!(
        "/api/v1/services/{}/scaling?limit={}",
        args.service, args.limit
    );
    let view: Value = client.request(Method::GET, &path, None).await?;
    emit(args.api.output, &view, || {
        let stable = &view["stable"];
        println!(
            "{}: stable {} runs {} instances ({} ready)",
            text(&view["service"]),
            text(&stable["version"]),
            text(&stable["instances"]),
            text(&stable["ready"])
        );
        if let Some(canary) = view["canary"].as_object() {
            println!(
                "  canary {} runs {} instances ({} ready)",
                text(&canary["version"]),
                text(&canary["instances"]),
                text(&canary["ready"])
            );
        }
        if view["autoscaled"].as_bool() == Some(true) {
            println!(
                "  autoscaling {}: min {}, max {}{}, every {} s",
                text(&view["mode"]),
                text(&view["min"]),
                text(&view["max"]),
                view["budget_max"]
                    .as_u64()
                    .map(|b| format!(" (budget pays for {b})"))
                    .unwrap_or_default(),
                text(&view["sync_secs"])
            );
        } else {
            println!("  autoscaling off");
        }
        if let Some(floor) = view["operator_floor"].as_object() {
            println!(
                "  operator minimum {} set by {}",
                text(&floor["instances"]),
                text(&floor["actor"])
            );
        }
        let rows: Vec<Vec<String>> = view["decisions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                vec![
                    text(&d["at"]),
                    format!("{} {}", text(&d["set"]), text(&d["version"])),
                    format!("{} → {}", text(&d["from"]), text(&d["to"])),
                    text(&d["status"]),
                    text(&d["reason"]),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("no decisions yet");
        } else {
            print_table(&["AT", "SET", "SIZE", "STATUS", "REASON"], &rows);
        }
    });
    Ok(())
}

pub async fn scale(args: ScaleArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let mut body = json!({ "instances": args.instances });
    if let Some(hold) = args.hold {
        body["for"] = json!(format!("{}s", hold.get().as_secs().max(1)));
    }
    if let Some(reason) = &args.reason {
        body["reason"] = json!(reason);
    }
    let path = format!("/api/v1/services/{}/scale", args.service);
    let record: Value = client.request(Method::POST, &path, Some(&body)).await?;
    emit(args.api.output, &record, || {
        println!(
            "{} {}: {} → {} ({})",
            text(&record["service"]),
            text(&record["version"]),
            text(&record["from"]),
            text(&record["to"]),
            text(&record["status"])
        );
        println!("  {}", text(&record["reason"]));
        if !record["error"].is_null() {
            println!("  error: {}", text(&record["error"]));
        }
    });
    Ok(())
}

pub async fn recommendations(args: ApiOnlyArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let list: Value = client
        .request(Method::GET, "/api/v1/recommendations", None)
        .await?;
    emit(args.api.output, &list, || {
        let items = list.as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            println!("nothing to recommend from the last 24 h");
        }
        for item in items {
            println!(
                "{} [{}] {}",
                text(&item["service"]),
                text(&item["kind"]),
                text(&item["message"])
            );
            println!("  evidence: {}", item["evidence"]);
        }
    });
    Ok(())
}
