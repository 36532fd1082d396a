//! Gates: until_promoted steps, named approvals, confirm hooks, pre-rollout hooks.

use super::*;

/// Steps 5% (30s), 25% until promoted, 50% (60s) needing release-manager's approval.
fn gated_spec() -> RolloutSpec {
    let mut spec = spec();
    spec.steps[1] = Step {
        weight: 25.0,
        hold: Duration::ZERO,
        until_promoted: true,
        approve: None,
        steering: Default::default(),
    };
    spec.steps[2].approve = Some("release-manager".to_string());
    spec
}

fn gated_at_step_2() -> Rollout {
    let mut r = pending_with(gated_spec());
    apply(&mut r, Input::Begin { actor: alice() }, s(0));
    let ok = Input::ValidationFinished {
        can_deploy: true,
        summary: "ok".to_string(),
    };
    apply(&mut r, ok, s(0));
    apply(&mut r, Input::InstancesReady, s(0));
    apply(&mut r, pass(s(30)), s(30));
    r
}

fn approve(by: &str, step: Option<usize>) -> Input {
    Input::Approve {
        actor: Actor::user(by),
        step,
        reason: String::new(),
    }
}

#[test]
fn an_until_promoted_step_waits_with_no_timer_until_resumed() {
    let mut r = gated_at_step_2();
    assert_eq!(
        r.phase,
        Phase::Paused {
            step: 1,
            weight: 25.0,
            cause: PauseCause::UntilPromoted
        }
    );
    // Hours of passing analysis and no progress deadline: still waiting.
    for t in (40..7200).step_by(10) {
        let commands = apply(&mut r, Input::Tick, s(t));
        if commands.contains(&Command::EvaluateAnalysis) {
            apply(&mut r, pass(s(t)), s(t));
        }
    }
    assert!(matches!(r.phase, Phase::Paused { step: 1, .. }));
    assert!(
        r.waiting_for()
            .is_some_and(|w| w.contains("until_promoted"))
    );

    let commands = apply(&mut r, operator("resume"), s(7200));
    assert_eq!(
        r.phase,
        Phase::Progressing {
            step: 2,
            weight: 50.0
        }
    );
    assert!(commands.contains(&Command::SetCanaryWeight { percent: 50.0 }));
    let t = last_transition(&r);
    assert_eq!(t.actor, alice());
    assert!(t.reason.starts_with("released by alice"), "{}", t.reason);
}

#[test]
fn the_judge_keeps_watching_at_a_gate() {
    let mut r = gated_at_step_2();
    for t in [40, 50, 60] {
        apply(&mut r, fail(s(t)), s(t));
    }
    assert_eq!(
        r.phase,
        Phase::RollingBack {
            ends_as: RollbackEnd::RolledBack
        }
    );
}

#[test]
fn promote_at_an_until_promoted_gate_is_refused_while_a_later_approval_is_due() {
    let mut r = gated_at_step_2();
    let err = r.handle(operator("promote"), s(40)).unwrap_err();
    assert_eq!(
        err,
        TransitionError::ApprovalRequired {
            action: "promote",
            step: 2,
            name: "release-manager".to_string()
        }
    );
    apply(&mut r, approve("rm", Some(2)), s(41));
    // Approved ahead: recorded in place, the gate still waits for its operator.
    assert!(matches!(r.phase, Phase::Paused { step: 1, .. }));
    apply(&mut r, operator("promote"), s(42));
    assert_eq!(r.phase, Phase::Promoting);
}

#[test]
fn an_approval_step_waits_after_its_hold_until_approved_and_resume_cannot_skip_it() {
    let mut r = gated_at_step_2();
    apply(&mut r, operator("resume"), s(40));
    apply(&mut r, pass(s(100)), s(100));
    assert_eq!(
        r.phase,
        Phase::Paused {
            step: 2,
            weight: 50.0,
            cause: PauseCause::Approval
        }
    );
    assert!(
        r.waiting_for()
            .is_some_and(|w| w.contains("approval by release-manager"))
    );
    assert!(matches!(
        r.handle(operator("resume"), s(101)),
        Err(TransitionError::ApprovalRequired { .. })
    ));
    assert!(matches!(
        r.handle(operator("promote"), s(101)),
        Err(TransitionError::ApprovalRequired { .. })
    ));

    let commands = apply(&mut r, approve("rm-bob", None), s(102));
    assert_eq!(r.phase, Phase::Promoting);
    assert!(commands.contains(&Command::PromoteCanary));
    let t = last_transition(&r);
    assert_eq!(t.actor, Actor::user("rm-bob"));
    assert!(t.reason.contains("approved by rm-bob (release-manager)"));
    assert_eq!(r.approvals[0].by, "rm-bob");
}

