//! Blue-green: preview, pre-promotion analysis, one switch, post-promotion analysis
//! that can switch back. Time is explicit, as in every test here.

use super::*;

/// Analysis every 10 s; a 30 s pre-promotion window, auto promotion 10 s after it,
/// a 60 s post-promotion window; failure limit 3, progress deadline 2 min.
fn bg_spec(auto: bool) -> RolloutSpec {
    let mut spec = spec();
    spec.strategy = Strategy::BlueGreen(BlueGreenSpec {
        pre_promotion_analysis: Duration::from_secs(30),
        auto_promotion_enabled: auto,
        auto_promotion_after: Duration::from_secs(10),
        post_promotion_analysis: Duration::from_secs(60),
    });
    spec
}

fn bg_with(spec: RolloutSpec) -> Rollout {
    let mut r = pending_with(spec);
    apply(&mut r, Input::Begin { actor: alice() }, s(0));
    let ok = Input::ValidationFinished {
        can_deploy: true,
        summary: "ok".into(),
    };
    assert_eq!(
        actions(&apply(&mut r, ok, s(0))),
        vec![Command::StartCanary]
    );
    r
}

/// Previewing since s(0).
fn previewing(auto: bool) -> Rollout {
    let mut r = bg_with(bg_spec(auto));
    let commands = apply(&mut r, Input::InstancesReady, s(0));
    assert_eq!(r.phase, Phase::Previewing);
    assert_eq!(actions(&commands), vec![Command::ResetAnalysis]);
    r
}

/// Switched at s(40): in PostPromotion since then.
fn post_promotion() -> Rollout {
    let mut r = previewing(true);
    apply(&mut r, pass(s(30)), s(30));
    apply(&mut r, Input::Tick, s(40));
    assert_eq!(r.phase, Phase::Promoting);
    let commands = apply(&mut r, Input::PromotionDone, s(40));
    assert_eq!(r.phase, Phase::PostPromotion);
    assert_eq!(actions(&commands), vec![Command::ResetAnalysis]);
    r
}

#[test]
fn a_passing_preview_switches_automatically_and_the_old_version_stays_warm_until_the_end() {
    let mut r = previewing(true);
    // Analysis runs on the preview every interval; no weight is ever set.
    assert_eq!(r.next_wakeup(), Some(s(10)));
    assert_eq!(
        actions(&apply(&mut r, Input::Tick, s(10))),
        vec![Command::EvaluateAnalysis]
    );
    // A pass before the window's end waits for it.
    assert!(actions(&apply(&mut r, pass(s(10)), s(10))).is_empty());
    assert_eq!(r.phase, Phase::Previewing);
    // At the window's end with a pass: auto promotion in 10 s.
    apply(&mut r, pass(s(30)), s(30));
    assert_eq!(
        r.phase,
        Phase::AwaitingPromotion {
            auto_at: Some(s(40))
        }
    );
    assert_eq!(r.next_wakeup(), Some(s(40)));
    assert!(actions(&apply(&mut r, Input::Tick, s(39))).is_empty());
    assert_eq!(
        actions(&apply(&mut r, Input::Tick, s(40))),
        vec![Command::PromoteCanary]
    );
    apply(&mut r, Input::PromotionDone, s(40));
    assert_eq!(r.phase, Phase::PostPromotion);
    // The old version is not scheduled to stop while post-promotion analysis runs.
    apply(&mut r, Input::Tick, s(50));
    apply(&mut r, pass(s(50)), s(50));
    assert_eq!(r.phase, Phase::PostPromotion);
    let commands = apply(&mut r, pass(s(100)), s(100));
    assert_eq!(r.phase, Phase::Succeeded);
    assert_eq!(
        actions(&commands),
        vec![Command::ScheduleScaleDown {
            version: "v1".into(),
            after: Duration::from_secs(30),
        }]
    );
    // No canary weight was set at any point: the switch is the only traffic change.
    assert!(
        r.history
            .iter()
            .all(|t| !matches!(t.to, Phase::Progressing { .. }))
    );
}

#[test]
fn without_auto_promotion_the_preview_waits_for_promote() {
    let mut r = previewing(false);
    apply(&mut r, pass(s(30)), s(30));
    assert_eq!(r.phase, Phase::AwaitingPromotion { auto_at: None });
    assert_eq!(r.next_wakeup(), None, "only an operator moves it on");
    assert!(actions(&apply(&mut r, Input::Tick, s(3600))).is_empty());
    let commands = apply(&mut r, operator("promote"), s(3601));
    assert_eq!(actions(&commands), vec![Command::PromoteCanary]);
    assert_eq!(last_transition(&r).actor, alice());
}

#[test]
fn promote_skips_the_rest_of_the_preview() {
    let mut r = previewing(false);
    apply(&mut r, operator("promote"), s(5));
    assert_eq!(r.phase, Phase::Promoting);
}

