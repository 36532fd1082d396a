//! The transitions: one input, the time, and the rollout's state in; the new state and
//! the commands to execute out. Every refusal happens before any field is touched, so a
//! refused input leaves the rollout exactly as it was.

use std::time::Duration;

use super::Rollout;
use super::command::Command;
use super::error::TransitionError;
use super::gates::confirm_point;
use super::input::{Input, RecoveryPolicy};
use super::phase::{Actor, PauseCause, Phase, ResumePoint, RollbackEnd, Transition};
use super::spec::DeadlineAction;
use crate::clock::Timestamp;
use crate::judge::{Outcome, Verdict};

mod blue_green;

impl Rollout {
    /// Applies one input at time `now`. On success the state (and history) has changed as
    /// documented in the module docs and the returned commands must be executed in order,
    /// after the rollout has been persisted. On error nothing changed.
    pub fn handle(
        &mut self,
        input: Input,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        let action = input.action();
        if self.phase.is_terminal() {
            // Ticks are broadcast to every rollout; a finished one just has nothing to do.
            return match input {
                Input::Tick => Ok(Vec::new()),
                _ => Err(TransitionError::Finished {
                    action,
                    phase: self.phase.name(),
                }),
            };
        }
        // Blue-green's own phases and reports; the shared ones (validation, start,
        // promotion's swap, rollback) run below.
        if let Some(result) = self.blue_green_input(&input, now) {
            return result;
        }
        match input {
            Input::Begin { actor } => self.begin(actor, now),
            Input::ValidationFinished {
                can_deploy,
                summary,
            } => self.validation_finished(can_deploy, &summary, now),
            Input::InstancesReady => self.instances_ready(now),
            Input::InstancesFailed { reason } => {
                // Instances that ran and then died are a crash, reported as such.
                self.expect(
                    matches!(self.phase, Phase::Starting { .. } | Phase::Reverting),
                    action,
                    "Starting or Reverting",
                )?;
                self.canary_failed(action, &format!("instances failed to start: {reason}"), now)
            }
            Input::CanaryCrashed { reason } => {
                self.canary_failed(action, &format!("canary crashed: {reason}"), now)
            }
            Input::Tick => Ok(self.tick(now)),
            Input::Analysis(verdict) => self.analysis(verdict, now),
            Input::Promote { actor, reason } => self.promote(actor, &reason, now),
            Input::Pause { actor, reason } => self.pause(actor, &reason, now),
            Input::Resume { actor, reason } => self.resume(actor, &reason, now),
            Input::Abort { actor, reason } => {
                self.stop_by_operator(RollbackEnd::Aborted, action, actor, &reason, now)
            }
            Input::Rollback { actor, reason } => {
                self.stop_by_operator(RollbackEnd::RolledBack, action, actor, &reason, now)
            }
            Input::Revert { actor, reason } => self.revert(actor, &reason, now),
            Input::Approve {
                actor,
                step,
                reason,
            } => self.approve(actor, step, &reason, now),
            Input::Confirmation {
                point,
                accepted,
                answer,
            } => self.confirmation(point, accepted, answer, now),
            Input::PreRolloutFinished { ok, summary } => {
                self.pre_rollout_finished(ok, &summary, now)
            }
            Input::PromotionDone => self.promotion_done(now),
            Input::RollbackDone => self.rollback_done(now),
            Input::SwitchedBack => Err(self.wrong_phase(action, "SwitchingBack")),
            Input::Recovered { policy } => self.recovered(policy, now),
            Input::AnalysisHeld { cause, reason } => self.analysis_held(cause, reason, now),
            Input::AnalysisRestored { reason } => self.analysis_restored(reason, now),
            Input::AnalysisFailed { reason } => {
                self.expect(
                    matches!(self.phase, Phase::Progressing { .. } | Phase::Paused { .. }),
                    action,
                    "Progressing or Paused",
                )?;
                Ok(self.roll_back_automatically(reason, now))
            }
        }
    }

