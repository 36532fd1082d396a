//! The notification outbox: what was sent to which notifier, and how it went.

use axum::Json;
use axum::extract::{Query, State};
use rampart_store::{
    NOTIFICATION_LIST_LIMIT_MAX, Notification, NotificationQuery, NotificationState,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    /// `pending`, `delivered`, `skipped`, `failed` or `abandoned`.
    pub state: Option<String>,
    /// A `[[notifier]]` name.
    pub notifier: Option<String>,
    /// The messages about one thing: `incident-<id>` or `rollout-<deployment id>`.
    pub key: Option<String>,
    /// Page backwards: only notifications with a smaller id.
    pub before_id: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    pub id: i64,
    pub notifier: String,
    /// `pending`, `delivered`, `skipped`, `failed` or `abandoned`.
    pub state: String,
    /// `incident_opened`, `rollout_rolled_back`, ...
    pub topic: String,
    pub key: String,
    pub service: Option<String>,
    pub severity: String,
    pub summary: String,
    pub attempts: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    /// The receiver's HTTP status on the last attempt.
    pub last_status: Option<u16>,
    /// Why the last attempt did not deliver, or why it was skipped.
    pub last_error: Option<String>,
    /// When it was delivered, skipped, failed or abandoned.
    pub finished_at: Option<String>,
    /// The whole channel-neutral message.
    #[schema(value_type = Object)]
    pub message: serde_json::Value,
}

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView {
            id: n.id,
            notifier: n.notifier,
            state: n.state.as_str().to_string(),
            topic: n.message.topic.as_str().to_string(),
            key: n.message.key.clone(),
            service: n.message.service.clone(),
            severity: n.message.severity.as_str().to_string(),
            summary: n.message.summary.clone(),
            attempts: n.attempts,
            created_at: time(n.created_at),
            next_attempt_at: (n.state == NotificationState::Pending)
                .then(|| time(n.next_attempt_at)),
            last_attempt_at: n.last_attempt_at.map(time),
            last_status: n.last_status,
            last_error: n.last_error,
            finished_at: n.finished_at.map(time),
            message: serde_json::to_value(&n.message).unwrap_or_default(),
        }
    }
}

/// Notifications newest first, with their delivery status.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    security(("bearer" = [])),
    params(NotificationParams),
    responses((status = 200, body = Vec<NotificationView>),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_notifications(
    State(state): State<AppState>,
    Query(params): Query<NotificationParams>,
) -> Result<Json<Vec<NotificationView>>, ApiError> {
    let wanted_state = match params.state.as_deref() {
        None => None,
        Some(text) => Some(NotificationState::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "query parameter `state` is `{text}`; use one of {}",
                NotificationState::ALL
                    .map(NotificationState::as_str)
                    .join(", ")
            ))
        })?),
    };
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > NOTIFICATION_LIST_LIMIT_MAX {
        return Err(ApiError::BadRequest(format!(
            "query parameter `limit` is {limit}; use 1 to {NOTIFICATION_LIST_LIMIT_MAX}"
        )));
    }
    let query = NotificationQuery {
        state: wanted_state,
        notifier: params.notifier,
        key: params.key,
        before_id: params.before_id,
        limit,
    };
    let rows = state
        .store
        .read(move |tx| tx.list_notifications(&query))
        .await?;
    Ok(Json(rows.into_iter().map(NotificationView::from).collect()))
}
