//! Applying a [`Plan`]: the one path by which services start, change and stop,
//! whether at start-up (the plan from no services) or on a config reload.
//!
//! Order matters for "nothing half-applied": everything that can fail (backends
//! built, stable instances started and ready, listeners bound) happens first, for
//! every added service; if any of it fails, what was started is stopped and nothing
//! else has changed. Only then are services installed, changed and removed — steps
//! that do not fail part-way.

use std::sync::Arc;
use std::time::Duration;

use rampart_backends::Backend;
use rampart_config::{BackendConfig, Config, ServiceConfig};
use rampart_router::{BoundService, ServiceRoute};

use super::{Engine, serving_versions, start_stable, supervise_stable_watcher};
use crate::error::EngineError;
use crate::reload::{ChangedService, Plan, ReloadError, ReloadSummary, diff, refusals};
use crate::scaling::ScaleRequest;
use crate::service::{ServiceRuntime, ServingVersion, upstream_set};

/// Task names under [`ServiceRuntime::own_task`].
pub(crate) const STABLE_WATCHER: &str = "stable watcher";
pub(crate) const AUTOSCALER: &str = "autoscaler";
pub(crate) const NAME_RESOLVER: &str = "name resolver";

/// What holds a service's rollout slot while a reload removes it.
const REMOVAL_CLAIM: &str = "config-reload-removal";

/// An added service whose fallible start-up is done.
struct Prepared {
    config: ServiceConfig,
    backend: Arc<dyn Backend>,
    stable: ServingVersion,
    previous: Option<ServingVersion>,
    bound: BoundService,
    /// Blue-green's preview listener, bound alongside.
    preview: Option<BoundService>,
}

impl Engine {
    /// Replaces the running config with `new` (already validated): refuses the whole
    /// reload when any part of it cannot change at run time, else applies it.
    /// One reload at a time.
    pub async fn reload(&self, new: &Config, actor: &str) -> Result<ReloadSummary, ReloadError> {
        let mut current = self.inner.config.lock().await;
        // Checked under the lock `hold_for_handover` also takes: a reload and an
        // upgrade never overlap.
        if self.is_handing_over() {
            return Err(ReloadError::Refused(vec![
                "a graceful upgrade is handing over to a new rampart; the new one reads the config file when it starts (reload it there if the upgrade fails: this one then carries on)".into(),
            ]));
        }
        let plan = diff(&current, new);
        let in_flight = |service: &str| {
            let svc = self.runtime(service)?;
            let state = svc.lock();
            state
                .active
                .as_ref()
                .map(|a| format!("{} (version {})", a.id, a.version))
        };
        let reasons = refusals(&plan, &in_flight);
        if !reasons.is_empty() {
            return Err(ReloadError::Refused(reasons));
        }
        let summary = self
            .apply(plan, actor, false)
            .await
            .map_err(ReloadError::Failed)?;
        *current = new.clone();
        Ok(summary)
    }

    /// The services of the config in force (what the last start or reload applied).
    pub async fn config(&self) -> Config {
        self.inner.config.lock().await.clone()
    }

    /// Carries out `plan`'s service changes (see the module's note on order).
    pub(super) async fn apply(
        &self,
        plan: Plan,
        actor: &str,
        starting: bool,
    ) -> Result<ReloadSummary, EngineError> {
        // A service being removed is claimed as a rollout would be, so a deploy that
        // races the removal is refused instead of starting on a service about to go.
        let mut claimed: Vec<Arc<ServiceRuntime>> = Vec::with_capacity(plan.removed.len());
        for name in &plan.removed {
            let Some(svc) = self.runtime(name) else {
                continue;
            };
            let (requests, _) = tokio::sync::mpsc::channel(1);
            if let Err(e) = svc.claim(REMOVAL_CLAIM, "-", requests) {
                for svc in &claimed {
                    svc.release(REMOVAL_CLAIM, None);
                }
                return Err(EngineError::Conflict(format!(
                    "service `{name}` cannot be removed now ({e}); nothing was changed"
                )));
            }
            claimed.push(svc);
        }
        let release_claims = || {
            for svc in &claimed {
                svc.release(REMOVAL_CLAIM, None);
            }
        };
        let mut prepared = Vec::with_capacity(plan.added.len());
        for service in &plan.added {
            match self.prepare(service, starting).await {
                Ok(ready) => prepared.push(ready),
                Err(e) => {
                    for ready in prepared {
                        discard(ready.backend.as_ref(), starting).await;
                    }
                    release_claims();
                    return Err(e);
                }
            }
        }

        // Nothing below fails part-way.
        let removed: Vec<Arc<ServiceRuntime>> = plan
            .removed
            .iter()
            .filter_map(|n| self.runtime(n))
            .collect();
        self.inner.services.rcu(|services| {
            let mut services = services.as_ref().clone();
            for name in &plan.removed {
                services.remove(name);
            }
            services
        });

        let mut summary = ReloadSummary {
            changes: !plan.is_empty(),
            ..ReloadSummary::default()
        };
        for ready in prepared {
            let name = ready.config.name.clone();
            match self.install(ready, starting).await {
                Ok(()) => summary.added.push(name),
                Err(e) => {
                    tracing::error!(service = %name, error = %e, "could not start routing an added service");
                }
            }
        }
        for change in plan.changed {
            let notes = self.change(&change.config, &change, actor).await;
            summary.changed.push(ChangedService {
                name: change.name,
                fields: change.fields,
                notes,
            });
        }
        for svc in removed {
            self.remove(&svc).await;
            summary.removed.push(svc.name().to_string());
        }
        Ok(summary)
    }

