//! The sequential error-rate comparison: is the canary's error rate more than
//! `(1 + δ)` times stable's?
//!
//! Each second, condition on the total number of failures `m_t` of both sets. With
//! `w_t = n_c/(n_c+n_s)` the canary's share of that second's requests, a failure came
//! from the canary with probability `θ_t = w·p_c / (w·p_c + (1−w)·p_s)`; under
//! `H0: p_c ≤ (1+δ)·p_s` that is at most `θ0_t = w(1+δ) / (w(1+δ) + 1 − w)`. The
//! canary's failure count is then Binomial(m_t, θ_t ≤ θ0_t), and
//! [`OddsRatioMixture`] turns the sequence of seconds into one e-process. The stable
//! set acts as the control for whatever happens to both (a bad dependency, a load
//! spike), and no error rate has to be estimated.

use super::mixture::OddsRatioMixture;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorRateTest {
    /// `1 + δ`.
    allowed_ratio: f64,
    mixture: OddsRatioMixture,
    /// The opposite test: evidence that the canary is not worse than allowed.
    within: OddsRatioMixture,
    pub canary_requests: u64,
    pub canary_errors: u64,
    pub stable_requests: u64,
    pub stable_errors: u64,
}

impl ErrorRateTest {
    pub fn new(allowed_increase: f64) -> Self {
        Self {
            allowed_ratio: 1.0 + allowed_increase.max(0.0),
            mixture: OddsRatioMixture::new(),
            within: OddsRatioMixture::downward(),
            canary_requests: 0,
            canary_errors: 0,
            stable_requests: 0,
            stable_errors: 0,
        }
    }

    /// The largest canary share of failures allowed under H0 for a given request split.
    pub fn null_failure_share(&self, canary_requests: u64, stable_requests: u64) -> f64 {
        let w = canary_requests as f64 / (canary_requests + stable_requests).max(1) as f64;
        let lifted = w * self.allowed_ratio;
        lifted / (lifted + 1.0 - w)
    }

    pub fn observe(
        &mut self,
        canary_requests: u64,
        canary_errors: u64,
        stable_requests: u64,
        stable_errors: u64,
    ) {
        let canary_errors = canary_errors.min(canary_requests);
        let stable_errors = stable_errors.min(stable_requests);
        self.canary_requests += canary_requests;
        self.canary_errors += canary_errors;
        self.stable_requests += stable_requests;
        self.stable_errors += stable_errors;
        if canary_requests == 0 || stable_requests == 0 {
            // One set alone says nothing about the comparison.
            return;
        }
        let theta0 = self.null_failure_share(canary_requests, stable_requests);
        let failures = canary_errors + stable_errors;
        self.mixture.observe(canary_errors as f64, failures, theta0);
        self.within.observe(canary_errors as f64, failures, theta0);
    }

    #[cfg(test)]
    pub fn e_value(&self) -> f64 {
        self.mixture.e_value()
    }

    pub fn max_e_value(&self) -> f64 {
        self.mixture.max_e_value()
    }

    /// The largest evidence that the canary's rate is at most `(1 + δ)` times
    /// stable's (the downward test of the same conditional binomial).
    pub fn max_within_e_value(&self) -> f64 {
        self.within.max_e_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_share_is_the_traffic_share_lifted_by_the_allowance() {
        let t = ErrorRateTest::new(0.0);
        assert!((t.null_failure_share(10, 90) - 0.1).abs() < 1e-12);
        let t = ErrorRateTest::new(0.1);
        assert!((t.null_failure_share(10, 90) - 0.11 / 1.01).abs() < 1e-12);
    }

    #[test]
    fn a_doubled_canary_error_rate_builds_evidence_a_matched_one_does_not() {
        let mut worse = ErrorRateTest::new(0.1);
        let mut same = ErrorRateTest::new(0.1);
        for _ in 0..120 {
            // 100 canary / 900 stable requests a second, 1 % stable errors.
            worse.observe(100, 2, 900, 9);
            same.observe(100, 1, 900, 9);
        }
        assert!(worse.e_value() > 1_000.0, "{}", worse.e_value());
        assert!(same.e_value() < 1.0, "{}", same.e_value());
    }

    #[test]
    fn seconds_with_one_set_silent_carry_no_evidence() {
        let mut t = ErrorRateTest::new(0.1);
        t.observe(100, 100, 0, 0);
        t.observe(0, 0, 900, 0);
        assert!((t.e_value() - 1.0).abs() < 1e-12);
        assert_eq!((t.canary_requests, t.canary_errors), (100, 100));
    }
}
