//! Listing and watching, as Argo Rollouts and Flagger users do every day: the
//! services with their versions, the deployments, the live event stream, and a
//! status that follows the rollout in flight to its end.

use std::io::Write;

use anyhow::anyhow;
use reqwest::Method;
use serde_json::Value;

use crate::cli::{ApiOnlyArgs, DeploymentsArgs, EventsArgs, OutputFormat, StatusArgs};
use crate::client::ApiClient;
use crate::commands::rollout::{follow_to_the_end, print_status};
use crate::exit::CliResult;
use crate::output::{emit, print_table};

pub async fn services(args: ApiOnlyArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let services: Vec<Value> = client
        .request(Method::GET, "/api/v1/services", None)
        .await?;
    // The list is the configuration; each service's status adds what runs now.
    let mut rows = Vec::with_capacity(services.len());
    for service in &services {
        let name = service["name"].as_str().unwrap_or_default();
        let status: Value = client
            .request(
                Method::GET,
                &format!("/api/v1/services/{name}/status"),
                None,
            )
            .await?;
        rows.push(serde_json::json!({ "service": service, "status": status }));
    }
    emit(args.api.output, &rows, || {
        let table: Vec<Vec<String>> = rows.iter().map(service_row).collect();
        print_table(
            &["SERVICE", "LISTEN", "STABLE", "CANARY", "ROLLOUT"],
            &table,
        );
    });
    Ok(())
}

fn service_row(row: &Value) -> Vec<String> {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let status = &row["status"];
    let canary = match status["traffic"]["canary"]["version"].as_str() {
        Some(version) => format!(
            "{version} at {}%",
            status["traffic"]["canary_weight"].as_f64().unwrap_or(0.0)
        ),
        None => "-".into(),
    };
    let rollout = match status["active"].as_object() {
        Some(active) => format!(
            "{} {}",
            active.get("state").and_then(Value::as_str).unwrap_or("?"),
            active.get("version").and_then(Value::as_str).unwrap_or("")
        ),
        None => "-".into(),
    };
    vec![
        text(&row["service"]["name"]),
        text(&status["listen"]),
        text(&status["stable_version"]),
        canary,
        rollout,
    ]
}

pub async fn deployments(args: DeploymentsArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let path = match &args.service {
        Some(service) => format!(
            "/api/v1/services/{service}/deployments?limit={}",
            args.limit
        ),
        None => format!("/api/v1/deployments?limit={}", args.limit),
    };
    let list: Vec<Value> = client.request(Method::GET, &path, None).await?;
    emit(args.api.output, &list, || {
        let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|d| {
                vec![
                    text(&d["id"]),
                    text(&d["service"]),
                    text(&d["version"]),
                    text(&d["previous_version"]),
                    text(&d["state"]),
                    text(&d["created_at"]),
                    text(&d["finished_at"]),
                ]
            })
            .collect();
        print_table(
            &[
                "ID", "SERVICE", "VERSION", "REPLACES", "STATE", "STARTED", "FINISHED",
            ],
            &rows,
        );
    });
    Ok(())
}

/// Shows the service; with `--watch`, follows the rollout in flight to its end and
/// exits by its outcome (0 promoted, 1 otherwise), as `deploy --wait` does.
pub async fn status(args: StatusArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let status: Value = client
        .request(
            Method::GET,
            &format!("/api/v1/services/{}/status", args.service),
            None,
        )
        .await?;
    let active_id = status["active"]["id"].as_str().map(str::to_string);
    let (true, Some(id)) = (args.watch, active_id) else {
        emit(args.api.output, &status, || print_status(&status));
        return Ok(());
    };
    if matches!(args.api.output, OutputFormat::Table) {
        print_status(&status);
        println!("following rollout {id} (Ctrl-C stops following, not the rollout)");
    }
    follow_to_the_end(&client, &args.service, &id, args.api.output).await
}

