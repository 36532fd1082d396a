//! The sequential judge (the default): anytime-valid tests of "the canary is worse
//! than stable" on errors and latency, with one false-rollback budget `alpha` for the
//! whole rollout, however often it looks. Method and guarantees: docs/JUDGE.md.
//!
//! The budget is split by a union bound: 40 % to the relative error-rate test, 10 %
//! to the absolute error-rate guardrail, 50 % shared equally by the latency
//! quantiles. With `require_confidence`, the same shares bound the chance of
//! promoting a canary whose regression exceeds the tolerance.

use serde::{Deserialize, Serialize};

use super::confidence::MixtureBound;
use super::error_test::ErrorRateTest;
use super::latency_test::LatencyTest;
use super::mixture::OddsRatioMixture;
use super::{Evidence, Judge, Outcome, Verdict};
use crate::clock::Timestamp;
use crate::sample::WindowSample;

const ERROR_SHARE: f64 = 0.4;
const GUARDRAIL_SHARE: f64 = 0.1;
const LATENCY_SHARE: f64 = 0.5;
/// `require_confidence` rules out latency regressions up to this quantile. Above it
/// a second holds too few slow requests (p99 of 200 requests is 2) for evidence of
/// "not slower" to build at the traffic most services have; a p99 regression still
/// fails the rollout.
const CONFIDENCE_MAX_QUANTILE: f64 = 0.95;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialSettings {
    /// Probability of rolling back a canary that is not worse than allowed, over the
    /// whole rollout (all looks, all metrics).
    pub alpha: f64,
    /// Percent by which the canary error rate may exceed stable's.
    pub allowed_error_increase_pct: f64,
    /// Percent by which canary latency quantiles may exceed stable's.
    pub latency_tolerance_pct: f64,
    /// Milliseconds by which canary latency may always exceed stable's: below a few
    /// milliseconds, relative differences are scheduling noise, not regressions.
    pub latency_tolerance_ms: f64,
    /// Absolute canary error rate (percent) above which it fails regardless of stable.
    pub error_rate_ceiling_pct: f64,
    /// Canary requests needed (since reset) before any Pass or Fail.
    pub min_requests: u64,
    /// Latency quantiles compared, each in (0, 1).
    pub latency_quantiles: Vec<f64>,
    /// Pass only once the evidence rules out a regression larger than the
    /// tolerances (not merely "no evidence of harm yet"); until then, Inconclusive.
    pub require_confidence: bool,
    /// With `require_confidence`: an error-rate increase (percentage points) small
    /// enough to count as no regression, so a stable set without errors does not
    /// make confidence impossible.
    pub error_rate_margin_pct: f64,
}

impl Default for SequentialSettings {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            allowed_error_increase_pct: 10.0,
            latency_tolerance_pct: 10.0,
            latency_tolerance_ms: 1.0,
            error_rate_ceiling_pct: 5.0,
            min_requests: 50,
            latency_quantiles: vec![0.5, 0.9, 0.95, 0.99],
            require_confidence: false,
            error_rate_margin_pct: 1.0,
        }
    }
}

/// Which part of the sequential judge found the canary worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "test")]
pub enum Finding {
    ErrorRate,
    ErrorCeiling,
    Latency { quantile_index: usize },
}

/// Serialisable: the evidence of a rollout in flight is stored and carried over a
/// restart or upgrade of rampart (see [`Judge::evidence`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequentialJudge {
    settings: SequentialSettings,
    alpha: f64,
    errors: ErrorRateTest,
    /// One-sided: "the canary's error rate is at most the ceiling in every second".
    ceiling: OddsRatioMixture,
    latency: LatencyTest,
}

impl SequentialJudge {
    pub fn new(settings: SequentialSettings) -> Self {
        let alpha = if settings.alpha > 0.0 && settings.alpha < 1.0 {
            settings.alpha
        } else {
            SequentialSettings::default().alpha
        };
        let errors = ErrorRateTest::new(settings.allowed_error_increase_pct / 100.0);
        let latency = LatencyTest::new(
            &settings.latency_quantiles,
            settings.latency_tolerance_pct / 100.0,
            settings.latency_tolerance_ms * 1000.0,
        );
        Self {
            settings,
            alpha,
            errors,
            ceiling: OddsRatioMixture::new(),
            latency,
        }
    }

    pub fn settings(&self) -> &SequentialSettings {
        &self.settings
    }

