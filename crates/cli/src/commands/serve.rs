//! `rampart serve`: everything a deployment needs, in one process.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use rampart_api::AppState;
use rampart_api::auth_limiter::AuthFailureLimiter;
use rampart_core::{Clock, SystemClock};
use rampart_engine::{Engine, SYSTEM_ACTOR};
use rampart_store::{NewAuditEvent, Store};
use rampart_telemetry::ServerMetrics;
use tokio::sync::oneshot;

use crate::cli::ServeArgs;
use crate::commands::bootstrap::ensure_admin_token;
use crate::exit::{CliError, CliResult};
use crate::shutdown::shutdown_signal;

/// Failed authentications allowed per client address per minute.
const AUTH_FAILURES_PER_MINUTE: u32 = 20;
/// How long requests in flight may finish when rampart stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What a caller of [`run_server`] learns once everything listens.
#[derive(Debug, Clone)]
pub struct Ready {
    pub api: SocketAddr,
    pub admin_token: Option<String>,
}

pub async fn run(args: ServeArgs) -> CliResult {
    serve(&args.config, shutdown_signal(), None, args.upgrade).await
}

/// Loads the config, opens the store, starts services, routers and the API, and
/// serves until `shutdown` resolves.
pub async fn run_server(
    config_path: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: Option<oneshot::Sender<Ready>>,
) -> CliResult {
    serve(config_path, shutdown, ready, false).await
}

