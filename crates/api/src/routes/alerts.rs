//! Incidents from outside: Alertmanager's webhook (payload version 4) and a generic
//! JSON webhook. An alert opens an incident (or counts a repeat on the open one of
//! the same name and service) and its resolution resolves it. A config rule with the
//! alert's name lends it its actions and notifiers.
//!
//! Alertmanager sends the bearer token with `http_config.authorization`; the token
//! needs the operator role, like any change through the API.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::{Extension, Json};
use rampart_core::notify::Severity;
use rampart_store::{NewIncident, Opened};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::problem::{ApiError, Problem};
use crate::routes::deployments::json_body;
use crate::state::AppState;

/// Alertmanager's webhook body, version 4 (fields rampart does not use are kept
/// optional, so a newer Alertmanager adding some still gets through).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerPayload {
    /// Must be "4".
    pub version: String,
    #[serde(default)]
    pub group_key: Option<String>,
    #[serde(default)]
    pub truncated_alerts: Option<u64>,
    /// firing | resolved (of the group).
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub receiver: Option<String>,
    #[serde(default)]
    pub external_url: Option<String>,
    pub alerts: Vec<AlertmanagerAlert>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    /// firing | resolved
    pub status: String,
    /// `alertname` names the incident's rule; `service` (or `job`) a configured
    /// service; `severity` critical | high | error | warning | medium | info | low.
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// A generic alert: any system that can POST JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookAlert {
    /// The alert's name (a-z, 0-9, `-`, `_`): the incident's rule.
    pub name: String,
    /// firing (default) or resolved.
    #[serde(default)]
    pub status: Option<String>,
    /// A configured service, if the alert is about one.
    #[serde(default)]
    pub service: Option<String>,
    /// critical | high | medium | low (default high).
    #[serde(default)]
    pub severity: Option<String>,
    /// One line shown as the incident's title.
    #[serde(default)]
    pub summary: Option<String>,
    /// Anything else, kept with the incident.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub details: Option<Value>,
}

/// What was done with the alerts received.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct AlertsOutcome {
    pub opened: Vec<String>,
    pub repeated: Vec<String>,
    pub resolved: Vec<String>,
    /// Resolutions of alerts without an open incident.
    pub ignored: usize,
}

