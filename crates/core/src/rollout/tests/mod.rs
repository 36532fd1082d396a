//! Rollout state machine tests. Time is explicit: `s(n)` is n seconds after a fixed
//! epoch, passed to every `handle` call; nothing sleeps or reads a clock.

mod analysis;
mod blue_green;
mod deadlines;
mod gates;
mod lifecycle;
mod metric_analysis;
mod operator;
mod recovery;
mod serde_json_shape;
mod steering;

use std::time::Duration;

use super::*;
use crate::judge::{Outcome, Verdict};

const EPOCH_MS: u64 = 1_700_000_000_000;

/// `secs` seconds after the test epoch.
pub(super) fn s(secs: u64) -> Timestamp {
    Timestamp::from_millis(EPOCH_MS + secs * 1000)
}

/// Steps 5% for 30s, 25% for 60s, 50% for 60s; analysis every 10s; deadline 2m (fail);
/// three failures in a row roll back; the previous version scales down after 30s.
pub(super) fn spec() -> RolloutSpec {
    RolloutSpec {
        steps: vec![
            Step::timed(5.0, Duration::from_secs(30)),
            Step::timed(25.0, Duration::from_secs(60)),
            Step::timed(50.0, Duration::from_secs(60)),
        ],
        analysis_interval: Duration::from_secs(10),
        progress_deadline: Duration::from_secs(120),
        on_deadline: DeadlineAction::Fail,
        failure_limit: 3,
        scale_down_delay: Duration::from_secs(30),
        deadlines: PhaseDeadlines::default(),
        strategy: Strategy::Canary,
        hooks: HookGates::default(),
    }
}

pub(super) fn alice() -> Actor {
    Actor::user("alice")
}

pub(super) fn pending_with(spec: RolloutSpec) -> Rollout {
    Rollout::new("checkout", "v2", Some("v1".to_string()), spec, s(0)).expect("valid spec")
}

pub(super) fn pending() -> Rollout {
    pending_with(spec())
}

/// Applies an input the test expects to be accepted.
pub(super) fn apply(rollout: &mut Rollout, input: Input, now: Timestamp) -> Vec<Command> {
    let phase = rollout.phase.clone();
    rollout
        .handle(input.clone(), now)
        .unwrap_or_else(|e| panic!("{input:?} in {phase} was refused: {e}"))
}

/// The commands that act, without the `Notify` that announces the transition.
pub(super) fn actions(commands: &[Command]) -> Vec<Command> {
    commands
        .iter()
        .filter(|c| !matches!(c, Command::Notify(_)))
        .cloned()
        .collect()
}

pub(super) fn verdict(outcome: Outcome, at: Timestamp) -> Input {
    Input::Analysis(Verdict {
        judge: "threshold".to_string(),
        outcome,
        reason: format!("test verdict {outcome:?}"),
        evidence: Vec::new(),
        canary_requests: 100,
        stable_requests: 1900,
        at,
    })
}

pub(super) fn pass(at: Timestamp) -> Input {
    verdict(Outcome::Pass, at)
}

pub(super) fn fail(at: Timestamp) -> Input {
    verdict(Outcome::Fail, at)
}

pub(super) fn inconclusive(at: Timestamp) -> Input {
    verdict(Outcome::Inconclusive, at)
}

pub(super) fn operator(kind: &str) -> Input {
    let (actor, reason) = (alice(), format!("test {kind}"));
    match kind {
        "promote" => Input::Promote { actor, reason },
        "pause" => Input::Pause { actor, reason },
        "resume" => Input::Resume { actor, reason },
        "abort" => Input::Abort { actor, reason },
        "rollback" => Input::Rollback { actor, reason },
        other => panic!("unknown operator input {other}"),
    }
}

pub(super) fn last_transition(rollout: &Rollout) -> &Transition {
    rollout.history.last().expect("a transition was recorded")
}

// --- rollouts in each state, all reached at s(0) unless said otherwise --------------

pub(super) fn validating() -> Rollout {
    let mut r = pending();
    apply(&mut r, Input::Begin { actor: alice() }, s(0));
    r
}

pub(super) fn starting() -> Rollout {
    let mut r = validating();
    let ok = Input::ValidationFinished {
        can_deploy: true,
        summary: "3 of 3 checks passed".to_string(),
    };
    apply(&mut r, ok, s(0));
    r
}

/// At step 1 (index 0, 5%), hold and analysis window started at s(0).
pub(super) fn progressing() -> Rollout {
    let mut r = starting();
    apply(&mut r, Input::InstancesReady, s(0));
    r
}

/// Paused by alice at s(5) at step index 0.
pub(super) fn paused() -> Rollout {
    let mut r = progressing();
    apply(&mut r, operator("pause"), s(5));
    r
}

/// Promoted by alice at s(5).
pub(super) fn promoting() -> Rollout {
    let mut r = progressing();
    apply(&mut r, operator("promote"), s(5));
    r
}

/// Rolled back by alice at s(5); ends RolledBack.
pub(super) fn rolling_back() -> Rollout {
    let mut r = progressing();
    apply(&mut r, operator("rollback"), s(5));
    r
}

pub(super) fn succeeded() -> Rollout {
    let mut r = promoting();
    apply(&mut r, Input::PromotionDone, s(6));
    r
}

pub(super) fn rolled_back() -> Rollout {
    let mut r = rolling_back();
    apply(&mut r, Input::RollbackDone, s(6));
    r
}

pub(super) fn failed() -> Rollout {
    let mut r = validating();
    let not_ok = Input::ValidationFinished {
        can_deploy: false,
        summary: "quality_gates failed".to_string(),
    };
    apply(&mut r, not_ok, s(1));
    r
}

pub(super) fn aborted() -> Rollout {
    let mut r = pending();
    apply(&mut r, operator("abort"), s(0));
    r
}

/// One rollout in every state, named as `Phase::name` names them.
pub(super) fn every_state() -> Vec<Rollout> {
    vec![
        pending(),
        validating(),
        starting(),
        progressing(),
        paused(),
        promoting(),
        rolling_back(),
        succeeded(),
        rolled_back(),
        failed(),
        aborted(),
    ]
}
