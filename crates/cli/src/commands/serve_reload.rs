//! The server's side of a config reload, shared by SIGHUP and `POST /api/v1/reload`:
//! read and validate the whole file first, let the engine apply the differences
//! (the path start-up uses), then swap what the API shows, and audit the outcome.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rampart_api::health::ReadinessProbe;
use rampart_api::probes::{ServiceErrorsProbe, ServiceRoutingProbe};
use rampart_api::routes::reload::{ReloadFailure, ReloadFuture, Reloader};
use rampart_config::Config;
use rampart_engine::Engine;
use rampart_engine::reload::{ReloadError, ReloadSummary};
use rampart_store::{NewAuditEvent, Store};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The audit actor of a reload asked for by SIGHUP.
pub const SIGHUP_ACTOR: &str = "SIGHUP";

pub type Probes = Arc<ArcSwap<Vec<Box<dyn ReadinessProbe>>>>;

#[derive(Clone)]
pub struct ConfigReloader {
    inner: Arc<Inner>,
}

struct Inner {
    config_path: PathBuf,
    engine: Engine,
    store: Store,
    /// What the API shows as the config in force.
    config: Arc<ArcSwap<Config>>,
    probes: Probes,
}

impl ConfigReloader {
    pub fn new(
        config_path: PathBuf,
        engine: Engine,
        store: Store,
        config: Arc<ArcSwap<Config>>,
        probes: Probes,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config_path,
                engine,
                store,
                config,
                probes,
            }),
        }
    }

    /// Re-reads the config file and applies it; `actor` is audited as the one who
    /// asked. Nothing changes unless the whole file is valid and every change can be
    /// made at run time.
    pub async fn reload(&self, actor: &str) -> Result<ReloadSummary, ReloadFailure> {
        let inner = &self.inner;
        // Certificates are re-read on every reload too, whatever the config's fate:
        // new connections get the new certificate, established ones keep theirs, and
        // a file that fails the checks of a start leaves its listener on the old one.
        let certificates = rampart_router::tls::reload_all();
        if certificates.is_ok() {
            tracing::info!("{certificates}");
        } else {
            tracing::error!("{certificates}");
        }
        let path = inner.config_path.clone();
        let loaded = tokio::task::spawn_blocking(move || rampart_config::load(&path)).await;
        let result = match loaded {
            Ok(Ok(config)) => match inner.engine.reload(&config, actor).await {
                Ok(summary) => {
                    inner
                        .probes
                        .store(Arc::new(service_probes(&inner.engine, &config)));
                    inner.config.store(Arc::new(config));
                    Ok(summary)
                }
                Err(ReloadError::Refused(reasons)) => Err(ReloadFailure::Refused(reasons)),
                Err(ReloadError::Failed(e)) => Err(ReloadFailure::Failed(e.to_string())),
            },
            Ok(Err(invalid)) => Err(ReloadFailure::Invalid(invalid.to_string())),
            Err(e) => Err(ReloadFailure::Failed(format!(
                "reading the config file failed: {e}"
            ))),
        };
        self.audit(actor, &result).await;
        result
    }

    async fn audit(&self, actor: &str, result: &Result<ReloadSummary, ReloadFailure>) {
        let config = self.inner.config_path.display().to_string();
        let details = match result {
            Ok(summary) => serde_json::json!({
                "config": config,
                "outcome": if summary.changes { "applied" } else { "unchanged" },
                "added": summary.added,
                "removed": summary.removed,
                "changed": summary.changed.iter().map(|c| serde_json::json!({
                    "service": c.name,
                    "fields": c.fields.iter().map(|f| f.field.clone()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }),
            Err(ReloadFailure::Invalid(diagnostics)) => serde_json::json!({
                "config": config, "outcome": "invalid", "diagnostics": diagnostics,
            }),
            Err(ReloadFailure::Refused(reasons)) => serde_json::json!({
                "config": config, "outcome": "refused", "reasons": reasons,
            }),
            Err(ReloadFailure::Failed(error)) => serde_json::json!({
                "config": config, "outcome": "failed", "error": error,
            }),
        };
        let event = NewAuditEvent {
            actor: actor.to_string(),
            action: "config.reload".into(),
            subject: "server".into(),
            details,
        };
        if let Err(e) = self
            .inner
            .store
            .write(move |tx| tx.append_audit(&event))
            .await
        {
            tracing::error!(error = %e, "could not audit a config reload");
        }
    }

    /// Reloads on every SIGHUP, logging what changed or why nothing did. `hangups`
    /// was installed early (see [`hangup_signal`]) so a SIGHUP during start-up waits
    /// here instead of killing the process.
    pub async fn on_sighup(self, mut hangups: Signal) {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received, reloading the configuration");
            match self.reload(SIGHUP_ACTOR).await {
                Ok(summary) if !summary.changes => {
                    tracing::info!("configuration reloaded: nothing changed")
                }
                Ok(summary) => {
                    for line in summary.lines() {
                        tracing::info!(change = %line, "configuration reloaded");
                    }
                }
                Err(failure) => {
                    let error = rampart_api::problem::ApiError::from(failure);
                    tracing::error!("configuration not reloaded: {error}");
                }
            }
        }
    }
}

impl Reloader for ConfigReloader {
    fn reload(&self, actor: String) -> ReloadFuture {
        let this = self.clone();
        // Its own task: a client that hangs up must not cancel a reload half-way.
        let reloading = tokio::spawn(async move { this.reload(&actor).await });
        Box::pin(async move {
            reloading.await.unwrap_or_else(|e| {
                Err(ReloadFailure::Failed(format!(
                    "the reload task failed: {e}"
                )))
            })
        })
    }
}

/// SIGHUP's handler, installed as soon as `rampart serve` starts (the default
/// action would end the process).
pub fn hangup_signal() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// Readiness probes for every service of `config`.
pub fn service_probes(engine: &Engine, config: &Config) -> Vec<Box<dyn ReadinessProbe>> {
    config
        .services
        .iter()
        .flat_map(|service| {
            [
                Box::new(ServiceRoutingProbe {
                    engine: engine.clone(),
                    service: service.name.clone(),
                }) as Box<dyn ReadinessProbe>,
                Box::new(ServiceErrorsProbe {
                    engine: engine.clone(),
                    service: service.name.clone(),
                    warn_error_rate: config.telemetry.warn_error_rate,
                }),
            ]
        })
        .collect()
}
