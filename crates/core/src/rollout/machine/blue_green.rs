//! Blue-green (`Strategy::BlueGreen`), beside the canary's steps. Validation, the
//! start of the new version, the promotion's swap and the stop after a rollback are
//! the canary's; what differs is in between and after:
//!
//! ```text
//! Starting --InstancesReady--> Previewing --window passed--> AwaitingPromotion --promote / auto_at--> Promoting
//!                                  |--analysis failed / deadline--> RollingBack (no user traffic reached it)
//! Promoting --PromotionDone--> PostPromotion --window passed--> Succeeded (+ ScheduleScaleDown of the old version)
//!                                  |--analysis failed / deadline / crash / operator--> SwitchingBack
//! SwitchingBack --SwitchedBack--> RollingBack --RollbackDone--> RolledBack | Aborted
//! ```
//!
//! - Previewing: the new version runs at preview size behind the preview listener,
//!   with no user traffic; every `analysis_interval` a tick yields `EvaluateAnalysis`
//!   on the preview's traffic. Once `pre_promotion_analysis` has elapsed and the
//!   latest verdict is `Pass` (at once when the window is zero), the preview is ready:
//!   with auto promotion it switches `auto_promotion_after` later (at once when zero),
//!   without it waits for `promote`. `failure_limit` failures in a row, or no pass
//!   within `progress_deadline`, roll back (`on_deadline = "pause"` waits for an
//!   operator instead).
//! - `promote` in Previewing or AwaitingPromotion skips what is left of the wait.
//! - Promoting issues the canary's `PromoteCanary`: full size, then one swap makes
//!   the new version stable; the old version keeps running.
//! - PostPromotion judges live traffic for `post_promotion_analysis` (zero: the
//!   switch ends the rollout). A pass at the window's end succeeds and schedules the
//!   old version's scale-down after `scale_down_delay`; failures reaching the limit, no
//!   pass within `progress_deadline`, a crash of the new version, or an operator's
//!   abort or rollback switch back (`SwitchBack`: one swap to the old version, still
//!   warm), then stop the new version.
//! - SwitchingBack past the promotion deadline ends `Failed` with an incident: the new
//!   version still serves, and only an operator can tell why the old one cannot.
//! - Recovery: under `rollback`, Previewing and AwaitingPromotion roll back,
//!   PostPromotion and SwitchingBack switch back; under `resume`, Previewing and
//!   AwaitingPromotion start the preview again (Starting), PostPromotion restarts its
//!   window, SwitchingBack switches back again.
//! - Metrics of the user's own (`[[service.analysis.metric]]`) judge the preview and,
//!   with `success` criteria, the live traffic after the switch: their say is in every
//!   verdict, and a metric that fails outright (`AnalysisFailed`) rolls the preview
//!   back or switches back at once. Blue-green has no pause, so a metric that stays
//!   inconclusive or unavailable keeps the window from passing and the progress
//!   deadline decides.
//! - Pause and resume apply to canary steps only and are refused here.

use super::*;
use crate::rollout::spec::BlueGreenSpec;

