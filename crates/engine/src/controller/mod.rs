//! The controller of one rollout: feeds the state machine its inputs, commits every
//! new state before acting on it, carries out the commands it returns, and keeps
//! what the router and the backend really do in line with the committed state.
//!
//! Short commands (set a weight, evaluate the judge) run inline. Long ones (validation,
//! starting the canary, scaling for promotion, stopping the canary) run as one
//! background action at a time ([`actions`]); a newer long command replaces (aborts)
//! an older one, so an abort during start-up stops what was starting.
//!
//! Converging, not just reacting (docs/CONTROLLER.md):
//! - an input the store refused to commit is kept and applied again after a backoff,
//!   before anything else, so no report is ever lost;
//! - an action that fails or panics is run again after a backoff while its phase
//!   lasts; the phase's deadline (core's machine) ends it on the safe side;
//! - every tick compares the router's table (weight, canary set, stable set) and the
//!   canary's instances with what the committed phase wants, and repairs the
//!   difference ([`reconcile`]).

mod actions;
mod blue_green;
mod evidence;
mod reconcile;
mod supervise;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rampart_backends::BackendEventKind;
use rampart_core::judge::{Judge, Outcome};
use rampart_core::rollout::{Actor, Command, Input, Phase};
use rampart_core::{Timestamp, WindowSample};
use rampart_router::UpstreamSet;
use rampart_store::{NewAuditEvent, NewDeploymentEvent, NewMeasurement};
use tokio::sync::{broadcast, mpsc};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::error::EngineError;
use crate::record::{DeploymentKind, DeploymentRecord};
use crate::samples::SampleRecorder;
use crate::service::{ControllerRequest, ServiceRuntime, ServingVersion, routable};
use crate::settings;
use crate::shared::{EngineEvent, EngineEventKind, SYSTEM_ACTOR, Shared};
use actions::ActionResult;

pub(crate) use supervise::supervise;

/// How long the controller waits at most between looks at the router's metrics.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// A long command running in the background.
struct RunningAction {
    command: Command,
    handle: JoinHandle<ActionResult>,
}

/// A command to run again once its backoff has passed, if the phase is still the one
/// that issued it.
struct Redo {
    command: Command,
    phase: &'static str,
    at: Instant,
}

pub(crate) struct Controller {
    shared: Arc<Shared>,
    svc: Arc<ServiceRuntime>,
    record: DeploymentRecord,
    judge: Box<dyn Judge>,
    sequential: bool,
    /// Metrics of the user's own (Prometheus), judged beside the judge.
    metrics: crate::analysis::RolloutMetrics,
    /// Traffic up to this whole second has been fed to the judge.
    observed_until: Timestamp,
    /// The canary's traffic before this second is its warm-up: served, not judged.
    /// Set when the canary first takes traffic under this controller.
    judged_from: Option<Timestamp>,
    samples: SampleRecorder,
    requests: mpsc::Receiver<ControllerRequest>,
    action: Option<RunningAction>,
    backend_events: broadcast::Receiver<rampart_backends::BackendEvent>,
    /// Inputs not yet committed, in order; the first is retried at `commit_retry_at`.
    pending: VecDeque<Input>,
    commit_backoff: Backoff,
    commit_retry_at: Option<Instant>,
    redo: Option<Redo>,
    action_backoff: Backoff,
    /// Repairs of the routing table that failed wait until then.
    repair_backoff: Backoff,
    repair_at: Option<Instant>,
}

impl Controller {
    pub fn new(
        shared: Arc<Shared>,
        svc: Arc<ServiceRuntime>,
        record: DeploymentRecord,
        requests: mpsc::Receiver<ControllerRequest>,
    ) -> Result<Self, EngineError> {
        let analysis = settings::analysis_settings(&svc.config());
        let judge = rampart_core::judge::build_judge(&analysis)
            .map_err(|e| EngineError::Internal(format!("analysis settings: {e}")))?;
        let backend_events = svc.backend.subscribe();
        let now = shared.clock.now();
        let metrics = crate::analysis::RolloutMetrics::new(
            settings::metric_specs(&svc.config()).map_err(EngineError::Internal)?,
            &shared.metric_providers,
        )
        .map_err(EngineError::Internal)?;
        Ok(Self {
            metrics,
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
            pending: VecDeque::new(),
            commit_backoff: Backoff::default(),
            commit_retry_at: None,
            redo: None,
            action_backoff: Backoff::default(),
            repair_backoff: Backoff::default(),
            repair_at: None,
        })
    }

