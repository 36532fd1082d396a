//! `rampart history SERVICE` and `rampart rollback SERVICE --to VERSION|REVISION`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{OutputFormat, RollbackArgs, ServiceArgs};
use crate::client::ApiClient;
use crate::commands::rollout::{follow_to_the_end, operate};
use crate::exit::CliResult;
use crate::output::{emit, print_table};

pub async fn history(args: ServiceArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let revisions: Value = client
        .request(
            Method::GET,
            &format!("/api/v1/services/{}/history", args.service),
            None,
        )
        .await?;
    emit(args.api.output, &revisions, || {
        let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
        let rows: Vec<Vec<String>> = revisions
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let outcome = if r["serving"].as_bool() == Some(true) {
                    format!("{} (serving)", text(&r["outcome"]))
                } else {
                    text(&r["outcome"])
                };
                vec![
                    r["revision"].as_u64().unwrap_or(0).to_string(),
                    text(&r["version"]),
                    text(&r["started_at"]),
                    text(&r["ended_at"]),
                    text(&r["replaced_at"]),
                    text(&r["deployed_by"]),
                    outcome,
                ]
            })
            .collect();
        print_table(
            &[
                "REV", "VERSION", "STARTED", "ENDED", "REPLACED", "BY", "OUTCOME",
            ],
            &rows,
        );
    });
    Ok(())
}

/// Without `--to`: the emergency rollback. With it: a rollout back to that revision,
/// followed to its end like `deploy --wait` unless `--no-wait`.
pub async fn rollback(args: RollbackArgs) -> CliResult {
    let Some(to) = args.to else {
        return operate("rollback", args.operate).await;
    };
    let op = args.operate;
    let client = ApiClient::new(&op.api, None)?;
    let created: Value = client
        .request(
            Method::POST,
            &format!("/api/v1/services/{}/rollback-to", op.service),
            Some(&json!({ "to": to, "reason": op.reason })),
        )
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let version = created["version"].as_str().unwrap_or_default().to_string();
    if op.no_wait {
        emit(op.api.output, &created, || {
            println!(
                "rollback of {} to {version} started as deployment {id}; follow it with `rampart status {} --watch`",
                op.service, op.service
            );
        });
        return Ok(());
    }
    if matches!(op.api.output, OutputFormat::Table) {
        println!(
            "rollback of {} to {version} started as deployment {id}; following it (Ctrl-C stops following, not the rollout)",
            op.service
        );
    }
    follow_to_the_end(&client, &op.service, &id, op.api.output).await
}
