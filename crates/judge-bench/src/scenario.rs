//! The simulated worlds: request streams whose truth (healthy or regressed, and by
//! how much) is known, so a judge's decisions can be scored.

use rampart_core::{SetSample, Timestamp, WindowSample};
use rand::rngs::SmallRng;
use serde::Serialize;

use crate::sampling::{LatencySampler, binomial};

/// How one version set behaves: Bernoulli errors and log-normal latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SetModel {
    pub error_rate: f64,
    pub median_ms: f64,
    pub sigma: f64,
}

impl SetModel {
    pub const fn new(error_rate: f64) -> Self {
        Self {
            error_rate,
            median_ms: 100.0,
            sigma: 0.5,
        }
    }
}

/// What a correct judge should do with the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    /// Not worse than allowed: any rollback is a false rollback.
    Healthy,
    /// Worse than allowed: it should be rolled back, fast.
    Regressed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub truth: Truth,
    pub rps: u64,
    pub canary_share: f64,
    pub stable: SetModel,
    pub canary: SetModel,
    /// The canary behaves like stable until this second.
    pub onset_secs: u64,
    pub seconds: u64,
    /// Overrides the sequential judge's latency tolerance (percent).
    pub latency_tolerance_pct: Option<f64>,
}

impl Scenario {
    fn at_1000_rps(name: &str, truth: Truth, stable: SetModel, canary: SetModel) -> Self {
        Self {
            name: name.into(),
            truth,
            rps: 1_000,
            canary_share: 0.10,
            stable,
            canary,
            onset_secs: 0,
            seconds: 3_600,
            latency_tolerance_pct: None,
        }
    }

    /// The benchmark's scenarios: 1000 rps, 10 % to the canary, one hour each.
    pub fn standard() -> Vec<Scenario> {
        let base = SetModel::new(0.001);
        let one_pct = SetModel::new(0.01);
        // p95 of a log-normal is median·exp(1.645σ): raise σ so p95 is 30 % higher
        // with the median unchanged (a tail regression).
        let tail_sigma = 0.5 + 1.3f64.ln() / 1.644_854;
        let mut scenarios = vec![
            Self::at_1000_rps("healthy, 0.1% errors", Truth::Healthy, base, base),
            Self::at_1000_rps("healthy, 1% errors", Truth::Healthy, one_pct, one_pct),
            Self::at_1000_rps(
                "errors 1% -> 2%",
                Truth::Regressed,
                one_pct,
                SetModel::new(0.02),
            ),
            Self::at_1000_rps(
                "errors 0.1% -> 5%",
                Truth::Regressed,
                base,
                SetModel::new(0.05),
            ),
            Self::at_1000_rps(
                "p95 latency +30% (tail)",
                Truth::Regressed,
                base,
                SetModel {
                    sigma: tail_sigma,
                    ..base
                },
            ),
            Self::at_1000_rps(
                "latency +10% (= tolerance 10%)",
                Truth::Healthy,
                base,
                SetModel {
                    median_ms: base.median_ms * 1.1,
                    ..base
                },
            ),
        ];
        let mut strict = Self::at_1000_rps(
            "latency +10% (tolerance 5%)",
            Truth::Regressed,
            base,
            SetModel {
                median_ms: base.median_ms * 1.1,
                ..base
            },
        );
        strict.latency_tolerance_pct = Some(5.0);
        scenarios.push(strict);
        scenarios
    }
}

/// One run's traffic, second by second.
pub struct Stream<'a> {
    scenario: &'a Scenario,
    stable_latency: LatencySampler,
    canary_latency: LatencySampler,
    canary_before_onset: LatencySampler,
}

impl<'a> Stream<'a> {
    pub fn new(scenario: &'a Scenario) -> Self {
        let (s, c) = (scenario.stable, scenario.canary);
        Self {
            scenario,
            stable_latency: LatencySampler::log_normal(s.median_ms, s.sigma),
            canary_latency: LatencySampler::log_normal(c.median_ms, c.sigma),
            canary_before_onset: LatencySampler::log_normal(s.median_ms, s.sigma),
        }
    }

    pub fn second(&mut self, rng: &mut SmallRng, t: u64) -> WindowSample {
        let sc = self.scenario;
        let canary_requests = binomial(rng, sc.rps, sc.canary_share);
        let stable_requests = sc.rps - canary_requests;
        let (canary_model, canary_latency) = if t < sc.onset_secs {
            (sc.stable, &mut self.canary_before_onset)
        } else {
            (sc.canary, &mut self.canary_latency)
        };
        let canary = SetSample {
            requests: canary_requests,
            errors: binomial(rng, canary_requests, canary_model.error_rate),
            latency: canary_latency.histogram(rng, canary_requests),
        };
        let stable = SetSample {
            requests: stable_requests,
            errors: binomial(rng, stable_requests, sc.stable.error_rate),
            latency: self.stable_latency.histogram(rng, stable_requests),
        };
        WindowSample {
            start: Timestamp(t * 1_000),
            end: Timestamp((t + 1) * 1_000),
            stable,
            canary,
        }
    }
}
