//! Reports from the engine and backends moving a rollout from Pending to an end.

use std::time::Duration;

use super::*;

/// Ticks every 10s from `from` to `to` (inclusive), answering each `EvaluateAnalysis`
/// with a Pass, and returns the commands of the tick that changed the phase, if any.
fn pass_through(r: &mut Rollout, from: u64, to: u64) -> Option<Vec<Command>> {
    let start_phase = r.phase.clone();
    for secs in (from..=to).step_by(10) {
        let commands = apply(r, Input::Tick, s(secs));
        if r.phase != start_phase {
            return Some(commands);
        }
        if commands.contains(&Command::EvaluateAnalysis) {
            let commands = apply(r, pass(s(secs)), s(secs));
            if r.phase != start_phase {
                return Some(commands);
            }
        }
    }
    None
}

#[test]
fn a_healthy_rollout_walks_every_step_then_promotes_and_schedules_scale_down() {
    let mut r = pending();

    let c = apply(&mut r, Input::Begin { actor: alice() }, s(0));
    assert_eq!(actions(&c), vec![Command::RunValidation]);
    assert_eq!(r.phase, Phase::Validating);
    assert_eq!(last_transition(&r).actor, alice());

    let ok = Input::ValidationFinished {
        can_deploy: true,
        summary: "3 of 3 checks passed".into(),
    };
    let c = apply(&mut r, ok, s(1));
    assert_eq!(actions(&c), vec![Command::StartCanary]);
    assert_eq!(
        r.phase,
        Phase::Starting {
            resume: None,
            pre_rollout: false
        }
    );

    let c = apply(&mut r, Input::InstancesReady, s(2));
    assert_eq!(
        actions(&c),
        vec![
            Command::SetCanaryWeight { percent: 5.0 },
            Command::ResetAnalysis
        ]
    );
    assert_eq!(
        r.phase,
        Phase::Progressing {
            step: 0,
            weight: 5.0
        }
    );

    // Step 1 holds 30s from s(2): analysis at s(12), s(22), s(32); advance at s(32).
    let c = pass_through(&mut r, 12, 40).expect("step 1 advances");
    assert_eq!(
        actions(&c),
        vec![
            Command::SetCanaryWeight { percent: 25.0 },
            Command::ResetAnalysis
        ]
    );
    assert_eq!(
        r.phase,
        Phase::Progressing {
            step: 1,
            weight: 25.0
        }
    );
    assert_eq!(r.step_started_at, s(32), "hold restarts at the new step");

    let c = pass_through(&mut r, 42, 100).expect("step 2 advances");
    assert_eq!(
        actions(&c),
        vec![
            Command::SetCanaryWeight { percent: 50.0 },
            Command::ResetAnalysis
        ]
    );
    assert_eq!(r.step_started_at, s(92));

    let c = pass_through(&mut r, 102, 160).expect("last step promotes");
    assert_eq!(actions(&c), vec![Command::PromoteCanary]);
    assert_eq!(r.phase, Phase::Promoting);

    let c = apply(&mut r, Input::PromotionDone, s(160));
    assert_eq!(
        actions(&c),
        vec![Command::ScheduleScaleDown {
            version: "v1".into(),
            after: Duration::from_secs(30)
        }]
    );
    assert_eq!(r.phase, Phase::Succeeded);
    assert!(r.is_terminal());
    assert_eq!(r.next_wakeup(), None);

    let path: Vec<&str> = r.history.iter().map(|t| t.to.name()).collect();
    assert_eq!(
        path,
        vec![
            "Validating",
            "Starting",
            "Progressing",
            "Progressing",
            "Progressing",
            "Promoting",
            "Succeeded"
        ]
    );
    assert!(r.history.iter().skip(1).all(|t| t.actor == Actor::System));
}

#[test]
fn every_transition_is_announced_after_its_actions_with_the_recorded_history_entry() {
    let mut r = progressing();
    let c = apply(&mut r, fail(s(10)), s(10));
    assert!(c.is_empty(), "a failure below the limit changes no state");
    apply(&mut r, fail(s(20)), s(20));
    let c = apply(&mut r, fail(s(30)), s(30));
    let Some(Command::Notify(announced)) = c.last() else {
        panic!("the last command announces the transition: {c:?}");
    };
    assert_eq!(announced, last_transition(&r));
    assert_eq!(announced.at, s(30));
    assert_eq!(
        announced.from,
        Phase::Progressing {
            step: 0,
            weight: 5.0
        }
    );
    assert_eq!(
        c.iter().filter(|c| matches!(c, Command::Notify(_))).count(),
        1
    );
}