    #[cfg(test)]
    pub(crate) fn errors_canary_requests(&self) -> u64 {
        self.errors.canary_requests
    }

    fn error_alpha(&self) -> f64 {
        self.alpha * ERROR_SHARE
    }

    fn guardrail_alpha(&self) -> f64 {
        self.alpha * GUARDRAIL_SHARE
    }

    fn quantile_alpha(&self) -> f64 {
        self.alpha * LATENCY_SHARE / self.latency.quantiles.len().max(1) as f64
    }

    fn has_enough_canary(&self) -> bool {
        self.errors.canary_requests >= self.settings.min_requests.max(1)
    }

    fn ceiling(&self) -> f64 {
        (self.settings.error_rate_ceiling_pct / 100.0).clamp(0.0, 1.0)
    }

    fn ceiling_exceeded(&self) -> bool {
        self.ceiling.max_e_value() >= 1.0 / self.guardrail_alpha()
    }

    /// With `require_confidence`: does the evidence rule out, at the same alpha
    /// shares, an error-rate regression beyond the tolerance (relative or the
    /// absolute margin) and a latency regression beyond the tolerance at every
    /// quantile?
    pub fn confident(&self) -> bool {
        self.errors_confident() && self.latency_confident().iter().all(|&ok| ok)
    }

    fn errors_confident(&self) -> bool {
        // Two ways to confidence, each with half of the errors' share so that
        // taking whichever comes first still spends only that share.
        let e = &self.errors;
        let half = self.error_alpha() / 2.0;
        if e.max_within_e_value() >= 1.0 / half {
            return true;
        }
        // Few errors cannot rule out a relative increase: bound the canary's rate
        // from above and stable's from below instead, a quarter of the share each.
        let quarter = half / 2.0;
        let canary_upper = MixtureBound::new(e.canary_errors, e.canary_requests)
            .interval(quarter)
            .1;
        let stable_lower = MixtureBound::new(e.stable_errors, e.stable_requests).lower(quarter);
        let allowed = (stable_lower * (1.0 + self.settings.allowed_error_increase_pct / 100.0))
            .max(stable_lower + self.settings.error_rate_margin_pct / 100.0);
        e.canary_requests > 0 && e.stable_requests > 0 && canary_upper <= allowed
    }

    fn latency_confident(&self) -> Vec<bool> {
        let bar = 1.0 / self.quantile_alpha();
        self.latency
            .quantiles
            .iter()
            .map(|t| t.quantile > CONFIDENCE_MAX_QUANTILE || t.max_within_e_value() >= bar)
            .collect()
    }

    /// What the judge finds now, without building evidence: the same decision
    /// [`Judge::evaluate`] reports, cheap enough for simulations that look every second.
    pub fn findings(&self) -> Vec<Finding> {
        let mut found = Vec::new();
        if !self.has_enough_canary() {
            return found;
        }
        if self.ceiling_exceeded() {
            found.push(Finding::ErrorCeiling);
        }
        if self.errors.max_e_value() >= 1.0 / self.error_alpha() {
            found.push(Finding::ErrorRate);
        }
        let bar = 1.0 / self.quantile_alpha();
        for (i, t) in self.latency.quantiles.iter().enumerate() {
            if t.max_e_value() >= bar {
                found.push(Finding::Latency { quantile_index: i });
            }
        }
        found
    }

    /// The outcome [`Judge::evaluate`] would report now.
    pub fn outcome(&self) -> Outcome {
        if !self.findings().is_empty() {
            Outcome::Fail
        } else if !self.has_enough_canary()
            || self.errors.stable_requests == 0
            || (self.settings.require_confidence && !self.confident())
        {
            Outcome::Inconclusive
        } else {
            Outcome::Pass
        }
    }

