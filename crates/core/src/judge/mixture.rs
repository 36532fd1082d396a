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
//!
//! Each component is also mixed over the batch at which the product starts: half
//! the weight starts at the first batch, the other half at batch `k` with weight
//! `1/(2k(k+1))`. A plain product that has watched a healthy canary for ten minutes
//! has lost so much wealth that a regression starting then takes as long again to
//! show; a product started near the onset does not carry that debt. Starting later
//! is still a supermartingale (it is 1 until it starts), so the mixture is too. The
//! cost is `ln 2` nats for a regression present from the start.
//!
//! [`OddsRatioMixture::capped`] bounds each batch's likelihood ratio from above:
//! `E[min(LR, C)] ≤ E[LR] ≤ 1`, so the capped product is still a test
//! supermartingale, and no single batch — one second in which one process was
//! starved of CPU — can carry more than `ln C` of evidence. A real regression
//! persists and still crosses the bar; a burst does not.
//!
//! [`OddsRatioMixture::downward`] mirrors the grid (odds lowered by the same
//! factors): the same argument with `θ1 < θ0` gives a test supermartingale for "each
//! batch has success probability at least `θ0_t`", which is how a judge shows that a
//! regression larger than the tolerance is ruled out (`require_confidence`).

/// Log odds lifts `s_j = STEP·j`, j = 1..=GRID: odds ratios from 1.16 to ~36.
const STEP: f64 = 0.15;
const GRID: usize = 24;

/// Serialised through [`MixtureState`] (JSON has no infinities; the grid follows
/// from the direction), so a rollout's evidence survives rampart's restart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "MixtureState", from = "MixtureState")]
pub struct OddsRatioMixture {
    /// ln of each lift's started-products sum `S_t = (S_{t−1} + π_t)·LR_t`.
    ln_wealth: [f64; GRID],
    /// Informative batches seen.
    batches: u64,
    /// `s_j`: positive for [`Self::new`], negative for [`Self::downward`].
    log_lift: [f64; GRID],
    /// `e^{s_j} − 1`, precomputed.
    lift_minus_one: [f64; GRID],
    /// The largest `ln E` seen so far (for "how close did it come").
    ln_max: f64,
    /// Upper bound on any batch's log likelihood ratio (`ln C`; infinite: none).
    max_ln_lr: f64,
}

/// [`OddsRatioMixture`] as stored: `None` for an infinite value.
#[derive(serde::Serialize, serde::Deserialize)]
struct MixtureState {
    upward: bool,
    ln_wealth: Vec<Option<f64>>,
    batches: u64,
    ln_max: f64,
    max_ln_lr: Option<f64>,
}

impl From<OddsRatioMixture> for MixtureState {
    fn from(m: OddsRatioMixture) -> Self {
        Self {
            upward: m.log_lift[0] > 0.0,
            ln_wealth: m
                .ln_wealth
                .iter()
                .map(|w| w.is_finite().then_some(*w))
                .collect(),
            batches: m.batches,
            ln_max: m.ln_max,
            max_ln_lr: m.max_ln_lr.is_finite().then_some(m.max_ln_lr),
        }
    }
}

impl From<MixtureState> for OddsRatioMixture {
    fn from(state: MixtureState) -> Self {
        let mut m = Self::with_direction(if state.upward { 1.0 } else { -1.0 });
        for (slot, w) in m.ln_wealth.iter_mut().zip(state.ln_wealth) {
            *slot = w.unwrap_or(f64::NEG_INFINITY);
        }
        m.batches = state.batches;
        m.ln_max = state.ln_max;
        m.max_ln_lr = state.max_ln_lr.unwrap_or(f64::INFINITY);
        m
    }
}

impl Default for OddsRatioMixture {
    fn default() -> Self {
        Self::new()
    }
}

impl OddsRatioMixture {
    /// Tests "success probability at most `θ0`" (evidence grows with successes).
    pub fn new() -> Self {
        Self::with_direction(1.0)
    }

    /// Tests "success probability at least `θ0`" (evidence grows with failures).
    pub fn downward() -> Self {
        Self::with_direction(-1.0)
    }

    /// The same test with each batch's evidence capped at `max_ln_lr` nats.
    pub fn capped(mut self, max_ln_lr: f64) -> Self {
        self.max_ln_lr = max_ln_lr.max(0.0);
        self
    }

