//! Holds, verdicts, failure counting and the progress deadline. The rollout from
//! `progressing()` is at step 1 (5%, hold 30s) since s(0); analysis every 10s.

use super::*;

fn step_index(r: &Rollout) -> Option<usize> {
    r.current_step().map(|(index, _)| index)
}

fn with_deadline_action(action: DeadlineAction) -> Rollout {
    let mut spec = spec();
    spec.on_deadline = action;
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
    r
}

#[test]
fn analysis_is_requested_once_per_interval_even_when_ticks_are_late_or_frequent() {
    let mut r = progressing();
    assert_eq!(r.next_wakeup(), Some(s(10)));
    assert!(apply(&mut r, Input::Tick, s(5)).is_empty());
    assert_eq!(
        apply(&mut r, Input::Tick, s(10)),
        vec![Command::EvaluateAnalysis]
    );
    assert!(apply(&mut r, Input::Tick, s(12)).is_empty());
    assert_eq!(
        apply(&mut r, Input::Tick, s(20)),
        vec![Command::EvaluateAnalysis]
    );
    // A late tick asks once and schedules the next one an interval later.
    assert_eq!(
        apply(&mut r, Input::Tick, s(45)),
        vec![Command::EvaluateAnalysis]
    );
    assert!(apply(&mut r, Input::Tick, s(54)).is_empty());
    assert_eq!(r.next_wakeup(), Some(s(55)));
}

#[test]
fn a_pass_before_the_hold_ends_advances_exactly_when_the_hold_ends() {
    let mut r = progressing();
    apply(&mut r, pass(s(10)), s(10));
    apply(&mut r, pass(s(20)), s(20));
    assert_eq!(step_index(&r), Some(0), "hold not yet elapsed");
    // The hold end now matters, so the engine is woken for it.
    assert_eq!(r.next_wakeup(), Some(s(30)));
    apply(&mut r, Input::Tick, s(29));
    assert_eq!(step_index(&r), Some(0));
    let c = apply(&mut r, Input::Tick, s(30));
    assert_eq!(
        actions(&c),
        vec![
            Command::SetCanaryWeight { percent: 25.0 },
            Command::ResetAnalysis
        ]
    );
    assert_eq!(step_index(&r), Some(1));
    assert_eq!(
        r.step_outcome, None,
        "the new step starts with a fresh window"
    );
}

#[test]
fn a_pass_after_the_hold_ended_advances_at_once() {
    let mut r = progressing();
    apply(&mut r, inconclusive(s(10)), s(10));
    apply(&mut r, inconclusive(s(30)), s(30));
    apply(&mut r, Input::Tick, s(35));
    assert_eq!(step_index(&r), Some(0));
    let c = apply(&mut r, pass(s(40)), s(40));
    assert_eq!(actions(&c)[0], Command::SetCanaryWeight { percent: 25.0 });
    assert_eq!(step_index(&r), Some(1));
    assert_eq!(r.step_started_at, s(40));
}

#[test]
fn inconclusive_analysis_holds_the_step_past_its_hold() {
    let mut r = progressing();
    for secs in (10..=100).step_by(10) {
        apply(&mut r, Input::Tick, s(secs));
        let c = apply(&mut r, inconclusive(s(secs)), s(secs));
        assert!(c.is_empty(), "at s({secs}): {c:?}");
    }
    assert_eq!(step_index(&r), Some(0));
    assert_eq!(r.consecutive_failures, 0);
    assert_eq!(r.step_outcome, Some(Outcome::Inconclusive));
    // Without a pass the hold end is irrelevant: the next analysis is what can move it.
    assert_eq!(r.next_wakeup(), Some(s(110)));
}

#[test]
fn the_latest_verdict_decides_so_a_later_inconclusive_or_fail_blocks_an_earlier_pass() {
    for blocker in [inconclusive(s(20)), fail(s(20))] {
        let mut r = progressing();
        apply(&mut r, pass(s(10)), s(10));
        apply(&mut r, blocker.clone(), s(20));
        apply(&mut r, Input::Tick, s(30));
        apply(&mut r, Input::Tick, s(35));
        assert_eq!(step_index(&r), Some(0), "{blocker:?}");
        apply(&mut r, pass(s(40)), s(40));
        assert_eq!(step_index(&r), Some(1), "{blocker:?}");
    }
}