    fn error_evidence(&self, found: &[Finding]) -> Vec<Evidence> {
        let e = &self.errors;
        let canary = MixtureBound::new(e.canary_errors, e.canary_requests);
        let stable = MixtureBound::new(e.stable_errors, e.stable_requests);
        let rate = |k: u64, n: u64| (n > 0).then(|| 100.0 * k as f64 / n as f64);
        let pct = |(lo, hi): (f64, f64)| (100.0 * lo, 100.0 * hi);
        let canary_rate = rate(e.canary_errors, e.canary_requests);
        let stable_rate = rate(e.stable_errors, e.stable_requests);
        vec![
            Evidence {
                metric: "error_rate_pct".into(),
                canary: canary_rate,
                stable: stable_rate,
                canary_bounds: Some(pct(canary.interval(self.alpha))),
                stable_bounds: Some(pct(stable.interval(self.alpha))),
                statistic: Some(e.max_e_value()),
                threshold: Some(1.0 / self.error_alpha()),
                outcome: self.part_outcome(found.contains(&Finding::ErrorRate)),
            },
            Evidence {
                metric: "error_rate_ceiling_pct".into(),
                canary: canary_rate,
                stable: stable_rate,
                canary_bounds: Some(pct(canary.interval(self.guardrail_alpha()))),
                stable_bounds: None,
                statistic: Some(self.ceiling.max_e_value()),
                threshold: Some(1.0 / self.guardrail_alpha()),
                outcome: self.part_outcome(found.contains(&Finding::ErrorCeiling)),
            },
        ]
    }

    fn latency_evidence(&self, found: &[Finding]) -> Vec<Evidence> {
        let l = &self.latency;
        let mut out = Vec::new();
        for (i, t) in l.quantiles.iter().enumerate() {
            let label = quantile_label(t.quantile);
            let ms = |h: &crate::histogram::LatencyHistogram| {
                h.quantile_us(t.quantile).map(|us| us as f64 / 1_000.0)
            };
            let failed = found.contains(&Finding::Latency { quantile_index: i });
            out.push(Evidence {
                metric: format!("{label}_latency_ms"),
                canary: ms(&l.canary_total),
                stable: ms(&l.stable_total),
                canary_bounds: None,
                stable_bounds: None,
                statistic: None,
                threshold: None,
                outcome: self.part_outcome(failed),
            });
            // The canary's share of each second's slowest requests, against the share
            // its traffic would have at the tolerance's edge.
            let share = MixtureBound::new(t.slow_canary, t.slowest);
            out.push(Evidence {
                metric: format!("{label}_slowest_canary_share_pct"),
                canary: (t.slowest > 0).then(|| 100.0 * t.slow_canary as f64 / t.slowest as f64),
                stable: (t.slowest > 0).then(|| 100.0 * t.slow_expected / t.slowest as f64),
                canary_bounds: (t.slowest > 0).then(|| {
                    let (lo, hi) = share.interval(self.quantile_alpha());
                    (100.0 * lo, 100.0 * hi)
                }),
                stable_bounds: None,
                statistic: Some(t.max_e_value()),
                threshold: Some(1.0 / self.quantile_alpha()),
                outcome: self.part_outcome(failed),
            });
        }
        out
    }

    fn part_outcome(&self, failed: bool) -> Outcome {
        if failed {
            Outcome::Fail
        } else if self.has_enough_canary() {
            Outcome::Pass
        } else {
            Outcome::Inconclusive
        }
    }

