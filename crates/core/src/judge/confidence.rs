//! Confidence statements about a proportion (an error rate, a share of slow requests)
//! for the evidence judges attach to verdicts.
//!
//! [`MixtureBound`] is anytime-valid: it comes from the beta-binomial mixture
//! likelihood ratio (Robbins' method of mixtures), so the bounds hold simultaneously
//! at every look, however often the judge evaluates. [`wilson_interval`] is the
//! classic fixed-sample interval, for judges that look at one window once.

/// Prior of the mixture: Beta(1/2, 1/2) (Jeffreys), which spends little of its
/// mass near the middle and so stays tight for rare events such as errors.
const PRIOR_A: f64 = 0.5;
const PRIOR_B: f64 = 0.5;

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, nine terms: ~15 significant digits).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEF[0];
    for (i, &c) in COEF.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// `k·ln p + (n−k)·ln(1−p)` with the 0·ln 0 = 0 convention.
fn ln_likelihood(successes: u64, trials: u64, p: f64) -> f64 {
    let k = successes as f64;
    let f = (trials - successes) as f64;
    let mut l = 0.0;
    if successes > 0 {
        l += k * p.ln();
    }
    if trials > successes {
        l += f * (-p).ln_1p();
    }
    l
}

/// The beta-binomial mixture e-value against "the proportion is `p0`" after
/// `successes` out of `trials` Bernoulli observations, and the confidence sequence it
/// induces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixtureBound {
    pub successes: u64,
    pub trials: u64,
}

impl MixtureBound {
    pub fn new(successes: u64, trials: u64) -> Self {
        Self {
            successes: successes.min(trials),
            trials,
        }
    }

    /// `ln E(p0)`: the log of the mixture likelihood over the likelihood at `p0`. A test
    /// martingale under `p = p0`, so `P(sup_t E_t(p0) ≥ 1/α) ≤ α` (Ville).
    pub fn ln_e_value(&self, p0: f64) -> f64 {
        let k = self.successes as f64;
        let f = (self.trials - self.successes) as f64;
        let ln_mix = ln_beta(PRIOR_A + k, PRIOR_B + f) - ln_beta(PRIOR_A, PRIOR_B);
        let p0 = p0.clamp(0.0, 1.0);
        let ln_null = ln_likelihood(self.successes, self.trials, p0);
        if ln_null == f64::NEG_INFINITY {
            return f64::INFINITY;
        }
        ln_mix - ln_null
    }

    /// Anytime-valid `(lower, upper)` bounds at level `alpha`: every `p` with
    /// `E(p) < 1/α`. The set is an interval because `ln E(p)` is convex in `p`; it
    /// holds the true proportion at all times at once with probability ≥ 1 − α.
    pub fn interval(&self, alpha: f64) -> (f64, f64) {
        if self.trials == 0 {
            return (0.0, 1.0);
        }
        let level = (1.0 / alpha.clamp(f64::MIN_POSITIVE, 1.0)).ln();
        let estimate = self.successes as f64 / self.trials as f64;
        let inside = |p: f64| self.ln_e_value(p) < level;
        let lower = if inside(0.0) {
            0.0
        } else {
            boundary(0.0, estimate, &inside)
        };
        let upper = if inside(1.0) {
            1.0
        } else {
            boundary(1.0, estimate, &inside)
        };
        (lower, upper)
    }

    /// The anytime-valid lower bound alone (what a one-sided guardrail needs).
    pub fn lower(&self, alpha: f64) -> f64 {
        self.interval(alpha).0
    }
}

/// Bisection between a point outside the set and one inside (the estimate, where the
/// mixture is at most the maximum likelihood, so `E ≤ 1`).
fn boundary(mut outside: f64, mut inside_point: f64, inside: &impl Fn(f64) -> bool) -> f64 {
    for _ in 0..60 {
        let mid = 0.5 * (outside + inside_point);
        if inside(mid) {
            inside_point = mid;
        } else {
            outside = mid;
        }
        if (outside - inside_point).abs() < 1e-9 {
            break;
        }
    }
    inside_point
}

/// The Wilson score interval for `successes` out of `trials` at two-sided normal
/// quantile `z` (1.96 for 95 %). Valid for one look at one fixed window only.
pub fn wilson_interval(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!((ln_gamma(1.0)).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        // Stirling check far out, where counts of a long rollout live.
        let x: f64 = 1.0e7;
        let stirling =
            (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x);
        assert!((ln_gamma(x) - stirling).abs() / stirling < 1e-12);
    }

    #[test]
    fn interval_contains_the_estimate_and_shrinks_with_data() {
        let small = MixtureBound::new(10, 1_000).interval(0.01);
        let large = MixtureBound::new(1_000, 100_000).interval(0.01);
        assert!(small.0 < 0.01 && 0.01 < small.1, "{small:?}");
        assert!(large.0 < 0.01 && 0.01 < large.1, "{large:?}");
        assert!(large.1 - large.0 < small.1 - small.0);
        // Anytime-valid bounds are wider than Wilson's fixed-sample 99 % bounds.
        let wilson = wilson_interval(1_000, 100_000, 2.576);
        assert!(large.0 < wilson.0 && wilson.1 < large.1);
    }

    #[test]
    fn zero_successes_give_a_zero_lower_bound() {
        let (lo, hi) = MixtureBound::new(0, 500).interval(0.05);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.05, "{hi}");
    }

    #[test]
    fn e_value_is_large_only_far_from_the_truth() {
        let b = MixtureBound::new(50, 1_000);
        assert!(b.ln_e_value(0.05) < 0.0);
        assert!(b.ln_e_value(0.01) > 20.0);
    }

    #[test]
    fn wilson_matches_a_textbook_value() {
        let (lo, hi) = wilson_interval(10, 100, 1.96);
        assert!((lo - 0.0552).abs() < 1e-3 && (hi - 0.1744).abs() < 1e-3);
    }
}
