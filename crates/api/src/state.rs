//! What every handler can reach.

use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;
use rampart_config::Config;
use rampart_core::Clock;
use rampart_store::{AuditEntry, NewAuditEvent, Store, StoreError, Tx};
use rampart_telemetry::ServerMetrics;

use crate::auth::Principal;
use crate::auth_limiter::AuthFailureLimiter;
use crate::health::ReadinessProbe;
use crate::problem::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The store's last ping, refreshed in the background; what health reports.
    pub store_health: crate::store_health::StoreHealth,
    /// The config in force; a reload swaps it.
    pub config: Arc<arc_swap::ArcSwap<Config>>,
    /// Re-reads and applies the config file (`POST /api/v1/reload`, SIGHUP).
    pub reloader: Arc<dyn crate::routes::reload::Reloader>,
    pub metrics: ServerMetrics,
    pub registry: Arc<Registry>,
    pub auth_limiter: Arc<AuthFailureLimiter>,
    pub clock: Arc<dyn Clock>,
    /// One set per configured service; a reload replaces them.
    pub probes: Arc<arc_swap::ArcSwap<Vec<Box<dyn ReadinessProbe>>>>,
    pub engine: rampart_engine::Engine,
    /// The incident responder's handle: list, show, acknowledge, escalate, resolve.
    pub incidents: rampart_engine::incidents::Incidents,
    /// Host and instance metrics, their history and the latest collection.
    pub telemetry: rampart_telemetry::Telemetry,
    /// Flips to true when rampart shuts down, so that endless responses (event
    /// streams) end and graceful shutdown can finish.
    pub shutdown: crate::routes::events::ShutdownFlag,
    /// Engine events numbered for resumable streams, and the browsers' stream tickets.
    pub live: crate::live::Live,
}

impl AppState {
    /// Applies a change and its audit entry in one transaction, off the async
    /// runtime: either both are durable or neither happened.
    pub async fn audited<T: Send + 'static>(
        &self,
        principal: &Principal,
        action: &str,
        subject: &str,
        details: serde_json::Value,
        change: impl FnOnce(&Tx) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<(T, AuditEntry), ApiError> {
        // The change's own error (a 404, a 409) leaves the transaction as an abort and
        // comes back here through this slot.
        let refused: Arc<Mutex<Option<ApiError>>> = Arc::default();
        let refusal = Arc::clone(&refused);
        let audit = NewAuditEvent {
            actor: principal.token_name.clone(),
            action: action.to_string(),
            subject: subject.to_string(),
            details,
        };
        let written = self
            .store
            .write(move |tx| {
                let value = change(tx).map_err(|e| {
                    *refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    StoreError::Aborted("the change was refused".into())
                })?;
                Ok((value, tx.append_audit(&audit)?))
            })
            .await;
        let refusal = refused.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (written, refusal) {
            (_, Some(e)) => Err(e),
            (Ok(done), None) => Ok(done),
            (Err(e), None) => Err(e.into()),
        }
    }
}
