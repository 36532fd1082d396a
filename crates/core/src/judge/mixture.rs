//! A test supermartingale for "each batch of Bernoulli trials has success probability
//! at most `θ0_t`", where `θ0_t` may change from batch to batch.
//!
//! For a fixed alternative that lifts the odds of `θ0_t` by a factor `c > 1`, the
//! batch likelihood ratio is `(θ1/θ0)^k · ((1−θ1)/(1−θ0))^(m−k)`; its expectation is
//! exactly 1 when the true probability is `θ0_t` and below 1 when it is smaller
//! (the ratio grows with `k`). The product over batches is therefore a nonnegative
//! supermartingale under the null, and so is any fixed-weight mixture of such
//! products. Ville's inequality gives `P(sup_t E_t ≥ 1/α) ≤ α` for any number of
//! looks. Mixing over a grid of odds lifts keeps power against small and large
//! regressions alike without choosing one in advance.

/// Log odds lifts `s_j = STEP·j`, j = 1..=GRID: odds ratios from 1.16 to ~36.
const STEP: f64 = 0.15;
const GRID: usize = 24;

#[derive(Debug, Clone, PartialEq)]
pub struct OddsRatioMixture {
    /// ln of each component's running likelihood ratio.
    ln_wealth: [f64; GRID],
    /// `e^{s_j} − 1`, precomputed.
    lift_minus_one: [f64; GRID],
    /// The largest `ln E` seen so far (for "how close did it come").
    ln_max: f64,
}

impl Default for OddsRatioMixture {
    fn default() -> Self {
        Self::new()
    }
}

impl OddsRatioMixture {
    pub fn new() -> Self {
        let mut lift_minus_one = [0.0; GRID];
        for (j, l) in lift_minus_one.iter_mut().enumerate() {
            *l = (STEP * (j + 1) as f64).exp_m1();
        }
        Self {
            ln_wealth: [0.0; GRID],
            lift_minus_one,
            ln_max: 0.0,
        }
    }

    /// One batch: `successes` out of `trials`, null probability `theta0` (< 1).
    /// `successes` may be fractional (a request split across a histogram bucket).
    pub fn observe(&mut self, successes: f64, trials: u64, theta0: f64) {
        if trials == 0 || !(theta0 > 0.0 && theta0 < 1.0) {
            // θ0 = 0 or 1 means the batch carries no information about the lift.
            return;
        }
        let m = trials as f64;
        let k = successes.clamp(0.0, m);
        for j in 0..GRID {
            let s = STEP * (j + 1) as f64;
            // θ1 = cθ0/(1−θ0+cθ0) gives ln LR = k·s − m·ln(1 + θ0(c−1)).
            self.ln_wealth[j] += k * s - m * (theta0 * self.lift_minus_one[j]).ln_1p();
        }
        self.ln_max = self.ln_max.max(self.ln_e_value());
    }

    /// ln of the mixture e-value (uniform weights over the grid).
    pub fn ln_e_value(&self) -> f64 {
        let top = self
            .ln_wealth
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = self.ln_wealth.iter().map(|w| (w - top).exp()).sum();
        top + sum.ln() - (GRID as f64).ln()
    }

    #[cfg(test)]
    pub fn e_value(&self) -> f64 {
        self.ln_e_value().exp()
    }

    /// The largest e-value reached since the start.
    pub fn max_e_value(&self) -> f64 {
        self.ln_max.exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_one_and_ignores_empty_or_degenerate_batches() {
        let mut m = OddsRatioMixture::new();
        assert!((m.e_value() - 1.0).abs() < 1e-12);
        m.observe(0.0, 0, 0.1);
        m.observe(5.0, 5, 0.0);
        m.observe(5.0, 5, 1.0);
        assert!((m.e_value() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn grows_when_successes_exceed_the_null_and_shrinks_otherwise() {
        let mut high = OddsRatioMixture::new();
        let mut low = OddsRatioMixture::new();
        for _ in 0..50 {
            high.observe(3.0, 10, 0.1);
            low.observe(1.0, 10, 0.1);
        }
        assert!(high.e_value() > 1e6, "{}", high.e_value());
        assert!(low.e_value() < 1.0);
        assert!(high.max_e_value() >= high.e_value());
    }

    #[test]
    fn expectation_of_one_batch_is_one_at_the_null() {
        // Exact expectation over Binomial(m, θ0) of the batch factor, mixture-wide.
        let (m, theta0) = (12u64, 0.2f64);
        let mut expected = 0.0;
        for k in 0..=m {
            let ln_binom = super::super::confidence::ln_gamma(m as f64 + 1.0)
                - super::super::confidence::ln_gamma(k as f64 + 1.0)
                - super::super::confidence::ln_gamma((m - k) as f64 + 1.0);
            let p =
                (ln_binom + k as f64 * theta0.ln() + (m - k) as f64 * (1.0 - theta0).ln()).exp();
            let mut mix = OddsRatioMixture::new();
            mix.observe(k as f64, m, theta0);
            expected += p * mix.e_value();
        }
        assert!((expected - 1.0).abs() < 1e-9, "{expected}");
    }
}
