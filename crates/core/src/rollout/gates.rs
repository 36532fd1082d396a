//! The gates a step is left through (module docs, "Gates"): manual holds, named
//! approvals, confirm hooks, and the pre-rollout hooks before the first step.

use super::Rollout;
use super::command::Command;
use super::error::TransitionError;
use super::input::ConfirmPoint;
use super::machine::with_operator_reason;
use super::phase::{Actor, PauseCause, Phase, Transition};
use super::{Approval, ConfirmationAnswer};
use crate::clock::Timestamp;

/// The hook point a confirm wait asks, `None` for other waits.
pub(super) fn confirm_point(cause: PauseCause) -> Option<ConfirmPoint> {
    match cause {
        PauseCause::ConfirmTrafficIncrease => Some(ConfirmPoint::TrafficIncrease),
        PauseCause::ConfirmPromotion => Some(ConfirmPoint::Promotion),
        _ => None,
    }
}

fn confirm_cause(point: ConfirmPoint) -> PauseCause {
    match point {
        ConfirmPoint::TrafficIncrease => PauseCause::ConfirmTrafficIncrease,
        ConfirmPoint::Promotion => PauseCause::ConfirmPromotion,
    }
}

impl Rollout {
    /// The approval `step` still needs, if any.
    pub fn pending_approval(&self, step: usize) -> Option<&str> {
        let name = self.spec.steps.get(step)?.approve.as_deref()?;
        let given = self.approvals.iter().any(|a| a.step == step);
        (!given).then_some(name)
    }

    /// The first gate of `step` still closed, entered (or stayed at); `None` when the
    /// step may be left.
    pub(super) fn stop_at_gate(&mut self, step: usize, now: Timestamp) -> Option<Vec<Command>> {
        let (weight, waiting) = match self.phase {
            Phase::Progressing { weight, .. } => (weight, None),
            Phase::Paused { weight, cause, .. } => (weight, Some(cause)),
            _ => return None,
        };
        if let Some(name) = self.pending_approval(step).map(str::to_string) {
            if waiting == Some(PauseCause::Approval) {
                return Some(Vec::new());
            }
            let reason = format!(
                "step {} waits for approval by {name} (`rampart approve {}`); the judge keeps watching",
                step + 1,
                self.service
            );
            let to = Phase::Paused {
                step,
                weight,
                cause: PauseCause::Approval,
            };
            return Some(self.transition(to, now, reason, Actor::System, Vec::new()));
        }
        let last = step + 1 >= self.spec.steps.len();
        let hooks = self.spec.hooks;
        let point = match last {
            false if hooks.confirm_traffic_increase => ConfirmPoint::TrafficIncrease,
            true if hooks.confirm_promotion => ConfirmPoint::Promotion,
            _ => return None,
        };
        let cause = confirm_cause(point);
        if waiting == Some(cause) {
            return Some(Vec::new());
        }
        let before = match point {
            ConfirmPoint::TrafficIncrease => format!("moving to step {}", step + 2),
            ConfirmPoint::Promotion => "promoting".to_string(),
        };
        let reason = format!(
            "step {} passed; asking the {} hooks before {before}",
            step + 1,
            point.name()
        );
        let to = Phase::Paused {
            step,
            weight,
            cause,
        };
        let commands = self.transition(
            to,
            now,
            reason,
            Actor::System,
            vec![Command::AskConfirmation { point }],
        );
        self.waiting_on_hooks(now);
        Some(commands)
    }

    /// The hooks were just asked: the next ask is one interval away.
    pub(super) fn waiting_on_hooks(&mut self, now: Timestamp) {
        self.next_confirmation_at = Some(now.saturating_add(self.spec.hooks.confirm_interval));
    }

    /// A tick while waiting on confirm hooks asks them again once the interval passed.
    pub(super) fn ask_again_if_due(&mut self, cause: PauseCause, now: Timestamp) -> Vec<Command> {
        match confirm_point(cause) {
            Some(point) if self.next_confirmation_at.is_some_and(|at| now >= at) => {
                self.waiting_on_hooks(now);
                vec![Command::AskConfirmation { point }]
            }
            _ => Vec::new(),
        }
    }

