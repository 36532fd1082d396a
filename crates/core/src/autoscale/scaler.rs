//! The HPA's reconcile step for one version: metrics → recommendation →
//! stabilisation → rate policies → limits (`horizontal.go`,
//! `normalizeDesiredReplicasWithBehaviors`). Pure: time is the `now` handed in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::forecast::ForecastOutcome;
use super::metrics::{MetricOutcome, Observation, evaluate};
use super::spec::{AutoscaleSpec, Mode, PolicyAmount, Select};
use crate::clock::Timestamp;

/// What bounded the decision, when something did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Max,
    Min,
    /// `max_cost_per_hour` pays for fewer instances than asked.
    Budget,
    /// An operator's `rampart scale … --for` raised `min` for a while.
    OperatorMin,
    /// A canary is kept large enough for its traffic weight.
    CanaryWeight,
    ScaleUpRate,
    ScaleDownRate,
    /// A higher recommendation inside the scale-down window holds the size.
    ScaleDownStabilization,
    /// A lower recommendation inside the scale-up window holds the size.
    ScaleUpStabilization,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    None,
    ScaleUp,
    ScaleDown,
}

/// The size bounds in force for one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
    /// Instances the budget pays for.
    pub budget_max: Option<u32>,
    /// A temporary floor set by an operator.
    pub operator_min: Option<u32>,
    /// A canary's floor from its traffic weight.
    pub weight_min: Option<u32>,
    /// What applied: min = max(min, operator_min), max = min(max, budget_max), and
    /// never below min.
    pub effective_min: u32,
    pub effective_max: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub per_instance_hour: f64,
    pub current_per_hour: f64,
    pub desired_per_hour: f64,
    pub max_per_hour: Option<f64>,
    /// The budget held the size below what the metrics asked.
    pub binds: bool,
}

/// One decision with everything that went into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at: Timestamp,
    pub mode: Mode,
    pub current: u32,
    pub ready: u32,
    pub metrics: Vec<MetricOutcome>,
    /// The largest metric proposal (with a predictive forecast folded in when it
    /// acts), before stabilisation and policies.
    pub recommendation: Option<u32>,
    pub forecast: Option<ForecastOutcome>,
    /// After the stabilisation windows.
    pub stabilized: u32,
    /// The size to run.
    pub desired: u32,
    pub bounds: Bounds,
    pub limited_by: Option<Limit>,
    pub cost: Option<CostReport>,
    pub reason: String,
}

impl Decision {
    pub fn action(&self) -> Action {
        match self.desired.cmp(&self.current) {
            std::cmp::Ordering::Greater => Action::ScaleUp,
            std::cmp::Ordering::Less => Action::ScaleDown,
            std::cmp::Ordering::Equal => Action::None,
        }
    }
}

/// Inputs besides the observation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// What the forecaster says (computed by the caller from stored history).
    pub forecast: Option<ForecastOutcome>,
    /// An operator's temporary floor.
    pub operator_min: Option<u32>,
    /// A canary's floor: its share of the traffic in instances.
    pub weight_min: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamped {
    at: Timestamp,
    value: u32,
}

/// One version's autoscaler: the spec and the HPA's memory (recent recommendations
/// and recent scale events).
#[derive(Debug, Clone)]
pub struct Autoscaler {
    spec: AutoscaleSpec,
    recommendations: Vec<Stamped>,
    up_events: Vec<Stamped>,
    down_events: Vec<Stamped>,
}

impl Autoscaler {
    pub fn new(spec: AutoscaleSpec) -> Self {
        Self {
            spec,
            recommendations: Vec::new(),
            up_events: Vec::new(),
            down_events: Vec::new(),
        }
    }

    pub fn spec(&self) -> &AutoscaleSpec {
        &self.spec
    }

    /// A new spec (config reload, operator floor) keeps the memory, as the HPA does
    /// when its object is edited.
    pub fn set_spec(&mut self, spec: AutoscaleSpec) {
        self.spec = spec;
    }

