//! The sequential judge's statistical promises: calibration (false rollbacks stay
//! under alpha), power (regressions are caught in time), and no verdict on no data.

use super::sequential::{Finding, SequentialJudge, SequentialSettings};
use super::test_streams::{Behaviour, Stream, rng};
use super::{Judge, Outcome};
use crate::clock::Timestamp;

/// Runs `runs` independent streams for `seconds` each and counts those the judge
/// failed at any second.
fn false_rollbacks(
    stream: Stream,
    settings: &SequentialSettings,
    runs: u64,
    seconds: u64,
    seed: u64,
) -> u64 {
    let mut failed = 0;
    for run in 0..runs {
        let mut r = rng(seed * 1_000_003 + run);
        let mut judge = SequentialJudge::new(settings.clone());
        for t in 0..seconds {
            judge.observe(&stream.second(&mut r, t));
        }
        // Fail is final once reached, so the end state says whether any look failed.
        if judge.outcome() == Outcome::Fail {
            failed += 1;
        }
    }
    failed
}

/// Seconds until the judge fails, or `None` within `limit`.
fn seconds_to_fail(stream: Stream, seed: u64, limit: u64) -> Option<(u64, Vec<Finding>)> {
    let mut r = rng(seed);
    let mut judge = SequentialJudge::new(SequentialSettings::default());
    for t in 0..limit {
        judge.observe(&stream.second(&mut r, t));
        if judge.outcome() == Outcome::Fail {
            return Some((t + 1, judge.findings()));
        }
    }
    None
}

/// Upper limit on failures among `runs` when each fails with probability ≤ `p`:
/// the mean plus four standard deviations plus one.
fn allowed_failures(runs: u64, p: f64) -> u64 {
    let mean = runs as f64 * p;
    (mean + 4.0 * (mean * (1.0 - p)).sqrt()).ceil() as u64 + 1
}

#[test]
fn error_test_is_calibrated_at_the_boundary_for_every_split() {
    // The hardest healthy canary: exactly the allowed +10 % error rate. A large
    // alpha makes miscalibration visible within 200 runs.
    let settings = SequentialSettings {
        alpha: 0.1,
        ..SequentialSettings::default()
    };
    for (i, share) in [0.05, 0.10, 0.50].into_iter().enumerate() {
        let mut stream = Stream::healthy(200, share, 0.01).without_latency();
        stream.canary.error_rate = 0.011;
        let failed = false_rollbacks(stream, &settings, 200, 600, 10 + i as u64);
        // The error test holds 40 % of alpha.
        let limit = allowed_failures(200, 0.04);
        assert!(
            failed <= limit,
            "split {share}: {failed} of 200 runs rolled back (limit {limit})"
        );
    }
}

#[test]
fn healthy_canaries_are_rarely_rolled_back_at_default_alpha() {
    let settings = SequentialSettings::default();
    for (i, share) in [0.05, 0.10, 0.50].into_iter().enumerate() {
        let stream = Stream::healthy(200, share, 0.01).without_latency();
        let failed = false_rollbacks(stream, &settings, 200, 600, 20 + i as u64);
        assert!(
            failed <= allowed_failures(200, 0.01),
            "split {share}: {failed} of 200"
        );
    }
}

#[test]
fn latency_test_is_calibrated_at_the_tolerance_boundary() {
    // Canary latency exactly 10 % higher at every quantile: the edge of H0.
    let settings = SequentialSettings {
        alpha: 0.2,
        ..SequentialSettings::default()
    };
    for (i, share) in [0.05, 0.10, 0.50].into_iter().enumerate() {
        let mut stream = Stream::healthy(100, share, 0.0);
        stream.canary.median_ms *= 1.1;
        let failed = false_rollbacks(stream, &settings, 60, 300, 30 + i as u64);
        let limit = allowed_failures(60, 0.1);
        assert!(
            failed <= limit,
            "split {share}: {failed} of 60 (limit {limit})"
        );
    }
}

fn regression(canary: Behaviour) -> Stream {
    let mut s = Stream::healthy(1_000, 0.10, 0.01);
    s.canary = canary;
    s
}

#[test]
fn doubled_error_rate_is_caught_within_two_minutes() {
    let s = regression(Behaviour {
        error_rate: 0.02,
        ..Stream::healthy(1_000, 0.1, 0.01).stable
    });
    let (t, found) = seconds_to_fail(s, 7, 300).expect("1 % -> 2 % not caught in 300 s");
    assert!(t <= 120, "took {t} s");
    assert!(found.contains(&Finding::ErrorRate), "{found:?}");
}

#[test]
fn jump_to_five_percent_errors_is_caught_within_ten_seconds() {
    let mut s = Stream::healthy(1_000, 0.10, 0.001);
    s.canary.error_rate = 0.05;
    let (t, _) = seconds_to_fail(s, 8, 60).expect("0.1 % -> 5 % not caught");
    assert!(t <= 10, "took {t} s");
}