    /// The fallible half of adding a service: its backend, its stable version's
    /// instances (started and ready), its listener (bound).
    async fn prepare(
        &self,
        service: &ServiceConfig,
        starting: bool,
    ) -> Result<Prepared, EngineError> {
        // The backend and the first table see addresses; the runtime keeps the
        // names, resolved again on a schedule and at each deploy.
        let resolved =
            crate::resolve::resolved_service(service, &self.inner.shared.resolver).await?;
        let backend = (self.inner.parts.backend)(&resolved, &self.inner.data_dir)?;
        let started = async {
            let (stable, previous) = serving_versions(&self.inner.shared.store, &resolved).await?;
            let stable = start_stable(&resolved, backend.as_ref(), stable).await?;
            let bound = self
                .inner
                .router
                .bind(ServiceRoute {
                    name: service.name.clone(),
                    listen: service.listen,
                    settings: service.router.clone(),
                    stable: upstream_set(&stable),
                    canary: None,
                    canary_weight: 0.0,
                    tls: service.tls.clone(),
                })
                .await?;
            let preview = match crate::preview::route(service, &stable) {
                Some(route) => Some(self.inner.router.bind(route).await?),
                None => None,
            };
            Ok::<_, EngineError>((stable, previous, bound, preview))
        };
        match started.await {
            Ok((stable, previous, bound, preview)) => Ok(Prepared {
                config: service.clone(),
                backend,
                stable,
                previous,
                bound,
                preview,
            }),
            Err(e) => {
                discard(backend.as_ref(), starting).await;
                Err(e)
            }
        }
    }

    /// The second half: route it, watch it, count its rollouts, scale it.
    async fn install(&self, ready: Prepared, starting: bool) -> Result<(), EngineError> {
        let Prepared {
            config,
            backend,
            stable,
            previous,
            bound,
            preview,
        } = ready;
        let handle = match self.inner.router.install(bound) {
            Ok(handle) => handle,
            Err(e) => {
                discard(backend.as_ref(), starting).await;
                return Err(e.into());
            }
        };
        self.inner.own_listeners.add(
            handle.listen_addr(),
            format!("the router of service `{}`", config.name),
        );
        let preview = match preview.map(|bound| self.inner.router.install(bound)) {
            None => None,
            Some(Ok(preview)) => {
                self.inner.own_listeners.add(
                    preview.listen_addr(),
                    format!("the preview of service `{}`", config.name),
                );
                Some(preview)
            }
            Some(Err(e)) => {
                self.inner.router.remove(&config.name, Duration::ZERO).await;
                discard(backend.as_ref(), starting).await;
                return Err(e.into());
            }
        };
        let routes = (self.inner.parts.routes)(handle.clone());
        let runtime = Arc::new(
            ServiceRuntime::with_routes(config, handle, routes, backend, stable, previous)
                .with_preview(preview),
        );
        runtime.own_task(
            STABLE_WATCHER,
            tokio::spawn(supervise_stable_watcher(
                self.inner.shared.clone(),
                runtime.clone(),
            )),
        );
        runtime.own_task(
            NAME_RESOLVER,
            tokio::spawn(crate::resolve::watch_stable_names(
                self.inner.shared.clone(),
                runtime.clone(),
            )),
        );
        if let Err(e) =
            crate::rollout_metrics::seed(&self.inner.shared.store, std::iter::once(&runtime)).await
        {
            tracing::warn!(service = %runtime.name(), error = %e, "could not read the service's past rollouts for /metrics");
        }
        self.inner.services.rcu(|services| {
            let mut services = services.as_ref().clone();
            services.insert(runtime.name().to_string(), runtime.clone());
            services
        });
        let telemetry = self
            .inner
            .telemetry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(telemetry) = telemetry {
            self.start_autoscaler(&runtime, telemetry);
        }
        Ok(())
    }

