//! The threshold judge: fixed limits on the traffic of one analysis interval, the way
//! Flagger and Argo Rollouts judge by default. Simple to read, but every evaluation
//! is a fresh test at no controlled error rate, so over many intervals it rolls back
//! healthy canaries that sit near a limit (see docs/JUDGE.md).

use serde::{Deserialize, Serialize};

use super::confidence::wilson_interval;
use super::{Evidence, Judge, Outcome, Verdict};
use crate::clock::Timestamp;
use crate::sample::{SetSample, WindowSample};

/// 95 % two-sided normal quantile for the Wilson bounds shown in evidence.
const WILSON_Z: f64 = 1.96;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdSettings {
    /// Percent of canary requests; above it the canary fails.
    pub max_error_rate_pct: f64,
    /// Percent; below it the canary fails.
    pub min_success_rate_pct: Option<f64>,
    /// Absolute canary latency limits.
    pub max_p95_ms: Option<f64>,
    pub max_p99_ms: Option<f64>,
    /// Percent by which canary p95 may exceed stable p95; `f64::INFINITY` turns the
    /// rule off. Applied only when stable also has `min_requests` requests.
    pub max_latency_regression_pct: f64,
    /// Fewer canary requests than this in an interval is inconclusive.
    pub min_requests: u64,
}

impl Default for ThresholdSettings {
    fn default() -> Self {
        Self {
            max_error_rate_pct: 5.0,
            min_success_rate_pct: None,
            max_p95_ms: None,
            max_p99_ms: None,
            max_latency_regression_pct: 20.0,
            min_requests: 50,
        }
    }
}

