//! The simulated worlds: request streams whose truth (healthy or regressed, and by
//! how much) is known, so a judge's decisions can be scored.

use rampart_core::histogram::bucket_midpoint;
use rampart_core::{LatencyHistogram, SetSample, Timestamp, WindowSample};
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

/// A change that hits both sets at once (load, a stall, a dependency): whatever it
/// does, it is not the canary's fault, and a judge must not roll back for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    None,
    /// Latency of both sets rises ×4 over 60 s and falls back over 60 s, every 5 min.
    LatencyRamp,
    /// Every 20 s, every request of one second is 50 ms slower.
    Stalls,
    /// Every 10 min, 30 s of a failing dependency: +4.9 % errors for both sets.
    ErrorOutage,
}

impl Drift {
    /// Latency factor and added milliseconds in second `t`.
    fn latency(self, t: u64) -> (f64, f64) {
        match self {
            Drift::LatencyRamp => {
                let phase = t % 300;
                let up = if phase < 60 {
                    phase as f64 / 60.0
                } else if phase < 120 {
                    (120 - phase) as f64 / 60.0
                } else {
                    0.0
                };
                (1.0 + 3.0 * up, 0.0)
            }
            Drift::Stalls if t % 20 == 19 => (1.0, 50.0),
            _ => (1.0, 0.0),
        }
    }

    /// Error probability added for both sets in second `t`.
    fn errors(self, t: u64) -> f64 {
        match self {
            Drift::ErrorOutage if t % 600 >= 300 && t % 600 < 330 => 0.049,
            _ => 0.0,
        }
    }
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
    pub drift: Drift,
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
            drift: Drift::None,
        }
    }

    fn with_drift(mut self, drift: Drift) -> Self {
        self.drift = drift;
        self
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
        scenarios.extend(Self::drifting());
        scenarios
    }

    /// Healthy canaries under changes both sets share, and regressions on top of them.
    fn drifting() -> Vec<Scenario> {
        let base = SetModel::new(0.001);
        let one_pct = SetModel::new(0.01);
        let slower = SetModel {
            median_ms: base.median_ms * 1.3,
            ..base
        };
        vec![
            Self::at_1000_rps(
                "healthy, latency ramps x4 (both)",
                Truth::Healthy,
                base,
                base,
            )
            .with_drift(Drift::LatencyRamp),
            Self::at_1000_rps(
                "healthy, 1 s stalls +50 ms (both)",
                Truth::Healthy,
                base,
                base,
            )
            .with_drift(Drift::Stalls),
            Self::at_1000_rps(
                "healthy, outage 0.1% -> 5% errors (both)",
                Truth::Healthy,
                base,
                base,
            )
            .with_drift(Drift::ErrorOutage),
            Self::at_1000_rps(
                "latency +30% while both ramp x4",
                Truth::Regressed,
                base,
                slower,
            )
            .with_drift(Drift::LatencyRamp),
            Self::at_1000_rps(
                "errors 1% -> 2% with outages (both)",
                Truth::Regressed,
                one_pct,
                SetModel::new(0.02),
            )
            .with_drift(Drift::ErrorOutage),
        ]
    }

    /// Regressions at low traffic, for the false-promotion table: 200 rps in all, so
    /// the canary gets 10–100 rps over the default steps (20 rps at 10 %).
    pub fn low_traffic() -> Vec<Scenario> {
        let base = SetModel::new(0.001);
        let one_pct = SetModel::new(0.01);
        let low = |name: &str, truth, stable, canary| Scenario {
            rps: 200,
            ..Self::at_1000_rps(name, truth, stable, canary)
        };
        vec![
            low("healthy, 1% errors", Truth::Healthy, one_pct, one_pct),
            low(
                "errors 1% -> 2%",
                Truth::Regressed,
                one_pct,
                SetModel::new(0.02),
            ),
            low(
                "latency +30%",
                Truth::Regressed,
                base,
                SetModel {
                    median_ms: base.median_ms * 1.3,
                    ..base
                },
            ),
        ]
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
        self.second_at_share(rng, t, self.scenario.canary_share)
    }

    /// One second with the canary taking `canary_share` of the requests.
    pub fn second_at_share(
        &mut self,
        rng: &mut SmallRng,
        t: u64,
        canary_share: f64,
    ) -> WindowSample {
        let sc = self.scenario;
        let canary_requests = binomial(rng, sc.rps, canary_share);
        let stable_requests = sc.rps - canary_requests;
        let (canary_model, canary_latency) = if t < sc.onset_secs {
            (sc.stable, &mut self.canary_before_onset)
        } else {
            (sc.canary, &mut self.canary_latency)
        };
        let shared_errors = sc.drift.errors(t);
        let (factor, added_ms) = sc.drift.latency(t);
        let drifted = |h: LatencyHistogram| drift_latency(h, factor, added_ms);
        let canary = SetSample {
            requests: canary_requests,
            errors: binomial(
                rng,
                canary_requests,
                (canary_model.error_rate + shared_errors).min(1.0),
            ),
            latency: drifted(canary_latency.histogram(rng, canary_requests)),
        };
        let stable = SetSample {
            requests: stable_requests,
            errors: binomial(
                rng,
                stable_requests,
                (sc.stable.error_rate + shared_errors).min(1.0),
            ),
            latency: drifted(self.stable_latency.histogram(rng, stable_requests)),
        };
        WindowSample {
            start: Timestamp(t * 1_000),
            end: Timestamp((t + 1) * 1_000),
            stable,
            canary,
        }
    }
}

/// Every request of the second `factor` times slower plus `added_ms`, bucket by
/// bucket (both sets get the same mapping, so a fair judge sees no difference).
fn drift_latency(h: LatencyHistogram, factor: f64, added_ms: f64) -> LatencyHistogram {
    if factor == 1.0 && added_ms == 0.0 {
        return h;
    }
    let mut out = LatencyHistogram::new();
    for (bucket, count) in h.buckets() {
        let us = bucket_midpoint(bucket) as f64 * factor + added_ms * 1_000.0;
        out.record_n(us as u64, count);
    }
    out
}