    /// Puts a changed service's settings in force; returns how each took effect.
    async fn change(
        &self,
        new: &ServiceConfig,
        change: &crate::reload::ServiceChange,
        actor: &str,
    ) -> Vec<String> {
        let Some(svc) = self.runtime(&new.name) else {
            return vec!["no longer running; nothing to change".into()];
        };
        let old = svc.config();
        svc.set_config(new.clone());
        let mut notes = Vec::new();
        if change.touches("router") {
            svc.router.apply_settings(new.router.clone());
            if let Some(preview) = &svc.preview {
                preview.apply_settings(new.router.clone());
            }
            notes.push("router settings in force for new connections and requests; those in flight finish under the old ones".into());
        }
        for section in ["strategy", "analysis", "check", "notify_rollouts"] {
            if change.touches(section) {
                notes.push(format!("`{section}` applies from the next rollout"));
            }
        }
        if change.touches("backend.canary") {
            notes.push("the static canary addresses apply from the next rollout".into());
        }
        if change.touches("backend.instances")
            && let (BackendConfig::Process(before), BackendConfig::Process(after)) =
                (&old.backend, &new.backend)
        {
            notes.push(
                self.resize_to_config(&svc, before.instances, after.instances, actor)
                    .await,
            );
        }
        if change.touches("autoscale") {
            let telemetry = self
                .inner
                .telemetry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            match (&new.autoscale, telemetry) {
                (Some(_), Some(telemetry)) => {
                    self.start_autoscaler(&svc, telemetry);
                    notes.push("the autoscaler runs with the new settings".into());
                }
                (None, _) => {
                    svc.end_task(AUTOSCALER);
                    notes.push("autoscaling is off; the instances keep their current count".into());
                }
                (Some(_), None) => {}
            }
        }
        notes
    }

    /// A new `backend.instances`: the stable version is resized to it, unless the
    /// autoscaler or an operator decides the size.
    async fn resize_to_config(
        &self,
        svc: &Arc<ServiceRuntime>,
        before: u32,
        after: u32,
        actor: &str,
    ) -> String {
        if svc.config().autoscale.is_some() {
            return format!(
                "instances {before} → {after}: the autoscaler decides the size; the new count is its baseline"
            );
        }
        if let Some(target) = svc.sizing.stable_target()
            && target != before
        {
            return format!(
                "instances {before} → {after}: the size an operator set ({target}) stays in force; `rampart scale` changes it"
            );
        }
        let request = ScaleRequest {
            instances: Some(after),
            add: None,
            factor: None,
            hold_secs: None,
            reason: Some(format!(
                "config reload: backend.instances {before} → {after}"
            )),
            actor: actor.to_string(),
        };
        match self.scale(svc.name(), request).await {
            Ok(record) => match &record.error {
                None => format!("resized the stable version from {before} to {after} instances"),
                Some(error) => format!("resizing to {after} instances failed: {error}"),
            },
            Err(e) => format!("resizing to {after} instances failed: {e}"),
        }
    }

    /// Stops routing a removed service (its listener closes at once; requests in
    /// flight finish within its drain grace), then stops its instances.
    async fn remove(&self, svc: &ServiceRuntime) {
        let grace = svc.config().router.drain_grace.get();
        self.inner.router.remove(svc.name(), grace).await;
        if svc.preview.is_some() {
            self.inner
                .router
                .remove(&crate::preview::route_name(svc.name()), grace)
                .await;
        }
        svc.end_tasks();
        svc.cancel_all_stops();
        // Not left for a next rampart: no config of this one names it any more.
        svc.backend.stop_all().await;
    }
}

/// Undoes the start of a service being added: at start-up as a shutdown would
/// (instances that outlive rampart are left to the next start, as before the
/// attempt), on a reload by stopping them (nothing would ever re-adopt them).
async fn discard(backend: &dyn Backend, starting: bool) {
    if starting {
        backend.shutdown().await;
    } else {
        backend.stop_all().await;
    }
}