impl Rollout {
    /// Handles `input` when it belongs to blue-green; `None` leaves it to the shared
    /// transitions.
    pub(super) fn blue_green_input(
        &mut self,
        input: &Input,
        now: Timestamp,
    ) -> Option<Result<Vec<Command>, TransitionError>> {
        let spec = self.spec.strategy.blue_green()?.clone();
        let action = input.action();
        let result = match (input, &self.phase) {
            (Input::InstancesReady, Phase::Starting { .. }) if self.previous_version.is_some() => {
                let reason = format!(
                    "{} is ready behind the preview listener; pre-promotion analysis for {}",
                    self.version,
                    human_duration(spec.pre_promotion_analysis)
                );
                Ok(self.enter_preview(&spec, now, reason))
            }
            (Input::Tick, Phase::Previewing) => Ok(self.preview_tick(&spec, now)),
            (Input::Tick, Phase::AwaitingPromotion { auto_at }) => Ok(match auto_at {
                Some(at) if now >= *at => {
                    let reason = format!(
                        "auto promotion after {}: switching all traffic to {}",
                        human_duration(spec.auto_promotion_after),
                        self.version
                    );
                    self.switch(now, reason, Actor::System)
                }
                _ => Vec::new(),
            }),
            (Input::Tick, Phase::PostPromotion) => Ok(self.post_promotion_tick(&spec, now)),
            (Input::Tick, Phase::SwitchingBack { .. }) => Ok(match self.phase_deadline_at {
                Some(at) if now >= at => {
                    let previous = self.previous_version.clone().unwrap_or_default();
                    let reason = format!(
                        "{previous} could not be made stable again within {} (promotion deadline); {} still serves all traffic",
                        human_duration(self.spec.deadlines.promotion),
                        self.version
                    );
                    let incident = Command::OpenIncident {
                        reason: format!(
                            "{} of {}: switching back failed: {reason}",
                            self.version, self.service
                        ),
                    };
                    self.transition(Phase::Failed, now, reason, Actor::System, vec![incident])
                }
                _ => Vec::new(),
            }),
            (Input::Analysis(verdict), Phase::Previewing | Phase::PostPromotion) => {
                self.judged(verdict.clone(), &spec, now)
            }
            (Input::Analysis(_), Phase::AwaitingPromotion { .. }) => {
                // A verdict computed just before the preview passed; nothing to do.
                Ok(Vec::new())
            }
            (
                Input::Promote { actor, reason },
                Phase::Previewing | Phase::AwaitingPromotion { .. },
            ) => {
                let why = with_operator_reason(
                    format!(
                        "promoted by {actor}: switching all traffic to {}",
                        self.version
                    ),
                    reason,
                );
                Ok(self.switch(now, why, actor.clone()))
            }
            (
                Input::Abort { actor, reason } | Input::Rollback { actor, reason },
                Phase::Previewing | Phase::AwaitingPromotion { .. } | Phase::PostPromotion,
            ) => {
                let ends_as = if matches!(input, Input::Abort { .. }) {
                    RollbackEnd::Aborted
                } else {
                    RollbackEnd::RolledBack
                };
                let verb = match ends_as {
                    RollbackEnd::Aborted => "aborted",
                    RollbackEnd::RolledBack => "rolled back",
                };
                let why = with_operator_reason(format!("{verb} by {actor}"), reason);
                Ok(if self.phase == Phase::PostPromotion {
                    self.switch_back(ends_as, now, why, actor.clone(), None)
                } else {
                    self.transition(
                        Phase::RollingBack { ends_as },
                        now,
                        why,
                        actor.clone(),
                        rollback_commands(),
                    )
                })
            }
            (
                Input::CanaryCrashed { reason },
                Phase::Previewing | Phase::AwaitingPromotion { .. },
            ) => Ok(self.roll_back_automatically(format!("canary crashed: {reason}"), now)),
            (Input::CanaryCrashed { reason }, Phase::PostPromotion) => {
                let why = format!("{} crashed after the switch: {reason}", self.version);
                Ok(self.switch_back_automatically(why, now))
            }
            (Input::CanaryCrashed { .. }, Phase::SwitchingBack { .. }) => Ok(Vec::new()),
            // A metric of the user's own failed (or its provider stayed unavailable
            // past its limit): before the switch no user saw the new version, after it
            // the old one is still warm.
            (
                Input::AnalysisFailed { reason },
                Phase::Previewing | Phase::AwaitingPromotion { .. },
            ) => Ok(self.roll_back_automatically(reason.clone(), now)),
            (Input::AnalysisFailed { reason }, Phase::PostPromotion) => {
                Ok(self.switch_back_automatically(reason.clone(), now))
            }
            (Input::PromotionDone, Phase::Promoting) if self.previous_version.is_some() => {
                Ok(self.enter_post_promotion(&spec, now))
            }
            (Input::SwitchedBack, Phase::SwitchingBack { ends_as }) => {
                let ends_as = *ends_as;
                let previous = self.previous_version.clone().unwrap_or_default();
                let reason = format!(
                    "{previous} is stable again and serves all traffic; stopping {}",
                    self.version
                );
                Ok(self.transition(
                    Phase::RollingBack { ends_as },
                    now,
                    reason,
                    Actor::System,
                    vec![Command::StopCanary],
                ))
            }
            (
                Input::Pause { .. } | Input::Resume { .. },
                Phase::Previewing
                | Phase::AwaitingPromotion { .. }
                | Phase::PostPromotion
                | Phase::SwitchingBack { .. },
            ) => Err(self.wrong_phase(action, "Progressing or Paused (canary steps)")),
            (
                Input::Recovered { policy },
                Phase::Previewing
                | Phase::AwaitingPromotion { .. }
                | Phase::PostPromotion
                | Phase::SwitchingBack { .. },
            ) => Ok(self.blue_green_recovered(*policy, now)),
            (
                _,
                Phase::Previewing
                | Phase::AwaitingPromotion { .. }
                | Phase::PostPromotion
                | Phase::SwitchingBack { .. },
            ) => Err(self.wrong_phase(action, "a phase that takes it")),
            _ => return None,
        };
        Some(result)
    }

