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

use crate::metrics::counters::WorkerCounts;
use crate::table::{ActiveTable, Assignment, SetKind};
use crate::worker::LocalService;

/// Holds only references of the worker that serves the request (its `LocalService`,
/// its copy of the counters), so taking and dropping them stays on its cache lines.
pub(crate) struct Outcome {
    local: Arc<LocalService>,
    kind: SetKind,
    assignment: Assignment,
    counters: WorkerCounts,
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
        local: &Arc<LocalService>,
        table: &ActiveTable,
        kind: SetKind,
        assignment: Assignment,
        started: Instant,
    ) -> Self {
        let set = table.set(kind).unwrap_or(&table.stable);
        Self {
            local: Arc::clone(local),
            kind: set.kind,
            assignment,
            counters: Arc::clone(set.counters_for(assignment).mine()),
            started,
        }
    }

    pub(crate) fn kind(&self) -> SetKind {
        self.kind
    }

    /// A failed attempt is about to be retried on another instance.
    pub(crate) fn count_retry(&self) {
        if self.local.state.metrics_enabled() {
            self.counters.count_retry();
        }
    }

    /// Records the request with the time since it arrived.
    pub(crate) fn finish(self, status: u16, error: bool) {
        let latency_us = self.started.elapsed().as_micros() as u64;
        self.local.state.record(
            self.kind,
            self.assignment,
            &self.counters,
            status,
            error,
            latency_us,
        );
    }
}