    fn with_direction(sign: f64) -> Self {
        let mut log_lift = [0.0; GRID];
        let mut lift_minus_one = [0.0; GRID];
        for j in 0..GRID {
            log_lift[j] = sign * STEP * (j + 1) as f64;
            lift_minus_one[j] = log_lift[j].exp_m1();
        }
        Self {
            log_lift,
            ln_wealth: [f64::NEG_INFINITY; GRID],
            batches: 0,
            lift_minus_one,
            ln_max: 0.0,
            max_ln_lr: f64::INFINITY,
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
        self.batches += 1;
        let ln_start_weight = start_weight(self.batches).ln();
        for j in 0..GRID {
            let s = self.log_lift[j];
            // θ1 = cθ0/(1−θ0+cθ0) gives ln LR = k·s − m·ln(1 + θ0(c−1)).
            let ln_lr = (k * s - m * (theta0 * self.lift_minus_one[j]).ln_1p()).min(self.max_ln_lr);
            self.ln_wealth[j] = ln_add(self.ln_wealth[j], ln_start_weight) + ln_lr;
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
        let started = if top == f64::NEG_INFINITY {
            f64::NEG_INFINITY
        } else {
            let sum: f64 = self.ln_wealth.iter().map(|w| (w - top).exp()).sum();
            top + sum.ln() - (GRID as f64).ln()
        };
        // Products not started yet are still worth their weight.
        ln_add(started, not_started_weight(self.batches).ln())
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

/// Weight of the product starting at batch `k` (1-based).
fn start_weight(k: u64) -> f64 {
    let k = k as f64;
    let later = 0.5 / (k * (k + 1.0));
    if k == 1.0 { 0.5 + later } else { later }
}

/// Total weight of products starting after batch `t`.
fn not_started_weight(t: u64) -> f64 {
    if t == 0 { 1.0 } else { 0.5 / (t as f64 + 1.0) }
}

fn ln_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
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
    fn downward_grows_when_successes_fall_short_of_the_null() {
        let mut short = OddsRatioMixture::downward();
        let mut at_null = OddsRatioMixture::downward();
        for _ in 0..50 {
            short.observe(0.0, 10, 0.3);
            at_null.observe(3.0, 10, 0.3);
        }
        assert!(short.e_value() > 1e6, "{}", short.e_value());
        assert!(at_null.e_value() < 1.0, "{}", at_null.e_value());
    }

    #[test]
    fn a_capped_batch_carries_at_most_its_cap() {
        let mut burst = OddsRatioMixture::new().capped(0.4);
        burst.observe(10.0, 10, 0.1); // one extreme second
        assert!(
            burst.e_value() <= 0.4f64.exp() + 1e-9,
            "{}",
            burst.e_value()
        );
        let mut persistent = OddsRatioMixture::new().capped(0.4);
        for _ in 0..60 {
            persistent.observe(5.0, 10, 0.1);
        }
        assert!(persistent.e_value() > 1e6, "{}", persistent.e_value());
    }

    #[test]
    fn start_weights_sum_to_one() {
        let started: f64 = (1..=100_000).map(start_weight).sum();
        assert!((started + not_started_weight(100_000) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_late_regression_is_not_held_back_by_a_long_healthy_past() {
        let mut m = OddsRatioMixture::new();
        for _ in 0..600 {
            m.observe(0.0, 10, 0.1); // ten minutes well inside H0
        }
        let mut seconds = 0;
        while m.e_value() < 100.0 {
            m.observe(4.0, 10, 0.1);
            seconds += 1;
        }
        // A fresh product needs ~12 s here; a plain one would need minutes.
        assert!(seconds <= 25, "{seconds}");
    }

    #[test]
    fn expectation_of_one_batch_is_one_at_the_null() {
        // Exact expectation over Binomial(m, θ0) of the batch factor, mixture-wide,
        // for both directions.
        let (m, theta0) = (12u64, 0.2f64);
        let capped = || OddsRatioMixture::new().capped(0.4);
        let makers: [&dyn Fn() -> OddsRatioMixture; 2] =
            [&OddsRatioMixture::new, &OddsRatioMixture::downward];
        for make in makers {
            let mut expected = 0.0;
            for k in 0..=m {
                let ln_binom = super::super::confidence::ln_gamma(m as f64 + 1.0)
                    - super::super::confidence::ln_gamma(k as f64 + 1.0)
                    - super::super::confidence::ln_gamma((m - k) as f64 + 1.0);
                let p = (ln_binom + k as f64 * theta0.ln() + (m - k) as f64 * (1.0 - theta0).ln())
                    .exp();
                let mut mix = make();
                mix.observe(k as f64, m, theta0);
                expected += p * mix.e_value();
            }
            assert!((expected - 1.0).abs() < 1e-9, "{expected}");
        }
        // Capping only lowers the expectation.
        let mut expected = 0.0;
        for k in 0..=m {
            let ln_binom = super::super::confidence::ln_gamma(m as f64 + 1.0)
                - super::super::confidence::ln_gamma(k as f64 + 1.0)
                - super::super::confidence::ln_gamma((m - k) as f64 + 1.0);
            let p =
                (ln_binom + k as f64 * theta0.ln() + (m - k) as f64 * (1.0 - theta0).ln()).exp();
            let mut mix = capped();
            mix.observe(k as f64, m, theta0);
            expected += p * mix.e_value();
        }
        assert!(expected <= 1.0 + 1e-9, "{expected}");
    }
}