impl ThresholdSettings {
    /// Flagger's defaults: success rate ≥ 99 % and p99 ≤ 500 ms per interval, no
    /// minimum request count, no comparison with stable.
    pub fn flagger_default() -> Self {
        Self {
            max_error_rate_pct: 100.0,
            min_success_rate_pct: Some(99.0),
            max_p95_ms: None,
            max_p99_ms: Some(500.0),
            max_latency_regression_pct: f64::INFINITY,
            min_requests: 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ThresholdJudge {
    settings: ThresholdSettings,
    canary: SetSample,
    stable: SetSample,
}

impl ThresholdJudge {
    pub fn new(settings: ThresholdSettings) -> Self {
        Self {
            settings,
            canary: SetSample::default(),
            stable: SetSample::default(),
        }
    }

    pub fn settings(&self) -> &ThresholdSettings {
        &self.settings
    }

    fn judge_window(&self, now: Timestamp) -> Verdict {
        let s = &self.settings;
        let (canary, stable) = (&self.canary, &self.stable);
        let mut evidence = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        let needed = s.min_requests.max(1);

        if canary.requests < needed {
            return Verdict {
                judge: "threshold".into(),
                outcome: Outcome::Inconclusive,
                reason: format!(
                    "only {} canary requests in this interval, need {needed}",
                    canary.requests
                ),
                evidence,
                canary_requests: canary.requests,
                stable_requests: stable.requests,
                at: now,
            };
        }

        let canary_error_pct = 100.0 * canary.errors as f64 / canary.requests as f64;
        let stable_error_pct = stable.error_rate().map(|r| 100.0 * r);
        let canary_bounds = pct_bounds(wilson_interval(canary.errors, canary.requests, WILSON_Z));
        let stable_bounds = (stable.requests > 0)
            .then(|| pct_bounds(wilson_interval(stable.errors, stable.requests, WILSON_Z)));

        let error_fails = canary_error_pct > s.max_error_rate_pct;
        if error_fails {
            failures.push(format!(
                "canary error rate {canary_error_pct:.2}% > {:.2}%",
                s.max_error_rate_pct
            ));
        }
        evidence.push(Evidence {
            metric: "error_rate_pct".into(),
            canary: Some(canary_error_pct),
            stable: stable_error_pct,
            canary_bounds: Some(canary_bounds),
            stable_bounds,
            statistic: Some(canary_error_pct),
            threshold: Some(s.max_error_rate_pct),
            outcome: pass_or_fail(error_fails),
        });

        if let Some(min_success) = s.min_success_rate_pct {
            let success = 100.0 - canary_error_pct;
            let fails = success < min_success;
            if fails {
                failures.push(format!(
                    "canary success rate {success:.2}% < {min_success:.2}%"
                ));
            }
            evidence.push(Evidence {
                metric: "success_rate_pct".into(),
                canary: Some(success),
                stable: stable_error_pct.map(|e| 100.0 - e),
                canary_bounds: Some((100.0 - canary_bounds.1, 100.0 - canary_bounds.0)),
                stable_bounds: stable_bounds.map(|(lo, hi)| (100.0 - hi, 100.0 - lo)),
                statistic: Some(success),
                threshold: Some(min_success),
                outcome: pass_or_fail(fails),
            });
        }

        let canary_p95 = quantile_ms(canary, 0.95);
        let stable_p95 = quantile_ms(stable, 0.95);
        for (metric, q, limit) in [
            ("p95_latency_ms", 0.95, s.max_p95_ms),
            ("p99_latency_ms", 0.99, s.max_p99_ms),
        ] {
            let Some(limit) = limit else { continue };
            let c = quantile_ms(canary, q);
            let fails = c.is_some_and(|c| c > limit);
            if let (true, Some(c)) = (fails, c) {
                failures.push(format!("canary {} {c:.1} ms > {limit:.1} ms", &metric[..3]));
            }
            evidence.push(Evidence {
                metric: metric.into(),
                canary: c,
                stable: quantile_ms(stable, q),
                canary_bounds: None,
                stable_bounds: None,
                statistic: c,
                threshold: Some(limit),
                outcome: pass_or_fail(fails),
            });
        }

        // Compared only when both sides have enough traffic for a meaningful p95.
        let compare = s.max_latency_regression_pct.is_finite() && stable.requests >= needed;
        if let (true, Some(c), Some(st)) = (compare, canary_p95, stable_p95) {
            let regression = if st > 0.0 { 100.0 * (c - st) / st } else { 0.0 };
            let fails = regression > s.max_latency_regression_pct;
            if fails {
                failures.push(format!(
                    "canary p95 {c:.1} ms is {regression:.1}% above stable {st:.1} ms (max {:.1}%)",
                    s.max_latency_regression_pct
                ));
            }
            evidence.push(Evidence {
                metric: "p95_regression_pct".into(),
                canary: Some(c),
                stable: Some(st),
                canary_bounds: None,
                stable_bounds: None,
                statistic: Some(regression),
                threshold: Some(s.max_latency_regression_pct),
                outcome: pass_or_fail(fails),
            });
        }

        let (outcome, reason) = if failures.is_empty() {
            (
                Outcome::Pass,
                format!(
                    "all limits met over {} canary requests (error rate {canary_error_pct:.2}%)",
                    canary.requests
                ),
            )
        } else {
            (Outcome::Fail, failures.join("; "))
        };
        Verdict {
            judge: "threshold".into(),
            outcome,
            reason,
            evidence,
            canary_requests: canary.requests,
            stable_requests: stable.requests,
            at: now,
        }
    }
}

fn pass_or_fail(fails: bool) -> Outcome {
    if fails { Outcome::Fail } else { Outcome::Pass }
}

fn pct_bounds((lo, hi): (f64, f64)) -> (f64, f64) {
    (100.0 * lo, 100.0 * hi)
}

fn quantile_ms(set: &SetSample, q: f64) -> Option<f64> {
    set.latency.quantile_us(q).map(|us| us as f64 / 1_000.0)
}

impl Judge for ThresholdJudge {
    fn name(&self) -> &'static str {
        "threshold"
    }

    fn observe(&mut self, sample: &WindowSample) {
        self.canary.merge(&sample.canary);
        self.stable.merge(&sample.stable);
    }

    /// Judges the traffic since the previous evaluation, then starts a new interval.
    fn evaluate(&mut self, now: Timestamp) -> Verdict {
        let verdict = self.judge_window(now);
        self.reset();
        verdict
    }

    fn reset(&mut self) {
        self.canary = SetSample::default();
        self.stable = SetSample::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::LatencyHistogram;

    fn set(requests: u64, errors: u64, latency_ms: u64) -> SetSample {
        let mut latency = LatencyHistogram::new();
        latency.record_n(latency_ms * 1_000, requests);
        SetSample {
            requests,
            errors,
            latency,
        }
    }

    fn judge_once(settings: ThresholdSettings, canary: SetSample, stable: SetSample) -> Verdict {
        let mut judge = ThresholdJudge::new(settings);
        judge.observe(&WindowSample {
            start: Timestamp(0),
            end: Timestamp(1_000),
            stable,
            canary,
        });
        judge.evaluate(Timestamp(1_000))
    }

    fn metric<'a>(v: &'a Verdict, name: &str) -> &'a Evidence {
        v.evidence
            .iter()
            .find(|e| e.metric == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", v.evidence))
    }

    #[test]
    fn too_few_canary_requests_is_inconclusive_even_when_all_fail() {
        let v = judge_once(
            ThresholdSettings::default(),
            set(49, 49, 10),
            set(1_000, 0, 10),
        );
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert!(v.reason.contains("49"), "{}", v.reason);
    }

    #[test]
    fn error_rate_above_the_maximum_fails_at_or_below_passes() {
        let s = ThresholdSettings::default(); // max 5 %
        let fail = judge_once(s.clone(), set(100, 6, 10), set(1_000, 10, 10));
        assert_eq!(fail.outcome, Outcome::Fail);
        let e = metric(&fail, "error_rate_pct");
        assert_eq!((e.canary, e.threshold), (Some(6.0), Some(5.0)));
        assert_eq!(e.stable, Some(1.0));
        let (lo, hi) = e.canary_bounds.unwrap();
        assert!(lo < 6.0 && 6.0 < hi);
        let pass = judge_once(s, set(100, 5, 10), set(1_000, 10, 10));
        assert_eq!(pass.outcome, Outcome::Pass);
    }

    #[test]
    fn success_rate_below_the_minimum_fails() {
        let s = ThresholdSettings {
            min_success_rate_pct: Some(99.0),
            ..ThresholdSettings::default()
        };
        let v = judge_once(s.clone(), set(1_000, 11, 10), set(1_000, 0, 10));
        assert_eq!(v.outcome, Outcome::Fail);
        assert_eq!(metric(&v, "success_rate_pct").outcome, Outcome::Fail);
        assert_eq!(metric(&v, "error_rate_pct").outcome, Outcome::Pass);
        let v = judge_once(s, set(1_000, 10, 10), set(1_000, 0, 10));
        assert_eq!(v.outcome, Outcome::Pass);
    }

    #[test]
    fn absolute_latency_limits_fail_on_p95_and_p99() {
        let p95 = ThresholdSettings {
            max_p95_ms: Some(200.0),
            max_latency_regression_pct: f64::INFINITY,
            ..ThresholdSettings::default()
        };
        assert_eq!(
            judge_once(p95.clone(), set(100, 0, 250), set(100, 0, 250)).outcome,
            Outcome::Fail
        );
        assert_eq!(
            judge_once(p95, set(100, 0, 150), set(100, 0, 150)).outcome,
            Outcome::Pass
        );

        let p99 = ThresholdSettings {
            max_p99_ms: Some(500.0),
            max_latency_regression_pct: f64::INFINITY,
            ..ThresholdSettings::default()
        };
        // 2 % of canary requests at 900 ms: p95 fine, p99 over.
        let mut canary = set(98, 0, 100);
        canary.merge(&set(2, 0, 900));
        let v = judge_once(p99, canary, set(100, 0, 100));
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(metric(&v, "p99_latency_ms").canary.unwrap() > 500.0);
        assert!(v.reason.contains("p99"), "{}", v.reason);
    }

    #[test]
    fn latency_regression_against_stable_fails_only_with_enough_stable_traffic() {
        let s = ThresholdSettings::default(); // 20 %
        let v = judge_once(s.clone(), set(100, 0, 130), set(100, 0, 100));
        assert_eq!(v.outcome, Outcome::Fail);
        let e = metric(&v, "p95_regression_pct");
        assert!((e.statistic.unwrap() - 30.0).abs() < 4.0, "{e:?}");
        assert_eq!(
            judge_once(s.clone(), set(100, 0, 110), set(100, 0, 100)).outcome,
            Outcome::Pass
        );
        // Stable below min_requests: the comparison is skipped, not failed.
        let v = judge_once(s, set(100, 0, 130), set(10, 0, 100));
        assert_eq!(v.outcome, Outcome::Pass);
        assert!(v.evidence.iter().all(|e| e.metric != "p95_regression_pct"));
    }

    #[test]
    fn each_evaluation_judges_only_the_traffic_since_the_previous_one() {
        let mut judge = ThresholdJudge::new(ThresholdSettings::default());
        let bad = WindowSample {
            start: Timestamp(0),
            end: Timestamp(1_000),
            stable: set(1_000, 0, 10),
            canary: set(100, 50, 10),
        };
        judge.observe(&bad);
        assert_eq!(judge.evaluate(Timestamp(1_000)).outcome, Outcome::Fail);
        let good = WindowSample {
            canary: set(100, 0, 10),
            ..bad
        };
        judge.observe(&good);
        let v = judge.evaluate(Timestamp(2_000));
        assert_eq!(v.outcome, Outcome::Pass);
        assert_eq!(v.canary_requests, 100);
    }
}