    /// When blue-green's own phases want a tick; `None` leaves it to the shared rule.
    pub(super) fn blue_green_wakeup(&self) -> Option<Option<Timestamp>> {
        let spec = self.spec.strategy.blue_green()?;
        match self.phase {
            Phase::Previewing => Some(Some(self.analysis_wakeup(spec.pre_promotion_analysis))),
            Phase::PostPromotion => Some(Some(self.analysis_wakeup(spec.post_promotion_analysis))),
            Phase::AwaitingPromotion { auto_at } => Some(auto_at),
            _ => None,
        }
    }

    /// The next analysis, the window's end once passed, or the progress deadline.
    fn analysis_wakeup(&self, window: Duration) -> Timestamp {
        let end = self.step_started_at.saturating_add(window);
        let mut wakeup = self.deadline_at();
        if !window.is_zero() {
            wakeup = wakeup.min(self.next_analysis_at);
        }
        if self.step_outcome == Some(Outcome::Pass) || window.is_zero() {
            wakeup = wakeup.min(end);
        }
        wakeup
    }

    fn enter_preview(
        &mut self,
        spec: &BlueGreenSpec,
        now: Timestamp,
        reason: String,
    ) -> Vec<Command> {
        self.restart_step_window(now);
        self.consecutive_failures = 0;
        if spec.pre_promotion_analysis.is_zero() {
            let reason = format!("{reason}; no analysis configured");
            return self.preview_passed(spec, now, reason);
        }
        self.transition(
            Phase::Previewing,
            now,
            reason,
            Actor::System,
            vec![Command::ResetAnalysis],
        )
    }

    fn preview_tick(&mut self, spec: &BlueGreenSpec, now: Timestamp) -> Vec<Command> {
        let window_over = now
            >= self
                .step_started_at
                .saturating_add(spec.pre_promotion_analysis);
        if window_over && self.step_outcome == Some(Outcome::Pass) {
            let reason = format!(
                "pre-promotion analysis of {} passed over {}",
                self.version,
                human_duration(spec.pre_promotion_analysis)
            );
            return self.preview_passed(spec, now, reason);
        }
        if now >= self.deadline_at() {
            let reason = format!(
                "pre-promotion analysis of {} did not pass within {} (progress deadline){}",
                self.version,
                human_duration(self.spec.progress_deadline),
                self.last_reason()
            );
            return match self.spec.on_deadline {
                DeadlineAction::Fail => self.roll_back_automatically(reason, now),
                DeadlineAction::Pause => self.transition(
                    Phase::AwaitingPromotion { auto_at: None },
                    now,
                    format!("{reason}; waiting for an operator to promote or abort"),
                    Actor::System,
                    Vec::new(),
                ),
            };
        }
        self.schedule_analysis(now)
    }

