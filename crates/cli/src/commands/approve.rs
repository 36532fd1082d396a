//! `rampart approve SERVICE [--step N]`: a named approval of a rollout step.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::ApproveArgs;
use crate::client::ApiClient;
use crate::exit::CliResult;
use crate::output::emit;

pub async fn run(args: ApproveArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let body = json!({ "step": args.step, "reason": args.reason });
    let summary: Value = client
        .request(
            Method::POST,
            &format!("/api/v1/services/{}/approve", args.service),
            Some(&body),
        )
        .await?;
    emit(args.api.output, &summary, || {
        let step = args
            .step
            .map(|n| format!("step {n}"))
            .unwrap_or_else(|| "the current step".to_string());
        println!(
            "approved {step} of deployment {} of {} {}; it is now {}",
            summary["id"].as_str().unwrap_or(""),
            args.service,
            summary["version"].as_str().unwrap_or(""),
            summary["state"].as_str().unwrap_or("")
        );
    });
    Ok(())
}