#[test]
fn failures_in_a_row_up_to_the_limit_roll_back_and_a_pass_resets_the_count() {
    let mut r = progressing();
    apply(&mut r, fail(s(10)), s(10));
    apply(&mut r, fail(s(20)), s(20));
    assert_eq!(r.consecutive_failures, 2);
    apply(&mut r, pass(s(25)), s(25));
    assert_eq!(r.consecutive_failures, 0, "a pass resets the count");
    apply(&mut r, fail(s(26)), s(26));
    apply(&mut r, fail(s(27)), s(27));
    assert_eq!(
        step_index(&r),
        Some(0),
        "two in a row is below the limit of 3"
    );

    let c = apply(&mut r, fail(s(28)), s(28));
    let acting = actions(&c);
    assert_eq!(
        acting[..2],
        [
            Command::SetCanaryWeight { percent: 0.0 },
            Command::StopCanary
        ]
    );
    assert!(matches!(&acting[2], Command::OpenIncident { .. }));
    assert_eq!(
        r.phase,
        Phase::RollingBack {
            ends_as: RollbackEnd::RolledBack
        }
    );
    let t = last_transition(&r);
    assert_eq!(t.actor, Actor::System);
    assert!(
        t.reason
            .contains("analysis failed 3 time(s) in a row (limit 3)")
            && t.reason.contains("test verdict Fail"),
        "{}",
        t.reason
    );
}

#[test]
fn inconclusive_neither_counts_as_a_failure_nor_resets_the_count() {
    let mut r = progressing();
    apply(&mut r, fail(s(10)), s(10));
    apply(&mut r, inconclusive(s(20)), s(20));
    apply(&mut r, fail(s(30)), s(30));
    apply(&mut r, inconclusive(s(40)), s(40));
    assert_eq!(r.consecutive_failures, 2);
    assert_eq!(step_index(&r), Some(0));
    apply(&mut r, fail(s(50)), s(50));
    assert_eq!(r.phase.name(), "RollingBack");
}

#[test]
fn a_failure_limit_of_one_rolls_back_on_the_first_failure() {
    let mut spec = spec();
    spec.failure_limit = 1;
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
    apply(&mut r, fail(s(10)), s(10));
    assert_eq!(r.phase.name(), "RollingBack");
}

#[test]
fn a_step_without_a_pass_until_the_deadline_rolls_back_when_configured_to_fail() {
    let mut r = with_deadline_action(DeadlineAction::Fail);
    for secs in (10..=110).step_by(10) {
        apply(&mut r, inconclusive(s(secs)), s(secs));
    }
    assert_eq!(
        r.next_wakeup(),
        Some(s(120)),
        "analysis and deadline coincide"
    );
    assert!(apply(&mut r, Input::Tick, s(119)).is_empty());
    let c = apply(&mut r, Input::Tick, s(120));
    let acting = actions(&c);
    assert_eq!(
        acting[..2],
        [
            Command::SetCanaryWeight { percent: 0.0 },
            Command::StopCanary
        ]
    );
    assert!(matches!(&acting[2], Command::OpenIncident { .. }));
    assert_eq!(
        r.phase,
        Phase::RollingBack {
            ends_as: RollbackEnd::RolledBack
        }
    );
    let reason = &last_transition(&r).reason;
    assert!(
        reason.contains("made no progress for 2m (progress deadline 2m)")
            && reason.contains("test verdict Inconclusive"),
        "{reason}"
    );
}

#[test]
fn the_deadline_is_also_noticed_when_a_verdict_arrives_after_it() {
    let mut r = with_deadline_action(DeadlineAction::Fail);
    let c = apply(&mut r, inconclusive(s(125)), s(125));
    assert!(actions(&c).contains(&Command::StopCanary));
    assert_eq!(r.phase.name(), "RollingBack");
}

