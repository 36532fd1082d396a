//! The controller of one rollout: feeds the state machine its inputs, commits every
//! new state before acting on it, and carries out the commands it returns.
//!
//! Short commands (set a weight, evaluate the judge) run inline. Long ones (validation,
//! starting the canary, promotion, stopping the canary) run as one background action
//! at a time whose result comes back as the next input; a newer long command replaces
//! (aborts) an older one, so an abort during start-up stops what was starting.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rampart_backends::{BackendEventKind, VersionSpec};
use rampart_core::judge::{Judge, Outcome};
use rampart_core::rollout::{Actor, Command, Input, Phase};
use rampart_core::{Timestamp, WindowSample};
use rampart_router::{RouteTable, UpstreamSet};
use rampart_store::{NewAuditEvent, NewDeploymentEvent, NewMeasurement, ValidationRunRow};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::record::DeploymentRecord;
use crate::samples::SampleRecorder;
use crate::service::{
    ControllerRequest, PendingScaleDown, ServiceRuntime, ServingVersion, routable, upstream_set,
};
use crate::settings;
use crate::shared::{EngineEvent, EngineEventKind, SYSTEM_ACTOR, Shared};
use crate::validation;

/// How long the controller waits at most between looks at the router's metrics.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Controller {
    shared: Arc<Shared>,
    svc: Arc<ServiceRuntime>,
    record: DeploymentRecord,
    judge: Box<dyn Judge>,
    sequential: bool,
    /// Traffic up to this whole second has been fed to the judge.
    observed_until: Timestamp,
    /// The canary's traffic before this second is its warm-up: served, not judged.
    /// Set when the canary first takes traffic under this controller.
    judged_from: Option<Timestamp>,
    samples: SampleRecorder,
    requests: mpsc::Receiver<ControllerRequest>,
    action: Option<JoinHandle<Option<Input>>>,
    backend_events: broadcast::Receiver<rampart_backends::BackendEvent>,
}

impl Controller {
    pub fn new(
        shared: Arc<Shared>,
        svc: Arc<ServiceRuntime>,
        record: DeploymentRecord,
        requests: mpsc::Receiver<ControllerRequest>,
    ) -> Result<Self, EngineError> {
        let analysis = settings::analysis_settings(&svc.config);
        let judge = rampart_core::judge::build_judge(&analysis)
            .map_err(|e| EngineError::Internal(format!("analysis settings: {e}")))?;
        let backend_events = svc.backend.subscribe();
        let now = shared.clock.now();
        Ok(Self {
            sequential: analysis.kind == rampart_core::judge::JudgeKind::Sequential,
            observed_until: floor_second(now),
            judged_from: None,
            samples: SampleRecorder::new(&shared.samples_dir, &record.id),
            shared,
            svc,
            record,
            judge,
            requests,
            action: None,
            backend_events,
        })
    }

    /// Drives the rollout until it ends (or rampart detaches), starting with `first`.
    pub async fn run(mut self, first: Input) {
        let mut queue = VecDeque::from([first]);
        loop {
            self.drain(&mut queue).await;
            if self.record.rollout.is_terminal() && self.action.is_none() {
                break;
            }
            let now = self.shared.clock.now();
            let wake = self
                .record
                .rollout
                .next_wakeup()
                .map(|at| at.since(now))
                .unwrap_or(OBSERVE_EVERY)
                .min(until_next_second(now))
                .max(Duration::from_millis(5));
            tokio::select! {
                _ = tokio::time::sleep(wake) => {
                    self.observe();
                    queue.push_back(Input::Tick);
                }
                request = self.requests.recv() => match request {
                    Some(ControllerRequest::Operate { input, reply }) => {
                        let result = self.apply(input).await.map(|follow| queue.extend(follow));
                        let _ = reply.send(result);
                    }
                    Some(ControllerRequest::Detach) | None => {
                        self.cancel_action();
                        tracing::info!(deployment = %self.record.id, "controller detached; the rollout resumes at the next start");
                        return;
                    }
                },
                finished = wait_action(&mut self.action) => {
                    self.action = None;
                    if let Some(input) = finished {
                        queue.push_back(input);
                    }
                }
                event = self.backend_events.recv() => {
                    if let Some(input) = event.ok().and_then(|e| self.canary_event(&e)) {
                        queue.push_back(input);
                    }
                }
            }
        }
        self.finish();
    }