    fn bounds(&self, operator_min: Option<u32>, weight_min: Option<u32>) -> Bounds {
        let budget_max = self.spec.cost.and_then(|c| c.max_instances());
        let max = budget_max.map_or(self.spec.max, |b| b.min(self.spec.max));
        let min = self
            .spec
            .min
            .max(operator_min.unwrap_or(0))
            .max(weight_min.unwrap_or(0));
        let effective_max = max.max(self.spec.min);
        Bounds {
            min: self.spec.min,
            max: self.spec.max,
            budget_max,
            operator_min,
            weight_min,
            effective_min: min.min(effective_max),
            effective_max,
        }
    }

    /// One sync: what size the version should have now. Call [`Autoscaler::applied`]
    /// once the change is made, so the rate policies count it.
    pub fn decide(&mut self, now: Timestamp, obs: &Observation, extra: &Extra) -> Decision {
        let current = obs.current;
        let bounds = self.bounds(extra.operator_min, extra.weight_min);
        let metrics: Vec<MetricOutcome> = self
            .spec
            .targets
            .iter()
            .map(|t| evaluate(t, obs, self.spec.tolerance))
            .collect();
        let mut decision = Decision {
            at: now,
            mode: self.spec.mode,
            current,
            ready: obs.ready(),
            metrics,
            recommendation: None,
            forecast: extra.forecast.clone(),
            stabilized: current,
            desired: current,
            bounds,
            limited_by: None,
            cost: None,
            reason: String::new(),
        };

        if current == 0 {
            decision.reason = "the version runs no instances: nothing to scale".into();
        } else if current > bounds.effective_max {
            decision.desired = bounds.effective_max;
            decision.stabilized = bounds.effective_max;
            decision.limited_by = Some(max_limit(&bounds));
            decision.reason = format!(
                "{current} instances are above the {} of {}: scale to it",
                limit_words(max_limit(&bounds)),
                bounds.effective_max
            );
        } else if current < bounds.effective_min {
            decision.desired = bounds.effective_min;
            decision.stabilized = bounds.effective_min;
            decision.limited_by = Some(min_limit(&bounds));
            decision.reason = format!(
                "{current} instances are below the {} of {}: scale to it",
                limit_words(min_limit(&bounds)),
                bounds.effective_min
            );
        } else {
            self.reconcile(now, &mut decision);
        }
        decision.cost = self.spec.cost.map(|c| CostReport {
            per_instance_hour: c.per_instance_hour,
            current_per_hour: c.per_instance_hour * f64::from(current),
            desired_per_hour: c.per_instance_hour * f64::from(decision.desired),
            max_per_hour: c.max_per_hour,
            binds: decision.limited_by == Some(Limit::Budget),
        });
        decision
    }

