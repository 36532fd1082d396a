//! Escalation: which step of a policy is due for an incident nobody has
//! acknowledged yet. Pure: the caller passes the incident's times, how many steps
//! it has already sent, and now.
//!
//! A policy's steps fire at `opened_at + after` each, in order. With `repeat = N`
//! the whole list runs N more times, each round starting where the previous one's
//! last step fired: steps at 15m and 30m with `repeat = 2` fire at 15, 30, 45, 60,
//! 75 and 90 minutes. Acknowledging or resolving the incident stops it.
//!
//! Steps are counted across rounds (`sent` = 0, 1, 2, …), so the caller stores one
//! number per incident. After a restart several steps may be overdue at once: each
//! call returns the next one only, and the caller records it and asks again, so
//! every step's notifiers are told exactly once, in order.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationStep {
    /// Since the incident opened (in the first round).
    pub after: Duration,
    /// Notifier names.
    pub notify: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationPolicy {
    pub name: String,
    /// In increasing `after` order (the config guarantees it).
    pub steps: Vec<EscalationStep>,
    /// Extra rounds after the first.
    pub repeat: u32,
}

/// What the caller knows about the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationState {
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// Steps already sent, across rounds.
    pub sent: u32,
}

/// One step to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueStep<'p> {
    /// Its number across rounds; the caller stores `sequence + 1` as the new `sent`.
    pub sequence: u32,
    /// 0 for the first round.
    pub round: u32,
    /// Index into the policy's steps.
    pub step: usize,
    /// When it became due.
    pub due_at: Timestamp,
    pub notify: &'p [String],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escalation<'p> {
    /// Send this step now, then ask again.
    Due(DueStep<'p>),
    /// Nothing yet; ask again at this time.
    WaitUntil(Timestamp),
    /// Acknowledged, resolved, or every step of every round sent.
    Finished,
}

impl EscalationPolicy {
    /// Step occurrences in all rounds.
    pub fn total_steps(&self) -> u32 {
        let per_round = u32::try_from(self.steps.len()).unwrap_or(u32::MAX);
        per_round.saturating_mul(self.repeat.saturating_add(1))
    }

    /// When occurrence `sequence` falls due, if the policy has it.
    pub fn due_at(&self, opened_at: Timestamp, sequence: u32) -> Option<Timestamp> {
        let per_round = u32::try_from(self.steps.len()).ok().filter(|n| *n > 0)?;
        if sequence >= self.total_steps() {
            return None;
        }
        let round = sequence / per_round;
        let step = &self.steps[(sequence % per_round) as usize];
        let cycle = self.steps.last()?.after;
        let offset = cycle.saturating_mul(round).saturating_add(step.after);
        Some(opened_at.saturating_add(offset))
    }
}

/// The next escalation step of `policy` for an incident in `state`, at `now`.
pub fn next_escalation<'p>(
    policy: &'p EscalationPolicy,
    state: &EscalationState,
    now: Timestamp,
) -> Escalation<'p> {
    if state.acknowledged_at.is_some() || state.resolved_at.is_some() {
        return Escalation::Finished;
    }
    let Some(due_at) = policy.due_at(state.opened_at, state.sent) else {
        return Escalation::Finished;
    };
    if now < due_at {
        return Escalation::WaitUntil(due_at);
    }
    let per_round = policy.steps.len() as u32;
    let step = (state.sent % per_round) as usize;
    Escalation::Due(DueStep {
        sequence: state.sent,
        round: state.sent / per_round,
        step,
        due_at,
        notify: &policy.steps[step].notify,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const OPENED: Timestamp = Timestamp(1_000_000);

    fn at(minutes: u64) -> Timestamp {
        Timestamp(OPENED.0 + minutes * MIN)
    }

    fn policy(repeat: u32) -> EscalationPolicy {
        EscalationPolicy {
            name: "default".into(),
            steps: vec![
                EscalationStep {
                    after: Duration::from_secs(15 * 60),
                    notify: vec!["pagerduty-secondary".into()],
                },
                EscalationStep {
                    after: Duration::from_secs(30 * 60),
                    notify: vec!["pagerduty-manager".into(), "slack".into()],
                },
            ],
            repeat,
        }
    }

    fn state(sent: u32) -> EscalationState {
        EscalationState {
            opened_at: OPENED,
            acknowledged_at: None,
            resolved_at: None,
            sent,
        }
    }

    #[test]
    fn nothing_is_due_before_the_first_step() {
        assert_eq!(
            next_escalation(&policy(0), &state(0), at(14)),
            Escalation::WaitUntil(at(15))
        );
    }

    #[test]
    fn steps_fire_in_order_once_their_delay_passed() {
        let policy = policy(0);
        let Escalation::Due(first) = next_escalation(&policy, &state(0), at(15)) else {
            panic!("the first step is due at 15m");
        };
        assert_eq!((first.sequence, first.round, first.step), (0, 0, 0));
        assert_eq!(first.notify, ["pagerduty-secondary".to_string()]);
        assert_eq!(first.due_at, at(15));
        assert_eq!(
            next_escalation(&policy, &state(1), at(20)),
            Escalation::WaitUntil(at(30))
        );
        let Escalation::Due(second) = next_escalation(&policy, &state(1), at(30)) else {
            panic!("the second step is due at 30m");
        };
        assert_eq!(second.notify.len(), 2);
        assert_eq!(
            next_escalation(&policy, &state(2), at(600)),
            Escalation::Finished
        );
    }

    #[test]
    fn repeat_runs_the_steps_again_from_the_last_one() {
        let policy = policy(2);
        assert_eq!(policy.total_steps(), 6);
        let times: Vec<_> = (0..6)
            .map(|sequence| policy.due_at(OPENED, sequence).unwrap())
            .collect();
        assert_eq!(times, [at(15), at(30), at(45), at(60), at(75), at(90)]);
        let Escalation::Due(third) = next_escalation(&policy, &state(2), at(45)) else {
            panic!("round two's first step is due at 45m");
        };
        assert_eq!((third.round, third.step), (1, 0));
        assert_eq!(
            next_escalation(&policy, &state(6), at(1000)),
            Escalation::Finished
        );
    }

    #[test]
    fn acknowledging_or_resolving_stops_it() {
        let policy = policy(5);
        let acked = EscalationState {
            acknowledged_at: Some(at(10)),
            ..state(0)
        };
        assert_eq!(
            next_escalation(&policy, &acked, at(100)),
            Escalation::Finished
        );
        let resolved = EscalationState {
            resolved_at: Some(at(20)),
            ..state(1)
        };
        assert_eq!(
            next_escalation(&policy, &resolved, at(100)),
            Escalation::Finished
        );
    }

    #[test]
    fn overdue_steps_after_a_restart_come_one_at_a_time() {
        let policy = policy(0);
        let mut sent = 0;
        let mut fired = Vec::new();
        while let Escalation::Due(step) = next_escalation(&policy, &state(sent), at(120)) {
            fired.push(step.step);
            sent = step.sequence + 1;
        }
        assert_eq!(fired, [0, 1]);
    }

    #[test]
    fn a_policy_without_steps_never_escalates() {
        let empty = EscalationPolicy {
            name: "none".into(),
            steps: Vec::new(),
            repeat: 3,
        };
        assert_eq!(
            next_escalation(&empty, &state(0), at(1000)),
            Escalation::Finished
        );
    }
}