#[test]
fn a_failing_preview_is_rolled_back_before_any_user_saw_it() {
    let mut r = previewing(true);
    apply(&mut r, fail(s(10)), s(10));
    apply(&mut r, fail(s(20)), s(20));
    let commands = apply(&mut r, fail(s(30)), s(30));
    assert_eq!(
        r.phase,
        Phase::RollingBack {
            ends_as: RollbackEnd::RolledBack
        }
    );
    let acts = actions(&commands);
    assert!(acts.contains(&Command::StopCanary), "{acts:?}");
    assert!(!acts.contains(&Command::SwitchBack), "{acts:?}");
    assert!(
        acts.iter()
            .any(|c| matches!(c, Command::OpenIncident { .. }))
    );
    apply(&mut r, Input::RollbackDone, s(31));
    assert_eq!(r.phase, Phase::RolledBack);
}

#[test]
fn a_preview_that_never_passes_ends_at_the_progress_deadline() {
    let mut r = previewing(true);
    apply(&mut r, inconclusive(s(100)), s(100));
    apply(&mut r, Input::Tick, s(120));
    assert!(matches!(r.phase, Phase::RollingBack { .. }), "{}", r.phase);

    let mut spec = bg_spec(true);
    spec.on_deadline = DeadlineAction::Pause;
    let mut r = bg_with(spec);
    apply(&mut r, Input::InstancesReady, s(0));
    apply(&mut r, Input::Tick, s(120));
    assert_eq!(r.phase, Phase::AwaitingPromotion { auto_at: None });
}

#[test]
fn a_failing_post_promotion_analysis_switches_back_then_stops_the_new_version() {
    let mut r = post_promotion();
    apply(&mut r, fail(s(50)), s(50));
    apply(&mut r, fail(s(60)), s(60));
    let commands = apply(&mut r, fail(s(70)), s(70));
    assert_eq!(
        r.phase,
        Phase::SwitchingBack {
            ends_as: RollbackEnd::RolledBack
        }
    );
    let acts = actions(&commands);
    assert_eq!(
        acts[0],
        Command::SwitchBack,
        "the swap back comes first: {acts:?}"
    );
    assert!(
        !acts.contains(&Command::StopCanary),
        "nothing stops the new version before the old one serves again: {acts:?}"
    );
    assert!(
        acts.iter()
            .any(|c| matches!(c, Command::OpenIncident { .. }))
    );
    let commands = apply(&mut r, Input::SwitchedBack, s(71));
    assert_eq!(actions(&commands), vec![Command::StopCanary]);
    apply(&mut r, Input::RollbackDone, s(72));
    assert_eq!(r.phase, Phase::RolledBack);
}

#[test]
fn a_failed_metric_of_the_users_own_rolls_the_preview_back_or_switches_back_at_once() {
    let failed = || Input::AnalysisFailed {
        reason: "metric error_ratio: result 0.3 fails `result < 0.05`".into(),
    };
    // Before the switch: no user saw the new version; no failure limit to wait for.
    let mut r = previewing(true);
    let acts = actions(&apply(&mut r, failed(), s(5)));
    assert!(matches!(r.phase, Phase::RollingBack { .. }), "{}", r.phase);
    assert!(acts.contains(&Command::StopCanary), "{acts:?}");
    assert!(!acts.contains(&Command::SwitchBack), "{acts:?}");
    assert!(
        acts.iter().any(
            |c| matches!(c, Command::OpenIncident { reason } if reason.contains("error_ratio"))
        )
    );

    // Passed, waiting for the switch: still before any user saw it.
    let mut r = previewing(false);
    apply(&mut r, pass(s(30)), s(30));
    assert_eq!(r.phase, Phase::AwaitingPromotion { auto_at: None });
    apply(&mut r, failed(), s(35));
    assert!(matches!(r.phase, Phase::RollingBack { .. }), "{}", r.phase);

    // After the switch: one swap back to the warm old version first.
    let mut r = post_promotion();
    let acts = actions(&apply(&mut r, failed(), s(45)));
    assert_eq!(
        r.phase,
        Phase::SwitchingBack {
            ends_as: RollbackEnd::RolledBack
        }
    );
    assert_eq!(acts[0], Command::SwitchBack, "{acts:?}");
    assert!(!acts.contains(&Command::StopCanary), "{acts:?}");
}

#[test]
fn post_promotion_without_a_pass_by_the_deadline_switches_back() {
    let mut r = post_promotion();
    apply(&mut r, inconclusive(s(100)), s(100));
    apply(&mut r, Input::Tick, s(160));
    assert!(
        matches!(r.phase, Phase::SwitchingBack { .. }),
        "{}",
        r.phase
    );
}

