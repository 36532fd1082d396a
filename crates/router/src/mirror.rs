//! Mirroring: a share of the requests the split sends to stable is copied to the
//! canary, off the request path. The copy's response is read and discarded; its
//! status and latency are recorded against the canary (judged with the split's own
//! canary requests), so a canary that fails mirrored requests is rolled back while no
//! user ever sees its answers.
//!
//! The user's request never waits for a mirror: the copy's body is collected from the
//! frames as they are forwarded (shared bytes, no copy), and the copy is sent by a
//! task of its own once the body has ended. Copies are bounded: at most
//! `mirror_max_in_flight` at once (more are dropped and counted), bodies up to
//! `mirror_max_body_bytes` (larger ones are not mirrored), and non-idempotent methods
//! only when the service allows them (`mirror_non_idempotent`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use http::request::Parts;
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::balance;
use crate::body::{BodyTee, ForwardBody, SetGauge};
use crate::outcome::Outcome;
use crate::split::Splitter;
use crate::table::{ActiveTable, Assignment, SetKind};
use crate::worker::LocalService;

/// Tells the canary's application that a request is a copy (so it can skip side
/// effects such as sending e-mail).
pub const MIRROR_HEADER: &str = "x-rampart-mirror";

/// A service's mirroring state, shared by its workers.
#[derive(Debug)]
pub(crate) struct Mirror {
    /// Which of stable's requests are copied: exact shares, random positions.
    splitter: Splitter,
    permits: Arc<Semaphore>,
    max_body: usize,
    non_idempotent: bool,
    counts: MirrorCounters,
}

/// What happened to the requests picked for mirroring, since the service started.
#[derive(Debug, Default)]
pub(crate) struct MirrorCounters {
    pub(crate) sent: AtomicU64,
    /// At the in-flight bound, or no canary instance to take it: not copied.
    pub(crate) dropped: AtomicU64,
    /// Body over the limit (or failed, or cut short), or a method not to repeat.
    pub(crate) skipped: AtomicU64,
}

/// A request picked for mirroring: the copy's head, the permit that bounds copies in
/// flight, and how its body will arrive.
pub(crate) struct Planned {
    parts: Option<Parts>,
    permit: OwnedSemaphorePermit,
    body: Option<oneshot::Receiver<Bytes>>,
}

impl Mirror {
    pub(crate) fn new(settings: &rampart_config::RouterConfig) -> Self {
        Self {
            splitter: Splitter::default(),
            permits: Arc::new(Semaphore::new(settings.mirror_max_in_flight as usize)),
            max_body: settings.mirror_max_body_bytes as usize,
            non_idempotent: settings.mirror_non_idempotent,
            counts: MirrorCounters::default(),
        }
    }

    pub(crate) fn counts(&self) -> &MirrorCounters {
        &self.counts
    }

    /// Decides whether this request (sent to stable by the split) is copied; if so
    /// the body to forward keeps a copy for it. Cheap when the table mirrors nothing:
    /// one comparison.
    pub(crate) fn plan(
        &self,
        table: &ActiveTable,
        idempotent: bool,
        body: &Incoming,
    ) -> Option<(Planned, Option<BodyTee>)> {
        if table.mirror_step == 0 || table.canary.is_none() {
            return None;
        }
        if !self.splitter.next_is_canary(table.mirror_step) {
            return None;
        }
        let too_big = body
            .size_hint()
            .upper()
            .is_some_and(|upper| upper > self.max_body as u64);
        if (!idempotent && !self.non_idempotent) || too_big {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let (tee, receiver) = if body.is_end_stream() {
            (None, None)
        } else {
            let (tee, receiver) = BodyTee::new(self.max_body);
            (Some(tee), Some(receiver))
        };
        let planned = Planned {
            parts: None,
            permit,
            body: receiver,
        };
        Some((planned, tee))
    }
}

impl Planned {
    /// The copy's head: the request as forwarded to stable, marked as a mirror.
    pub(crate) fn set_parts(&mut self, mut parts: Parts) {
        parts
            .headers
            .insert(MIRROR_HEADER, HeaderValue::from_static("1"));
        self.parts = Some(parts);
    }

    /// Sends the copy from a task of its own on this worker.
    pub(crate) fn spawn(self, local: Arc<LocalService>, table: Arc<ActiveTable>) {
        tokio::spawn(send_copy(local, table, self));
    }
}

async fn send_copy(local: Arc<LocalService>, table: Arc<ActiveTable>, planned: Planned) {
    let Planned {
        parts,
        permit,
        body,
    } = planned;
    let state = &local.state;
    let counts = state.mirror.counts();
    let Some(parts) = parts else { return };
    let body = match body {
        None => ForwardBody::Empty,
        Some(receiver) => match receiver.await {
            Ok(bytes) if bytes.is_empty() => ForwardBody::Empty,
            Ok(bytes) => ForwardBody::Buffered(Some(bytes)),
            // Over the limit, failed or cut short: nothing to repeat.
            Err(_) => {
                counts.skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        },
    };
    let Some(canary) = table.canary.as_ref() else {
        return;
    };
    let now_ms = state.clock.now().as_millis();
    // Never the other set: a copy that stable answered would be counted as the
    // canary's. No instance to take it (all ejected, or the canary leaving the table
    // meanwhile): the copy is dropped, not charged to the canary.
    let Some(in_flight) = balance::pick(&canary.instances, now_ms, None).and_then(|u| u.begin())
    else {
        counts.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let outcome = Outcome::new(
        &local,
        &table,
        SetKind::Canary,
        Assignment::Mirrored,
        Instant::now(),
    );
    let _gauge = SetGauge::new(&canary.mirrored_counters, state.metrics_enabled());
    counts.sent.fetch_add(1, Ordering::Relaxed);
    let upstream = in_flight.upstream();
    match crate::proxy::send(&local, parts, body, upstream).await {
        Err(crate::proxy::Failed { failure, .. }) => {
            if failure.upstream_at_fault() {
                state.upstream_failed(canary, upstream, now_ms);
            }
            outcome.finish(failure.problem().status().as_u16(), true);
        }
        Ok(response) => {
            let status = response.status();
            // Read to the end within the request timeout: latency is to the last
            // byte, as for the user's requests, and the connection goes back to the
            // pool only after a whole response.
            let timeout = state.settings.load().config.request_timeout.get();
            let drained = tokio::time::timeout(timeout, drain(response.into_body())).await;
            let complete = matches!(drained, Ok(true));
            if status.is_server_error() || !complete {
                state.upstream_failed(canary, upstream, now_ms);
            } else {
                upstream.record_success();
            }
            // A complete body has put its connection back into the pool already.
            outcome.finish(status.as_u16(), status.is_server_error() || !complete);
        }
    }
    drop(in_flight);
    drop(permit);
}

/// Reads and discards a body; false when it failed midway.
async fn drain(mut body: crate::body::Received) -> bool {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return false;
        }
    }
    true
}

/// Whether a request's table and assignment make it a mirroring candidate at all.
pub(crate) fn candidate(table: &ActiveTable, kind: SetKind, assignment: Assignment) -> bool {
    table.mirror_step != 0 && kind == SetKind::Stable && assignment == Assignment::Split
}