/// Prints the event stream until the server ends it or Ctrl-C.
pub async fn events(args: EventsArgs) -> CliResult {
    let client = ApiClient::new(&args.api, None)?;
    let path = match &args.service {
        Some(service) => format!("/api/v1/events?service={service}"),
        None => "/api/v1/events".into(),
    };
    let mut response = client.stream(&path).await?;
    let mut parser = SseParser::default();
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let chunk = chunk.map_err(|e| anyhow!("the event stream broke off: {e}"))?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        for event in parser.push(&chunk) {
            match args.api.output {
                OutputFormat::Json => {
                    let data: Value = serde_json::from_str(&event.data)
                        .unwrap_or_else(|_| Value::String(event.data.clone()));
                    println!(
                        "{}",
                        serde_json::json!({ "event": event.name, "data": data })
                    );
                }
                OutputFormat::Table => println!("{}", event_line(&event)),
            }
        }
        let _ = std::io::stdout().flush();
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
}

/// Splits a byte stream into server-sent events (the WHATWG event-stream format:
/// `event:`/`data:` fields, events ended by a blank line, comments ignored).
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.current.data.is_empty() || !self.current.name.is_empty() {
                    let mut event = std::mem::take(&mut self.current);
                    if event.name.is_empty() {
                        event.name = "message".into();
                    }
                    events.push(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.name = value.to_string(),
                "data" => {
                    if !self.current.data.is_empty() {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                }
                _ => {}
            }
        }
        events
    }
}

/// One readable line per event; kinds this CLI does not know print their JSON.
pub fn event_line(event: &SseEvent) -> String {
    let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
        return format!("{:<16} {}", event.name, event.data);
    };
    let service = data["service"].as_str().unwrap_or("-");
    let what = match event.name.as_str() {
        "transition" => {
            let t = &data["transition"];
            format!(
                "{} → {}: {}",
                phase_name(&t["from"]),
                phase_name(&t["to"]),
                t["reason"].as_str().unwrap_or("")
            )
        }
        "analysis" => {
            let v = &data["verdict"];
            format!(
                "{}: {}",
                v["outcome"].as_str().unwrap_or("?"),
                v["reason"].as_str().unwrap_or("")
            )
        }
        "traffic" => format!(
            "canary at {}%",
            data["canary_weight"].as_f64().unwrap_or(0.0)
        ),
        "version_stopped" => format!("{} stopped", data["version"].as_str().unwrap_or("?")),
        "hook" => format!(
            "{} hook {}: {}",
            data["kind"].as_str().unwrap_or("?"),
            if data["ok"].as_bool() == Some(true) {
                "answered"
            } else {
                "failed"
            },
            data["answer"].as_str().unwrap_or("")
        ),
        _ => data.to_string(),
    };
    format!("{:<16} {service:<16} {what}", event.name)
}

/// A phase is `{"state": name, ...}`; a step's weight is worth showing.
fn phase_name(phase: &Value) -> String {
    let name = phase["state"].as_str().unwrap_or("?");
    match phase["weight"].as_f64() {
        Some(weight) => format!("{name} at {weight}%"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut parser = SseParser::default();
        assert!(
            parser
                .push(b"event: traffic\ndata: {\"service\":")
                .is_empty()
        );
        let events = parser.push(b"\"shop\",\"canary_weight\":25.0}\n\n: keep-alive\n\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, "traffic");
        assert_eq!(
            event_line(&events[0]),
            "traffic          shop             canary at 25%"
        );
    }

    #[test]
    fn multi_line_data_and_crlf_are_joined() {
        let mut parser = SseParser::default();
        let events = parser.push(b"data: a\r\ndata: b\r\n\r\n");
        assert_eq!(
            events,
            vec![SseEvent {
                name: "message".into(),
                data: "a\nb".into()
            }]
        );
    }

    #[test]
    fn transitions_name_both_phases() {
        let event = SseEvent {
            name: "transition".into(),
            data: r#"{"service":"shop","transition":{"from":{"state":"starting"},"to":{"state":"progressing","step":0,"weight":5.0},"reason":"instances ready"}}"#.into(),
        };
        assert_eq!(
            event_line(&event),
            "transition       shop             starting → progressing at 5%: instances ready"
        );
    }

    #[test]
    fn unknown_kinds_print_their_json() {
        let event = SseEvent {
            name: "scaling".into(),
            data: r#"{"service":"shop","to":3}"#.into(),
        };
        assert!(event_line(&event).contains(r#""to":3"#));
    }
}
