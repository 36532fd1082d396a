//! Phases that wait on the engine end at their deadline, on the safe side; a revert
//! is a rollout of its own.

use super::*;

/// The default deadlines, in seconds: validation 1800, start 300, promotion 300,
/// rollback 120.
fn deadline_of(r: &Rollout) -> Timestamp {
    r.phase_deadline_at.expect("the phase has a deadline")
}

fn revert_pending() -> Rollout {
    // Returning to v1 (stable before the last promotion) from v2 (stable now).
    Rollout::new("checkout", "v1", Some("v2".to_string()), spec(), s(0)).expect("valid spec")
}

fn reverting() -> Rollout {
    let mut r = revert_pending();
    let input = Input::Revert {
        actor: alice(),
        reason: "v2 corrupts carts".into(),
    };
    apply(&mut r, input, s(0));
    r
}

#[test]
fn every_phase_that_waits_on_the_engine_has_a_deadline_and_wakes_up_for_it() {
    for (r, secs) in [
        (validating(), 1800),
        (starting(), 300),
        (promoting(), 305),
        (rolling_back(), 125),
        (reverting(), 300),
    ] {
        assert_eq!(deadline_of(&r), s(secs), "{}", r.phase);
        assert_eq!(r.next_wakeup(), Some(s(secs)), "{}", r.phase);
    }
    for r in [succeeded(), rolled_back(), failed(), aborted(), pending()] {
        assert_eq!(r.phase_deadline_at, None, "{}", r.phase);
        assert_eq!(r.next_wakeup(), None, "{}", r.phase);
    }
}

#[test]
fn before_its_deadline_a_tick_changes_nothing() {
    for mut r in [
        validating(),
        starting(),
        promoting(),
        rolling_back(),
        reverting(),
    ] {
        let before = r.clone();
        let at = Timestamp::from_millis(deadline_of(&r).as_millis() - 1);
        assert!(apply(&mut r, Input::Tick, at).is_empty());
        assert_eq!(r, before);
    }
}

#[test]
fn validation_past_its_deadline_fails_and_cancels_the_checks() {
    let mut r = validating();
    let c = apply(&mut r, Input::Tick, s(1800));
    assert_eq!(r.phase, Phase::Failed);
    assert_eq!(actions(&c), vec![Command::CancelValidation]);
    assert!(last_transition(&r).reason.contains("validation deadline"));
}

#[test]
fn a_start_that_hangs_fails_and_stops_what_started() {
    let mut r = starting();
    let c = apply(&mut r, Input::Tick, s(300));
    assert_eq!(r.phase, Phase::Failed);
    assert_eq!(actions(&c), vec![Command::StopCanary]);
    assert!(
        last_transition(&r).reason.contains("start deadline"),
        "{}",
        last_transition(&r).reason
    );
    assert_eq!(last_transition(&r).actor, Actor::System);
}

#[test]
fn a_restart_that_hangs_after_recovery_rolls_back() {
    let mut r = progressing();
    apply(
        &mut r,
        Input::Recovered {
            policy: RecoveryPolicy::Resume,
        },
        s(10),
    );
    assert!(matches!(
        r.phase,
        Phase::Starting {
            resume: Some(_),
            ..
        }
    ));
    let c = apply(&mut r, Input::Tick, s(310));
    assert_eq!(
        r.phase,
        Phase::RollingBack {
            ends_as: RollbackEnd::RolledBack
        }
    );
    assert!(actions(&c).contains(&Command::StopCanary));
}

#[test]
fn a_promotion_that_hangs_rolls_back_with_an_incident() {
    let mut r = promoting();
    let c = apply(&mut r, Input::Tick, s(305));
    assert_eq!(
        r.phase,
        Phase::RollingBack {
            ends_as: RollbackEnd::RolledBack
        }
    );
    let actions = actions(&c);
    assert_eq!(actions[0], Command::SetCanaryWeight { percent: 0.0 });
    assert_eq!(actions[1], Command::StopCanary);
    assert!(matches!(actions[2], Command::OpenIncident { .. }));
}