/// [`run_server`]; `upgrade`: take the sockets, the data-dir lock and the instances
/// over from the rampart serving from the same data dir (see `crate::handover`).
async fn serve(
    config_path: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: Option<oneshot::Sender<Ready>>,
    upgrade: bool,
) -> CliResult {
    // Installed first: SIGUSR2's default action would end the process.
    let upgrade_signal =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2());
    // SIGHUP means reload; until the reloader runs, one waits instead of killing us.
    let hangups = super::serve_reload::hangup_signal().context("installing the SIGHUP handler")?;
    // Nothing starts until the whole config is known to be good.
    let config = rampart_config::load(config_path).map_err(CliError::usage)?;
    let data_dir = config.server.data_dir.clone();
    let base_dir = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (lock, predecessor) = if upgrade {
        if !config.server.instances_outlive {
            return Err(CliError::usage(anyhow::anyhow!(
                "--upgrade takes the instances over, but `instances_outlive = false` in [server] of {} would stop them with this rampart; set it to true (the default) or restart instead",
                config_path.display()
            )));
        }
        let dir = data_dir.clone();
        let (file, predecessor) =
            tokio::task::spawn_blocking(move || crate::handover::take_over(&dir))
                .await
                .context("taking over")??;
        (
            crate::commands::data_dir_lock::DataDirLock::inherited(file),
            Some(predecessor),
        )
    } else {
        (crate::commands::data_dir_lock::lock(&data_dir)?, None)
    };
    let quiet = ready.is_some();

    // Opening (migrations) and the first admin token are blocking SQLite work.
    let (store, new_admin_token) = {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let store = Store::open(&data_dir)?;
            let token = ensure_admin_token(&store, &data_dir)?;
            Ok((store, token))
        })
        .await
        .context("opening the store")??
    };
    if let (Some(secret), false) = (&new_admin_token, quiet) {
        println!(
            "created the first admin token (shown once; also saved to {}):",
            data_dir.join("admin.token").display()
        );
        println!("  {secret}");
    }

    // Notifications: the outbox is sent from now on, including what a previous
    // run committed and did not deliver.
    let (stop_delivery, delivery_stop) = tokio::sync::watch::channel(false);
    let delivery = rampart_notify::DeliveryWorker::new(
        store.clone(),
        rampart_notify::Notifiers::from_config(&config),
    )
    .context("starting the notification sender")?;
    let delivery_metrics = delivery.metrics();
    let delivery = delivery.spawn(delivery_stop);

    // Certificates before any socket: a bad file stops the start, naming the file.
    let api_tls = match &config.server.tls {
        Some(files) => Some(
            rampart_api::tls::acceptor(files).map_err(|e| CliError::usage(anyhow::anyhow!(e)))?,
        ),
        None => None,
    };

    // The service manager's socket when it passed one (systemd socket activation).
    let listener = rampart_router::listeners::bind_or_take(config.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (server.listen in {}): is another process using it? choose a free address",
                config.server.listen,
                config_path.display()
            )
        })?;
    let api_addr = listener.local_addr().context("reading the API address")?;
    // Kept for a successor (graceful upgrade).
    let api_socket = std::net::TcpListener::from(
        std::os::fd::AsFd::as_fd(&listener)
            .try_clone_to_owned()
            .context("duplicating the API socket")?,
    );

    // Instances of services removed from the config since the last run: nothing
    // else would ever stop them.
    let configured: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    rampart_backends::kill_leftovers_of_unconfigured(&data_dir, &configured)
        .context("stopping instances left over from a previous run")?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // A planned handover resumes the rollouts in flight whatever `on_restart` says:
    // nothing crashed.
    let mut engine_config = config.clone();
    if predecessor.is_some() {
        engine_config.server.on_restart = rampart_config::RestartPolicy::Resume;
    }
    let engine = Engine::start(&engine_config, store.clone(), clock.clone(), base_dir)
        .await
        .context("starting services")?;
    engine.add_api_listener(api_addr);

    let telemetry = rampart_telemetry::Telemetry::new(
        rampart_telemetry::Settings {
            retention: rampart_core::series::Retention {
                interval: config.telemetry.interval.get(),
                full: config.telemetry.retention.get(),
                summarised: config.telemetry.downsampled_retention.get(),
            },
        },
        Arc::new(engine.clone()),
        clock.clone(),
    );
    let collecting = telemetry.spawn();
    engine.start_autoscaling(telemetry.clone());

    let mut registry = Registry::default();
    let metrics = ServerMetrics::register(
        &mut registry,
        env!("CARGO_PKG_VERSION"),
        store.audit_appended_counter(),
    );
    registry.register_collector(Box::new(engine.router_collector()));
    registry.register_collector(Box::new(engine.rollout_collector()));
    delivery_metrics.register(&mut registry);
    registry.register_collector(Box::new(rampart_api::store_memory::SqliteMemory));
    registry.register_collector(Box::new(rampart_telemetry::TelemetryCollector(
        telemetry.clone(),
    )));

    let started = NewAuditEvent {
        actor: SYSTEM_ACTOR.into(),
        action: "server.start".into(),
        subject: "server".into(),
        details: serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "config": config_path.display().to_string(),
            "listen": config.server.listen.to_string(),
            "services": config.services.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        }),
    };
    store.write(move |tx| tx.append_audit(&started)).await?;
    let token_use_flusher = tokio::spawn(flush_token_uses(store.clone()));
    let store_health = rampart_api::store_health::StoreHealth::default();
    let store_pinger = store_health.spawn_pinger(store.clone()).await;

    let probes: super::serve_reload::Probes = Arc::new(arc_swap::ArcSwap::from_pointee(
        super::serve_reload::service_probes(&engine, &config),
    ));
    let shared_config = Arc::new(arc_swap::ArcSwap::from_pointee(config.clone()));
    let reloader = super::serve_reload::ConfigReloader::new(
        config_path.to_path_buf(),
        engine.clone(),
        store.clone(),
        shared_config.clone(),
        probes.clone(),
    );
    let (stopping, shutdown_flag) = tokio::sync::watch::channel(false);
    let (handed_over_tx, handed_over_rx) = oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            _ = handed_over_rx => {}
        }
        let _ = stopping.send(true);
    };
    let auth_limiter = Arc::new(AuthFailureLimiter::new(
        clock.clone(),
        AUTH_FAILURES_PER_MINUTE,
        Duration::from_secs(60),
    ));
    let incidents = rampart_engine::incidents::start(
        &engine,
        &config,
        Arc::new(super::incident_sources::IncidentSources {
            telemetry: telemetry.clone(),
            auth_limiter: auth_limiter.clone(),
            p95_objective_ms: config.telemetry.p95_objective.get().as_secs_f64() * 1000.0,
            warn_error_rate: config.telemetry.warn_error_rate,
        }),
    );
    let clock_for_live = clock.clone();
    let state = AppState {
        store: store.clone(),
        store_health,
        config: shared_config,
        reloader: Arc::new(reloader.clone()),
        metrics,
        registry: Arc::new(registry),
        auth_limiter,
        incidents,
        clock,
        probes,
        engine: engine.clone(),
        telemetry,
        shutdown: shutdown_flag.clone(),
        live: rampart_api::live::Live::new(clock_for_live),
    };
    let relaying = state.live.spawn_relay(engine.subscribe(), shutdown_flag);
    let reloading = tokio::spawn(reloader.on_sighup(hangups));

    if !api_addr.ip().is_loopback() && api_tls.is_none() {
        // Allowed only by `insecure_listen = true` (the config check refuses it otherwise).
        tracing::warn!(listen = %api_addr, "the API listens beyond loopback without TLS (insecure_listen = true): bearer tokens cross the network in plain text");
        if !quiet {
            eprintln!(
                "warning: the API listens on {api_addr} without TLS (insecure_listen = true); bearer tokens cross the network in plain text"
            );
        }
    }
    tracing::info!(listen = %api_addr, data_dir = %data_dir.display(), "rampart is serving");
    if !quiet {
        let scheme = |tls: &Option<rampart_config::TlsConfig>| match tls {
            Some(_) => "https",
            None => "http",
        };
        println!(
            "rampart {} serving the API on {}://{api_addr}",
            env!("CARGO_PKG_VERSION"),
            scheme(&config.server.tls)
        );
        for service in &config.services {
            println!(
                "  service {} routed on {}://{}",
                service.name,
                scheme(&service.tls),
                service.listen
            );
        }
    }
    for addr in rampart_router::listeners::unclaimed() {
        tracing::warn!(%addr, "the service manager passed a socket on an address no part of the config listens on; its connections wait unanswered");
    }
    // Successors connect here (graceful upgrade); bound before the predecessor is
    // told to go, so the socket's path always leads to a serving rampart.
    let handed_over = lock.handed_over();
    let handover_listener = crate::handover::bind(&data_dir)?;
    let holdings = crate::handover::Holdings {
        engine: engine.clone(),
        api: api_socket,
        lock: lock
            .file()
            .context("the data-dir lock")?
            .try_clone()
            .context("duplicating the data-dir lock")?,
        instances_outlive: config.server.instances_outlive,
    };
    let handovers = {
        let handed_over = handed_over.clone();
        tokio::spawn(async move {
            crate::handover::serve(handover_listener, holdings, handed_over).await;
            let _ = handed_over_tx.send(());
        })
    };
    let upgrade_trigger = tokio::spawn(successor_on_sigusr2(
        upgrade_signal,
        config_path.to_path_buf(),
    ));
    if let Some(predecessor) = predecessor {
        let pid = predecessor.pid;
        lock.now_held_here();
        match predecessor.serving() {
            Ok(()) => {
                tracing::info!(
                    predecessor = pid,
                    "took over; the old rampart drains and exits"
                )
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the old rampart did not hear that this one serves")
            }
        }
    }
    // systemd's Type=notify: the units start dependents only once this arrives. A
    // successor started by SIGUSR2 names itself the main process (needs
    // NotifyAccess=all in the unit).
    let main_pid = upgrade.then(std::process::id);
    let status = format!("serving the API on {api_addr}");
    let mut states = vec![
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ];
    if let Some(pid) = main_pid {
        states.push(sd_notify::NotifyState::MainPid(pid));
    }
    if let Err(e) = sd_notify::notify(&states) {
        tracing::warn!(error = %e, "could not tell the service manager that rampart is ready");
    }
    if let Some(ready) = ready {
        let _ = ready.send(Ready {
            api: api_addr,
            admin_token: std::fs::read_to_string(data_dir.join("admin.token"))
                .ok()
                .map(|s| s.trim().to_string()),
        });
    }
    let served = match api_tls {
        Some(acceptor) => rampart_api::tls::serve_tls(listener, state, acceptor, shutdown).await,
        None => rampart_api::serve(listener, state, shutdown).await,
    };
    let upgrading = handed_over.load(std::sync::atomic::Ordering::SeqCst);
    if !upgrading {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    }
    collecting.abort();
    relaying.abort();
    handovers.abort();
    upgrade_trigger.abort();
    reloading.abort();

    // The API stopped taking requests: let the routers drain, stop the instances
    // (or leave them to the successor, or to the next start when they outlive
    // rampart). Rollouts in flight stay as stored and are recovered at the next start.
    if upgrading {
        engine.shutdown_for_handover(SHUTDOWN_GRACE).await;
    } else {
        engine.shutdown(SHUTDOWN_GRACE).await;
    }
    token_use_flusher.abort();
    let _ = stop_delivery.send(true);
    let _ = delivery.await;
    store_pinger.abort();
    if let Err(e) = store.flush_token_uses().await {
        tracing::warn!(error = %e, "could not record when tokens were last used");
    }
    let stopped = NewAuditEvent {
        actor: SYSTEM_ACTOR.into(),
        action: "server.stop".into(),
        subject: "server".into(),
        details: serde_json::json!({ "reason": if upgrading { "upgrade" } else { "signal" } }),
    };
    store.write(move |tx| tx.append_audit(&stopped)).await?;
    drop(lock);
    served.context("API server failed")?;
    if !quiet {
        println!("rampart stopped");
    }
    Ok(())
}

/// SIGUSR2 starts a new rampart (the binary on disk) that takes this one over.
async fn successor_on_sigusr2(
    signal: std::io::Result<tokio::signal::unix::Signal>,
    config: std::path::PathBuf,
) {
    let mut signal = match signal {
        Ok(signal) => signal,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGUSR2; upgrade with `rampart serve --upgrade` instead");
            return;
        }
    };
    while signal.recv().await.is_some() {
        match crate::handover::spawn_successor(&config) {
            Ok(pid) => tracing::info!(pid, "SIGUSR2: started a new rampart to take over"),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "SIGUSR2: cannot start a new rampart")
            }
        }
    }
}

/// Writes the token uses authentication noted in memory, every few seconds (see
/// `rampart_store::TOKEN_USE_FLUSH_EVERY`).
async fn flush_token_uses(store: Store) {
    let mut every = tokio::time::interval(rampart_store::TOKEN_USE_FLUSH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        if let Err(e) = store.flush_token_uses().await {
            tracing::warn!(error = %e, "could not record when tokens were last used; retrying");
        }
    }
}
