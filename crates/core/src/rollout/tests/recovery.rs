//! `Recovered` after a restart, under both policies, from every non-terminal state.

use super::*;

fn rollback_actions() -> Vec<Command> {
    vec![
        Command::SetCanaryWeight { percent: 0.0 },
        Command::StopCanary,
    ]
}

fn rolled_back_phase() -> Phase {
    Phase::RollingBack {
        ends_as: RollbackEnd::RolledBack,
    }
}

fn recover(r: &mut Rollout, policy: RecoveryPolicy, now: Timestamp) -> Vec<Command> {
    apply(r, Input::Recovered { policy }, now)
}

#[test]
fn the_default_policy_is_rollback() {
    assert_eq!(RecoveryPolicy::default(), RecoveryPolicy::Rollback);
}

#[test]
fn every_non_terminal_state_recovers_as_documented_under_both_policies() {
    let resume_at = |paused| Phase::Starting {
        resume: Some(ResumePoint { step: 0, paused }),
        pre_rollout: false,
    };
    let cases: Vec<(Rollout, RecoveryPolicy, Phase, Vec<Command>)> = vec![
        (pending(), RecoveryPolicy::Resume, Phase::Pending, vec![]),
        (
            validating(),
            RecoveryPolicy::Resume,
            Phase::Validating,
            vec![Command::RunValidation],
        ),
        (
            starting(),
            RecoveryPolicy::Resume,
            Phase::Starting {
                resume: None,
                pre_rollout: false,
            },
            vec![Command::StartCanary],
        ),
        (
            progressing(),
            RecoveryPolicy::Resume,
            resume_at(None),
            vec![Command::StartCanary],
        ),
        (
            paused(),
            RecoveryPolicy::Resume,
            resume_at(Some(PauseCause::Operator)),
            vec![Command::StartCanary],
        ),
        (
            promoting(),
            RecoveryPolicy::Resume,
            Phase::Promoting,
            vec![Command::PromoteCanary],
        ),
        (
            rolling_back(),
            RecoveryPolicy::Resume,
            rolled_back_phase(),
            rollback_actions(),
        ),
        (pending(), RecoveryPolicy::Rollback, Phase::Aborted, vec![]),
        (
            validating(),
            RecoveryPolicy::Rollback,
            Phase::Aborted,
            vec![],
        ),
        (
            starting(),
            RecoveryPolicy::Rollback,
            rolled_back_phase(),
            rollback_actions(),
        ),
        (
            progressing(),
            RecoveryPolicy::Rollback,
            rolled_back_phase(),
            rollback_actions(),
        ),
        (
            paused(),
            RecoveryPolicy::Rollback,
            rolled_back_phase(),
            rollback_actions(),
        ),
        (
            promoting(),
            RecoveryPolicy::Rollback,
            rolled_back_phase(),
            rollback_actions(),
        ),
        (
            rolling_back(),
            RecoveryPolicy::Rollback,
            rolled_back_phase(),
            rollback_actions(),
        ),
    ];
    for (mut r, policy, phase, acting) in cases {
        let from = r.phase.clone();
        let c = recover(&mut r, policy, s(100));
        assert_eq!(actions(&c), acting, "{policy:?} from {from}");
        assert_eq!(r.phase, phase, "{policy:?} from {from}");
        // Even a recovery that stays in place is recorded, so the restart is visible.
        let t = last_transition(&r);
        assert_eq!((t.at, &t.from, &t.actor), (s(100), &from, &Actor::System));
        let policy_word = match policy {
            RecoveryPolicy::Resume => "restart policy is resume",
            RecoveryPolicy::Rollback => "restart policy is rollback",
        };
        assert!(
            t.reason.contains("rampart restarted") && t.reason.contains(policy_word),
            "{}",
            t.reason
        );
    }
}

#[test]
fn resume_brings_a_progressing_rollout_back_to_the_same_step_with_a_fresh_start() {
    let mut r = progressing();
    apply(&mut r, pass(s(30)), s(30));
    assert_eq!(r.current_step().map(|(i, _)| i), Some(1));
    apply(&mut r, fail(s(40)), s(40));

    recover(&mut r, RecoveryPolicy::Resume, s(1000));
    assert_eq!(
        r.next_wakeup(),
        Some(s(1300)),
        "waiting for instances, until the start deadline"
    );
    let c = apply(&mut r, Input::InstancesReady, s(1010));
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
    assert_eq!(r.step_started_at, s(1010), "hold restarted");
    assert_eq!(r.last_progress_at, s(1010), "deadline restarted");
    assert_eq!(r.step_outcome, None, "fresh analysis window");
    assert_eq!(r.next_wakeup(), Some(s(1020)));
}

#[test]
fn resume_brings_a_paused_rollout_back_paused() {
    let mut r = with_deadline_pause();
    recover(&mut r, RecoveryPolicy::Resume, s(500));
    let c = apply(&mut r, Input::InstancesReady, s(510));
    assert_eq!(
        actions(&c),
        vec![
            Command::SetCanaryWeight { percent: 5.0 },
            Command::ResetAnalysis
        ]
    );
    assert_eq!(
        r.phase,
        Phase::Paused {
            step: 0,
            weight: 5.0,
            cause: PauseCause::Deadline
        }
    );
    apply(&mut r, Input::Tick, s(5000));
    assert_eq!(r.phase.name(), "Paused", "still waiting for an operator");
}

fn with_deadline_pause() -> Rollout {
    let mut spec = spec();
    spec.on_deadline = DeadlineAction::Pause;
    let mut r = pending_with(spec);
    apply(&mut r, Input::Begin { actor: alice() }, s(0));
    apply(
        &mut r,
        Input::ValidationFinished {
            can_deploy: true,
            summary: "ok".into(),
        },
        s(0),
    );
    apply(&mut r, Input::InstancesReady, s(0));
    apply(&mut r, Input::Tick, s(120));
    assert_eq!(r.phase.name(), "Paused");
    r
}

#[test]
fn a_resumed_canary_that_cannot_restart_is_rolled_back_not_just_failed() {
    let mut r = progressing();
    recover(&mut r, RecoveryPolicy::Resume, s(100));
    let c = apply(
        &mut r,
        Input::InstancesFailed {
            reason: "binary missing".into(),
        },
        s(110),
    );
    let acting = actions(&c);
    assert_eq!(acting[..2], rollback_actions()[..]);
    assert!(matches!(&acting[2], Command::OpenIncident { .. }));
    assert_eq!(r.phase, rolled_back_phase());
}

#[test]
fn recovering_an_abort_still_ends_aborted() {
    let mut r = progressing();
    apply(&mut r, operator("abort"), s(5));
    recover(&mut r, RecoveryPolicy::Rollback, s(100));
    apply(&mut r, Input::RollbackDone, s(110));
    assert_eq!(r.phase, Phase::Aborted);
}