    /// The preview is ready to take over: switch now, later, or when promoted.
    fn preview_passed(
        &mut self,
        spec: &BlueGreenSpec,
        now: Timestamp,
        reason: String,
    ) -> Vec<Command> {
        if spec.auto_promotion_enabled && spec.auto_promotion_after.is_zero() {
            let reason = format!(
                "{reason}; auto promotion: switching all traffic to {}",
                self.version
            );
            return self.switch(now, reason, Actor::System);
        }
        let (auto_at, next) = if spec.auto_promotion_enabled {
            let at = now.saturating_add(spec.auto_promotion_after);
            (
                Some(at),
                format!(
                    "switching automatically in {}, or on promote",
                    human_duration(spec.auto_promotion_after)
                ),
            )
        } else {
            (None, "waiting for promote".to_string())
        };
        self.transition(
            Phase::AwaitingPromotion { auto_at },
            now,
            format!("{reason}; {next}"),
            Actor::System,
            Vec::new(),
        )
    }

    /// The switch: the canary's promotion (full size, then one swap).
    fn switch(&mut self, now: Timestamp, reason: String, actor: Actor) -> Vec<Command> {
        self.transition(
            Phase::Promoting,
            now,
            reason,
            actor,
            vec![Command::PromoteCanary],
        )
    }

    fn enter_post_promotion(&mut self, spec: &BlueGreenSpec, now: Timestamp) -> Vec<Command> {
        if spec.post_promotion_analysis.is_zero() {
            return self.succeed(now, "no post-promotion analysis configured".to_string());
        }
        self.restart_step_window(now);
        self.consecutive_failures = 0;
        let previous = self.previous_version.clone().unwrap_or_default();
        let reason = format!(
            "{} is stable and serves all traffic; post-promotion analysis for {} ({previous} stays warm to switch back to)",
            self.version,
            human_duration(spec.post_promotion_analysis)
        );
        self.transition(
            Phase::PostPromotion,
            now,
            reason,
            Actor::System,
            vec![Command::ResetAnalysis],
        )
    }

    fn post_promotion_tick(&mut self, spec: &BlueGreenSpec, now: Timestamp) -> Vec<Command> {
        let window_over = now
            >= self
                .step_started_at
                .saturating_add(spec.post_promotion_analysis);
        if window_over && self.step_outcome == Some(Outcome::Pass) {
            let reason = format!(
                "post-promotion analysis passed over {}",
                human_duration(spec.post_promotion_analysis)
            );
            return self.succeed(now, reason);
        }
        if now >= self.deadline_at() {
            let reason = format!(
                "post-promotion analysis of {} did not pass within {} (progress deadline){}",
                self.version,
                human_duration(self.spec.progress_deadline),
                self.last_reason()
            );
            return self.switch_back_automatically(reason, now);
        }
        self.schedule_analysis(now)
    }

    fn succeed(&mut self, now: Timestamp, why: String) -> Vec<Command> {
        let mut reason = format!("{} is stable and serves all traffic ({why})", self.version);
        let mut commands = Vec::new();
        if let Some(previous) = &self.previous_version {
            reason.push_str(&format!(
                "; {previous} scales down in {}",
                human_duration(self.spec.scale_down_delay)
            ));
            commands.push(Command::ScheduleScaleDown {
                version: previous.clone(),
                after: self.spec.scale_down_delay,
            });
        }
        self.transition(Phase::Succeeded, now, reason, Actor::System, commands)
    }