#[test]
fn thirty_percent_slower_canary_is_caught_within_two_minutes() {
    let mut s = Stream::healthy(1_000, 0.10, 0.001);
    s.canary.median_ms *= 1.3;
    let (t, found) = seconds_to_fail(s, 9, 300).expect("+30 % latency not caught");
    assert!(t <= 120, "took {t} s");
    assert!(
        found.iter().any(|f| matches!(f, Finding::Latency { .. })),
        "{found:?}"
    );
}

#[test]
fn canary_far_above_the_ceiling_fails_on_the_guardrail() {
    // Stable is as bad, so the relative test sees nothing: only the ceiling speaks.
    let mut s = Stream::healthy(1_000, 0.10, 0.20).without_latency();
    s.canary.error_rate = 0.20;
    let (t, found) = seconds_to_fail(s, 11, 60).expect("20 % errors not caught");
    assert!(t <= 5, "took {t} s");
    assert_eq!(found, vec![Finding::ErrorCeiling]);
}

#[test]
fn no_canary_traffic_is_inconclusive_forever() {
    let mut s = Stream::healthy(1_000, 0.0, 0.01);
    s.canary.error_rate = 1.0;
    let mut r = rng(12);
    let mut judge = SequentialJudge::new(SequentialSettings::default());
    for t in 0..600 {
        judge.observe(&s.second(&mut r, t));
        let v = judge.evaluate(Timestamp(t * 1_000));
        assert_eq!(v.outcome, Outcome::Inconclusive, "second {t}: {}", v.reason);
    }
}

#[test]
fn a_few_failing_canary_requests_are_not_enough_to_fail() {
    // 49 canary requests over 49 seconds, every one an error and 10x slower: strong
    // evidence, but below min_requests (50) the judge only says "not enough data".
    let mut judge = SequentialJudge::new(SequentialSettings::default());
    let mut s = Stream::healthy(1_000, 0.001, 0.001);
    s.canary = Behaviour {
        error_rate: 1.0,
        median_ms: 1_000.0,
        sigma: 0.5,
    };
    let mut r = rng(13);
    let mut canary_seen = 0;
    let mut t = 0;
    while canary_seen < 49 {
        let mut sample = s.second(&mut r, t);
        sample.canary.requests = sample.canary.requests.min(49 - canary_seen);
        sample.canary.errors = sample.canary.requests;
        canary_seen += sample.canary.requests;
        judge.observe(&sample);
        let v = judge.evaluate(Timestamp(t * 1_000));
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
        t += 1;
    }
    let v = judge.evaluate(Timestamp(t * 1_000));
    assert!(v.reason.contains("need 50"), "{}", v.reason);
}

#[test]
fn verdicts_explain_themselves_with_bounds_and_bars() {
    let mut s = Stream::healthy(1_000, 0.10, 0.01);
    s.canary.error_rate = 0.03;
    let mut r = rng(14);
    let mut judge = SequentialJudge::new(SequentialSettings::default());
    let mut verdict = None;
    for t in 0..120 {
        judge.observe(&s.second(&mut r, t));
        let v = judge.evaluate(Timestamp(t * 1_000));
        assert_eq!(v.outcome, judge.outcome());
        if v.outcome == Outcome::Fail {
            verdict = Some(v);
            break;
        }
    }
    let v = verdict.expect("3 % vs 1 % not caught in 120 s");
    assert!(
        v.reason.contains("is more than 10% above stable's"),
        "{}",
        v.reason
    );
    let e = v
        .evidence
        .iter()
        .find(|e| e.metric == "error_rate_pct")
        .unwrap();
    assert_eq!(e.outcome, Outcome::Fail);
    assert!(e.statistic.unwrap() >= e.threshold.unwrap());
    assert!((e.threshold.unwrap() - 250.0).abs() < 1e-9);
    let (lo, hi) = e.canary_bounds.unwrap();
    assert!(lo < e.canary.unwrap() && e.canary.unwrap() < hi);
    let (slo, shi) = e.stable_bounds.unwrap();
    assert!(shi < lo || slo < e.stable.unwrap(), "bounds {slo}..{shi}");
    for q in ["p50", "p90", "p95", "p99"] {
        assert!(
            v.evidence
                .iter()
                .any(|e| e.metric == format!("{q}_slowest_canary_share_pct")),
            "{q}"
        );
    }
    // Fail is final until reset; reset starts a fresh window.
    judge.observe(&Stream::healthy(1_000, 0.1, 0.01).second(&mut r, 200));
    assert_eq!(judge.evaluate(Timestamp(200_000)).outcome, Outcome::Fail);
    judge.reset();
    assert_eq!(
        judge.evaluate(Timestamp(201_000)).outcome,
        Outcome::Inconclusive
    );
}

#[test]
fn healthy_canary_passes_with_evidence_far_from_the_bar() {
    let s = Stream::healthy(1_000, 0.10, 0.01);
    let mut r = rng(15);
    let mut judge = SequentialJudge::new(SequentialSettings::default());
    for t in 0..60 {
        judge.observe(&s.second(&mut r, t));
    }
    let v = judge.evaluate(Timestamp(60_000));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    assert!(
        v.reason.starts_with("no evidence of a regression"),
        "{}",
        v.reason
    );
    assert!(v.evidence.iter().all(|e| e.outcome == Outcome::Pass));
}