#[test]
fn a_pass_restarts_the_deadline_clock() {
    let mut r = with_deadline_action(DeadlineAction::Fail);
    apply(&mut r, pass(s(10)), s(10));
    apply(&mut r, inconclusive(s(20)), s(20));
    // The hold ended at s(30) but the latest verdict is inconclusive: the step waits.
    apply(&mut r, Input::Tick, s(129));
    assert_eq!(step_index(&r), Some(0));
    apply(&mut r, Input::Tick, s(130));
    assert_eq!(
        r.phase.name(),
        "RollingBack",
        "deadline is 2m after the last pass"
    );
}

#[test]
fn failures_below_the_limit_do_not_count_as_progress() {
    let mut r = with_deadline_action(DeadlineAction::Fail);
    apply(&mut r, fail(s(60)), s(60));
    apply(&mut r, fail(s(120)), s(120));
    assert_eq!(r.consecutive_failures, 2);
    assert_eq!(r.phase.name(), "RollingBack", "no pass for 2m");
    assert!(last_transition(&r).reason.contains("progress deadline"));
}

#[test]
fn a_step_without_a_pass_until_the_deadline_pauses_when_configured_to_pause() {
    let mut r = with_deadline_action(DeadlineAction::Pause);
    let c = apply(&mut r, Input::Tick, s(120));
    assert!(actions(&c).is_empty(), "pausing changes no weight: {c:?}");
    assert_eq!(
        r.phase,
        Phase::Paused {
            step: 0,
            weight: 5.0,
            cause: PauseCause::Deadline
        }
    );
    let t = last_transition(&r);
    assert_eq!(t.actor, Actor::System);
    assert!(t.reason.contains("paused for an operator"), "{}", t.reason);

    // Paused: the deadline no longer applies.
    apply(&mut r, Input::Tick, s(1000));
    assert_eq!(r.phase.name(), "Paused");

    // Resume restarts the hold, the window and the deadline.
    let c = apply(&mut r, operator("resume"), s(1000));
    assert_eq!(actions(&c), vec![Command::ResetAnalysis]);
    assert_eq!(r.step_started_at, s(1000));
    apply(&mut r, Input::Tick, s(1119));
    assert_eq!(r.phase.name(), "Progressing");
    apply(&mut r, Input::Tick, s(1120));
    assert_eq!(r.phase.name(), "Paused");
}

#[test]
fn while_paused_analysis_is_recorded_and_requested_but_nothing_advances() {
    let mut r = paused();
    assert_eq!(r.next_wakeup(), Some(s(10)));
    assert_eq!(
        apply(&mut r, Input::Tick, s(10)),
        vec![Command::EvaluateAnalysis]
    );
    let c = apply(&mut r, pass(s(10)), s(10));
    assert!(c.is_empty());
    assert_eq!(r.step_outcome, Some(Outcome::Pass));
    assert!(r.last_verdict.is_some());
    // Hold elapsed and latest verdict passed, yet a paused rollout holds.
    for secs in [30, 40, 300] {
        let c = apply(&mut r, Input::Tick, s(secs));
        assert!(
            !c.iter()
                .any(|c| matches!(c, Command::SetCanaryWeight { .. })),
            "no weight change while paused: {c:?}"
        );
    }
    assert_eq!(r.phase.name(), "Paused");
    assert_eq!(r.history.len(), 4, "no transition while paused");
}

#[test]
fn failures_while_paused_still_roll_back() {
    let mut r = paused();
    for secs in [10, 20, 30] {
        apply(&mut r, fail(s(secs)), s(secs));
    }
    assert_eq!(
        r.phase,
        Phase::RollingBack {
            ends_as: RollbackEnd::RolledBack
        }
    );
}

#[test]
fn a_verdict_about_an_earlier_window_is_refused() {
    let mut r = paused();
    apply(&mut r, operator("resume"), s(50));
    let before = r.clone();
    let err = r.handle(fail(s(45)), s(51)).expect_err("stale");
    assert_eq!(
        err,
        TransitionError::StaleVerdict {
            verdict_at: s(45),
            window_start: s(50)
        }
    );
    assert!(
        err.to_string()
            .contains("predates the current analysis window")
    );
    assert_eq!(r, before);
}