    /// When the engine should next send [`Input::Tick`]: the next analysis, the progress
    /// deadline, or the end of the hold once the step's analysis has passed. `None` when
    /// only an input from outside (a report or an operator) can move the rollout.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        if let Some(wakeup) = self.blue_green_wakeup() {
            return wakeup;
        }
        match self.phase {
            Phase::Progressing { step, .. } => {
                let wakeup = self.next_analysis_at.min(self.deadline_at());
                // A hold end only matters once the step has passed; before that, the
                // next verdict (due at `next_analysis_at`) is what can advance it.
                let hold_end = self
                    .hold_end(step)
                    .filter(|_| self.step_outcome == Some(Outcome::Pass));
                Some(hold_end.map_or(wakeup, |end| wakeup.min(end)))
            }
            // Analysis keeps running while paused so that failures still roll back.
            Phase::Paused { .. } => Some(
                self.next_confirmation_at
                    .map_or(self.next_analysis_at, |at| at.min(self.next_analysis_at)),
            ),
            // Every phase that waits on the engine gives up at its deadline.
            _ => self.phase_deadline_at,
        }
    }

    fn begin(&mut self, actor: Actor, now: Timestamp) -> Result<Vec<Command>, TransitionError> {
        self.expect(matches!(self.phase, Phase::Pending), "begin", "Pending")?;
        let reason = format!(
            "deploy {} of {}: running validation",
            self.version, self.service
        );
        Ok(self.transition(
            Phase::Validating,
            now,
            reason,
            actor,
            vec![Command::RunValidation],
        ))
    }

    fn validation_finished(
        &mut self,
        can_deploy: bool,
        summary: &str,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        self.expect(
            matches!(self.phase, Phase::Validating),
            "finish validation",
            "Validating",
        )?;
        Ok(if can_deploy {
            let reason = format!("validation passed ({summary}); starting {}", self.version);
            self.transition(
                Phase::Starting {
                    resume: None,
                    pre_rollout: false,
                },
                now,
                reason,
                Actor::System,
                vec![Command::StartCanary],
            )
        } else {
            let reason = format!("validation failed ({summary}); nothing was started");
            self.transition(Phase::Failed, now, reason, Actor::System, Vec::new())
        })
    }

    fn instances_ready(&mut self, now: Timestamp) -> Result<Vec<Command>, TransitionError> {
        let Phase::Starting {
            resume,
            pre_rollout: false,
        } = self.phase
        else {
            return Err(self.wrong_phase("mark instances ready", "Starting"));
        };
        let Some(point) = resume else {
            if self.previous_version.is_none() {
                let reason = format!(
                    "{} is ready; first deployment of {}: no stable version to compare against or shift traffic from, promoting directly",
                    self.version, self.service
                );
                return Ok(self.transition(
                    Phase::Promoting,
                    now,
                    reason,
                    Actor::System,
                    vec![Command::PromoteCanary],
                ));
            }
            if self.spec.hooks.pre_rollout {
                let reason = format!(
                    "{} is ready; running the pre-rollout hooks before any traffic moves",
                    self.version
                );
                return Ok(self.transition(
                    Phase::Starting {
                        resume: None,
                        pre_rollout: true,
                    },
                    now,
                    reason,
                    Actor::System,
                    vec![Command::RunPreRolloutHooks],
                ));
            }
            let weight = self.step_weight(0)?;
            let reason = format!("{} is ready; starting step 1", self.version);
            return Ok(self.enter_step(0, weight, None, now, reason));
        };
        let weight = self.step_weight(point.step)?;
        let reason = format!(
            "{} is ready again; re-establishing step {} with its hold restarted and a fresh analysis window",
            self.version,
            point.step + 1
        );
        Ok(self.enter_step(point.step, weight, point.paused, now, reason))
    }

    /// Instances failed to start, or a running canary crashed.
    fn canary_failed(
        &mut self,
        action: &'static str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        match self.phase {
            // Never served traffic: clean up what did start and end Failed.
            Phase::Starting { resume: None, .. } => {
                let reason = format!("{reason}; no traffic had reached {}", self.version);
                Ok(self.transition(
                    Phase::Failed,
                    now,
                    reason,
                    Actor::System,
                    vec![Command::StopCanary],
                ))
            }
            // Served traffic before a restart, or serves it now: roll back.
            Phase::Starting {
                resume: Some(_), ..
            }
            | Phase::Progressing { .. }
            | Phase::Paused { .. }
            | Phase::Promoting => Ok(self.roll_back_automatically(reason.to_string(), now)),
            // Already being stopped; the crash changes nothing.
            Phase::RollingBack { .. } => Ok(Vec::new()),
            // Reverting: the returning version never became stable, so the one that
            // serves now goes on serving. A crash of one of its instances while it is
            // brought back is the backend's to restart; only a failed start ends it.
            Phase::Reverting if action == "handle a canary crash" => Ok(Vec::new()),
            Phase::Reverting => {
                let serving = self.previous_version.clone().unwrap_or_default();
                let reason = format!(
                    "{reason}; could not bring back {}, {serving} goes on serving all traffic",
                    self.version
                );
                Ok(self.transition(
                    Phase::Failed,
                    now,
                    reason,
                    Actor::System,
                    vec![Command::StopCanary],
                ))
            }
            _ => Err(self.wrong_phase(
                action,
                "Starting, Progressing, Paused, Promoting or RollingBack",
            )),
        }
    }

    fn tick(&mut self, now: Timestamp) -> Vec<Command> {
        match self.phase {
            Phase::Progressing { step, weight } => {
                if now >= self.deadline_at() {
                    return self.deadline_reached(step, weight, now);
                }
                if self.step_outcome == Some(Outcome::Pass) && self.hold_elapsed(step, now) {
                    return self.advance(step, now);
                }
                self.schedule_analysis(now)
            }
            Phase::Paused { cause, .. } => {
                let mut commands = self.schedule_analysis(now);
                commands.extend(self.ask_again_if_due(cause, now));
                commands
            }
            _ => match self.phase_deadline_at {
                Some(at) if now >= at => self.phase_deadline_reached(now),
                _ => Vec::new(),
            },
        }
    }

    /// A phase that waits on the engine (an action that hangs, fails again and again
    /// or panicked) ran out of time: end it on the safe side.
    fn phase_deadline_reached(&mut self, now: Timestamp) -> Vec<Command> {
        let d = self.spec.deadlines;
        let version = self.version.clone();
        let serving = self
            .previous_version
            .clone()
            .unwrap_or_else(|| "the previous version".to_string());
        match self.phase {
            Phase::Validating => {
                let reason = format!(
                    "validation did not finish within {} (validation deadline); nothing was started",
                    human_duration(d.validation)
                );
                self.transition(
                    Phase::Failed,
                    now,
                    reason,
                    Actor::System,
                    vec![Command::CancelValidation],
                )
            }
            Phase::Starting {
                resume: None,
                pre_rollout,
            } => {
                let what = if pre_rollout {
                    "the pre-rollout hooks did not finish"
                } else {
                    "instances were not ready"
                };
                let reason = format!(
                    "{version}'s {what} within {} (start deadline); no traffic had reached {version}",
                    human_duration(d.start)
                );
                self.transition(
                    Phase::Failed,
                    now,
                    reason,
                    Actor::System,
                    vec![Command::StopCanary],
                )
            }
            Phase::Starting {
                resume: Some(_), ..
            } => {
                let reason = format!(
                    "{version}'s instances were not ready again within {} (start deadline)",
                    human_duration(d.start)
                );
                self.roll_back_automatically(reason, now)
            }
            Phase::Promoting => {
                let reason = format!(
                    "promotion of {version} did not finish within {} (promotion deadline); {serving} still serves the stable traffic",
                    human_duration(d.promotion)
                );
                self.roll_back_automatically(reason, now)
            }
            Phase::Reverting => {
                let reason = format!(
                    "{version} could not be brought back within {} (promotion deadline); {serving} goes on serving all traffic",
                    human_duration(d.promotion)
                );
                self.transition(
                    Phase::Failed,
                    now,
                    reason,
                    Actor::System,
                    vec![Command::StopCanary],
                )
            }
            Phase::RollingBack { ends_as } => {
                let reason = format!(
                    "{version} takes no traffic, but could not be confirmed stopped within {} (rollback deadline); {serving} serves all traffic, stopping {version} goes on in the background",
                    human_duration(d.rollback)
                );
                let to = match ends_as {
                    RollbackEnd::RolledBack => Phase::RolledBack,
                    RollbackEnd::Aborted => Phase::Aborted,
                };
                self.transition(to, now, reason, Actor::System, vec![Command::StopCanary])
            }
            _ => Vec::new(),
        }
    }

    fn analysis(
        &mut self,
        verdict: Verdict,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        let progressing = match self.phase {
            Phase::Progressing { step, weight } => Some((step, weight)),
            Phase::Paused { .. } => None,
            _ => return Err(self.wrong_phase("record analysis", "Progressing or Paused")),
        };
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

        match outcome {
            Outcome::Pass => {
                self.consecutive_failures = 0;
                match progressing {
                    Some((step, _)) => {
                        self.last_progress_at = now;
                        if self.hold_elapsed(step, now) {
                            return Ok(self.advance(step, now));
                        }
                        Ok(Vec::new())
                    }
                    None => Ok(Vec::new()),
                }
            }
            Outcome::Fail => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures >= self.spec.failure_limit {
                    let reason = format!(
                        "analysis failed {} time(s) in a row (limit {}): {verdict_reason}",
                        self.consecutive_failures, self.spec.failure_limit
                    );
                    return Ok(self.roll_back_automatically(reason, now));
                }
                Ok(self.deadline_check(progressing, now))
            }
            Outcome::Inconclusive => Ok(self.deadline_check(progressing, now)),
        }
    }

    /// Metrics that cannot be judged hold the step as a pause with its cause, so the
    /// progress deadline does not turn a provider outage into a rollback.
    fn analysis_held(
        &mut self,
        cause: PauseCause,
        reason: String,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        match self.phase {
            Phase::Progressing { step, weight } => {
                let paused = Phase::Paused {
                    step,
                    weight,
                    cause,
                };
                Ok(self.transition(paused, now, reason, Actor::System, Vec::new()))
            }
            // Already held (by an operator, the deadline or analysis): stays so.
            Phase::Paused { .. } => Ok(Vec::new()),
            _ => Err(self.wrong_phase("hold for analysis", "Progressing or Paused")),
        }
    }

    /// Only the pause the provider caused ends on its own; any other waits for an
    /// operator.
    fn analysis_restored(
        &mut self,
        reason: String,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        match self.phase {
            Phase::Paused {
                step,
                weight,
                cause: PauseCause::AnalysisUnavailable,
            } => {
                self.restart_step_window(now);
                let reason = format!(
                    "{reason}; step {} restarts its hold with a fresh analysis window",
                    step + 1
                );
                Ok(self.transition(
                    Phase::Progressing { step, weight },
                    now,
                    reason,
                    Actor::System,
                    vec![Command::ResetAnalysis],
                ))
            }
            Phase::Progressing { .. } | Phase::Paused { .. } => Ok(Vec::new()),
            _ => Err(self.wrong_phase("resume after analysis", "Progressing or Paused")),
        }
    }

    fn promote(
        &mut self,
        actor: Actor,
        why: &str,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        self.expect(
            matches!(self.phase, Phase::Progressing { .. } | Phase::Paused { .. }),
            "promote",
            "Progressing or Paused",
        )?;
        self.refuse_if_unapproved("promote")?;
        let reason = with_operator_reason(
            format!("promoted by {actor}, skipping the remaining steps"),
            why,
        );
        Ok(self.transition(
            Phase::Promoting,
            now,
            reason,
            actor,
            vec![Command::PromoteCanary],
        ))
    }

    fn pause(
        &mut self,
        actor: Actor,
        why: &str,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        let Phase::Progressing { step, weight } = self.phase else {
            return Err(self.wrong_phase("pause", "Progressing"));
        };
        let reason = with_operator_reason(format!("paused by {actor}"), why);
        let paused = Phase::Paused {
            step,
            weight,
            cause: PauseCause::Operator,
        };
        Ok(self.transition(paused, now, reason, actor, Vec::new()))
    }

    fn resume(
        &mut self,
        actor: Actor,
        why: &str,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        let Phase::Paused {
            step,
            weight,
            cause,
        } = self.phase
        else {
            return Err(self.wrong_phase("resume", "Paused"));
        };
        if cause.is_gate() {
            return self.release_gate(step, cause, actor, why, now);
        }
        self.restart_step_window(now);
        let reason = with_operator_reason(
            format!(
                "resumed by {actor}: step {} restarts its hold with a fresh analysis window",
                step + 1
            ),
            why,
        );
        Ok(self.transition(
            Phase::Progressing { step, weight },
            now,
            reason,
            actor,
            vec![Command::ResetAnalysis],
        ))
    }

    /// Abort and emergency rollback: nothing started yet ends `Aborted` at once;
    /// otherwise the canary is rolled back and the rollout ends as `ends_as`.
    fn stop_by_operator(
        &mut self,
        ends_as: RollbackEnd,
        action: &'static str,
        actor: Actor,
        why: &str,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        let verb = match ends_as {
            RollbackEnd::Aborted => "aborted",
            RollbackEnd::RolledBack => "rolled back",
        };
        match self.phase {
            Phase::Pending | Phase::Validating => {
                let commands = if self.phase == Phase::Validating {
                    vec![Command::CancelValidation]
                } else {
                    Vec::new()
                };
                let reason = with_operator_reason(
                    format!("{verb} by {actor} before anything was started"),
                    why,
                );
                Ok(self.transition(Phase::Aborted, now, reason, actor, commands))
            }
            Phase::Starting { .. } | Phase::Progressing { .. } | Phase::Paused { .. } => {
                let reason = with_operator_reason(format!("{verb} by {actor}"), why);
                Ok(self.transition(
                    Phase::RollingBack { ends_as },
                    now,
                    reason,
                    actor,
                    rollback_commands(),
                ))
            }
            _ => Err(self.wrong_phase(
                action,
                "Pending, Validating, Starting, Progressing or Paused",
            )),
        }
    }

    /// An emergency rollback with no rollout in flight, as a rollout of its own: the
    /// version stable before the last promotion comes back (`PromoteCanary`), then the
    /// reverted-from version drains and stops (`ScheduleScaleDown` with no delay).
    fn revert(
        &mut self,
        actor: Actor,
        why: &str,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        self.expect(matches!(self.phase, Phase::Pending), "revert", "Pending")?;
        let from = self
            .previous_version
            .clone()
            .unwrap_or_else(|| "the current version".to_string());
        let reason = with_operator_reason(
            format!(
                "emergency rollback by {actor} from {from} to {}",
                self.version
            ),
            why,
        );
        Ok(self.transition(
            Phase::Reverting,
            now,
            reason,
            actor,
            vec![Command::PromoteCanary],
        ))
    }

    fn promotion_done(&mut self, now: Timestamp) -> Result<Vec<Command>, TransitionError> {
        if self.phase == Phase::Reverting {
            let mut reason = format!("{} is stable again and serves all traffic", self.version);
            let mut commands = Vec::new();
            if let Some(from) = &self.previous_version {
                reason.push_str(&format!("; {from} drains and stops"));
                commands.push(Command::ScheduleScaleDown {
                    version: from.clone(),
                    after: Duration::ZERO,
                });
            }
            return Ok(self.transition(Phase::Succeeded, now, reason, Actor::System, commands));
        }
        self.expect(
            matches!(self.phase, Phase::Promoting),
            "finish promotion",
            "Promoting or Reverting",
        )?;
        let mut reason = format!("{} is stable and serves all traffic", self.version);
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
        Ok(self.transition(Phase::Succeeded, now, reason, Actor::System, commands))
    }

    fn rollback_done(&mut self, now: Timestamp) -> Result<Vec<Command>, TransitionError> {
        let Phase::RollingBack { ends_as } = self.phase else {
            return Err(self.wrong_phase("finish rollback", "RollingBack"));
        };
        let serving = self
            .previous_version
            .clone()
            .unwrap_or_else(|| "the previous version".to_string());
        let reason = format!("{} stopped; {serving} serves all traffic", self.version);
        let to = match ends_as {
            RollbackEnd::RolledBack => Phase::RolledBack,
            RollbackEnd::Aborted => Phase::Aborted,
        };
        Ok(self.transition(to, now, reason, Actor::System, Vec::new()))
    }

    fn recovered(
        &mut self,
        policy: RecoveryPolicy,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        let was = self.phase.name();
        let (to, commands, plan) = match policy {
            RecoveryPolicy::Resume => match self.phase.clone() {
                Phase::Pending => (Phase::Pending, Vec::new(), "waiting to begin"),
                Phase::Validating => (
                    Phase::Validating,
                    vec![Command::RunValidation],
                    "running validation again",
                ),
                // The instances may have died with rampart: start (adopt) them again,
                // then run the pre-rollout hooks again if they were running.
                Phase::Starting { resume, .. } => (
                    Phase::Starting {
                        resume,
                        pre_rollout: false,
                    },
                    vec![Command::StartCanary],
                    "making sure the new version's instances run",
                ),
                Phase::Progressing { step, .. } => (
                    Phase::Starting {
                        resume: Some(ResumePoint { step, paused: None }),
                        pre_rollout: false,
                    },
                    vec![Command::StartCanary],
                    "making sure the new version's instances run, then re-establishing the step",
                ),
                Phase::Paused { step, cause, .. } => (
                    Phase::Starting {
                        resume: Some(ResumePoint {
                            step,
                            paused: Some(cause),
                        }),
                        pre_rollout: false,
                    },
                    vec![Command::StartCanary],
                    "making sure the new version's instances run, then re-establishing the paused step",
                ),
                Phase::Promoting => (
                    Phase::Promoting,
                    vec![Command::PromoteCanary],
                    "promoting again",
                ),
                Phase::Reverting => (
                    Phase::Reverting,
                    vec![Command::PromoteCanary],
                    "bringing the reverted-to version back again",
                ),
                rolling_back @ Phase::RollingBack { .. } => {
                    (rolling_back, rollback_commands(), "rolling back again")
                }
                // Terminal phases were refused in `handle`.
                terminal => (terminal, Vec::new(), "nothing to do"),
            },
            RecoveryPolicy::Rollback => match self.phase.clone() {
                Phase::Pending | Phase::Validating => {
                    (Phase::Aborted, Vec::new(), "nothing was started, ending")
                }
                Phase::Starting { .. }
                | Phase::Progressing { .. }
                | Phase::Paused { .. }
                | Phase::Promoting => (
                    Phase::RollingBack {
                        ends_as: RollbackEnd::RolledBack,
                    },
                    rollback_commands(),
                    "rolling the canary back",
                ),
                rolling_back @ Phase::RollingBack { .. } => {
                    (rolling_back, rollback_commands(), "rolling back again")
                }
                // A revert is already the way back to safety: finish it.
                Phase::Reverting => (
                    Phase::Reverting,
                    vec![Command::PromoteCanary],
                    "bringing the reverted-to version back again",
                ),
                terminal => (terminal, Vec::new(), "nothing to do"),
            },
        };
        let policy_name = match policy {
            RecoveryPolicy::Resume => "resume",
            RecoveryPolicy::Rollback => "rollback",
        };
        let reason =
            format!("rampart restarted while {was}; restart policy is {policy_name}: {plan}");
        Ok(self.transition(to, now, reason, Actor::System, commands))
    }

    // --- helpers -------------------------------------------------------------------

    /// Puts the rollout at `step` (paused if `paused` says so) with the step's weight, a
    /// restarted hold and a fresh analysis window.
    pub(super) fn enter_step(
        &mut self,
        step: usize,
        weight: f64,
        paused: Option<PauseCause>,
        now: Timestamp,
        reason: String,
    ) -> Vec<Command> {
        self.restart_step_window(now);
        let mut reason = reason;
        let until_promoted = self.spec.steps.get(step).is_some_and(|s| s.until_promoted);
        let paused = match paused {
            None if until_promoted => {
                reason.push_str(
                    "; waits for an operator's resume or promote (pause = until_promoted)",
                );
                Some(PauseCause::UntilPromoted)
            }
            other => other,
        };
        let to = match paused {
            Some(cause) => Phase::Paused {
                step,
                weight,
                cause,
            },
            None => Phase::Progressing { step, weight },
        };
        let mut commands = vec![
            Command::SetCanaryWeight { percent: weight },
            Command::ResetAnalysis,
        ];
        // Re-established at a confirm gate (after a restart): ask the hooks again.
        if let Some(point) = paused.and_then(confirm_point) {
            commands.push(Command::AskConfirmation { point });
        }
        let commands = self.transition(to, now, reason, Actor::System, commands);
        if paused.and_then(confirm_point).is_some() {
            self.waiting_on_hooks(now);
        }
        commands
    }

    /// A restored rollout whose spec lost steps must not index past the end.
    pub(super) fn step_weight(&self, step: usize) -> Result<f64, TransitionError> {
        self.spec
            .steps
            .get(step)
            .map(|s| s.weight)
            .ok_or(TransitionError::NoSuchStep {
                step,
                steps: self.spec.steps.len(),
            })
    }

    fn restart_step_window(&mut self, now: Timestamp) {
        self.step_started_at = now;
        self.last_progress_at = now;
        self.next_analysis_at = now.saturating_add(self.spec.analysis_interval);
        self.step_outcome = None;
    }

    /// The current step passed its hold and analysis (or an operator released it):
    /// through its gates (module docs, "Gates"), then on.
    fn advance(&mut self, step: usize, now: Timestamp) -> Vec<Command> {
        if let Some(waiting) = self.stop_at_gate(step, now) {
            return waiting;
        }
        self.move_on(step, now)
    }

    /// Next step, or promotion after the last one: every gate of `step` is passed.
    pub(super) fn move_on(&mut self, step: usize, now: Timestamp) -> Vec<Command> {
        let total = self.spec.steps.len();
        let next = step + 1;
        match self.spec.steps.get(next) {
            Some(next_step) => {
                let weight = next_step.weight;
                let reason = format!(
                    "step {} of {total} passed (hold elapsed, analysis passed); moving to step {} at {weight}%",
                    step + 1,
                    next + 1
                );
                self.enter_step(next, weight, None, now, reason)
            }
            None => {
                let reason = format!("all {total} steps passed; promoting {}", self.version);
                self.transition(
                    Phase::Promoting,
                    now,
                    reason,
                    Actor::System,
                    vec![Command::PromoteCanary],
                )
            }
        }
    }

    fn schedule_analysis(&mut self, now: Timestamp) -> Vec<Command> {
        if now < self.next_analysis_at {
            return Vec::new();
        }
        self.next_analysis_at = now.saturating_add(self.spec.analysis_interval);
        vec![Command::EvaluateAnalysis]
    }

    fn deadline_check(
        &mut self,
        progressing: Option<(usize, f64)>,
        now: Timestamp,
    ) -> Vec<Command> {
        match progressing {
            Some((step, weight)) if now >= self.deadline_at() => {
                self.deadline_reached(step, weight, now)
            }
            _ => Vec::new(),
        }
    }

    fn deadline_reached(&mut self, step: usize, weight: f64, now: Timestamp) -> Vec<Command> {
        let last = self
            .last_verdict
            .as_ref()
            .filter(|_| self.step_outcome.is_some())
            .map(|v| format!("; last analysis: {}", v.reason))
            .unwrap_or_else(|| "; no analysis recorded".to_string());
        let waited = human_duration(now.since(self.last_progress_at));
        let deadline = human_duration(self.spec.progress_deadline);
        match self.spec.on_deadline {
            DeadlineAction::Fail => {
                let reason = format!(
                    "step {} made no progress for {waited} (progress deadline {deadline}){last}",
                    step + 1
                );
                self.roll_back_automatically(reason, now)
            }
            DeadlineAction::Pause => {
                let reason = format!(
                    "step {} made no progress for {waited} (progress deadline {deadline}){last}; paused for an operator",
                    step + 1
                );
                let paused = Phase::Paused {
                    step,
                    weight,
                    cause: PauseCause::Deadline,
                };
                self.transition(paused, now, reason, Actor::System, Vec::new())
            }
        }
    }

    pub(super) fn roll_back_automatically(
        &mut self,
        reason: String,
        now: Timestamp,
    ) -> Vec<Command> {
        let mut commands = rollback_commands();
        commands.push(Command::OpenIncident {
            reason: format!("{} of {} rolled back: {reason}", self.version, self.service),
        });
        let to = Phase::RollingBack {
            ends_as: RollbackEnd::RolledBack,
        };
        self.transition(to, now, reason, Actor::System, commands)
    }

    fn deadline_at(&self) -> Timestamp {
        self.last_progress_at
            .saturating_add(self.spec.progress_deadline)
    }

    fn hold_end(&self, step: usize) -> Option<Timestamp> {
        let hold = self.spec.steps.get(step)?.hold;
        Some(self.step_started_at.saturating_add(hold))
    }

    fn hold_elapsed(&self, step: usize, now: Timestamp) -> bool {
        self.hold_end(step).is_some_and(|end| now >= end)
    }

    /// Records the transition and appends its notification after `commands`.
    pub(super) fn transition(
        &mut self,
        to: Phase,
        now: Timestamp,
        reason: String,
        actor: Actor,
        mut commands: Vec<Command>,
    ) -> Vec<Command> {
        let deadlines = self.spec.deadlines;
        self.phase_deadline_at = match to {
            Phase::Validating => Some(deadlines.validation),
            Phase::Starting { .. } => Some(deadlines.start),
            Phase::Promoting | Phase::Reverting | Phase::SwitchingBack { .. } => {
                Some(deadlines.promotion)
            }
            Phase::RollingBack { .. } => Some(deadlines.rollback),
            _ => None,
        }
        .map(|deadline| now.saturating_add(deadline));
        // A confirm hook's "no" belongs to the wait it held; the caller sets it again
        // when the new phase waits on hooks too.
        if to != self.phase {
            self.confirmation = None;
            self.next_confirmation_at = None;
        }
        let record = Transition {
            at: now,
            from: std::mem::replace(&mut self.phase, to.clone()),
            to,
            reason,
            actor,
        };
        self.history.push(record.clone());
        commands.push(Command::Notify(record));
        commands
    }

    pub(super) fn expect(
        &self,
        ok: bool,
        action: &'static str,
        expected: &'static str,
    ) -> Result<(), TransitionError> {
        if ok {
            Ok(())
        } else {
            Err(self.wrong_phase(action, expected))
        }
    }

    pub(super) fn wrong_phase(
        &self,
        action: &'static str,
        expected: &'static str,
    ) -> TransitionError {
        TransitionError::WrongPhase {
            action,
            phase: self.phase.name(),
            expected,
        }
    }
}

/// Weight 0 first, so no user request reaches the canary while it is being stopped.
pub(super) fn rollback_commands() -> Vec<Command> {
    vec![
        Command::SetCanaryWeight { percent: 0.0 },
        Command::StopCanary,
    ]
}

pub(super) fn with_operator_reason(what: String, why: &str) -> String {
    let why = why.trim();
    if why.is_empty() {
        what
    } else {
        format!("{what}: {why}")
    }
}

/// "1h2m3s", "30s", "30.1s", "250ms": short, for reasons a user reads.
fn human_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let (secs, sub_second_ms) = (ms / 1000, ms % 1000);
    if secs == 0 {
        return format!("{ms}ms");
    }
    if sub_second_ms != 0 {
        // Elapsed times are rarely whole seconds; a tenth is precise enough to read.
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}
