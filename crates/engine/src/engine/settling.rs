//! A deploy right after a rollout ended. The controller commits the end, then
//! releases the service once it gets the CPU again; in between, the API already
//! shows the rollout as ended. A client that saw that and deployed at once got a
//! 409 "already has a rollout in progress" (the soak hit it under CPU contention).
//! So a claim refused by a rollout whose end is committed waits for the release.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Engine;
use crate::error::EngineError;
use crate::service::{ControllerRequest, ServiceRuntime};

/// How long a claim waits for a rollout that has ended in the store to release.
const SETTLE_WAIT: Duration = Duration::from_secs(5);
const SETTLE_POLL: Duration = Duration::from_millis(10);

impl Engine {
    /// [`ServiceRuntime::claim`], waiting out a rollout whose end is already committed.
    pub(super) async fn claim_settled(
        &self,
        svc: &ServiceRuntime,
        id: &str,
        version: &str,
        requests: mpsc::Sender<ControllerRequest>,
    ) -> Result<(), EngineError> {
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            match svc.claim(id, version, requests.clone()) {
                Err(EngineError::RolloutInProgress { id: active, .. })
                    if tokio::time::Instant::now() < deadline
                        && self.ended_in_store(&active).await =>
                {
                    tokio::time::sleep(SETTLE_POLL).await;
                }
                claimed => return claimed,
            }
        }
    }

    async fn ended_in_store(&self, id: &str) -> bool {
        let id = id.to_string();
        self.inner
            .shared
            .store
            .read(move |tx| tx.get_deployment(&id))
            .await
            .ok()
            .flatten()
            .is_some_and(|row| row.finished_at.is_some())
    }
}