    async fn drain(&mut self, queue: &mut VecDeque<Input>) {
        while let Some(input) = queue.pop_front() {
            let action = input.action();
            match self.apply(input).await {
                Ok(follow) => queue.extend(follow),
                Err(EngineError::Transition(e)) => {
                    tracing::debug!(deployment = %self.record.id, error = %e, "input not applicable: {action}");
                }
                Err(e) => {
                    tracing::error!(deployment = %self.record.id, error = %e, "cannot {action}");
                }
            }
        }
    }

    fn finish(&mut self) {
        let mut state = self.svc.lock();
        if state
            .active
            .as_ref()
            .is_some_and(|a| a.id == self.record.id)
        {
            state.active = None;
        }
        state.last_record = Some(self.record.clone());
    }

    /// Feeds the state machine one input: commit the new state, then act on it.
    /// Returns the inputs that acting produced at once.
    async fn apply(&mut self, input: Input) -> Result<Vec<Input>, EngineError> {
        let now = self.shared.clock.now();
        let before = self.record.rollout.clone();
        let commands = self.record.rollout.handle(input, now)?;
        if commands.is_empty() {
            // Nothing to act on (a tick, a verdict that changes no state): the stored
            // record stays valid for recovery; status shows the latest verdict anyway.
            self.svc.lock().last_record = Some(self.record.clone());
            return Ok(Vec::new());
        }
        if let Err(e) = self.persist(&commands).await {
            // Not committed, so not acted on: the state stays what the store says.
            self.record.rollout = before;
            return Err(e);
        }
        self.svc.lock().last_record = Some(self.record.clone());
        let mut follow = Vec::new();
        for command in commands {
            if let Some(input) = self.execute(command).await {
                follow.push(input);
            }
        }
        Ok(follow)
    }

