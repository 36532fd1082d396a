//! Live updates as server-sent events: rollout transitions, verdicts, weight changes.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::live::{Resume, StampedEvent, TICKET_TTL};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events of this service.
    pub service: Option<String>,
    /// A stream ticket from `POST /api/v1/events/ticket`, for clients that cannot
    /// send an `Authorization` header (a browser's `EventSource`). Single use.
    pub ticket: Option<String>,
    /// Resume after this event id, like the `Last-Event-ID` header (which wins when
    /// both are given); for clients that reconnect by hand with a new ticket.
    pub last_event_id: Option<String>,
}

/// A stream of engine events (`transition`, `analysis`, `traffic`,
/// `version_stopped`, `scaling`, `incident`), each a JSON object with an SSE id. A client that reconnects
/// with `Last-Event-ID` (or `last_event_id`) first gets the events it missed; if
/// they are no longer kept, or rampart restarted, it gets a `resync` event and
/// should reload its state. `lagged` says how many events a slow reader missed
/// (reload as for `resync`). Ends when rampart shuts down.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    security(("bearer" = [])),
    params(EventParams),
    responses((status = 200, description = "text/event-stream of JSON events", content_type = "text/event-stream")))]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<EventParams>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(params.last_event_id);
    let (resume, receiver) = state.live.subscribe(last_event_id.as_deref());
    let first: Vec<Event> = match resume {
        // With the latest id, so that the reloaded client resumes from here.
        Resume::Resync { head } => vec![Event::default().id(head).event("resync").data("{}")],
        Resume::Replay(missed) => missed
            .iter()
            .filter(|e| wanted(&params.service, e))
            .map(|e| sse_event(&state, e))
            .collect(),
    };
    let replay = futures_util::stream::iter(first.into_iter().map(Ok));
    let live = futures_util::stream::unfold(
        (receiver, state.shutdown.clone(), params.service, state),
        |(mut events, mut shutdown, service, state)| async move {
            loop {
                let received = tokio::select! {
                    _ = shutdown.wait_for(|stopping| *stopping) => return None,
                    received = events.recv() => received,
                };
                let event = match received {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let note = Event::default().event("lagged").data(missed.to_string());
                        return Some((Ok(note), (events, shutdown, service, state)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                if !wanted(&service, &event) {
                    continue;
                }
                let sse = sse_event(&state, &event);
                return Some((Ok(sse), (events, shutdown, service, state)));
            }
        },
    );
    Sse::new(futures_util::StreamExt::chain(replay, live)).keep_alive(KeepAlive::default())
}

fn wanted(service: &Option<String>, event: &StampedEvent) -> bool {
    service.as_ref().is_none_or(|s| *s == event.service)
}

fn sse_event(state: &AppState, event: &Arc<StampedEvent>) -> Event {
    Event::default()
        .id(state.live.id_of(event.seq))
        .event(event.name)
        .data(event.data.as_str())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTicket {
    /// Pass as `?ticket=` to `GET /api/v1/events`; works once.
    pub ticket: String,
    /// Seconds the ticket stays valid if unused.
    pub expires_in_secs: u64,
}

/// A single-use ticket, valid for 30 seconds, that opens one event stream as the
/// caller: for browsers, whose `EventSource` cannot send an `Authorization` header.
/// Any role may ask for one.
#[utoipa::path(post, path = "/api/v1/events/ticket", tag = "events",
    security(("bearer" = [])),
    responses((status = 200, body = StreamTicket)))]
pub async fn create_ticket(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Json<StreamTicket> {
    Json(StreamTicket {
        ticket: state.live.issue_ticket(principal),
        expires_in_secs: TICKET_TTL.as_secs(),
    })
}

/// Keeps the type of the shutdown flag in one place.
pub type ShutdownFlag = watch::Receiver<bool>;