#[test]
fn failed_validation_ends_failed_without_starting_anything() {
    let mut r = validating();
    let not_ok = Input::ValidationFinished {
        can_deploy: false,
        summary: "quality_gates failed".into(),
    };
    let c = apply(&mut r, not_ok, s(1));
    assert!(actions(&c).is_empty(), "nothing to undo: {c:?}");
    assert_eq!(r.phase, Phase::Failed);
    let t = last_transition(&r);
    assert_eq!(t.from, Phase::Validating);
    assert_eq!(t.actor, Actor::System);
    assert!(t.reason.contains("quality_gates failed"), "{}", t.reason);
}

#[test]
fn instances_that_fail_to_start_end_failed_and_are_cleaned_up() {
    let mut r = starting();
    let c = apply(
        &mut r,
        Input::InstancesFailed {
            reason: "port 9001 in use".into(),
        },
        s(3),
    );
    assert_eq!(actions(&c), vec![Command::StopCanary]);
    assert_eq!(r.phase, Phase::Failed);
    assert!(last_transition(&r).reason.contains("port 9001 in use"));
}

#[test]
fn a_canary_crashing_while_starting_ends_failed_like_a_failed_start() {
    let mut r = starting();
    let c = apply(
        &mut r,
        Input::CanaryCrashed {
            reason: "exit 1".into(),
        },
        s(3),
    );
    assert_eq!(actions(&c), vec![Command::StopCanary]);
    assert_eq!(r.phase, Phase::Failed);
}

#[test]
fn a_canary_crash_while_serving_traffic_rolls_back_with_weight_zero_first_and_an_incident() {
    for mut r in [progressing(), paused(), promoting()] {
        let from = r.phase.name();
        let c = apply(
            &mut r,
            Input::CanaryCrashed {
                reason: "SIGSEGV".into(),
            },
            s(7),
        );
        let acting = actions(&c);
        assert_eq!(
            acting[..2],
            [
                Command::SetCanaryWeight { percent: 0.0 },
                Command::StopCanary
            ],
            "from {from}"
        );
        assert!(
            matches!(&acting[2], Command::OpenIncident { reason } if reason.contains("SIGSEGV")),
            "from {from}: {acting:?}"
        );
        assert_eq!(
            r.phase,
            Phase::RollingBack {
                ends_as: RollbackEnd::RolledBack
            }
        );
        apply(&mut r, Input::RollbackDone, s(8));
        assert_eq!(r.phase, Phase::RolledBack, "from {from}");
    }
}

#[test]
fn a_crash_report_during_rollback_changes_nothing() {
    let mut r = rolling_back();
    let before = r.clone();
    let c = apply(
        &mut r,
        Input::CanaryCrashed {
            reason: "killed".into(),
        },
        s(7),
    );
    assert!(c.is_empty());
    assert_eq!(r, before);
}

#[test]
fn a_first_deployment_has_nothing_to_compare_against_and_promotes_once_ready() {
    let mut r = Rollout::new("checkout", "v1", None, spec(), s(0)).expect("valid spec");
    apply(&mut r, Input::Begin { actor: alice() }, s(0));
    apply(
        &mut r,
        Input::ValidationFinished {
            can_deploy: true,
            summary: "ok".into(),
        },
        s(1),
    );
    let c = apply(&mut r, Input::InstancesReady, s(2));
    assert_eq!(actions(&c), vec![Command::PromoteCanary]);
    assert_eq!(r.phase, Phase::Promoting);
    assert!(last_transition(&r).reason.contains("first deployment"));

    let c = apply(&mut r, Input::PromotionDone, s(3));
    assert!(actions(&c).is_empty(), "no previous version to scale down");
    assert_eq!(r.phase, Phase::Succeeded);
}

#[test]
fn an_abort_after_start_rolls_back_and_ends_aborted() {
    let mut r = progressing();
    apply(&mut r, operator("abort"), s(5));
    assert_eq!(
        r.phase,
        Phase::RollingBack {
            ends_as: RollbackEnd::Aborted
        }
    );
    let c = apply(&mut r, Input::RollbackDone, s(9));
    assert!(actions(&c).is_empty());
    assert_eq!(r.phase, Phase::Aborted);
    assert!(last_transition(&r).reason.contains("v1 serves all traffic"));
}