    /// The new state, its transitions' events and their audit entries in one
    /// transaction: durable before anything is done about them.
    async fn persist(&mut self, commands: &[Command]) -> Result<(), EngineError> {
        let record_json = serde_json::to_value(&self.record)
            .map_err(|e| EngineError::Internal(format!("cannot encode the rollout: {e}")))?;
        let id = self.record.id.clone();
        let service = self.svc.name();
        let version = &self.record.rollout.version;
        let finished = self.record.rollout.is_terminal();
        let state = self.record.state_name();
        let mut changes = Vec::new();
        for command in commands {
            let Command::Notify(t) = command else {
                continue;
            };
            let event = NewDeploymentEvent {
                deployment_id: id.clone(),
                kind: "transition".into(),
                message: format!("{} -> {}: {}", t.from.name(), t.to.name(), t.reason),
                data: serde_json::to_value(t).map_err(rampart_store::StoreError::from)?,
            };
            let audit = NewAuditEvent {
                actor: actor_name(&t.actor),
                action: format!("deployment.{}", crate::record::state_name(&t.to)),
                subject: format!("service/{service}/deployment/{id}"),
                details: serde_json::json!({
                    "version": version,
                    "from": t.from.name(),
                    "to": t.to.name(),
                    "reason": t.reason,
                }),
            };
            changes.push((event, audit));
        }
        let notifications = self.rollout_notifications(commands);
        self.shared
            .store
            .write(move |tx| {
                tx.update_deployment(&id, &state, &record_json, finished)?;
                for (event, audit) in &changes {
                    tx.append_deployment_event(event)?;
                    tx.append_audit(audit)?;
                }
                for (notifier, message) in &notifications {
                    tx.enqueue_notification(notifier, message)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// The service's `notify_rollouts` notifiers, each with every transition worth
    /// telling (committed with the transition, see `rollout_notifications`).
    fn rollout_notifications(
        &self,
        commands: &[Command],
    ) -> Vec<(String, rampart_core::notify::Message)> {
        let notifiers = &self.svc.config.notify_rollouts;
        if notifiers.is_empty() {
            return Vec::new();
        }
        commands
            .iter()
            .filter_map(|command| match command {
                Command::Notify(t) => crate::rollout_notifications::rollout_message(
                    &self.record.id,
                    &self.record.rollout,
                    t,
                ),
                _ => None,
            })
            .flat_map(|message| {
                notifiers
                    .iter()
                    .map(move |notifier| (notifier.clone(), message.clone()))
            })
            .collect()
    }

    async fn execute(&mut self, command: Command) -> Option<Input> {
        match command {
            Command::RunValidation => {
                self.spawn_action(run_validation(
                    self.shared.clone(),
                    self.svc.clone(),
                    self.record.id.clone(),
                ));
                None
            }
            Command::CancelValidation => {
                self.cancel_action();
                None
            }
            Command::StartCanary => {
                self.spawn_action(start_canary(self.svc.clone(), self.record.clone()));
                None
            }
            Command::SetCanaryWeight { percent } => {
                if percent > 0.0 && self.judged_from.is_none() {
                    let warmup = self.svc.config.analysis.warmup.get();
                    let from = self.shared.clock.now().as_millis() + warmup.as_millis() as u64;
                    // Whole seconds only: the judge is fed one second at a time.
                    self.judged_from = Some(Timestamp(from.div_ceil(1_000) * 1_000));
                }
                if let Err(e) = self.svc.router.set_weight(percent) {
                    tracing::error!(error = %e, percent, "cannot set the canary weight");
                }
                self.publish(EngineEventKind::Traffic {
                    canary_weight: percent,
                });
                None
            }
            Command::ResetAnalysis => {
                // The sequential judge's guarantee holds over the whole rollout only if
                // its evidence is never thrown away; the threshold judge judges each
                // step's window on its own.
                if !self.sequential {
                    self.judge.reset();
                }
                self.observed_until = floor_second(self.shared.clock.now());
                None
            }
            Command::EvaluateAnalysis => {
                self.observe();
                let now = self.shared.clock.now();
                let mut verdict = self.judge.evaluate(now);
                if let Some(from) = self.judged_from.filter(|from| *from > now)
                    && verdict.outcome == Outcome::Inconclusive
                {
                    verdict.reason = format!(
                        "warming up: the canary's first {} of traffic are served but not judged ({}s left)",
                        self.svc.config.analysis.warmup,
                        from.since(now).as_secs_f64().ceil()
                    );
                }
                self.record_measurement(&verdict).await;
                Some(Input::Analysis(verdict))
            }
            Command::PromoteCanary => {
                self.spawn_action(promote(self.svc.clone(), self.record.clone()));
                None
            }
            Command::ScheduleScaleDown { version, after } => {
                schedule_scale_down(self.shared.clone(), self.svc.clone(), version, after);
                None
            }
            Command::StopCanary => {
                self.spawn_action(stop_canary(
                    self.svc.clone(),
                    self.record.rollout.version.clone(),
                ));
                None
            }
            Command::OpenIncident { reason } => {
                self.open_incident(&reason).await;
                None
            }
            Command::Notify(transition) => {
                tracing::info!(
                    service = %self.svc.name(),
                    deployment = %self.record.id,
                    from = transition.from.name(),
                    to = transition.to.name(),
                    reason = %transition.reason,
                    "rollout transition"
                );
                self.publish(EngineEventKind::Transition { transition });
                None
            }
        }
    }

    fn publish(&self, kind: EngineEventKind) {
        self.shared.publish(EngineEvent {
            service: self.svc.name().to_string(),
            deployment_id: Some(self.record.id.clone()),
            kind,
        });
    }

    fn spawn_action(
        &mut self,
        action: impl std::future::Future<Output = Option<Input>> + Send + 'static,
    ) {
        self.cancel_action();
        self.action = Some(tokio::spawn(action));
    }

    fn cancel_action(&mut self) {
        if let Some(action) = self.action.take() {
            action.abort();
        }
    }

    /// Feeds the judge every whole second of traffic it has not seen yet, while the
    /// canary takes traffic.
    fn observe(&mut self) {
        let now = self.shared.clock.now();
        let until = floor_second(now);
        let analysing = matches!(
            self.record.rollout.phase,
            Phase::Progressing { .. } | Phase::Paused { .. }
        );
        if !analysing {
            self.observed_until = until;
            return;
        }
        // One sample per second keeps the sequential test's per-second split exact.
        let mut start = self.observed_until;
        if let Some(from) = self.judged_from {
            start = start.max(from);
        }
        while start < until {
            let end = Timestamp(start.as_millis() + 1000);
            let sample: WindowSample = self.svc.router.window_between(start, end);
            self.judge.observe(&sample);
            self.samples.record(&sample);
            start = end;
        }
        self.samples.flush();
        self.observed_until = self.observed_until.max(until);
    }

    async fn record_measurement(&mut self, verdict: &rampart_core::judge::Verdict) {
        let step = match self.record.rollout.phase {
            Phase::Progressing { step, .. } | Phase::Paused { step, .. } => step as u32,
            _ => 0,
        };
        let outcome = match verdict.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        };
        let stored = match serde_json::to_value(verdict) {
            Ok(json) => {
                let measurement = NewMeasurement {
                    deployment_id: self.record.id.clone(),
                    step,
                    outcome: outcome.into(),
                    verdict: json,
                };
                self.shared
                    .store
                    .write(move |tx| tx.append_measurement(&measurement))
                    .await
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, "cannot store an analysis measurement");
        }
        self.publish(EngineEventKind::Analysis {
            verdict: verdict.clone(),
        });
    }

    async fn open_incident(&mut self, reason: &str) {
        let now = self.shared.store.now();
        let service = self.svc.name().to_string();
        let id = rampart_store::new_id();
        let title = format!(
            "{service}: rollout of {} rolled back",
            self.record.rollout.version
        );
        let incident = rampart_store::IncidentRow {
            id: id.clone(),
            service: service.clone(),
            opened_at: now,
            updated_at: now,
            closed_at: None,
            status: "open".into(),
            severity: "warning".into(),
            title: title.clone(),
            details: serde_json::json!({
                "deployment_id": self.record.id,
                "version": self.record.rollout.version,
                "reason": reason,
                "last_verdict": self.record.rollout.last_verdict,
            }),
        };
        let audit = NewAuditEvent {
            actor: SYSTEM_ACTOR.into(),
            action: "incident.open".into(),
            subject: format!("service/{service}/incident/{id}"),
            details: serde_json::json!({ "title": title, "reason": reason, "deployment_id": self.record.id }),
        };
        let result = self
            .shared
            .store
            .write(move |tx| {
                tx.insert_incident(&incident)?;
                tx.append_audit(&audit)
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot open an incident");
        }
    }

    /// A crash of one of the canary's instances while it takes traffic.
    fn canary_event(&self, event: &rampart_backends::BackendEvent) -> Option<Input> {
        if event.version != self.record.rollout.version {
            return None;
        }
        match &event.kind {
            BackendEventKind::InstanceCrashed { instance, reason } => Some(Input::CanaryCrashed {
                reason: format!("canary instance {instance} crashed: {reason}"),
            }),
            BackendEventKind::InstanceRestarted { .. } | BackendEventKind::Scaled => {
                // Keep routing to what is there now.
                let addrs = routable(&event.instances);
                if matches!(
                    self.record.rollout.phase,
                    Phase::Progressing { .. } | Phase::Paused { .. }
                ) && !addrs.is_empty()
                {
                    self.svc
                        .router
                        .set_canary(Some(UpstreamSet::new(event.version.clone(), addrs)));
                }
                None
            }
            _ => None,
        }
    }
}

fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::System => SYSTEM_ACTOR.to_string(),
        Actor::User(name) => name.clone(),
    }
}

fn floor_second(t: Timestamp) -> Timestamp {
    Timestamp(t.as_secs() * 1000)
}

fn until_next_second(now: Timestamp) -> Duration {
    Duration::from_millis(1000 - now.as_millis() % 1000)
}

async fn wait_action(action: &mut Option<JoinHandle<Option<Input>>>) -> Option<Input> {
    match action {
        Some(handle) => handle.await.unwrap_or_default(),
        None => std::future::pending().await,
    }
}

async fn run_validation(
    shared: Arc<Shared>,
    svc: Arc<ServiceRuntime>,
    deployment_id: String,
) -> Option<Input> {
    let result = validation::run_checks(&svc.config.checks, &shared.base_dir).await;
    let summary = summarize_validation(&result);
    let row = ValidationRunRow {
        id: rampart_store::new_id(),
        service: svc.name().to_string(),
        deployment_id: Some(deployment_id),
        started_at: shared.store.now(),
        result: serde_json::to_value(&result).unwrap_or_default(),
        can_deploy: result.can_deploy,
    };
    if let Err(e) = shared
        .store
        .write(move |tx| tx.insert_validation_run(&row))
        .await
    {
        tracing::error!(error = %e, "cannot store the validation run");
    }
    Some(Input::ValidationFinished {
        can_deploy: result.can_deploy,
        summary,
    })
}

fn summarize_validation(result: &validation::ValidationResult) -> String {
    let names = |list: &[validation::CheckOutcome]| {
        list.iter()
            .map(|c| format!("{} ({})", c.name, c.message))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!(
        "{} passed, {} failed, {} warnings in {} ms",
        result.passed.len(),
        result.failed.len(),
        result.warnings.len(),
        result.execution_time_ms
    );
    if !result.failed.is_empty() {
        text.push_str(&format!("; failed: {}", names(&result.failed)));
    }
    if !result.warnings.is_empty() {
        text.push_str(&format!("; warnings: {}", names(&result.warnings)));
    }
    text
}

async fn start_canary(svc: Arc<ServiceRuntime>, record: DeploymentRecord) -> Option<Input> {
    let version = record.rollout.version.clone();
    let spec = if svc.is_static() {
        VersionSpec::new(version.clone(), record.addresses.len() as u32)
            .with_addresses(record.addresses.clone())
    } else {
        let count = settings::canary_instances(&svc.config, svc.full_instances());
        VersionSpec::new(version.clone(), count).with_env(record.env.clone())
    };
    match svc.backend.start(spec).await {
        Ok(instances) => {
            // Weight 0 first, so the new set takes no traffic before its first step.
            if let Err(e) = svc.router.set_weight(0.0) {
                tracing::error!(error = %e, "cannot zero the canary weight");
            }
            svc.router
                .set_canary(Some(UpstreamSet::new(version, routable(&instances))));
            Some(Input::InstancesReady)
        }
        Err(e) => Some(Input::InstancesFailed {
            reason: e.to_string(),
        }),
    }
}

async fn promote(svc: Arc<ServiceRuntime>, record: DeploymentRecord) -> Option<Input> {
    let version = record.rollout.version.clone();
    let addresses = if svc.is_static() {
        record.addresses.clone()
    } else {
        let full = svc.full_instances();
        let running = !svc.backend.instances(&version).is_empty();
        let result = if running {
            svc.backend.scale(&version, full).await
        } else {
            svc.backend
                .start(VersionSpec::new(version.clone(), full).with_env(record.env.clone()))
                .await
        };
        match result {
            Ok(instances) => routable(&instances),
            Err(e) => {
                // Promote with what runs rather than not at all: the canary passed.
                tracing::warn!(error = %e, "could not bring the new version to full size; promoting with the instances that run");
                routable(&svc.backend.instances(&version))
            }
        }
    };
    if addresses.is_empty() {
        return Some(Input::CanaryCrashed {
            reason: format!("no instance of {version} is running to promote"),
        });
    }
    let new_stable = ServingVersion {
        version: version.clone(),
        addresses: addresses.clone(),
        env: record.env.clone(),
    };
    let swapped = svc.router.swap(RouteTable {
        stable: upstream_set(&new_stable),
        canary: None,
        canary_weight: 0.0,
    });
    if let Err(e) = swapped {
        tracing::error!(error = %e, "cannot route the promoted version");
        return None;
    }
    let mut state = svc.lock();
    let old = std::mem::replace(&mut state.stable, new_stable);
    state.previous = Some(old);
    Some(Input::PromotionDone)
}

async fn stop_canary(svc: Arc<ServiceRuntime>, version: String) -> Option<Input> {
    let _ = svc.router.set_weight(0.0);
    let draining = svc.router.set_canary(None);
    for addr in draining {
        let _ = svc.router.wait_drained(addr).await;
    }
    if let Err(e) = svc.backend.stop(&version).await {
        tracing::error!(error = %e, %version, "cannot stop the canary");
    }
    Some(Input::RollbackDone)
}

/// Keeps the previous version running for `after`, so a rollback in that window is a
/// routing change, then stops it.
pub(crate) fn schedule_scale_down(
    shared: Arc<Shared>,
    svc: Arc<ServiceRuntime>,
    version: String,
    after: Duration,
) {
    let previous = svc.lock().previous.clone();
    let Some(previous) = previous.filter(|p| p.version == version) else {
        return;
    };
    let task_svc = svc.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(after).await;
        stop_version(
            &shared,
            &task_svc,
            &version,
            "scale-down delay after promotion ended",
        )
        .await;
        task_svc.lock().scale_down = None;
    });
    let mut state = svc.lock();
    if let Some(old) = state.scale_down.replace(PendingScaleDown {
        version: previous,
        task,
    }) {
        old.task.abort();
    }
}

pub(crate) async fn stop_version(
    shared: &Shared,
    svc: &ServiceRuntime,
    version: &str,
    reason: &str,
) {
    // For static upstreams, which rampart does not own, stop only forgets them.
    if let Err(e) = svc.backend.stop(version).await {
        tracing::error!(error = %e, %version, "cannot stop the previous version");
        return;
    }
    let service = svc.name().to_string();
    let entry = NewAuditEvent {
        actor: SYSTEM_ACTOR.into(),
        action: "version.stop".into(),
        subject: format!("service/{service}/version/{version}"),
        details: serde_json::json!({ "reason": reason }),
    };
    let audit = shared.store.write(move |tx| tx.append_audit(&entry)).await;
    if let Err(e) = audit {
        tracing::error!(error = %e, "cannot audit stopping a version");
    }
    shared.publish(EngineEvent {
        service,
        deployment_id: None,
        kind: EngineEventKind::VersionStopped {
            version: version.to_string(),
        },
    });
}