    /// Drives the rollout until it ends (or rampart detaches), starting with `first`.
    pub async fn run(mut self, first: Input) {
        if matches!(first, Input::Recovered { .. }) {
            self.restore_evidence().await;
        }
        self.pending.push_back(first);
        loop {
            self.drain().await;
            if self.record.rollout.is_terminal() && self.pending.is_empty() {
                break;
            }
            let now = self.shared.clock.now();
            let mut wake = self
                .record
                .rollout
                .next_wakeup()
                .map(|at| at.since(now))
                .unwrap_or(OBSERVE_EVERY)
                .min(until_next_second(now));
            let soonest = [self.commit_retry_at, self.redo.as_ref().map(|r| r.at)]
                .into_iter()
                .flatten()
                .min();
            if let Some(at) = soonest {
                wake = wake.min(at.saturating_duration_since(Instant::now()));
            }
            let wake = wake.max(Duration::from_millis(5));
            tokio::select! {
                request = self.requests.recv() => match request {
                    Some(ControllerRequest::Operate { input, reply }) => {
                        let result = self.apply(input).await.map(|follow| self.pending.extend(follow));
                        let _ = reply.send(result);
                    }
                    Some(ControllerRequest::Detach) | None => {
                        self.cancel_action();
                        // Everything observed so far, for the rampart that resumes it.
                        self.observe();
                        self.save_evidence().await;
                        tracing::info!(deployment = %self.record.id, "controller detached; the rollout resumes at the next start");
                        return;
                    }
                },
                finished = wait_action(&mut self.action) => {
                    if let Some(action) = self.action.take() {
                        self.action_finished(action.command, finished).await;
                    }
                }
                report = self.metrics.next_report() => {
                    if let Some(input) = self.metrics.record(report, &self.record.rollout) {
                        self.pending.push_back(input);
                    }
                }
                event = self.backend_events.recv() => {
                    if let Some(input) = event.ok().and_then(|e| self.canary_event(&e)) {
                        self.pending.push_back(input);
                    }
                }
                _ = tokio::time::sleep(wake) => {
                    self.observe();
                    // Uncommitted inputs first: a tick must not overtake a report.
                    if self.pending.is_empty() {
                        self.reconcile();
                        self.redo_if_due().await;
                        self.pending.push_back(Input::Tick);
                    }
                }
            }
        }
        self.cancel_action();
        self.finish();
        self.forget_evidence().await;
    }

    /// Applies the pending inputs in order. One the store refuses stays first and is
    /// tried again after a backoff.
    async fn drain(&mut self) {
        if self.commit_retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        self.commit_retry_at = None;
        while let Some(input) = self.pending.pop_front() {
            let action = input.action();
            match self.apply(input.clone()).await {
                Ok(follow) => {
                    self.commit_backoff.succeeded();
                    self.pending.extend(follow);
                }
                Err(EngineError::Transition(e)) => {
                    tracing::debug!(deployment = %self.record.id, error = %e, "input not applicable: {action}");
                }
                Err(e) => {
                    let delay = self.commit_backoff.failed();
                    tracing::warn!(deployment = %self.record.id, error = %e, retry_in = ?delay, "cannot commit the rollout's next state ({action}); trying again");
                    self.pending.push_front(input);
                    self.commit_retry_at = Some(Instant::now() + delay);
                    return;
                }
            }
        }
    }

