//! The sequential judge (the default): anytime-valid tests of "the canary is worse
//! than stable" on errors and latency, with one false-rollback budget `alpha` for the
//! whole rollout, however often it looks. Method and guarantees: docs/JUDGE.md.
//!
//! The budget is split by a union bound: 40 % to the relative error-rate test, 10 %
//! to the absolute error-rate guardrail, 50 % shared equally by the latency
//! quantiles.

use serde::{Deserialize, Serialize};

use super::confidence::MixtureBound;
use super::error_test::ErrorRateTest;
use super::latency_test::LatencyTest;
use super::{Evidence, Judge, Outcome, Verdict};
use crate::clock::Timestamp;
use crate::sample::WindowSample;

const ERROR_SHARE: f64 = 0.4;
const GUARDRAIL_SHARE: f64 = 0.1;
const LATENCY_SHARE: f64 = 0.5;

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
    /// Seconds of stable traffic that set the latency bar.
    pub latency_window_secs: u32,
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
            latency_window_secs: 30,
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

#[derive(Debug, Clone)]
pub struct SequentialJudge {
    settings: SequentialSettings,
    alpha: f64,
    errors: ErrorRateTest,
    latency: LatencyTest,
    /// The guardrail tripped at some look since reset (kept, like a crossed e-process).
    ceiling_tripped: bool,
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
            settings.latency_window_secs as usize,
        );
        Self {
            settings,
            alpha,
            errors,
            latency,
            ceiling_tripped: false,
        }
    }

    pub fn settings(&self) -> &SequentialSettings {
        &self.settings
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
        let (k, n) = (self.errors.canary_errors, self.errors.canary_requests);
        let ceiling = self.ceiling();
        // Lower anytime-valid bound above the ceiling, tested without the bisection:
        // the estimate is above it and the ceiling lies outside the confidence set.
        n > 0
            && k as f64 > ceiling * n as f64
            && MixtureBound::new(k, n).ln_e_value(ceiling) >= -self.guardrail_alpha().ln()
    }

    /// What the judge finds now, without building evidence: the same decision
    /// [`Judge::evaluate`] reports, cheap enough for simulations that look every second.
    pub fn findings(&self) -> Vec<Finding> {
        let mut found = Vec::new();
        if !self.has_enough_canary() {
            return found;
        }
        if self.ceiling_tripped || self.ceiling_exceeded() {
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
        } else if !self.has_enough_canary() || self.errors.stable_requests == 0 {
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
                statistic: Some(100.0 * canary.lower(self.guardrail_alpha())),
                threshold: Some(100.0 * self.ceiling()),
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
            let share = MixtureBound::new(t.exceeding.round() as u64, t.judged);
            out.push(Evidence {
                metric: format!("{label}_slow_share_pct"),
                canary: (t.judged > 0).then(|| 100.0 * t.exceeding / t.judged as f64),
                stable: Some(100.0 * t.allowed_share()),
                canary_bounds: (t.judged > 0).then(|| {
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
            Outcome::Inconclusive => {
                format!(
                    "{} canary requests but no stable traffic to compare with",
                    e.canary_requests
                )
            }
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
                        "canary error rate {canary_rate:.2}% is above the {:.2}% ceiling (lower bound {:.2}%)",
                        100.0 * self.ceiling(),
                        100.0 * MixtureBound::new(e.canary_errors, e.canary_requests)
                            .lower(self.guardrail_alpha())
                    ),
                    Finding::ErrorRate => format!(
                        "canary error rate {canary_rate:.2}% vs stable {stable_rate:.2}% exceeds the allowed +{:.0}% (e-value {:.3e} ≥ {:.0})",
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
                            "canary {label} {:.1} ms vs stable {:.1} ms exceeds the allowed +{:.0}%: {:.1}% of canary requests above stable's bar, {:.1}% allowed (e-value {:.3e} ≥ {:.0})",
                            ms(&self.latency.canary_total),
                            ms(&self.latency.stable_total),
                            self.settings.latency_tolerance_pct,
                            100.0 * t.exceeding / t.judged.max(1) as f64,
                            100.0 * t.allowed_share(),
                            t.max_e_value(),
                            1.0 / self.quantile_alpha()
                        )
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// The largest e-value as a fraction of its rollback bar, on a log scale
    /// (0 = no evidence at all, 1 = rollback).
    fn strongest_evidence(&self) -> f64 {
        let frac = |e: f64, alpha: f64| (e.max(1.0).ln() / (1.0 / alpha).ln()).min(1.0);
        let mut s = frac(self.errors.max_e_value(), self.error_alpha());
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
        self.latency.observe(&s.latency, &c.latency);
        if !self.ceiling_tripped && self.has_enough_canary() {
            self.ceiling_tripped = self.ceiling_exceeded();
        }
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
}
