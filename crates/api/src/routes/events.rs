//! Live updates as server-sent events: rollout transitions, verdicts, weight changes.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use rampart_engine::{EngineEvent, EngineEventKind};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use utoipa::IntoParams;

use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events of this service.
    pub service: Option<String>,
}

fn event_name(event: &EngineEvent) -> &'static str {
    match event.kind {
        EngineEventKind::Transition { .. } => "transition",
        EngineEventKind::Analysis { .. } => "analysis",
        EngineEventKind::Traffic { .. } => "traffic",
        EngineEventKind::VersionStopped { .. } => "version_stopped",
        EngineEventKind::Scaling { .. } => "scaling",
        EngineEventKind::Incident { .. } => "incident",
    }
}

/// A stream of engine events (`transition`, `analysis`, `traffic`,
/// `version_stopped`, `incident`), each a JSON object; `lagged` says how many a slow reader
/// missed. Ends when rampart shuts down.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    security(("bearer" = [])),
    params(EventParams),
    responses((status = 200, description = "text/event-stream of JSON events", content_type = "text/event-stream")))]
pub async fn events(
    State(state): State<AppState>,
    Query(params): Query<EventParams>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(
        (
            state.engine.subscribe(),
            state.shutdown.clone(),
            params.service,
        ),
        |(mut events, mut shutdown, service)| async move {
            loop {
                let received = tokio::select! {
                    _ = shutdown.wait_for(|stopping| *stopping) => return None,
                    received = events.recv() => received,
                };
                let event = match received {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let note = Event::default().event("lagged").data(missed.to_string());
                        return Some((Ok(note), (events, shutdown, service)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                if service.as_ref().is_some_and(|s| *s != event.service) {
                    continue;
                }
                let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
                let sse = Event::default().event(event_name(&event)).data(data);
                return Some((Ok(sse), (events, shutdown, service)));
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Keeps the type of the shutdown flag in one place.
pub type ShutdownFlag = watch::Receiver<bool>;
