use std::time::Duration;

use super::*;
use crate::Timestamp;
use crate::judge::{Outcome, Verdict};

fn at(secs: u64) -> Timestamp {
    Timestamp(secs * 1000)
}

fn spec(criterion: Criterion) -> MetricSpec {
    MetricSpec {
        name: "error_ratio".into(),
        provider: "prom".into(),
        query: QueryTemplate::parse(r#"sum(rate(x{version="{canary}"}[30s]))"#).unwrap(),
        criterion,
        interval: Duration::from_secs(10),
        failure_limit: 1,
        inconclusive_limit: 2,
        error_limit: 1,
        unavailable_limit: Duration::from_secs(60),
    }
}

fn success(text: &str) -> Criterion {
    Criterion::Success(SuccessCondition::parse(text).unwrap())
}

fn value(v: f64) -> Measurement {
    Measurement::Value {
        canary: v,
        stable: None,
    }
}

fn error() -> Measurement {
    Measurement::Error {
        detail: "connection refused".into(),
    }
}

#[test]
fn placeholders_are_replaced_and_promql_braces_are_left_alone() {
    let t = QueryTemplate::parse(
        r#"sum(rate(http_requests_total{version="{canary}",code=~"5.."}[1m])) / sum(rate(http_requests_total{version="{stable}"}[1m]))"#,
    )
    .unwrap();
    assert_eq!(
        t.render("v2", "v1"),
        r#"sum(rate(http_requests_total{version="v2",code=~"5.."}[1m])) / sum(rate(http_requests_total{version="v1"}[1m]))"#
    );
    // The stable side of a comparison: the same query about stable.
    assert_eq!(
        t.render("v1", "v1"),
        r#"sum(rate(http_requests_total{version="v1",code=~"5.."}[1m])) / sum(rate(http_requests_total{version="v1"}[1m]))"#
    );
    // An empty matcher and a bare metric are not placeholders.
    assert!(QueryTemplate::parse(r#"up{} + x{version="{canary}"}"#).is_ok());
}

#[test]
fn a_misspelt_placeholder_is_named_with_its_place() {
    let text = r#"rate(x{version="{cannary}"}[1m])"#;
    let err = QueryTemplate::parse(text).unwrap_err();
    let span = err.span().unwrap();
    assert_eq!(&text[span], "{cannary}");
    assert!(err.to_string().contains("{canary} and {stable}"), "{err}");
    assert_eq!(
        QueryTemplate::parse("sum(rate(x[1m]))"),
        Err(TemplateError::NoCanary)
    );
    assert_eq!(QueryTemplate::parse("  "), Err(TemplateError::Empty));
}

#[test]
fn success_conditions_compare_the_result() {
    let c = SuccessCondition::parse("result < 0.05").unwrap();
    assert!(c.holds(0.01) && !c.holds(0.05) && !c.holds(0.2));
    let band = SuccessCondition::parse("result >= 0.99 and result <= 1").unwrap();
    assert!(band.holds(0.995) && !band.holds(0.98) && !band.holds(1.01));
    let either = SuccessCondition::parse("result < 1 or result > 5 and result < 6").unwrap();
    assert!(either.holds(0.5) && either.holds(5.5) && !either.holds(3.0) && !either.holds(7.0));
    assert!(
        SuccessCondition::parse("result != -1.5e-3")
            .unwrap()
            .holds(0.0)
    );
}

#[test]
fn a_bad_success_condition_points_at_the_word() {
    for (text, word) in [
        ("value < 0.05", "value"),
        ("result << 0.05", "<"),
        ("result < abc", "abc"),
        ("result < 0.05 but result > 0", "but"),
        ("result = 1", "="),
    ] {
        let err = SuccessCondition::parse(text).unwrap_err();
        assert_eq!(&text[err.span.clone()], word, "{text}: {err}");
    }
    let err = SuccessCondition::parse("result <").unwrap_err();
    assert!(err.to_string().contains("expected a number"), "{err}");
    assert!(SuccessCondition::parse("").is_err());
}

#[test]
fn comparison_allows_the_tolerance_and_no_more() {
    let lower = Comparison {
        direction: Direction::LowerIsBetter,
        tolerance_pct: 10.0,
        tolerance: 0.01,
    };
    assert!(lower.passes(0.11, 0.1));
    assert!(lower.passes(0.12, 0.1));
    assert!(!lower.passes(0.13, 0.1));
    // Stable at 0: only the absolute tolerance.
    assert!(lower.passes(0.01, 0.0) && !lower.passes(0.02, 0.0));
    let higher = Comparison {
        direction: Direction::HigherIsBetter,
        tolerance_pct: 1.0,
        tolerance: 0.0,
    };
    assert!(higher.passes(0.995, 1.0) && !higher.passes(0.98, 1.0));
}

#[test]
fn failures_beyond_the_limit_roll_back() {
    let mut m = MetricTracker::new(spec(success("result < 0.05")));
    assert_eq!(m.record(value(0.01), at(10)), None);
    assert_eq!(m.state(), MetricState::Passing);
    // One failure is allowed (failure_limit = 1); passes in between do not reset it.
    assert_eq!(m.record(value(0.2), at(20)), None);
    assert_eq!(m.state(), MetricState::Failing);
    assert_eq!(m.record(value(0.01), at(30)), None);
    let Some(Signal::RollBack { reason }) = m.record(value(0.3), at(40)) else {
        panic!("expected a rollback");
    };
    assert!(
        reason.contains("2 failed measurement(s), limit 1"),
        "{reason}"
    );
    assert_eq!(m.state(), MetricState::Failed);
    assert_eq!(m.outcome_since(at(0)), Outcome::Fail);
}

#[test]
fn no_data_is_inconclusive_and_too_much_of_it_pauses() {
    let mut m = MetricTracker::new(spec(success("result < 0.05")));
    let none = || Measurement::NoData {
        detail: "empty vector".into(),
    };
    assert_eq!(m.record(none(), at(10)), None);
    assert_eq!(m.record(none(), at(20)), None);
    assert_eq!(m.outcome_since(at(0)), Outcome::Inconclusive);
    let Some(Signal::Pause { reason }) = m.record(none(), at(30)) else {
        panic!("expected a pause");
    };
    assert!(
        reason.contains("3 inconclusive measurements in a row (limit 2)"),
        "{reason}"
    );
    // After the pause the allowance starts again.
    assert_eq!(m.record(none(), at(40)), None);
    // A value in between resets the run.
    assert_eq!(m.record(value(0.0), at(50)), None);
    assert_eq!(m.record(none(), at(60)), None);
    assert_eq!(m.record(none(), at(70)), None);
}

#[test]
fn a_failing_provider_is_not_a_failing_canary() {
    let mut m = MetricTracker::new(spec(success("result < 0.05")));
    // error_limit = 1: the first failed query only holds the step.
    assert_eq!(m.record(error(), at(10)), None);
    assert_eq!(m.state(), MetricState::Erroring);
    assert_eq!(m.unavailable_since(), None);
    assert_eq!(m.outcome_since(at(0)), Outcome::Inconclusive);
    // The second in a row: unavailable (the engine pauses the rollout).
    assert_eq!(m.record(error(), at(20)), None);
    assert_eq!(m.state(), MetricState::Unavailable);
    assert_eq!(m.unavailable_since(), Some(at(20)));
    assert_eq!(m.record(error(), at(50)), None);
    // Back: available again, nothing counted against the canary.
    assert_eq!(m.record(value(0.01), at(60)), None);
    assert_eq!(m.unavailable_since(), None);
    assert_eq!(m.state(), MetricState::Passing);
    assert_eq!(m.outcome_since(at(55)), Outcome::Pass);
}

#[test]
fn a_provider_unavailable_past_the_limit_rolls_back_without_a_verdict() {
    let mut m = MetricTracker::new(spec(success("result < 0.05")));
    m.record(error(), at(0));
    m.record(error(), at(10)); // unavailable since 10 s
    assert_eq!(m.record(error(), at(69)), None);
    let Some(Signal::RollBack { reason }) = m.record(error(), at(70)) else {
        panic!("expected a rollback at the unavailable limit");
    };
    assert!(
        reason.contains("unavailable for 60s (limit 60s)"),
        "{reason}"
    );
    assert!(
        reason.contains("without a verdict on the canary"),
        "{reason}"
    );
}

#[test]
fn a_comparison_without_stable_is_inconclusive() {
    let mut m = MetricTracker::new(spec(Criterion::Compare(Comparison {
        direction: Direction::LowerIsBetter,
        tolerance_pct: 0.0,
        tolerance: 0.0,
    })));
    m.record(
        Measurement::Value {
            canary: 1.0,
            stable: None,
        },
        at(10),
    );
    assert_eq!(m.state(), MetricState::Inconclusive);
    m.record(
        Measurement::Value {
            canary: 2.0,
            stable: Some(1.0),
        },
        at(20),
    );
    assert_eq!(m.state(), MetricState::Failing);
}

fn verdict(outcome: Outcome) -> Verdict {
    Verdict {
        judge: "sequential".into(),
        outcome,
        reason: "judge says so".into(),
        evidence: Vec::new(),
        canary_requests: 100,
        stable_requests: 100,
        at: at(100),
    }
}

#[test]
fn a_step_passes_only_when_every_metric_passed_within_it() {
    let mut m = MetricTracker::new(spec(success("result < 0.05")));
    // Not measured yet: the judge's Pass waits.
    let v = combine(verdict(Outcome::Pass), std::slice::from_ref(&m), at(50));
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(
        v.reason
            .contains("waiting for a measurement of metric error_ratio"),
        "{}",
        v.reason
    );
    // Measured before the step started: still waiting.
    m.record(value(0.01), at(40));
    let v = combine(verdict(Outcome::Pass), std::slice::from_ref(&m), at(50));
    assert_eq!(v.outcome, Outcome::Inconclusive);
    m.record(value(0.01), at(60));
    let v = combine(verdict(Outcome::Pass), std::slice::from_ref(&m), at(50));
    assert_eq!(v.outcome, Outcome::Pass);
    assert_eq!(v.evidence.len(), 1);
    assert_eq!(v.evidence[0].metric, "error_ratio");
    // The judge's own Fail stays a Fail.
    let v = combine(verdict(Outcome::Fail), std::slice::from_ref(&m), at(50));
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.reason, "judge says so");
}

#[test]
fn a_failed_metric_fails_the_verdict() {
    let mut m = MetricTracker::new(spec(success("result < 0.05")));
    m.record(value(0.5), at(60));
    m.record(value(0.5), at(70));
    let v = combine(verdict(Outcome::Pass), std::slice::from_ref(&m), at(50));
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(v.reason.contains("metric error_ratio"), "{}", v.reason);
}
