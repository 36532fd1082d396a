//! Promote, pause, resume, abort and rollback from every state.

use super::*;

enum Expect {
    To(Phase, Vec<Command>),
    Refused(&'static str),
}
use Expect::{Refused, To};

fn rolling_back_to(ends_as: RollbackEnd) -> Expect {
    To(
        Phase::RollingBack { ends_as },
        vec![
            Command::SetCanaryWeight { percent: 0.0 },
            Command::StopCanary,
        ],
    )
}

fn expected(state: &str, input: &str) -> Expect {
    let at_step_1 = Phase::Progressing {
        step: 0,
        weight: 5.0,
    };
    match (state, input) {
        ("Pending", "abort" | "rollback") => To(Phase::Aborted, vec![]),
        ("Validating", "abort" | "rollback") => To(Phase::Aborted, vec![Command::CancelValidation]),
        ("Starting" | "Progressing" | "Paused", "abort") => rolling_back_to(RollbackEnd::Aborted),
        ("Starting" | "Progressing" | "Paused", "rollback") => {
            rolling_back_to(RollbackEnd::RolledBack)
        }
        ("Progressing" | "Paused", "promote") => To(Phase::Promoting, vec![Command::PromoteCanary]),
        ("Progressing", "pause") => To(
            Phase::Paused {
                step: 0,
                weight: 5.0,
                cause: PauseCause::Operator,
            },
            vec![],
        ),
        ("Paused", "resume") => To(at_step_1, vec![Command::ResetAnalysis]),

        (_, "promote") if !is_finished(state) => {
            Refused("cannot promote: rollout is {state}, not Progressing or Paused")
        }
        (_, "pause") if !is_finished(state) => {
            Refused("cannot pause: rollout is {state}, not Progressing")
        }
        (_, "resume") if !is_finished(state) => {
            Refused("cannot resume: rollout is {state}, not Paused")
        }
        (_, "abort") if !is_finished(state) => Refused(
            "cannot abort: rollout is {state}, not Pending, Validating, Starting, Progressing or Paused",
        ),
        (_, "rollback") if !is_finished(state) => Refused(
            "cannot roll back: rollout is {state}, not Pending, Validating, Starting, Progressing or Paused",
        ),
        _ => Refused("cannot {action}: rollout already finished as {state}"),
    }
}

fn is_finished(state: &str) -> bool {
    matches!(state, "Succeeded" | "RolledBack" | "Failed" | "Aborted")
}

#[test]
fn operator_inputs_from_every_state_do_what_the_table_in_the_docs_says() {
    let mut checked = 0;
    for original in every_state() {
        let state = original.phase.name();
        for kind in ["promote", "pause", "resume", "abort", "rollback"] {
            let mut r = original.clone();
            let input = operator(kind);
            let action = input.action();
            let result = r.handle(input, s(7));
            match expected(state, kind) {
                To(phase, acting) => {
                    let commands =
                        result.unwrap_or_else(|e| panic!("{kind} from {state} was refused: {e}"));
                    assert_eq!(actions(&commands), acting, "{kind} from {state}");
                    assert_eq!(r.phase, phase, "{kind} from {state}");
                    let t = last_transition(&r);
                    assert_eq!(t.at, s(7));
                    assert_eq!(t.from, original.phase, "{kind} from {state}");
                    assert_eq!(t.actor, alice(), "{kind} from {state}");
                    assert!(
                        t.reason.contains("alice") && t.reason.contains(&format!("test {kind}")),
                        "{kind} from {state}: {}",
                        t.reason
                    );
                    assert_eq!(r.history.len(), original.history.len() + 1);
                }
                Refused(template) => {
                    let message = template
                        .replace("{state}", state)
                        .replace("{action}", action);
                    let err = result.expect_err(&message);
                    assert_eq!(err.to_string(), message);
                    assert_eq!(r, original, "a refused {kind} changes nothing in {state}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 11 * 5);
}

#[test]
fn resume_restarts_the_hold_with_a_fresh_analysis_window() {
    let mut r = progressing();
    apply(&mut r, pass(s(10)), s(10));
    apply(&mut r, operator("pause"), s(12));
    apply(&mut r, operator("resume"), s(40));
    assert_eq!(r.step_started_at, s(40));
    assert_eq!(
        r.step_outcome, None,
        "the pass before the pause no longer counts"
    );
    assert_eq!(r.next_wakeup(), Some(s(50)));
    // The original hold (ending s(30)) is gone: nothing advances until a new pass.
    apply(&mut r, Input::Tick, s(45));
    assert_eq!(r.phase.name(), "Progressing");
    apply(&mut r, pass(s(50)), s(50));
    apply(&mut r, Input::Tick, s(69));
    assert_eq!(r.current_step().map(|(i, _)| i), Some(0));
    apply(&mut r, Input::Tick, s(70));
    assert_eq!(
        r.current_step().map(|(i, _)| i),
        Some(1),
        "30s hold from s(40)"
    );
}

#[test]
fn promote_skips_the_remaining_steps() {
    let mut r = progressing();
    apply(&mut r, operator("promote"), s(3));
    let c = apply(&mut r, Input::PromotionDone, s(9));
    assert!(matches!(
        actions(&c)[..],
        [Command::ScheduleScaleDown { .. }]
    ));
    assert_eq!(r.phase, Phase::Succeeded);
    assert!(
        r.history
            .iter()
            .any(|t| t.reason.contains("skipping the remaining steps"))
    );
}

#[test]
fn a_blank_operator_reason_leaves_a_clean_message() {
    let mut r = progressing();
    let input = Input::Pause {
        actor: alice(),
        reason: "  ".into(),
    };
    apply(&mut r, input, s(3));
    assert_eq!(last_transition(&r).reason, "paused by alice");
}
