//! Holds and rollbacks asked for by metrics of the user's own (crate::analysis): a
//! provider outage pauses and resumes on its own; a failed metric rolls back.

use super::*;

fn held(cause: PauseCause) -> Input {
    Input::AnalysisHeld {
        cause,
        reason: "analysis provider prom unavailable: connection refused".into(),
    }
}

#[test]
fn an_unavailable_provider_pauses_and_its_return_resumes_with_a_fresh_window() {
    let mut r = progressing();
    let c = apply(&mut r, held(PauseCause::AnalysisUnavailable), s(12));
    assert!(actions(&c).is_empty());
    assert_eq!(
        r.phase,
        Phase::Paused {
            step: 0,
            weight: 5.0,
            cause: PauseCause::AnalysisUnavailable
        }
    );
    let last = r.history.last().expect("a transition");
    assert!(last.reason.contains("analysis provider prom unavailable"));
    // Paused: the progress deadline does not apply, however long the outage.
    apply(&mut r, Input::Tick, s(600));
    assert!(matches!(r.phase, Phase::Paused { .. }));
    // Asked again while paused: nothing changes.
    assert!(apply(&mut r, held(PauseCause::AnalysisUnavailable), s(601)).is_empty());
    let c = apply(
        &mut r,
        Input::AnalysisRestored {
            reason: "analysis provider prom answers again".into(),
        },
        s(610),
    );
    assert_eq!(actions(&c), vec![Command::ResetAnalysis]);
    assert_eq!(
        r.phase,
        Phase::Progressing {
            step: 0,
            weight: 5.0
        }
    );
    assert_eq!(r.step_started_at, s(610));
}

#[test]
fn only_the_providers_pause_ends_on_its_own() {
    let mut r = progressing();
    apply(
        &mut r,
        Input::Pause {
            actor: alice(),
            reason: String::new(),
        },
        s(5),
    );
    // An operator's pause is not lifted by the provider coming back...
    assert!(apply(&mut r, held(PauseCause::AnalysisUnavailable), s(6)).is_empty());
    let restored = Input::AnalysisRestored {
        reason: "back".into(),
    };
    assert!(apply(&mut r, restored.clone(), s(7)).is_empty());
    assert!(matches!(
        r.phase,
        Phase::Paused {
            cause: PauseCause::Operator,
            ..
        }
    ));
    // ...nor is one for inconclusive analysis.
    let mut r = progressing();
    apply(&mut r, held(PauseCause::AnalysisInconclusive), s(5));
    assert!(apply(&mut r, restored, s(7)).is_empty());
    assert!(matches!(
        r.phase,
        Phase::Paused {
            cause: PauseCause::AnalysisInconclusive,
            ..
        }
    ));
}

#[test]
fn a_failed_metric_rolls_back_at_once_with_an_incident() {
    let mut r = progressing();
    let c = apply(
        &mut r,
        Input::AnalysisFailed {
            reason: "metric error_ratio: result 0.2 fails `result < 0.05`".into(),
        },
        s(15),
    );
    assert!(matches!(r.phase, Phase::RollingBack { .. }));
    assert!(
        actions(&c)
            .iter()
            .any(|c| matches!(c, Command::OpenIncident { .. }))
    );
    // Outside analysis it is refused.
    let mut pending = pending();
    assert!(
        pending
            .handle(Input::AnalysisFailed { reason: "x".into() }, s(1))
            .is_err()
    );
}