    /// Promote skips steps, so it may not skip an approval still due.
    pub(super) fn refuse_if_unapproved(&self, action: &'static str) -> Result<(), TransitionError> {
        let from = match self.phase {
            Phase::Progressing { step, .. } | Phase::Paused { step, .. } => step,
            _ => 0,
        };
        match (from..self.spec.steps.len())
            .find_map(|step| self.pending_approval(step).map(|name| (step, name)))
        {
            Some((step, name)) => Err(TransitionError::ApprovalRequired {
                action,
                step,
                name: name.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// An operator's resume at a gate: an until_promoted gate opens (the step's later
    /// gates follow), a confirm hook's "no" is overridden, an approval is not given.
    pub(super) fn release_gate(
        &mut self,
        step: usize,
        cause: PauseCause,
        actor: Actor,
        why: &str,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        if cause == PauseCause::Approval {
            let name = self.pending_approval(step).unwrap_or_default().to_string();
            return Err(TransitionError::ApprovalRequired {
                action: "resume",
                step,
                name,
            });
        }
        let (what, commands) = match confirm_point(cause) {
            Some(point) => (
                format!("resumed by {actor}, overriding the {} hooks", point.name()),
                self.move_on(step, now),
            ),
            None => (
                format!("released by {actor}"),
                self.advance_from_gate(step, now),
            ),
        };
        Ok(attribute(
            self,
            commands,
            actor,
            with_operator_reason(what, why),
        ))
    }

    /// The step an approval would be for (`step`, else the current one) and the name
    /// it needs, or why there is nothing to approve there. The engine asks first, to
    /// match the caller's token against the name.
    pub fn approval_target(&self, step: Option<usize>) -> Result<(usize, &str), TransitionError> {
        let current = match self.phase {
            Phase::Progressing { step, .. } | Phase::Paused { step, .. } => Some(step),
            Phase::Starting { resume, .. } => resume.map(|point| point.step),
            Phase::Pending | Phase::Validating => None,
            _ => {
                return Err(self.wrong_phase(
                    "approve",
                    "Pending, Validating, Starting, Progressing or Paused",
                ));
            }
        };
        let target = step.or(current).ok_or(TransitionError::NoCurrentStep {
            phase: self.phase.name(),
        })?;
        let steps = self.spec.steps.len();
        if target >= steps {
            return Err(TransitionError::NoSuchStep {
                step: target,
                steps,
            });
        }
        if current.is_some_and(|current| target < current) {
            return Err(TransitionError::StepPassed { step: target });
        }
        let Some(name) = self.spec.steps[target].approve.as_deref() else {
            return Err(TransitionError::NoApprovalNeeded {
                step: target,
                needing: self.steps_needing_approval(),
            });
        };
        if let Some(given) = self.approvals.iter().find(|a| a.step == target) {
            return Err(TransitionError::AlreadyApproved {
                step: target,
                by: given.by.clone(),
            });
        }
        Ok((target, name))
    }

    pub(super) fn approve(
        &mut self,
        actor: Actor,
        step: Option<usize>,
        why: &str,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        let (target, name) = self.approval_target(step)?;
        let name = name.to_string();
        self.approvals.push(Approval {
            step: target,
            name: name.clone(),
            by: actor.to_string(),
            at: now,
        });
        let what = format!("step {} approved by {actor} ({name})", target + 1);
        let waiting_here = matches!(
            self.phase,
            Phase::Paused { step, cause: PauseCause::Approval, .. } if step == target
        );
        if waiting_here {
            let commands = self.advance_from_gate(target, now);
            return Ok(attribute(
                self,
                commands,
                actor,
                with_operator_reason(what, why),
            ));
        }
        let reason =
            with_operator_reason(format!("{what}, ahead of the step's end; recorded"), why);
        Ok(self.record_in_place(reason, actor, now))
    }

    pub(super) fn confirmation(
        &mut self,
        point: ConfirmPoint,
        accepted: bool,
        answer: String,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        let step = match self.phase {
            Phase::Paused { step, cause, .. } if confirm_point(cause) == Some(point) => step,
            _ => {
                return Err(self.wrong_phase(
                    "record a confirmation",
                    "Paused on the confirm hooks it answers",
                ));
            }
        };
        if accepted {
            let commands = self.move_on(step, now);
            let what = format!("the {} hooks confirmed ({answer})", point.name());
            return Ok(attribute(self, commands, Actor::System, what));
        }
        let changed = self
            .confirmation
            .as_ref()
            .is_none_or(|previous| previous.answer != answer);
        self.confirmation = Some(ConfirmationAnswer {
            point,
            answer: answer.clone(),
            at: now,
        });
        if self.next_confirmation_at.is_none() {
            self.waiting_on_hooks(now);
        }
        // One event per new answer, not one per ask.
        if !changed {
            return Ok(Vec::new());
        }
        let reason = format!(
            "the {} hooks said no ({answer}); step {} holds, asking again every {}s",
            point.name(),
            step + 1,
            self.spec.hooks.confirm_interval.as_secs_f64()
        );
        Ok(self.record_in_place(reason, Actor::System, now))
    }

    pub(super) fn pre_rollout_finished(
        &mut self,
        ok: bool,
        summary: &str,
        now: Timestamp,
    ) -> Result<Vec<Command>, TransitionError> {
        self.expect(
            matches!(
                self.phase,
                Phase::Starting {
                    resume: None,
                    pre_rollout: true
                }
            ),
            "finish the pre-rollout hooks",
            "Starting with the pre-rollout hooks running",
        )?;
        if ok {
            let weight = self.step_weight(0)?;
            let reason = format!("pre-rollout hooks passed ({summary}); starting step 1");
            return Ok(self.enter_step(0, weight, None, now, reason));
        }
        let reason = format!(
            "pre-rollout hooks failed ({summary}); no traffic had reached {}",
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

    /// Leaving a gate that is not a confirm wait: the step's remaining gates, then on.
    fn advance_from_gate(&mut self, step: usize, now: Timestamp) -> Vec<Command> {
        match self.stop_at_gate(step, now) {
            Some(waiting) => waiting,
            None => self.move_on(step, now),
        }
    }

    /// Records what happened with no change of phase (or its deadline).
    fn record_in_place(&mut self, reason: String, actor: Actor, now: Timestamp) -> Vec<Command> {
        let record = Transition {
            at: now,
            from: self.phase.clone(),
            to: self.phase.clone(),
            reason,
            actor,
        };
        self.history.push(record.clone());
        vec![Command::Notify(record)]
    }

    fn steps_needing_approval(&self) -> String {
        let needing: Vec<String> = self
            .spec
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.approve
                    .as_ref()
                    .map(|name| format!("step {} ({name})", i + 1))
            })
            .collect();
        if needing.is_empty() {
            "no step of this rollout needs one".to_string()
        } else {
            format!("steps needing one: {}", needing.join(", "))
        }
    }
}

/// Credits the transition `commands` just made to `actor`, its reason led by `what`:
/// the operator (or hook) who opened a gate is who moved the rollout on.
fn attribute(
    rollout: &mut Rollout,
    mut commands: Vec<Command>,
    actor: Actor,
    what: String,
) -> Vec<Command> {
    let Some(Command::Notify(notified)) = commands
        .iter_mut()
        .rev()
        .find(|c| matches!(c, Command::Notify(_)))
    else {
        return commands;
    };
    notified.actor = actor;
    notified.reason = format!("{what}; {}", notified.reason);
    if let Some(last) = rollout.history.last_mut() {
        *last = notified.clone();
    }
    commands
}
