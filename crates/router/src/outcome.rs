//! The outcome of one proxied request, charged to the set chosen for it.
//!
//! Whatever instance finally answers the client, a request is recorded once, against
//! the set the split (or the client) chose: a failed attempt on that set is its error
//! even when a retry elsewhere — possibly on the other set — then serves the client,
//! and the retry's answer is charged to no set. Otherwise a canary that refuses or
//! resets connections would be retried onto stable and counted as a stable success,
//! invisible to the judge.

use std::sync::Arc;
use std::time::Instant;

use crate::metrics::counters::SetCounters;
use crate::service::ServiceState;
use crate::table::{ActiveTable, Assignment, SetKind};

pub(crate) struct Outcome {
    state: Arc<ServiceState>,
    kind: SetKind,
    assignment: Assignment,
    counters: Arc<SetCounters>,
    started: Instant,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("set", &self.kind)
            .field("assignment", &self.assignment)
            .finish_non_exhaustive()
    }
}

impl Outcome {
    /// The request will be charged to `kind` of `table` (stable when the table has no
    /// such set).
    pub(crate) fn new(
        state: Arc<ServiceState>,
        table: &ActiveTable,
        kind: SetKind,
        assignment: Assignment,
        started: Instant,
    ) -> Self {
        let set = table.set(kind).unwrap_or(&table.stable);
        Self {
            state,
            kind: set.kind,
            assignment,
            counters: Arc::clone(set.counters_for(assignment)),
            started,
        }
    }

    pub(crate) fn kind(&self) -> SetKind {
        self.kind
    }

    /// A failed attempt is about to be retried on another instance.
    pub(crate) fn count_retry(&self) {
        if self.state.metrics_enabled() {
            self.counters
                .retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Records the request with the time since it arrived.
    pub(crate) fn finish(self, status: u16, error: bool) {
        let latency_us = self.started.elapsed().as_micros() as u64;
        self.state.record(
            self.kind,
            self.assignment,
            &self.counters,
            status,
            error,
            latency_us,
        );
    }
}