#[test]
fn reports_in_the_wrong_phase_are_refused_and_change_nothing() {
    let cases = [
        (
            pending(),
            Input::InstancesReady,
            "cannot mark instances ready: rollout is Pending, not Starting",
        ),
        (
            progressing(),
            Input::Begin { actor: alice() },
            "cannot begin: rollout is Progressing, not Pending",
        ),
        (
            starting(),
            Input::ValidationFinished {
                can_deploy: true,
                summary: String::new(),
            },
            "cannot finish validation: rollout is Starting, not Validating",
        ),
        (
            progressing(),
            Input::InstancesFailed { reason: "x".into() },
            "cannot mark instances failed: rollout is Progressing, not Starting or Reverting",
        ),
        (
            progressing(),
            Input::PromotionDone,
            "cannot finish promotion: rollout is Progressing, not Promoting or Reverting",
        ),
        (
            promoting(),
            Input::RollbackDone,
            "cannot finish rollback: rollout is Promoting, not RollingBack",
        ),
        (
            validating(),
            Input::CanaryCrashed { reason: "x".into() },
            "cannot handle a canary crash: rollout is Validating, not Starting, Progressing, Paused, Promoting or RollingBack",
        ),
        (
            starting(),
            pass(s(1)),
            "cannot record analysis: rollout is Starting, not Progressing or Paused",
        ),
    ];
    for (mut r, input, message) in cases {
        let before = r.clone();
        let err = r.handle(input, s(50)).expect_err(message);
        assert_eq!(err.to_string(), message);
        assert_eq!(r, before, "a refused input changes nothing");
    }
}

#[test]
fn finished_rollouts_refuse_everything_but_ticks() {
    for mut r in [succeeded(), rolled_back(), failed(), aborted()] {
        let before = r.clone();
        assert!(r.is_terminal());
        assert_eq!(r.next_wakeup(), None);
        assert_eq!(r.handle(Input::Tick, s(500)), Ok(Vec::new()));
        for input in [
            Input::Begin { actor: alice() },
            Input::RollbackDone,
            Input::Recovered {
                policy: RecoveryPolicy::Resume,
            },
            operator("abort"),
            pass(s(500)),
        ] {
            let err = r.handle(input, s(500)).expect_err("finished");
            assert!(
                err.to_string().contains(&format!(
                    "rollout already finished as {}",
                    before.phase.name()
                )),
                "{err}"
            );
        }
        assert_eq!(r, before);
    }
}

#[test]
fn specs_the_machine_cannot_run_are_rejected_with_the_rule_broken() {
    type BreakSpec = fn(&mut RolloutSpec);
    let cases: [(BreakSpec, SpecError); 6] = [
        (|s| s.steps.clear(), SpecError::NoSteps),
        (
            |s| s.steps[1].weight = 120.0,
            SpecError::WeightOutOfRange {
                index: 1,
                weight: 120.0,
            },
        ),
        (
            |s| s.steps[0].weight = -1.0,
            SpecError::WeightOutOfRange {
                index: 0,
                weight: -1.0,
            },
        ),
        (
            |s| s.analysis_interval = Duration::ZERO,
            SpecError::ZeroAnalysisInterval,
        ),
        (
            |s| s.progress_deadline = Duration::ZERO,
            SpecError::ZeroProgressDeadline,
        ),
        (|s| s.failure_limit = 0, SpecError::ZeroFailureLimit),
    ];
    for (break_it, expected) in cases {
        let mut bad = spec();
        break_it(&mut bad);
        let err = Rollout::new("checkout", "v2", None, bad, s(0)).expect_err("invalid spec");
        assert_eq!(err, expected);
    }
    let mut nan = spec();
    nan.steps[0].weight = f64::NAN;
    assert!(matches!(
        nan.validate(),
        Err(SpecError::WeightOutOfRange { index: 0, .. })
    ));
}

#[test]
fn only_timed_phases_ask_for_a_wakeup() {
    // Progressing and Paused for analysis; the phases that wait on the engine for
    // their deadline; Pending and the terminal phases never.
    for r in every_state() {
        let timed = !r.is_terminal() && r.phase != Phase::Pending;
        assert_eq!(r.next_wakeup().is_some(), timed, "{}", r.phase);
    }
}