    fn finish(&mut self) {
        self.svc.release(&self.record.id, Some(self.record.clone()));
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
            self.svc.set_record(self.record.clone());
            return Ok(Vec::new());
        }
        if let Err(e) = self.persist(&commands).await {
            // Not committed, so not acted on: the state stays what the store says.
            self.record.rollout = before;
            return Err(e);
        }
        self.svc.set_record(self.record.clone());
        if self
            .redo
            .as_ref()
            .is_some_and(|r| r.phase != self.record.rollout.phase.name())
        {
            // A new phase: what failed in the old one is no longer wanted.
            self.redo = None;
            self.action_backoff.succeeded();
        }
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
        let notifiers = &self.svc.config().notify_rollouts;
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
                let action = actions::run_validation(
                    self.shared.clone(),
                    self.svc.clone(),
                    self.record.id.clone(),
                );
                self.spawn_action(command, action);
                None
            }
            Command::CancelValidation => {
                self.cancel_action();
                None
            }
            Command::RunPreRolloutHooks => {
                let action = crate::hooks::run_pre_rollout(self.svc.clone(), self.record.clone());
                self.spawn_action(command, async move { ActionResult::Input(action.await) });
                None
            }
            Command::AskConfirmation { point } => {
                // A slow hook still being asked is not asked twice.
                if self.action.is_none() {
                    let ask = crate::hooks::ask_confirmation(
                        self.svc.clone(),
                        self.record.clone(),
                        point,
                    );
                    self.spawn_action(command, async move { ActionResult::Input(ask.await) });
                }
                None
            }
            Command::StartCanary => {
                // A background stop of this version (an earlier rollout of it) must not
                // stop what starts now.
                self.svc.cancel_stop(&self.record.rollout.version);
                let action = actions::start_canary(self.svc.clone(), self.record.clone());
                self.spawn_action(command, action);
                None
            }
            Command::SetCanaryWeight { percent } => {
                // The committed step's match and mirroring go with its weight, in the
                // same table change.
                let steering = self.record.rollout.steering();
                let steered = !steering.is_none();
                if (percent > 0.0 || steered) && self.judged_from.is_none() {
                    let warmup = self.svc.config().analysis.warmup.get();
                    let from = self.shared.clock.now().as_millis() + warmup.as_millis() as u64;
                    // Whole seconds only: the judge is fed one second at a time.
                    self.judged_from = Some(Timestamp(from.div_ceil(1_000) * 1_000));
                    self.start_metrics(warmup);
                }
                if let Err(e) = self.svc.route(|table| {
                    table.canary_weight = percent;
                    table.steering = steering;
                }) {
                    // The next tick's repair sets it (retried with backoff).
                    tracing::warn!(deployment = %self.record.id, error = %e, percent, "the router refused the canary weight; repairing");
                }
                self.publish(EngineEventKind::Traffic {
                    canary_weight: percent,
                });
                None
            }
            Command::ResetAnalysis => {
                // The sequential judge's guarantee holds over the whole rollout only if
                // its evidence is never thrown away; the threshold judge judges each
                // step's window on its own. Blue-green's two analyses compare different
                // things (preview, then live against before the switch): each starts
                // afresh.
                let blue_green = self.record.rollout.spec.strategy.blue_green().is_some();
                if !self.sequential || blue_green {
                    self.judge.reset();
                }
                if blue_green {
                    // Blue-green sets no canary weight: its metrics of the user's own
                    // start with the first window (the preview's, or after a restart
                    // the post-promotion's).
                    self.start_metrics(self.svc.config().analysis.warmup.get());
                }
                self.sync_preview();
                self.observed_until = floor_second(self.shared.clock.now());
                None
            }
            Command::EvaluateAnalysis => {
                self.observe();
                let now = self.shared.clock.now();
                let verdict = self.judge.evaluate(now);
                self.save_evidence().await;
                let mut verdict = self.metrics.combine(verdict, &self.record.rollout);
                if let Some(from) = self.judged_from.filter(|from| *from > now)
                    && verdict.outcome == Outcome::Inconclusive
                {
                    verdict.reason = format!(
                        "warming up: the canary's first {} of traffic are served but not judged ({}s left)",
                        self.svc.config().analysis.warmup,
                        from.since(now).as_secs_f64().ceil()
                    );
                }
                self.record_measurement(&verdict).await;
                Some(Input::Analysis(verdict))
            }
            Command::PromoteCanary => {
                let version = &self.record.rollout.version;
                // A revert returns to a version that may still be waiting for its
                // scale-down: it must not be stopped under the revert.
                self.svc.cancel_stop(version);
                let reverting = self.record.kind == DeploymentKind::Revert;
                let action =
                    actions::scale_to_full(self.svc.clone(), self.record.clone(), reverting);
                self.spawn_action(command, action);
                None
            }
            Command::ScheduleScaleDown { version, after } => {
                let reason = match self.record.kind {
                    DeploymentKind::Revert => "reverted by an emergency rollback",
                    DeploymentKind::Rollout => "scale-down delay after promotion ended",
                };
                crate::retire::stop_in_background(
                    self.shared.clone(),
                    self.svc.clone(),
                    version,
                    after,
                    reason.to_string(),
                );
                None
            }
            Command::SwitchBack => self.switch_back(Command::SwitchBack),
            Command::StopCanary => {
                // The preview listener goes back to the stable version first.
                self.sync_preview();
                let version = self.record.rollout.version.clone();
                if self.record.rollout.is_terminal() {
                    // The rollout is over (a failed start, a rollback past its
                    // deadline): the service takes new deploys while the version is
                    // stopped in the background, retried until it is.
                    self.cancel_action();
                    crate::retire::stop_in_background(
                        self.shared.clone(),
                        self.svc.clone(),
                        version,
                        Duration::ZERO,
                        format!("rollout {} ended", self.record.id),
                    );
                    return None;
                }
                self.stop_canary(command, version);
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
                crate::hooks::on_transition(&self.shared, &self.svc, &self.record, &transition);
                self.publish(EngineEventKind::Transition { transition });
                None
            }
        }
    }

    /// Takes the canary out of the routing table (weight 0, no set), then stops its
    /// instances in the background. A table the router refuses is retried: stopping
    /// instances the router still sends requests to would fail them.
    fn stop_canary(&mut self, command: Command, version: String) {
        let routed = self.svc.route(|table| {
            table.canary_weight = 0.0;
            table.steering = Default::default();
            if table.canary.as_ref().is_some_and(|c| c.version == version) {
                table.canary = None;
            }
        });
        match routed {
            Ok(draining) => {
                let action = actions::stop_canary(self.svc.clone(), version, draining);
                self.spawn_action(command, action);
            }
            Err(e) => self.redo_later(command, format!("the router refused the table: {e}")),
        }
    }

    /// What came back from a background action; a panic is a failure like any other.
    async fn action_finished(
        &mut self,
        command: Command,
        finished: Result<ActionResult, JoinError>,
    ) {
        let result = match finished {
            Ok(result) => result,
            Err(e) if e.is_panic() => ActionResult::Failed(format!(
                "the action panicked: {}",
                panic_message(e.into_panic())
            )),
            // Aborted by the controller itself: nothing to report.
            Err(_) => return,
        };
        let version = self.record.rollout.version.clone();
        match result {
            ActionResult::Input(input) => {
                self.action_backoff.succeeded();
                self.pending.push_back(input);
            }
            ActionResult::CanaryStarted(addrs) => {
                // Weight 0 with the set, so it takes no traffic before its first step.
                let routed = self.svc.route(|table| {
                    table.canary_weight = 0.0;
                    table.canary = Some(UpstreamSet::new(version, addrs));
                });
                match routed {
                    Ok(_) => {
                        self.action_backoff.succeeded();
                        self.pending.push_back(Input::InstancesReady);
                    }
                    // Starting again adopts the instances that run, then routes again.
                    Err(e) => {
                        self.redo_later(command, format!("the router refused the canary set: {e}"))
                    }
                }
            }
            ActionResult::Scaled(addrs) => {
                if addrs.is_empty() {
                    self.pending.push_back(Input::CanaryCrashed {
                        reason: format!("no instance of {version} is running to promote"),
                    });
                    return;
                }
                let new_stable = ServingVersion {
                    version,
                    addresses: addrs,
                    env: self.record.env.clone(),
                };
                match self.svc.make_stable(new_stable) {
                    Ok(_) => {
                        self.action_backoff.succeeded();
                        self.sync_preview();
                        if self.record.kind == DeploymentKind::Revert {
                            // The version reverted from is the one a rollback now
                            // returns to, with how it was deployed.
                            self.svc.set_previous(Some(ServingVersion {
                                version: self
                                    .record
                                    .rollout
                                    .previous_version
                                    .clone()
                                    .unwrap_or_default(),
                                addresses: self.record.previous_addresses.clone(),
                                env: self.record.previous_env.clone(),
                            }));
                        }
                        self.pending.push_back(Input::PromotionDone);
                    }
                    Err(e) => self.redo_later(
                        command,
                        format!("the router refused the promoted table: {e}"),
                    ),
                }
            }
            ActionResult::Failed(reason) => self.redo_later(command, reason),
        }
    }

    /// Runs `command` again after a backoff, while the phase that issued it lasts.
    fn redo_later(&mut self, command: Command, reason: String) {
        let delay = self.action_backoff.failed();
        tracing::warn!(
            deployment = %self.record.id,
            phase = self.record.rollout.phase.name(),
            failures = self.action_backoff.failures(),
            retry_in = ?delay,
            "{reason}; trying again until the phase's deadline"
        );
        self.redo = Some(Redo {
            command,
            phase: self.record.rollout.phase.name(),
            at: Instant::now() + delay,
        });
    }

    async fn redo_if_due(&mut self) {
        let due = self
            .redo
            .as_ref()
            .is_some_and(|r| Instant::now() >= r.at && self.action.is_none());
        if !due {
            return;
        }
        let Some(redo) = self.redo.take() else {
            return;
        };
        if redo.phase != self.record.rollout.phase.name() {
            return;
        }
        if let Some(input) = self.execute(redo.command).await {
            self.pending.push_back(input);
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
        command: Command,
        action: impl std::future::Future<Output = ActionResult> + Send + 'static,
    ) {
        self.cancel_action();
        self.action = Some(RunningAction {
            command,
            handle: tokio::spawn(action),
        });
    }

    fn cancel_action(&mut self) {
        if let Some(action) = self.action.take() {
            action.handle.abort();
        }
    }

    /// Starts querying the service's metrics of its own once the canary's warm-up
    /// has passed (a rollout without a previous version has no canary analysis).
    fn start_metrics(&mut self, warmup: Duration) {
        if self.metrics.is_empty() {
            return;
        }
        let rollout = &self.record.rollout;
        let Some(stable) = rollout.previous_version.clone() else {
            return;
        };
        let canary = rollout.version.clone();
        self.metrics
            .start(&canary, &stable, warmup, self.shared.clock.clone());
    }

    /// Feeds the judge every whole second of traffic it has not seen yet, while the
    /// canary takes traffic.
    fn observe(&mut self) {
        let now = self.shared.clock.now();
        let until = floor_second(now);
        let analysing = matches!(
            self.record.rollout.phase,
            Phase::Progressing { .. }
                | Phase::Paused { .. }
                | Phase::Previewing
                | Phase::PostPromotion
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
            let sample: WindowSample = self
                .blue_green_sample(start, end)
                .unwrap_or_else(|| self.svc.router.window_between(start, end));
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
            severity: "medium".into(),
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
                    let set = UpstreamSet::new(event.version.clone(), addrs);
                    if let Err(e) = self.svc.route(|table| table.canary = Some(set)) {
                        // The next tick's repair routes to what runs.
                        tracing::warn!(error = %e, "the router refused the canary's new instances; repairing");
                    }
                }
                None
            }
            _ => None,
        }
    }
}

/// A controller that is dropped (detached, or unwound by a panic) takes its
/// background action with it, so a new controller never races an orphan.
impl Drop for Controller {
    fn drop(&mut self) {
        self.cancel_action();
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

async fn wait_action(action: &mut Option<RunningAction>) -> Result<ActionResult, JoinError> {
    match action {
        Some(running) => (&mut running.handle).await,
        None => std::future::pending().await,
    }
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "(no message)".to_string()),
    }
}
