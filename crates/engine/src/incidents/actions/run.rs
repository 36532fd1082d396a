//! `run`: the user's command (through `sh -c`, incident fields in `RAMPART_*`
//! variables) or webhook (the incident as JSON), within the action's timeout (the
//! caller's; a command still running then is killed).

use serde_json::json;

use super::{Context, Done};

/// Output kept in the timeline, per stream.
const OUTPUT_TAIL: usize = 2000;

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text.len().saturating_sub(OUTPUT_TAIL);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

pub(super) async fn run(cx: &Context<'_>) -> Result<Done, String> {
    let incident = cx.incident;
    if let Some(command) = &cx.action.command {
        let output = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&cx.engine.shared().base_dir)
            .env("RAMPART_INCIDENT_ID", &incident.id)
            .env(
                "RAMPART_INCIDENT_RULE",
                incident.rule.as_deref().unwrap_or(""),
            )
            .env("RAMPART_INCIDENT_SEVERITY", &incident.severity)
            .env("RAMPART_INCIDENT_TITLE", &incident.title)
            .env("RAMPART_SERVICE", incident.service.as_deref().unwrap_or(""))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot run `{command}`: {e}"))?;
        let details = json!({
            "command": command,
            "exit_code": output.status.code(),
            "stdout": tail(&output.stdout),
            "stderr": tail(&output.stderr),
        });
        if !output.status.success() {
            return Err(format!(
                "`{command}` failed ({}): {}",
                output.status,
                tail(&output.stderr).trim()
            ));
        }
        return Ok(Done {
            summary: format!("ran `{command}`"),
            details,
            undo: Vec::new(),
        });
    }
    let Some(url) = &cx.action.url else {
        return Err("a run action needs `command` or `url`".into());
    };
    let response = reqwest::Client::new()
        .post(url)
        .timeout(cx.action.timeout.get())
        .json(&json!({ "incident": incident, "action": cx.action.name }))
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("POST {url}: answered {status}"));
    }
    Ok(Done {
        summary: format!("posted the incident to {url}"),
        details: json!({ "url": url, "status": status.as_u16() }),
        undo: Vec::new(),
    })
}