    fn reconcile(&mut self, now: Timestamp, d: &mut Decision) {
        let current = d.current;
        let valid: Vec<&MetricOutcome> =
            d.metrics.iter().filter(|m| m.proposal.is_some()).collect();
        let invalid: Vec<&MetricOutcome> =
            d.metrics.iter().filter(|m| m.proposal.is_none()).collect();
        let Some(largest) = valid
            .iter()
            .copied()
            .max_by_key(|m| m.proposal.unwrap_or(0))
        else {
            d.reason = format!(
                "no metric could be computed ({}): stay at {current}",
                invalid
                    .iter()
                    .map(|m| format!("{}: {}", m.metric.as_str(), m.note))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return;
        };
        let metric_rec = largest.proposal.unwrap_or(current);
        let mut reason = format!(
            "{} asks for {metric_rec} ({})",
            largest.metric.as_str(),
            largest.note
        );
        if !invalid.is_empty() && metric_rec < current {
            d.recommendation = Some(metric_rec);
            d.reason = format!(
                "{reason}, but {} could not be computed, and a scale-down on partial metrics is skipped: stay at {current}",
                invalid
                    .iter()
                    .map(|m| m.metric.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return;
        }
        let mut recommendation = metric_rec;
        if let Some(forecast) = &d.forecast {
            match (self.spec.mode, forecast.instances) {
                (Mode::Predictive, Some(ahead)) if ahead > recommendation => {
                    recommendation = ahead;
                    reason.push_str(&format!(
                        "; the forecast asks for {ahead} within the lead time ({}), above the live metrics",
                        forecast.note
                    ));
                }
                (Mode::Predictive, Some(ahead)) => reason.push_str(&format!(
                    "; the forecast asks for {ahead}, not more (a forecast never scales in)"
                )),
                (Mode::ForecastOnly, Some(ahead)) => reason.push_str(&format!(
                    "; forecast only: predictive would ask for {}",
                    ahead.max(metric_rec)
                )),
                (Mode::Predictive | Mode::ForecastOnly, None) => {
                    reason.push_str(&format!("; reactive only: {}", forecast.note))
                }
                (Mode::Reactive, _) => {}
            }
        }
        d.recommendation = Some(recommendation);

        let (stabilized, stabilization) = self.stabilize(now, current, recommendation);
        d.stabilized = stabilized;
        let (desired, rate_limit) = self.limit_rate(now, current, stabilized, &d.bounds);
        d.desired = desired;
        d.limited_by = rate_limit.or(stabilization);
        if let Some(limit) = stabilization {
            let window = match limit {
                Limit::ScaleDownStabilization => self.spec.scale_down.stabilization,
                _ => self.spec.scale_up.stabilization,
            };
            reason.push_str(&format!(
                "; the {} recommendation of the last {} holds at {stabilized}",
                if limit == Limit::ScaleDownStabilization {
                    "highest"
                } else {
                    "lowest"
                },
                words(window)
            ));
        }
        if let Some(limit) = rate_limit {
            reason.push_str(&format!("; {} allows {desired}", limit_words(limit)));
        }
        let verb = match d.desired.cmp(&current) {
            std::cmp::Ordering::Greater => format!("scale up {current} → {}", d.desired),
            std::cmp::Ordering::Less => format!("scale down {current} → {}", d.desired),
            std::cmp::Ordering::Equal => format!("stay at {current}"),
        };
        d.reason = format!("{verb}: {reason}");
    }

    /// `stabilizeRecommendationWithBehaviors`: the lowest recommendation of the
    /// scale-up window and the highest of the scale-down window bound this one.
    fn stabilize(
        &mut self,
        now: Timestamp,
        current: u32,
        recommendation: u32,
    ) -> (u32, Option<Limit>) {
        // `maybeInitScaleDownStabilizationWindow`: a new scaler starts as if it had
        // recommended the current size, so a restart does not scale down at once.
        if self.recommendations.is_empty() && !self.spec.scale_down.stabilization.is_zero() {
            self.recommendations.push(Stamped {
                at: now,
                value: current,
            });
        }
        let up_cutoff = cutoff(now, self.spec.scale_up.stabilization);
        let down_cutoff = cutoff(now, self.spec.scale_down.stabilization);
        let mut up = recommendation;
        let mut down = recommendation;
        for rec in &self.recommendations {
            if rec.at > up_cutoff {
                up = up.min(rec.value);
            }
            if rec.at > down_cutoff {
                down = down.max(rec.value);
            }
        }
        let mut stabilized = current;
        if stabilized < up {
            stabilized = up;
        }
        if stabilized > down {
            stabilized = down;
        }
        // Remember the unstabilised recommendation; forget what no window reaches.
        let oldest = cutoff(now, self.spec.longest_window());
        self.recommendations.retain(|r| r.at > oldest);
        self.recommendations.push(Stamped {
            at: now,
            value: recommendation,
        });
        let limit = if stabilized == recommendation {
            None
        } else if stabilized > recommendation {
            Some(Limit::ScaleDownStabilization)
        } else {
            Some(Limit::ScaleUpStabilization)
        };
        (stabilized, limit)
    }

    /// `convertDesiredReplicasWithBehaviorRate`.
    fn limit_rate(
        &self,
        now: Timestamp,
        current: u32,
        desired: u32,
        bounds: &Bounds,
    ) -> (u32, Option<Limit>) {
        let current_i = i64::from(current);
        let desired_i = i64::from(desired);
        if desired > current {
            let up_limit = self.scale_up_limit(now, current_i).max(current_i);
            let (allowed, limit) = if i64::from(bounds.effective_max) > up_limit {
                (up_limit, Limit::ScaleUpRate)
            } else {
                (i64::from(bounds.effective_max), max_limit(bounds))
            };
            if desired_i > allowed {
                return (allowed as u32, Some(limit));
            }
        } else if desired < current {
            let down_limit = self.scale_down_limit(now, current_i).min(current_i);
            let (allowed, limit) = if i64::from(bounds.effective_min) < down_limit {
                (down_limit, Limit::ScaleDownRate)
            } else {
                (i64::from(bounds.effective_min), min_limit(bounds))
            };
            if desired_i < allowed {
                return (allowed as u32, Some(limit));
            }
        }
        (desired, None)
    }

    fn period_start(&self, now: Timestamp, current: i64, period: Duration) -> i64 {
        let from = cutoff(now, period);
        let added: i64 = self
            .up_events
            .iter()
            .filter(|e| e.at > from)
            .map(|e| i64::from(e.value))
            .sum();
        let removed: i64 = self
            .down_events
            .iter()
            .filter(|e| e.at > from)
            .map(|e| i64::from(e.value))
            .sum();
        current - added + removed
    }

    fn scale_up_limit(&self, now: Timestamp, current: i64) -> i64 {
        let rules = &self.spec.scale_up;
        if rules.select == Select::Disabled || rules.policies.is_empty() {
            return current;
        }
        let proposals = rules.policies.iter().map(|p| {
            let start = self.period_start(now, current, p.period);
            match p.amount {
                PolicyAmount::Instances(n) => start + i64::from(n),
                PolicyAmount::Percent(pct) => {
                    (start as f64 * (1.0 + f64::from(pct) / 100.0)).ceil() as i64
                }
            }
        });
        match rules.select {
            Select::Min => proposals.min().unwrap_or(current),
            _ => proposals.max().unwrap_or(current),
        }
    }

    fn scale_down_limit(&self, now: Timestamp, current: i64) -> i64 {
        let rules = &self.spec.scale_down;
        if rules.select == Select::Disabled || rules.policies.is_empty() {
            return current;
        }
        let proposals = rules.policies.iter().map(|p| {
            let start = self.period_start(now, current, p.period);
            match p.amount {
                PolicyAmount::Instances(n) => start - i64::from(n),
                // Truncated, as the HPA does: 80 × 0.9 = 72, 72 × 0.9 = 64.8 → 64.
                PolicyAmount::Percent(pct) => {
                    (start as f64 * (1.0 - f64::from(pct) / 100.0)) as i64
                }
            }
        });
        match rules.select {
            // The smallest change down is the highest count.
            Select::Min => proposals.max().unwrap_or(current),
            _ => proposals.min().unwrap_or(current),
        }
    }

    /// Records a size change that was carried out (`storeScaleEvent`).
    pub fn applied(&mut self, now: Timestamp, from: u32, to: u32) {
        let oldest = cutoff(now, self.spec.longest_period());
        self.up_events.retain(|e| e.at > oldest);
        self.down_events.retain(|e| e.at > oldest);
        if to > from {
            self.up_events.push(Stamped {
                at: now,
                value: to - from,
            });
        } else if to < from {
            self.down_events.push(Stamped {
                at: now,
                value: from - to,
            });
        }
    }
}

fn cutoff(now: Timestamp, window: Duration) -> Timestamp {
    Timestamp(now.0.saturating_sub(window.as_millis() as u64))
}

fn max_limit(bounds: &Bounds) -> Limit {
    if bounds
        .budget_max
        .is_some_and(|b| b < bounds.max && b >= bounds.min)
        && bounds.effective_max < bounds.max
    {
        Limit::Budget
    } else {
        Limit::Max
    }
}

fn min_limit(bounds: &Bounds) -> Limit {
    if bounds.effective_min > bounds.min
        && bounds.weight_min == Some(bounds.effective_min)
        && bounds.operator_min.is_none_or(|o| o < bounds.effective_min)
    {
        Limit::CanaryWeight
    } else if bounds.operator_min.is_some_and(|o| o > bounds.min)
        && bounds.effective_min > bounds.min
    {
        Limit::OperatorMin
    } else {
        Limit::Min
    }
}

fn limit_words(limit: Limit) -> &'static str {
    match limit {
        Limit::Max => "maximum",
        Limit::Min => "minimum",
        Limit::Budget => "budget's maximum (max_cost_per_hour / cost_per_instance_hour)",
        Limit::OperatorMin => "operator's temporary minimum",
        Limit::CanaryWeight => "canary's share of the traffic",
        Limit::ScaleUpRate => "the scale-up policy",
        Limit::ScaleDownRate => "the scale-down policy",
        Limit::ScaleDownStabilization => "scale-down stabilisation",
        Limit::ScaleUpStabilization => "scale-up stabilisation",
    }
}

fn words(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}
