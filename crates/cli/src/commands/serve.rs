//! `rampart serve`: everything a deployment needs, in one process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use rampart_api::AppState;
use rampart_api::auth_limiter::AuthFailureLimiter;
use rampart_core::{Clock, SystemClock};
use rampart_store::{NewAuditEvent, Store};
use rampart_telemetry::ServerMetrics;

use crate::cli::ServeArgs;
use crate::commands::bootstrap::{SYSTEM_ACTOR, ensure_admin_token};
use crate::exit::{CliError, CliResult};
use crate::shutdown::shutdown_signal;

/// Failed authentications allowed per client address per minute.
const AUTH_FAILURES_PER_MINUTE: u32 = 20;

pub async fn run(args: ServeArgs) -> CliResult {
    // Nothing starts until the whole config is known to be good.
    let config = rampart_config::load(&args.config).map_err(CliError::usage)?;
    let data_dir = config.server.data_dir.clone();
    let store = Store::open(&data_dir)?;

    if let Some(secret) = ensure_admin_token(&store, &data_dir)? {
        println!(
            "created the first admin token (shown once; also saved to {}):",
            data_dir.join("admin.token").display()
        );
        println!("  {secret}");
    }

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (server.listen in {}): is another process using it? choose a free address",
                config.server.listen,
                args.config.display()
            )
        })?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut registry = Registry::default();
    let metrics = ServerMetrics::register(&mut registry, env!("CARGO_PKG_VERSION"));

    store.with_tx(|tx| {
        tx.append_audit(&NewAuditEvent {
            actor: SYSTEM_ACTOR.into(),
            action: "server.start".into(),
            subject: "server".into(),
            details: serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "config": args.config.display().to_string(),
                "listen": config.server.listen.to_string(),
                "services": config.services.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            }),
        })
    })?;
    metrics.audit_written(1);

    let state = AppState {
        store: store.clone(),
        config: Arc::new(config.clone()),
        metrics,
        registry: Arc::new(registry),
        auth_limiter: Arc::new(AuthFailureLimiter::new(
            clock.clone(),
            AUTH_FAILURES_PER_MINUTE,
            Duration::from_secs(60),
        )),
        clock,
        probes: Arc::new(Vec::new()),
    };

    tracing::info!(listen = %config.server.listen, data_dir = %data_dir.display(), "rampart is serving");
    println!(
        "rampart {} serving on http://{}",
        env!("CARGO_PKG_VERSION"),
        config.server.listen
    );
    rampart_api::serve(listener, state, shutdown_signal())
        .await
        .context("API server failed")?;

    store.with_tx(|tx| {
        tx.append_audit(&NewAuditEvent {
            actor: SYSTEM_ACTOR.into(),
            action: "server.stop".into(),
            subject: "server".into(),
            details: serde_json::json!({ "reason": "signal" }),
        })
    })?;
    println!("rampart stopped");
    Ok(())
}
