//! `rampart reload`: the running server re-reads its config file and applies what
//! changed (`POST /api/v1/reload`, as SIGHUP does).

use reqwest::Method;
use serde_json::Value;

use crate::cli::ApiOnlyArgs;
use crate::client::ApiClient;
use crate::exit::CliResult;
use crate::output::emit;

pub async fn run(args: ApiOnlyArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    // A bad file comes back as 422 with the diagnostics `check-config` prints, a
    // refusal as 409 with every reason; the client shows the detail and exits non-zero.
    let summary: Value = client.request(Method::POST, "/api/v1/reload", None).await?;
    emit(args.api.output, &summary, || {
        for line in lines(&summary) {
            println!("{line}");
        }
    });
    Ok(())
}

/// What changed, one line each, as the server's summary says.
fn lines(summary: &Value) -> Vec<String> {
    if summary["changes"].as_bool() != Some(true) {
        return vec!["configuration reloaded: nothing changed".into()];
    }
    let names = |key: &str| -> Vec<String> {
        summary[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut lines = vec!["configuration reloaded:".to_string()];
    for name in names("added") {
        lines.push(format!("  + service {name} added"));
    }
    for name in names("removed") {
        lines.push(format!("  - service {name} removed"));
    }
    for service in summary["changed"].as_array().into_iter().flatten() {
        let name = service["name"].as_str().unwrap_or("?");
        for field in service["fields"].as_array().into_iter().flatten() {
            lines.push(format!(
                "  ~ service {name}: {} {} → {}",
                field["field"].as_str().unwrap_or("?"),
                value(&field["from"]),
                value(&field["to"])
            ));
        }
        for note in service["notes"].as_array().into_iter().flatten() {
            if let Some(note) = note.as_str() {
                lines.push(format!("    {note}"));
            }
        }
    }
    lines
}

fn value(v: &Value) -> String {
    match v {
        Value::Null => "unset".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_as_one_line_per_change() {
        let summary = serde_json::json!({
            "changes": true,
            "added": ["cart"],
            "removed": ["legacy"],
            "changed": [{
                "name": "shop",
                "fields": [{"field": "router.request_timeout", "from": "30s", "to": "5s"}],
                "notes": ["router settings in force"],
            }],
        });
        assert_eq!(
            lines(&summary),
            [
                "configuration reloaded:",
                "  + service cart added",
                "  - service legacy removed",
                "  ~ service shop: router.request_timeout 30s → 5s",
                "    router settings in force",
            ]
        );
        assert_eq!(
            lines(&serde_json::json!({"changes": false})),
            ["configuration reloaded: nothing changed"]
        );
    }
}