#[test]
fn approvals_refuse_steps_that_need_none_or_are_given_or_passed() {
    let mut r = gated_at_step_2();
    assert!(matches!(
        r.handle(approve("x", None), s(40)),
        Err(TransitionError::NoApprovalNeeded { step: 1, .. })
    ));
    assert!(matches!(
        r.handle(approve("x", Some(0)), s(40)),
        Err(TransitionError::StepPassed { step: 0 })
    ));
    apply(&mut r, approve("x", Some(2)), s(40));
    assert!(matches!(
        r.handle(approve("y", Some(2)), s(41)),
        Err(TransitionError::AlreadyApproved { step: 2, .. })
    ));
    assert!(matches!(
        r.handle(approve("y", Some(7)), s(41)),
        Err(TransitionError::NoSuchStep { step: 7, .. })
    ));
}

fn confirming_spec() -> RolloutSpec {
    let mut spec = spec();
    spec.hooks.confirm_traffic_increase = true;
    spec.hooks.confirm_promotion = true;
    spec
}

fn confirming() -> Rollout {
    let mut r = pending_with(confirming_spec());
    apply(&mut r, Input::Begin { actor: alice() }, s(0));
    let ok = Input::ValidationFinished {
        can_deploy: true,
        summary: "ok".to_string(),
    };
    apply(&mut r, ok, s(0));
    apply(&mut r, Input::InstancesReady, s(0));
    r
}

fn answer(point: ConfirmPoint, accepted: bool, text: &str) -> Input {
    Input::Confirmation {
        point,
        accepted,
        answer: text.to_string(),
    }
}

#[test]
fn a_rejecting_confirm_hook_holds_the_step_and_is_asked_again_until_it_accepts() {
    let mut r = confirming();
    let commands = apply(&mut r, pass(s(30)), s(30));
    assert_eq!(
        actions(&commands),
        vec![Command::AskConfirmation {
            point: ConfirmPoint::TrafficIncrease
        }]
    );
    assert!(matches!(
        r.phase,
        Phase::Paused {
            step: 0,
            cause: PauseCause::ConfirmTrafficIncrease,
            ..
        }
    ));
    let no = answer(ConfirmPoint::TrafficIncrease, false, "gate: HTTP 500");
    let events = apply(&mut r, no.clone(), s(31));
    assert_eq!(events.len(), 1, "the first no is recorded");
    assert!(
        apply(&mut r, no.clone(), s(41)).is_empty(),
        "the same no again is not"
    );
    assert!(r.waiting_for().is_some_and(|w| w.contains("HTTP 500")));
    assert_eq!(r.next_wakeup(), Some(s(40)).min(r.next_wakeup()));

    // Asked again every 10 s (the default interval), not before.
    assert!(
        !apply(&mut r, Input::Tick, s(39))
            .iter()
            .any(|c| matches!(c, Command::AskConfirmation { .. }))
    );
    let ticked = apply(&mut r, Input::Tick, s(40));
    assert!(ticked.contains(&Command::AskConfirmation {
        point: ConfirmPoint::TrafficIncrease
    }));

    apply(
        &mut r,
        answer(ConfirmPoint::TrafficIncrease, true, "gate: HTTP 200"),
        s(42),
    );
    assert_eq!(
        r.phase,
        Phase::Progressing {
            step: 1,
            weight: 25.0
        }
    );
    assert_eq!(r.confirmation, None);
    assert!(last_transition(&r).reason.contains("confirmed"));
}