#[test]
fn the_ceiling_guardrail_holds_when_the_rate_changes_but_never_exceeds_it() {
    // A canary whose error rate swings between 1 % and exactly the 5 % ceiling (a
    // shared dependency outage that comes and goes) never breaks "≤ ceiling at every
    // moment": the one-sided guardrail must stay within its share of alpha.
    let settings = SequentialSettings {
        alpha: 0.1,
        allowed_error_increase_pct: 1_000.0, // isolate the guardrail
        ..SequentialSettings::default()
    };
    let mut tripped = 0;
    for run in 0..200u64 {
        let mut r = rng(900 + run);
        let mut judge = SequentialJudge::new(settings.clone());
        for t in 0..600 {
            let rate = if (t / 30) % 2 == 0 { 0.05 } else { 0.01 };
            let mut stream = Stream::healthy(200, 0.1, rate).without_latency();
            stream.stable.error_rate = rate;
            judge.observe(&stream.second(&mut r, t));
        }
        if judge.findings().contains(&Finding::ErrorCeiling) {
            tripped += 1;
        }
    }
    // The guardrail holds 10 % of alpha.
    let limit = allowed_failures(200, 0.01);
    assert!(tripped <= limit, "{tripped} of 200 (limit {limit})");
}

#[test]
fn require_confidence_holds_a_regressed_canary_that_the_data_cannot_yet_fail() {
    // 20 canary requests a second, errors 1 % → 2 %: too little traffic to fail it
    // within a step, and "no evidence yet" must not pass it either.
    let settings = SequentialSettings {
        require_confidence: true,
        ..SequentialSettings::default()
    };
    let mut stream = Stream::healthy(200, 0.1, 0.01).without_latency();
    stream.canary.error_rate = 0.02;
    let mut passed = 0;
    for run in 0..50u64 {
        let mut r = rng(1_000 + run);
        let mut judge = SequentialJudge::new(settings.clone());
        for t in 0..120 {
            judge.observe(&stream.second(&mut r, t));
            if judge.outcome() == Outcome::Pass {
                passed += 1;
                break;
            }
        }
    }
    assert_eq!(passed, 0, "a 1 % → 2 % canary passed a confident judge");
}

#[test]
fn require_confidence_passes_a_healthy_canary_once_the_evidence_rules_out_a_regression() {
    let settings = SequentialSettings {
        require_confidence: true,
        ..SequentialSettings::default()
    };
    let stream = Stream::healthy(1_000, 0.1, 0.001);
    let mut r = rng(77);
    let mut judge = SequentialJudge::new(settings);
    let mut passed_at = None;
    for t in 0..1_800 {
        judge.observe(&stream.second(&mut r, t));
        let v = judge.evaluate(Timestamp(t * 1_000));
        match v.outcome {
            Outcome::Pass => {
                passed_at = Some(t);
                break;
            }
            Outcome::Inconclusive if judge.errors_canary_requests() >= 50 => {
                assert!(v.reason.contains("not yet confident"), "{}", v.reason);
            }
            _ => {}
        }
    }
    let at = passed_at.expect("a healthy canary never became confident in 30 min");
    assert!(
        at > 10,
        "passed after {at} s: too fast to have ruled anything out"
    );
}

/// The evidence survives a round trip through JSON (the store): a judge restored
/// from it reaches the same verdicts as one that never stopped.
#[test]
fn stored_evidence_continues_the_same_test() {
    use crate::judge::JudgeEvidence;
    let settings = SequentialSettings::default();
    let mut rng = rng(11);
    let mut bad = Stream::healthy(200, 0.2, 0.01);
    bad.canary.error_rate = 0.05;
    let mut straight = SequentialJudge::new(settings.clone());
    let mut interrupted = SequentialJudge::new(settings.clone());
    for t in 0..30 {
        let sample = bad.second(&mut rng, t);
        straight.observe(&sample);
        interrupted.observe(&sample);
    }
    let stored = serde_json::to_string(&interrupted.evidence().expect("sequential evidence"))
        .expect("serialise");
    let mut restored = SequentialJudge::new(settings.clone());
    let evidence: JudgeEvidence = serde_json::from_str(&stored).expect("deserialise");
    assert!(restored.restore(evidence));
    for t in 30..120 {
        let sample = bad.second(&mut rng, t);
        straight.observe(&sample);
        restored.observe(&sample);
    }
    let at = Timestamp(120_000);
    assert_eq!(restored.evaluate(at), straight.evaluate(at));
    assert_eq!(
        straight.outcome(),
        Outcome::Fail,
        "the test had a finding to carry"
    );

    // Evidence gathered under other settings is refused, and changes nothing.
    let other = SequentialSettings {
        alpha: 0.05,
        ..settings
    };
    let mut fresh = SequentialJudge::new(other);
    let evidence: JudgeEvidence = serde_json::from_str(&stored).expect("deserialise");
    assert!(!fresh.restore(evidence));
    assert_eq!(fresh.errors_canary_requests(), 0);
}
