//! The engine persists rollouts as JSON before acting: round trips must be lossless and
//! the shape stable.

use serde_json::{Value, json};

use super::*;

fn round_trip(r: &Rollout) -> Rollout {
    let text = serde_json::to_string(r).expect("serialize");
    serde_json::from_str(&text).expect("deserialize")
}

#[test]
fn every_state_round_trips_losslessly() {
    for r in every_state() {
        assert_eq!(round_trip(&r), r, "{}", r.phase);
    }
    let mut resuming = paused();
    apply(
        &mut resuming,
        Input::Recovered {
            policy: RecoveryPolicy::Resume,
        },
        s(50),
    );
    assert_eq!(round_trip(&resuming), resuming);
}

#[test]
fn a_restored_rollout_continues_exactly_like_the_original() {
    let mut original = progressing();
    apply(&mut original, fail(s(10)), s(10));
    apply(&mut original, pass(s(20)), s(20));
    let mut restored = round_trip(&original);

    let inputs = [
        (Input::Tick, s(30)),
        (fail(s(40)), s(40)),
        (fail(s(50)), s(50)),
        (fail(s(60)), s(60)),
        (Input::RollbackDone, s(70)),
    ];
    for (input, now) in inputs {
        let expected = original.handle(input.clone(), now);
        assert_eq!(restored.handle(input, now), expected);
    }
    assert_eq!(restored, original);
    assert_eq!(restored.phase, Phase::RolledBack);
}

#[test]
fn the_json_shape_is_plain_and_stable() {
    let mut r = paused();
    apply(&mut r, pass(s(10)), s(10));
    let value = serde_json::to_value(&r).expect("serialize");

    assert_eq!(
        value["phase"],
        json!({"state": "paused", "step": 0, "weight": 5.0, "cause": "operator"})
    );
    assert_eq!(
        value["spec"],
        json!({
            "steps": [
                {"weight": 5.0, "hold_ms": 30000},
                {"weight": 25.0, "hold_ms": 60000},
                {"weight": 50.0, "hold_ms": 60000}
            ],
            "analysis_interval_ms": 10000,
            "progress_deadline_ms": 120000,
            "on_deadline": "fail",
            "failure_limit": 3,
            "scale_down_delay_ms": 30000,
            "deadlines": {
                "validation_ms": 1_800_000,
                "start_ms": 300_000,
                "promotion_ms": 300_000,
                "rollback_ms": 120_000
            },
            "hooks": {
                "pre_rollout": false,
                "confirm_traffic_increase": false,
                "confirm_promotion": false,
                "confirm_interval_ms": 10_000
            }
        })
    );
    assert_eq!(value["step_started_at"], json!(s(0).as_millis()));
    assert_eq!(value["step_outcome"], json!("pass"));
    assert_eq!(value["previous_version"], json!("v1"));
    assert_eq!(
        value["history"][0]["actor"],
        json!({"kind": "user", "name": "alice"})
    );
    assert_eq!(value["history"][1]["actor"], json!({"kind": "system"}));
    assert_eq!(value["history"][1]["to"], json!({"state": "starting"}));
    assert_eq!(
        value["history"][0]["from"],
        json!({"state": "pending"}),
        "unit phases are a bare tag"
    );
    assert!(matches!(&value["history"][3]["reason"], Value::String(s) if s.contains("alice")));
}

#[test]
fn commands_and_inputs_serialize_with_a_tag_for_replay_logs() {
    let command = Command::ScheduleScaleDown {
        version: "v1".into(),
        after: std::time::Duration::from_secs(30),
    };
    assert_eq!(
        serde_json::to_value(&command).expect("serialize"),
        json!({"command": "schedule_scale_down", "version": "v1", "after_ms": 30000})
    );
    let input = Input::Recovered {
        policy: RecoveryPolicy::Resume,
    };
    let text = serde_json::to_string(&input).expect("serialize");
    assert_eq!(text, r#"{"input":"recovered","policy":"resume"}"#);
    assert_eq!(
        serde_json::from_str::<Input>(&text).expect("deserialize"),
        input
    );

    let analysis = pass(s(3));
    let text = serde_json::to_string(&analysis).expect("serialize");
    assert_eq!(
        serde_json::from_str::<Input>(&text).expect("deserialize"),
        analysis
    );
}