#[test]
fn the_last_step_asks_the_confirm_promotion_hooks() {
    let mut r = confirming();
    apply(&mut r, pass(s(30)), s(30));
    apply(
        &mut r,
        answer(ConfirmPoint::TrafficIncrease, true, "ok"),
        s(30),
    );
    apply(&mut r, pass(s(90)), s(90));
    apply(
        &mut r,
        answer(ConfirmPoint::TrafficIncrease, true, "ok"),
        s(90),
    );
    let commands = apply(&mut r, pass(s(150)), s(150));
    assert!(commands.contains(&Command::AskConfirmation {
        point: ConfirmPoint::Promotion
    }));
    // An answer for another point is refused.
    assert!(
        r.handle(answer(ConfirmPoint::TrafficIncrease, true, "ok"), s(151))
            .is_err()
    );
    apply(&mut r, answer(ConfirmPoint::Promotion, true, "ok"), s(151));
    assert_eq!(r.phase, Phase::Promoting);
}

#[test]
fn an_operator_resume_overrides_a_confirm_hooks_no() {
    let mut r = confirming();
    apply(&mut r, pass(s(30)), s(30));
    apply(
        &mut r,
        answer(ConfirmPoint::TrafficIncrease, false, "500"),
        s(31),
    );
    apply(&mut r, operator("resume"), s(32));
    assert!(matches!(r.phase, Phase::Progressing { step: 1, .. }));
    assert!(last_transition(&r).reason.contains("overriding"));
    assert_eq!(last_transition(&r).actor, alice());
}

fn pre_rollout() -> Rollout {
    let mut spec = spec();
    spec.hooks.pre_rollout = true;
    let mut r = pending_with(spec);
    apply(&mut r, Input::Begin { actor: alice() }, s(0));
    let ok = Input::ValidationFinished {
        can_deploy: true,
        summary: "ok".to_string(),
    };
    apply(&mut r, ok, s(0));
    let commands = apply(&mut r, Input::InstancesReady, s(1));
    assert_eq!(actions(&commands), vec![Command::RunPreRolloutHooks]);
    r
}

#[test]
fn a_failing_pre_rollout_hook_fails_the_rollout_before_any_traffic_moves() {
    let mut r = pre_rollout();
    let commands = apply(
        &mut r,
        Input::PreRolloutFinished {
            ok: false,
            summary: "smoke: HTTP 500".to_string(),
        },
        s(2),
    );
    assert_eq!(r.phase, Phase::Failed);
    assert_eq!(actions(&commands), vec![Command::StopCanary]);
    assert!(
        last_transition(&r)
            .reason
            .contains("no traffic had reached v2")
    );
}

#[test]
fn passing_pre_rollout_hooks_start_step_1() {
    let mut r = pre_rollout();
    assert!(r.handle(Input::InstancesReady, s(2)).is_err());
    apply(
        &mut r,
        Input::PreRolloutFinished {
            ok: true,
            summary: "1 hook passed".to_string(),
        },
        s(2),
    );
    assert!(matches!(r.phase, Phase::Progressing { step: 0, .. }));
}

#[test]
fn pre_rollout_hooks_that_hang_end_at_the_start_deadline() {
    let mut r = pre_rollout();
    let commands = apply(&mut r, Input::Tick, s(1 + 5 * 60));
    assert_eq!(r.phase, Phase::Failed);
    assert_eq!(actions(&commands), vec![Command::StopCanary]);
    assert!(last_transition(&r).reason.contains("pre-rollout hooks"));
}

#[test]
fn a_gate_survives_a_restart_under_the_resume_policy() {
    let mut r = confirming();
    apply(&mut r, pass(s(30)), s(30));
    apply(
        &mut r,
        Input::Recovered {
            policy: RecoveryPolicy::Resume,
        },
        s(100),
    );
    apply(&mut r, Input::InstancesReady, s(101));
    assert!(matches!(
        r.phase,
        Phase::Paused {
            cause: PauseCause::ConfirmTrafficIncrease,
            ..
        }
    ));
    assert_eq!(r.next_confirmation_at, Some(s(111)));
}

#[test]
fn a_gated_rollout_round_trips_through_json() {
    let mut r = gated_at_step_2();
    apply(&mut r, approve("rm", Some(2)), s(41));
    let json = serde_json::to_string(&r).expect("encodes");
    let back: Rollout = serde_json::from_str(&json).expect("decodes");
    assert_eq!(back, r);
}