#[test]
fn operators_and_crashes_after_the_switch_switch_back() {
    let mut r = post_promotion();
    apply(&mut r, operator("abort"), s(45));
    assert_eq!(
        r.phase,
        Phase::SwitchingBack {
            ends_as: RollbackEnd::Aborted
        }
    );
    let mut r = post_promotion();
    apply(
        &mut r,
        Input::CanaryCrashed {
            reason: "exit 3".into(),
        },
        s(45),
    );
    assert!(matches!(r.phase, Phase::SwitchingBack { .. }));
    // While switching back a crash changes nothing.
    assert!(
        actions(&apply(
            &mut r,
            Input::CanaryCrashed {
                reason: "again".into()
            },
            s(46)
        ))
        .is_empty()
    );
}

#[test]
fn a_switch_back_that_cannot_finish_fails_loudly_and_leaves_the_new_version_serving() {
    let mut r = post_promotion();
    apply(&mut r, operator("rollback"), s(45));
    let deadline = r.phase_deadline_at.expect("switching back has a deadline");
    assert_eq!(r.next_wakeup(), Some(deadline));
    let commands = apply(&mut r, Input::Tick, deadline);
    assert_eq!(r.phase, Phase::Failed);
    let acts = actions(&commands);
    assert!(!acts.contains(&Command::StopCanary), "{acts:?}");
    assert!(
        acts.iter()
            .any(|c| matches!(c, Command::OpenIncident { .. }))
    );
}

#[test]
fn pause_is_for_canary_steps() {
    let mut r = previewing(true);
    let before = r.clone();
    assert!(r.handle(operator("pause"), s(5)).is_err());
    assert_eq!(r, before);
}

#[test]
fn restarts_bring_blue_green_to_the_safe_side() {
    let mut r = post_promotion();
    apply(
        &mut r,
        Input::Recovered {
            policy: RecoveryPolicy::Rollback,
        },
        s(50),
    );
    assert!(matches!(r.phase, Phase::SwitchingBack { .. }));
    // Still switching back after another restart, whatever the policy.
    let commands = apply(
        &mut r,
        Input::Recovered {
            policy: RecoveryPolicy::Resume,
        },
        s(51),
    );
    assert_eq!(actions(&commands), vec![Command::SwitchBack]);

    let mut r = previewing(true);
    let commands = apply(
        &mut r,
        Input::Recovered {
            policy: RecoveryPolicy::Resume,
        },
        s(5),
    );
    assert_eq!(
        r.phase,
        Phase::Starting {
            resume: None,
            pre_rollout: false,
        }
    );
    assert_eq!(actions(&commands), vec![Command::StartCanary]);
    apply(&mut r, Input::InstancesReady, s(6));
    assert_eq!(r.phase, Phase::Previewing);

    let mut r = post_promotion();
    apply(
        &mut r,
        Input::Recovered {
            policy: RecoveryPolicy::Resume,
        },
        s(50),
    );
    assert_eq!(r.phase, Phase::PostPromotion);
    assert_eq!(r.step_started_at, s(50), "a fresh window");
}

#[test]
fn zero_windows_switch_at_once_and_end_at_the_switch() {
    let mut spec = bg_spec(true);
    spec.strategy = Strategy::BlueGreen(BlueGreenSpec {
        pre_promotion_analysis: Duration::ZERO,
        auto_promotion_enabled: true,
        auto_promotion_after: Duration::ZERO,
        post_promotion_analysis: Duration::ZERO,
    });
    let mut r = bg_with(spec);
    let commands = apply(&mut r, Input::InstancesReady, s(0));
    assert_eq!(actions(&commands), vec![Command::PromoteCanary]);
    let commands = apply(&mut r, Input::PromotionDone, s(1));
    assert_eq!(r.phase, Phase::Succeeded);
    assert!(matches!(
        actions(&commands)[..],
        [Command::ScheduleScaleDown { .. }]
    ));
}

#[test]
fn a_first_deployment_has_nothing_to_preview_against() {
    let mut r = Rollout::new("checkout", "v1", None, bg_spec(true), s(0)).expect("spec");
    apply(&mut r, Input::Begin { actor: alice() }, s(0));
    let ok = Input::ValidationFinished {
        can_deploy: true,
        summary: "ok".into(),
    };
    apply(&mut r, ok, s(0));
    apply(&mut r, Input::InstancesReady, s(0));
    assert_eq!(r.phase, Phase::Promoting);
    apply(&mut r, Input::PromotionDone, s(1));
    assert_eq!(r.phase, Phase::Succeeded);
}

#[test]
fn the_strategy_round_trips_and_old_rollouts_are_canary() {
    let r = post_promotion();
    let json = serde_json::to_string(&r).expect("json");
    assert!(json.contains("\"kind\":\"blue_green\""), "{json}");
    let back: Rollout = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, r);
    let canary = serde_json::to_value(pending()).expect("json");
    assert!(canary["spec"].get("strategy").is_none(), "{canary}");
}