#[test]
fn a_rollback_that_cannot_stop_the_canary_still_ends_and_keeps_stopping_it() {
    for (kind, ends) in [("rollback", Phase::RolledBack), ("abort", Phase::Aborted)] {
        let mut r = progressing();
        apply(&mut r, operator(kind), s(5));
        let c = apply(&mut r, Input::Tick, s(125));
        assert_eq!(r.phase, ends);
        assert_eq!(actions(&c), vec![Command::StopCanary]);
        assert!(last_transition(&r).reason.contains("in the background"));
        // Terminal: no further wake-up, the service is free for a new deploy.
        assert_eq!(r.next_wakeup(), None);
    }
}

#[test]
fn recovery_gives_a_phase_a_fresh_deadline() {
    let mut r = rolling_back();
    apply(
        &mut r,
        Input::Recovered {
            policy: RecoveryPolicy::Rollback,
        },
        s(1000),
    );
    assert_eq!(deadline_of(&r), s(1120));
}

#[test]
fn a_rollout_stored_before_deadlines_existed_reads_with_the_defaults() {
    let mut json = serde_json::to_value(starting()).expect("serialize");
    json["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("deadlines");
    json.as_object_mut()
        .expect("rollout")
        .remove("phase_deadline_at");
    let r: Rollout = serde_json::from_value(json).expect("old rollouts still read");
    assert_eq!(r.spec.deadlines, PhaseDeadlines::default());
    assert_eq!(r.phase_deadline_at, None);
}

#[test]
fn a_revert_brings_the_previous_version_back_then_stops_the_reverted_one_at_once() {
    let mut r = revert_pending();
    let c = apply(
        &mut r,
        Input::Revert {
            actor: alice(),
            reason: "v2 corrupts carts".into(),
        },
        s(0),
    );
    assert_eq!(r.phase, Phase::Reverting);
    assert_eq!(actions(&c), vec![Command::PromoteCanary]);
    let t = last_transition(&r);
    assert_eq!(t.actor, alice());
    assert!(t.reason.contains("from v2 to v1"), "{}", t.reason);
    assert!(t.reason.contains("v2 corrupts carts"), "{}", t.reason);

    let c = apply(&mut r, Input::PromotionDone, s(2));
    assert_eq!(r.phase, Phase::Succeeded);
    assert_eq!(
        actions(&c),
        vec![Command::ScheduleScaleDown {
            version: "v2".into(),
            after: Duration::ZERO
        }]
    );
}

#[test]
fn a_revert_is_only_a_start_and_cannot_be_aborted() {
    let mut r = pending();
    let revert = Input::Revert {
        actor: alice(),
        reason: String::new(),
    };
    let mut p = progressing();
    assert!(p.handle(revert.clone(), s(1)).is_err());
    for kind in ["abort", "rollback", "promote", "pause"] {
        let mut r = reverting();
        let before = r.clone();
        assert!(r.handle(operator(kind), s(1)).is_err(), "{kind}");
        assert_eq!(r, before);
    }
    apply(&mut r, revert, s(0));
    assert_eq!(r.phase, Phase::Reverting);
}

#[test]
fn a_revert_that_cannot_start_the_version_fails_and_the_current_one_keeps_serving() {
    let mut r = reverting();
    let c = apply(
        &mut r,
        Input::InstancesFailed {
            reason: "port in use".into(),
        },
        s(3),
    );
    assert_eq!(r.phase, Phase::Failed);
    assert_eq!(actions(&c), vec![Command::StopCanary]);
    assert!(last_transition(&r).reason.contains("v2 goes on serving"));

    // An instance crash while it is brought back is the backend's to restart.
    let mut r = reverting();
    let c = apply(
        &mut r,
        Input::CanaryCrashed {
            reason: "exit 1".into(),
        },
        s(3),
    );
    assert!(c.is_empty());
    assert_eq!(r.phase, Phase::Reverting);

    let mut r = reverting();
    apply(&mut r, Input::Tick, s(300));
    assert_eq!(r.phase, Phase::Failed);
}

#[test]
fn a_revert_in_flight_at_a_restart_is_finished_under_either_policy() {
    for policy in [RecoveryPolicy::Rollback, RecoveryPolicy::Resume] {
        let mut r = reverting();
        let c = apply(&mut r, Input::Recovered { policy }, s(50));
        assert_eq!(r.phase, Phase::Reverting);
        assert_eq!(actions(&c), vec![Command::PromoteCanary]);
    }
}
