//! Predictive scaling: additive Holt-Winters with a daily season over 1-minute
//! history, and what its forecast asks for over the lead time.
//!
//! Like AWS predictive scaling: at least a day of history (else reactive only, said
//! so), the forecast only ever adds instances, and it looks ahead far enough to cover
//! instance start-up.

use serde::{Deserialize, Serialize};

use super::metrics::ceil;
use super::spec::MetricKind;

/// One day of 1-minute steps.
pub const DAILY_SEASON: usize = 1440;

/// Smoothing factors of one fitted model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Smoothing {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
}

/// A fitted additive Holt-Winters model, ready to forecast from the end of its
/// history.
#[derive(Debug, Clone, PartialEq)]
pub struct HoltWinters {
    pub smoothing: Smoothing,
    level: f64,
    trend: f64,
    seasonals: Vec<f64>,
    /// Index of the next step, for the seasonal phase.
    next: usize,
    /// Root mean squared one-step error over the fitted history.
    pub rmse: f64,
}

const ALPHAS: [f64; 4] = [0.05, 0.1, 0.2, 0.4];
const BETAS: [f64; 3] = [0.0, 0.005, 0.02];
const GAMMAS: [f64; 3] = [0.05, 0.15, 0.3];

impl HoltWinters {
    /// Fits on `history` (one value per step, oldest first) with a season of
    /// `season` steps, picking the smoothing factors with the least one-step error
    /// from a small grid. Needs at least one full season.
    pub fn fit(history: &[f64], season: usize) -> Option<Self> {
        if season == 0 || history.len() < season {
            return None;
        }
        let mut best: Option<HoltWinters> = None;
        for alpha in ALPHAS {
            for beta in BETAS {
                for gamma in GAMMAS {
                    let model = Self::run(history, season, Smoothing { alpha, beta, gamma });
                    if best.as_ref().is_none_or(|b| model.rmse < b.rmse) {
                        best = Some(model);
                    }
                }
            }
        }
        best
    }

    /// Runs the recurrences with given factors: level and seasonals from the first
    /// season, trend from the first two seasons' means (0 with only one).
    pub fn run(history: &[f64], season: usize, smoothing: Smoothing) -> Self {
        let first = &history[..season];
        let first_mean = first.iter().sum::<f64>() / season as f64;
        let trend = if history.len() >= 2 * season {
            let second_mean = history[season..2 * season].iter().sum::<f64>() / season as f64;
            (second_mean - first_mean) / season as f64
        } else {
            0.0
        };
        let mut model = HoltWinters {
            smoothing,
            level: first_mean,
            trend,
            seasonals: first.iter().map(|x| x - first_mean).collect(),
            next: season,
            rmse: 0.0,
        };
        let Smoothing { alpha, beta, gamma } = smoothing;
        let mut squared = 0.0;
        for (t, &x) in history.iter().enumerate().skip(season) {
            let phase = t % season;
            let seasonal = model.seasonals[phase];
            let predicted = model.level + model.trend + seasonal;
            squared += (x - predicted).powi(2);
            let level = alpha * (x - seasonal) + (1.0 - alpha) * (model.level + model.trend);
            model.trend = beta * (level - model.level) + (1.0 - beta) * model.trend;
            model.level = level;
            model.seasonals[phase] = gamma * (x - level) + (1.0 - gamma) * seasonal;
        }
        model.next = history.len();
        let steps = history.len() - season;
        model.rmse = if steps > 0 {
            (squared / steps as f64).sqrt()
        } else {
            f64::INFINITY
        };
        model
    }

    /// The value `h` steps after the last one of the history (h ≥ 1).
    pub fn forecast(&self, h: usize) -> f64 {
        let season = self.seasonals.len();
        let phase = (self.next + h - 1) % season;
        self.level + h as f64 * self.trend + self.seasonals[phase]
    }
}

/// Fills gaps (minutes without a reading): the value a season earlier when there is
/// one, else the last value before, else the first after.
pub fn fill_gaps(history: &[Option<f64>], season: usize) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::with_capacity(history.len());
    let first = history.iter().flatten().next().copied().unwrap_or(0.0);
    for (t, value) in history.iter().enumerate() {
        let v = match value {
            Some(v) => *v,
            None if t >= season => out[t - season],
            None => out.last().copied().unwrap_or(first),
        };
        out.push(v);
    }
    out
}

/// What the forecast asks for, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastOutcome {
    /// Instances needed for the highest forecast load within the lead time; `None`
    /// when there is no usable forecast (then the decision is reactive only).
    pub instances: Option<u32>,
    /// The metric whose forecast asks for the most.
    pub metric: Option<MetricKind>,
    /// That metric's highest forecast total load within the lead time.
    pub peak_load: Option<f64>,
    pub lead_minutes: u32,
    /// Minutes of history the forecast used.
    pub history_minutes: u32,
    pub note: String,
}

/// One metric's per-minute history of total load (total CPU percent over the
/// version's instances, or total requests per second), oldest first, ending at the
/// current minute.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadHistory {
    pub metric: MetricKind,
    /// The target per instance.
    pub target: f64,
    pub minutes: Vec<Option<f64>>,
}

/// At least this much history before forecasting (AWS predictive scaling: 24 h).
pub const MIN_HISTORY_MINUTES: usize = DAILY_SEASON;

/// Forecasts each metric's load over the next `lead_minutes` and asks for enough
/// instances to carry the highest of them at the target.
pub fn forecast_instances(
    histories: &[LoadHistory],
    lead_minutes: u32,
    season: usize,
) -> ForecastOutcome {
    let lead = lead_minutes.max(1);
    let mut best: Option<(u32, MetricKind, f64)> = None;
    let mut history_minutes = 0;
    let mut short = Vec::new();
    for history in histories {
        let known = history.minutes.iter().filter(|m| m.is_some()).count();
        history_minutes = history_minutes.max(history.minutes.len() as u32);
        if history.minutes.len() < MIN_HISTORY_MINUTES.max(season) || known < season / 2 {
            short.push(format!(
                "{} has {} of the {} minutes of history needed",
                history.metric.as_str(),
                known,
                MIN_HISTORY_MINUTES.max(season)
            ));
            continue;
        }
        let filled = fill_gaps(&history.minutes, season);
        let Some(model) = HoltWinters::fit(&filled, season) else {
            continue;
        };
        let peak = (1..=lead as usize)
            .map(|h| model.forecast(h))
            .fold(f64::NEG_INFINITY, f64::max)
            .max(0.0);
        let instances = ceil(peak / history.target).max(1);
        if best.is_none_or(|(n, _, _)| instances > n) {
            best = Some((instances, history.metric, peak));
        }
    }
    match best {
        Some((instances, metric, peak)) => ForecastOutcome {
            instances: Some(instances),
            metric: Some(metric),
            peak_load: Some(peak),
            lead_minutes: lead,
            history_minutes,
            note: format!(
                "{} forecast to peak at {peak:.1} within {lead} min: ceil({peak:.1} / target) = {instances}",
                metric.as_str()
            ),
        },
        None => ForecastOutcome {
            instances: None,
            metric: None,
            peak_load: None,
            lead_minutes: lead,
            history_minutes,
            note: if short.is_empty() {
                "no forecastable target (cpu or rps_per_instance)".into()
            } else {
                format!("not enough history to forecast ({})", short.join("; "))
            },
        },
    }
}
