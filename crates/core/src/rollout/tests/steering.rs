//! Header/cookie match and mirror steps: the rollout tells the router, through
//! `Rollout::steering`, what the committed step wants; nothing else in the machine
//! changes for them.

use super::*;

fn tester_match() -> RequestMatch {
    RequestMatch {
        source: MatchSource::Header,
        name: "x-tester".into(),
        value: ValueMatch::Exact("yes".into()),
    }
}

/// A match step at weight 0, a mirror step at weight 0, then 50 %.
fn steered_spec() -> RolloutSpec {
    let mut spec = spec();
    spec.steps = vec![
        Step {
            steering: Steering {
                canary_match: Some(tester_match()),
                mirror_percent: 0.0,
            },
            ..Step::timed(0.0, Duration::from_secs(30))
        },
        Step {
            steering: Steering {
                canary_match: None,
                mirror_percent: 20.0,
            },
            ..Step::timed(0.0, Duration::from_secs(30))
        },
        Step::timed(50.0, Duration::from_secs(30)),
    ];
    spec
}

fn steered_progressing() -> Rollout {
    let mut r = pending_with(steered_spec());
    apply(&mut r, Input::Begin { actor: alice() }, s(0));
    let ok = Input::ValidationFinished {
        can_deploy: true,
        summary: "ok".into(),
    };
    apply(&mut r, ok, s(0));
    apply(&mut r, Input::InstancesReady, s(0));
    r
}

#[test]
fn each_step_wants_its_own_steering_and_only_while_it_lasts() {
    let mut r = steered_progressing();
    assert_eq!(r.steering().canary_match, Some(tester_match()));
    assert_eq!(r.steering().mirror_percent, 0.0);

    // The hold elapses with a passing analysis: the mirror step replaces the match.
    apply(&mut r, pass(s(30)), s(30));
    apply(&mut r, Input::Tick, s(30));
    assert!(
        matches!(r.phase, Phase::Progressing { step: 1, .. }),
        "{:?}",
        r.phase
    );
    assert_eq!(r.steering().canary_match, None);
    assert_eq!(r.steering().mirror_percent, 20.0);

    // Pausing keeps the step's rules; a rollback drops them.
    apply(&mut r, operator("pause"), s(31));
    assert_eq!(r.steering().mirror_percent, 20.0);
    apply(&mut r, operator("rollback"), s(32));
    assert!(r.steering().is_none());
}

#[test]
fn weight_only_steps_want_no_steering() {
    let r = progressing();
    assert!(r.steering().is_none());
    assert!(pending().steering().is_none());
}

#[test]
fn a_mirror_share_outside_0_to_100_is_refused() {
    for bad in [-1.0, 100.5, f64::NAN] {
        let mut spec = steered_spec();
        spec.steps[1].steering.mirror_percent = bad;
        assert!(
            matches!(
                spec.validate(),
                Err(SpecError::MirrorOutOfRange { index: 1, .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn steps_stored_before_steering_existed_still_load() {
    let old = r#"{"weight":5.0,"hold_ms":30000}"#;
    let step: Step = serde_json::from_str(old).expect("old step");
    assert_eq!(step, Step::timed(5.0, Duration::from_secs(30)));
    // And a plain step is stored as before.
    assert_eq!(serde_json::to_string(&step).expect("json"), old);
}