    /// A verdict on the preview's or the live traffic.
    fn judged(
        &mut self,
        verdict: Verdict,
        spec: &BlueGreenSpec,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        if verdict.at < self.step_started_at {
            return Err(TransitionError::StaleVerdict {
                verdict_at: verdict.at,
                window_start: self.step_started_at,
            });
        }
        let outcome = verdict.outcome;
        let verdict_reason = verdict.reason.clone();
        self.step_outcome = Some(outcome);
        self.last_verdict = Some(verdict);
        self.next_analysis_at = now.saturating_add(self.spec.analysis_interval);
        let previewing = self.phase == Phase::Previewing;
        match outcome {
            Outcome::Pass => {
                self.consecutive_failures = 0;
                self.last_progress_at = now;
                Ok(if previewing {
                    self.preview_tick(spec, now)
                } else {
                    self.post_promotion_tick(spec, now)
                })
            }
            Outcome::Fail => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures < self.spec.failure_limit {
                    return Ok(Vec::new());
                }
                let which = if previewing { "pre" } else { "post" };
                let reason = format!(
                    "{which}-promotion analysis failed {} time(s) in a row (limit {}): {verdict_reason}",
                    self.consecutive_failures, self.spec.failure_limit
                );
                Ok(if previewing {
                    self.roll_back_automatically(reason, now)
                } else {
                    self.switch_back_automatically(reason, now)
                })
            }
            Outcome::Inconclusive => Ok(Vec::new()),
        }
    }

    fn switch_back_automatically(&mut self, reason: String, now: Timestamp) -> Vec<Command> {
        let incident = Command::OpenIncident {
            reason: format!(
                "{} of {} switched back: {reason}",
                self.version, self.service
            ),
        };
        self.switch_back(
            RollbackEnd::RolledBack,
            now,
            reason,
            Actor::System,
            Some(incident),
        )
    }

    fn switch_back(
        &mut self,
        ends_as: RollbackEnd,
        now: Timestamp,
        reason: String,
        actor: Actor,
        incident: Option<Command>,
    ) -> Vec<Command> {
        let previous = self.previous_version.clone().unwrap_or_default();
        let reason = format!("{reason}; switching all traffic back to {previous}");
        let mut commands = vec![Command::SwitchBack];
        commands.extend(incident);
        self.transition(
            Phase::SwitchingBack { ends_as },
            now,
            reason,
            actor,
            commands,
        )
    }

    fn blue_green_recovered(&mut self, policy: RecoveryPolicy, now: Timestamp) -> Vec<Command> {
        let was = self.phase.name();
        let (to, commands, plan) = match (policy, self.phase.clone()) {
            (RecoveryPolicy::Rollback, Phase::Previewing | Phase::AwaitingPromotion { .. }) => (
                Phase::RollingBack {
                    ends_as: RollbackEnd::RolledBack,
                },
                rollback_commands(),
                "stopping the preview",
            ),
            (RecoveryPolicy::Resume, Phase::Previewing | Phase::AwaitingPromotion { .. }) => (
                Phase::Starting {
                    resume: None,
                    pre_rollout: false,
                },
                vec![Command::StartCanary],
                "making sure the preview's instances run, then previewing again",
            ),
            (RecoveryPolicy::Rollback, Phase::PostPromotion) => (
                Phase::SwitchingBack {
                    ends_as: RollbackEnd::RolledBack,
                },
                vec![Command::SwitchBack],
                "switching back to the version before the switch",
            ),
            (RecoveryPolicy::Resume, Phase::PostPromotion) => {
                self.restart_step_window(now);
                (
                    Phase::PostPromotion,
                    vec![Command::ResetAnalysis],
                    "restarting the post-promotion analysis window",
                )
            }
            (_, switching @ Phase::SwitchingBack { .. }) => {
                (switching, vec![Command::SwitchBack], "switching back again")
            }
            (_, other) => (other, Vec::new(), "nothing to do"),
        };
        let policy_name = match policy {
            RecoveryPolicy::Resume => "resume",
            RecoveryPolicy::Rollback => "rollback",
        };
        let reason =
            format!("rampart restarted while {was}; restart policy is {policy_name}: {plan}");
        self.transition(to, now, reason, Actor::System, commands)
    }

    fn last_reason(&self) -> String {
        self.last_verdict
            .as_ref()
            .filter(|_| self.step_outcome.is_some())
            .map(|v| format!("; last analysis: {}", v.reason))
            .unwrap_or_else(|| "; no analysis recorded".to_string())
    }
}
