//! What every handler can reach.

use std::sync::Arc;

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
    pub config: Arc<Config>,
    pub metrics: ServerMetrics,
    pub registry: Arc<Registry>,
    pub auth_limiter: Arc<AuthFailureLimiter>,
    pub clock: Arc<dyn Clock>,
    pub probes: Arc<Vec<Box<dyn ReadinessProbe>>>,
    pub engine: rampart_engine::Engine,
    /// Host and instance metrics, their history and the latest collection.
    pub telemetry: rampart_telemetry::Telemetry,
    /// Flips to true when rampart shuts down, so that endless responses (event
    /// streams) end and graceful shutdown can finish.
    pub shutdown: crate::routes::events::ShutdownFlag,
}

impl AppState {
    /// Applies a change and its audit entry in one transaction: either both are
    /// durable or neither happened.
    pub fn audited<T>(
        &self,
        principal: &Principal,
        action: &str,
        subject: &str,
        details: serde_json::Value,
        change: impl FnOnce(&Tx) -> Result<T, ApiError>,
    ) -> Result<(T, AuditEntry), ApiError> {
        let mut outcome: Option<Result<T, ApiError>> = None;
        let entry = self.store.with_tx(|tx| {
            match change(tx) {
                Ok(value) => outcome = Some(Ok(value)),
                Err(e) => {
                    outcome = Some(Err(e));
                    return Err(StoreError::Aborted("the change was refused".into()));
                }
            }
            tx.append_audit(&NewAuditEvent {
                actor: principal.token_name.clone(),
                action: action.to_string(),
                subject: subject.to_string(),
                details,
            })
        });
        match (entry, outcome) {
            (Ok(entry), Some(Ok(value))) => Ok((value, entry)),
            (_, Some(Err(e))) => Err(e),
            (Err(e), _) => Err(e.into()),
            (Ok(_), None) => Err(ApiError::Internal("change did not run".into())),
        }
    }
}