fn severity_of(label: Option<&str>) -> Result<Severity, String> {
    Ok(match label.map(str::to_ascii_lowercase).as_deref() {
        None => Severity::High,
        Some("critical" | "page") => Severity::Critical,
        Some("high" | "error") => Severity::High,
        Some("medium" | "warning" | "warn") => Severity::Medium,
        Some("low" | "info" | "none") => Severity::Low,
        Some(other) => {
            return Err(format!(
                "severity `{other}` is not one of critical, high, error, medium, warning, low, info"
            ));
        }
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b':')
}

/// One alert, however it came.
struct Alert {
    name: String,
    firing: bool,
    service: Option<String>,
    severity: Severity,
    title: String,
    details: Value,
}

async fn apply(
    state: &AppState,
    principal: &Principal,
    alerts: Vec<Alert>,
) -> Result<AlertsOutcome, ApiError> {
    let mut outcome = AlertsOutcome::default();
    for alert in alerts {
        if alert.firing {
            let new = NewIncident {
                rule: alert.name,
                service: alert.service,
                severity: alert.severity.as_str().into(),
                title: alert.title,
                details: alert.details,
            };
            match state
                .incidents
                .external_firing(new, &principal.token_name)
                .await?
            {
                Opened::New(i) => outcome.opened.push(i.id),
                Opened::Repeat(i) => outcome.repeated.push(i.id),
            }
        } else {
            let reason = format!("the alert `{}` resolved at its source", alert.name);
            match state
                .incidents
                .external_resolved(
                    &alert.name,
                    alert.service.as_deref(),
                    &principal.token_name,
                    reason,
                )
                .await?
            {
                Some(i) => outcome.resolved.push(i.id),
                None => outcome.ignored += 1,
            }
        }
    }
    Ok(outcome)
}

/// A service the config knows, from the first of these labels that names one.
fn service_of(state: &AppState, labels: &BTreeMap<String, String>) -> Option<String> {
    ["service", "job", "app"]
        .iter()
        .filter_map(|key| labels.get(*key))
        .find(|name| state.config.load().service(name).is_some())
        .cloned()
}

/// Alertmanager's webhook receiver (payload version 4): each firing alert opens an
/// incident named by its `alertname` (or repeats the open one), each resolved alert
/// resolves it. Labels `service` (or `job`, `app`) pick the service and `severity`
/// the severity.
#[utoipa::path(post, path = "/api/v1/alerts/alertmanager", tag = "incidents",
    security(("bearer" = [])),
    request_body = AlertmanagerPayload,
    responses((status = 200, body = AlertsOutcome),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn alertmanager(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<AlertmanagerPayload>, JsonRejection>,
) -> Result<Json<AlertsOutcome>, ApiError> {
    let payload = json_body(body)?;
    if payload.version != "4" {
        return Err(ApiError::BadRequest(format!(
            "Alertmanager payload version `{}` is not supported; rampart reads version 4 (Alertmanager 0.x webhook_config)",
            payload.version
        )));
    }
    let mut alerts = Vec::with_capacity(payload.alerts.len());
    for (index, alert) in payload.alerts.into_iter().enumerate() {
        let Some(name) = alert
            .labels
            .get("alertname")
            .filter(|n| valid_name(n))
            .cloned()
        else {
            return Err(ApiError::BadRequest(format!(
                "`alerts[{index}].labels.alertname` is missing or not a name (letters, digits, - _ . :, at most 128)"
            )));
        };
        let firing = match alert.status.as_str() {
            "firing" => true,
            "resolved" => false,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "`alerts[{index}].status` is `{other}`; expected firing or resolved"
                )));
            }
        };
        let severity = severity_of(alert.labels.get("severity").map(String::as_str))
            .map_err(|e| ApiError::BadRequest(format!("`alerts[{index}].labels.severity`: {e}")))?;
        let service = service_of(&state, &alert.labels);
        let summary = alert
            .annotations
            .get("summary")
            .or(alert.annotations.get("description"))
            .cloned()
            .unwrap_or_else(|| format!("Alertmanager alert {name}"));
        let title = match &service {
            Some(s) => format!("{name} on {s}: {summary}"),
            None => format!("{name}: {summary}"),
        };
        alerts.push(Alert {
            name,
            firing,
            service,
            severity,
            title,
            details: json!({
                "source": "alertmanager",
                "reason": summary,
                "labels": alert.labels,
                "annotations": alert.annotations,
                "starts_at": alert.starts_at,
                "ends_at": alert.ends_at,
                "generator_url": alert.generator_url,
                "fingerprint": alert.fingerprint,
                "group_key": payload.group_key,
                "receiver": payload.receiver,
                "external_url": payload.external_url,
            }),
        });
    }
    Ok(Json(apply(&state, &principal, alerts).await?))
}

/// A generic JSON alert from any system: `firing` opens (or repeats) an incident
/// named `name`, `resolved` resolves it.
#[utoipa::path(post, path = "/api/v1/alerts/webhook", tag = "incidents",
    security(("bearer" = [])),
    request_body = WebhookAlert,
    responses((status = 200, body = AlertsOutcome),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn webhook(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<WebhookAlert>, JsonRejection>,
) -> Result<Json<AlertsOutcome>, ApiError> {
    let alert = json_body(body)?;
    if !valid_name(&alert.name) {
        return Err(ApiError::BadRequest(format!(
            "`name` is `{}`; use letters, digits, - _ . : (at most 128)",
            alert.name
        )));
    }
    let firing = match alert.status.as_deref() {
        None | Some("firing") => true,
        Some("resolved") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`status` is `{other}`; expected firing or resolved"
            )));
        }
    };
    if let Some(service) = &alert.service
        && state.config.load().service(service).is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "`service`: no service is called `{service}`"
        )));
    }
    let severity = severity_of(alert.severity.as_deref())
        .map_err(|e| ApiError::BadRequest(format!("`severity`: {e}")))?;
    let summary = alert
        .summary
        .unwrap_or_else(|| format!("webhook alert {}", alert.name));
    let title = match &alert.service {
        Some(s) => format!("{} on {s}: {summary}", alert.name),
        None => format!("{}: {summary}", alert.name),
    };
    let alerts = vec![Alert {
        details: json!({ "source": "webhook", "reason": summary, "details": alert.details }),
        name: alert.name,
        firing,
        service: alert.service,
        severity,
        title,
    }];
    Ok(Json(apply(&state, &principal, alerts).await?))
}