    fn reason(&self, outcome: Outcome, found: &[Finding]) -> String {
        let e = &self.errors;
        let rate = |k: u64, n: u64| 100.0 * k as f64 / n.max(1) as f64;
        let (canary_rate, stable_rate) = (
            rate(e.canary_errors, e.canary_requests),
            rate(e.stable_errors, e.stable_requests),
        );
        match outcome {
            Outcome::Inconclusive if !self.has_enough_canary() => format!(
                "only {} canary requests so far, need {}",
                e.canary_requests,
                self.settings.min_requests.max(1)
            ),
            Outcome::Inconclusive if e.stable_requests == 0 => format!(
                "{} canary requests but no stable traffic to compare with",
                e.canary_requests
            ),
            Outcome::Inconclusive => format!(
                "no evidence of a regression after {} canary requests, but not yet confident that {} within the tolerance (require_confidence)",
                e.canary_requests,
                self.unconfirmed().join(" and ")
            ),
            Outcome::Pass => {
                let strongest = self.strongest_evidence();
                format!(
                    "no evidence of a regression after {} canary requests (error rate {canary_rate:.2}% vs stable {stable_rate:.2}%; strongest evidence at {:.0}% of the rollback bar)",
                    e.canary_requests,
                    100.0 * strongest
                )
            }
            Outcome::Fail => found
                .iter()
                .map(|f| match *f {
                    Finding::ErrorCeiling => format!(
                        "canary error rate {canary_rate:.2}% is above the {:.2}% ceiling (evidence e = {:.3e} ≥ {:.0})",
                        100.0 * self.ceiling(),
                        self.ceiling.max_e_value(),
                        1.0 / self.guardrail_alpha()
                    ),
                    Finding::ErrorRate => format!(
                        "canary error rate {canary_rate:.2}% is more than {:.0}% above stable's {stable_rate:.2}% (evidence e = {:.3e} ≥ {:.0})",
                        self.settings.allowed_error_increase_pct,
                        e.max_e_value(),
                        1.0 / self.error_alpha()
                    ),
                    Finding::Latency { quantile_index } => {
                        let t = &self.latency.quantiles[quantile_index];
                        let label = quantile_label(t.quantile);
                        let ms = |h: &crate::histogram::LatencyHistogram| {
                            h.quantile_us(t.quantile).unwrap_or(0) as f64 / 1_000.0
                        };
                        format!(
                            "canary slower than allowed at {label}: {} of the {} slowest {:.0}% requests of the same seconds were the canary's, {:.0} expected if it were at most {:.0}% or {} ms slower than stable (evidence e = {:.3e} ≥ {:.0}; {label} canary {:.1} ms, stable {:.1} ms)",
                            t.slow_canary,
                            t.slowest,
                            100.0 * (1.0 - t.quantile),
                            t.slow_expected,
                            self.settings.latency_tolerance_pct,
                            self.settings.latency_tolerance_ms,
                            t.max_e_value(),
                            1.0 / self.quantile_alpha(),
                            ms(&self.latency.canary_total),
                            ms(&self.latency.stable_total),
                        )
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// What `require_confidence` still waits for, in words.
    fn unconfirmed(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.errors_confident() {
            out.push("the error rate is".to_string());
        }
        let pending: Vec<String> = self
            .latency_confident()
            .iter()
            .zip(&self.latency.quantiles)
            .filter(|(ok, _)| !**ok)
            .map(|(_, t)| quantile_label(t.quantile))
            .collect();
        if !pending.is_empty() {
            out.push(format!("latency ({}) is", pending.join(", ")));
        }
        out
    }

    /// The largest e-value as a fraction of its rollback bar, on a log scale
    /// (0 = no evidence at all, 1 = rollback).
    fn strongest_evidence(&self) -> f64 {
        let frac = |e: f64, alpha: f64| (e.max(1.0).ln() / (1.0 / alpha).ln()).min(1.0);
        let mut s = frac(self.errors.max_e_value(), self.error_alpha())
            .max(frac(self.ceiling.max_e_value(), self.guardrail_alpha()));
        for t in &self.latency.quantiles {
            s = s.max(frac(t.max_e_value(), self.quantile_alpha()));
        }
        s
    }
}

fn quantile_label(q: f64) -> String {
    let pct = q * 100.0;
    if (pct - pct.round()).abs() < 1e-9 {
        format!("p{}", pct.round() as u64)
    } else {
        format!("p{pct}")
    }
}

impl Judge for SequentialJudge {
    fn name(&self) -> &'static str {
        "sequential"
    }

    fn observe(&mut self, sample: &WindowSample) {
        let (c, s) = (&sample.canary, &sample.stable);
        self.errors
            .observe(c.requests, c.errors, s.requests, s.errors);
        self.ceiling
            .observe(c.errors.min(c.requests) as f64, c.requests, self.ceiling());
        self.latency.observe(&s.latency, &c.latency);
    }

    /// Judges everything since the last reset. Fail is final until reset: an
    /// e-process that crossed its bar once is evidence at level alpha for good.
    fn evaluate(&mut self, now: Timestamp) -> Verdict {
        let found = self.findings();
        let outcome = self.outcome();
        let mut evidence = self.error_evidence(&found);
        evidence.extend(self.latency_evidence(&found));
        Verdict {
            judge: "sequential".into(),
            outcome,
            reason: self.reason(outcome, &found),
            evidence,
            canary_requests: self.errors.canary_requests,
            stable_requests: self.errors.stable_requests,
            at: now,
        }
    }

    fn reset(&mut self) {
        *self = SequentialJudge::new(self.settings.clone());
    }

    fn evidence(&self) -> Option<super::JudgeEvidence> {
        Some(super::JudgeEvidence::Sequential(Box::new(self.clone())))
    }

    fn restore(&mut self, evidence: super::JudgeEvidence) -> bool {
        let super::JudgeEvidence::Sequential(stored) = evidence;
        if stored.settings != self.settings {
            return false;
        }
        *self = *stored;
        true
    }
}
