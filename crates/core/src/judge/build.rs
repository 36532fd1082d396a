//! Building a judge from analysis settings, so the engine creates either kind from
//! configuration values alone.

use serde::{Deserialize, Serialize};

use super::Judge;
use super::sequential::{SequentialJudge, SequentialSettings};
use super::threshold::{ThresholdJudge, ThresholdSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeKind {
    #[default]
    Sequential,
    Threshold,
}

/// The analysis settings of one service, in the units of the configuration file
/// (percentages as 0..=100, latencies in milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSettings {
    pub kind: JudgeKind,
    pub max_error_rate_pct: f64,
    pub min_success_rate_pct: Option<f64>,
    pub max_p95_ms: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub max_latency_regression_pct: f64,
    pub min_requests: u64,
    pub alpha: f64,
    pub allowed_error_increase_pct: f64,
    pub latency_tolerance_pct: f64,
    pub latency_tolerance_ms: f64,
    /// Sequential judge only: pass a step only once a regression beyond the
    /// tolerances is ruled out.
    pub require_confidence: bool,
    pub error_rate_margin_pct: f64,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        let t = ThresholdSettings::default();
        let s = SequentialSettings::default();
        Self {
            kind: JudgeKind::default(),
            max_error_rate_pct: t.max_error_rate_pct,
            min_success_rate_pct: t.min_success_rate_pct,
            max_p95_ms: t.max_p95_ms,
            max_p99_ms: t.max_p99_ms,
            max_latency_regression_pct: t.max_latency_regression_pct,
            min_requests: t.min_requests,
            alpha: s.alpha,
            allowed_error_increase_pct: s.allowed_error_increase_pct,
            latency_tolerance_pct: s.latency_tolerance_pct,
            latency_tolerance_ms: s.latency_tolerance_ms,
            require_confidence: s.require_confidence,
            error_rate_margin_pct: s.error_rate_margin_pct,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("{name} is {value}, allowed: {allowed}")]
    OutOfRange {
        name: &'static str,
        value: f64,
        allowed: &'static str,
    },
}

fn check(
    name: &'static str,
    value: f64,
    ok: bool,
    allowed: &'static str,
) -> Result<(), SettingsError> {
    if ok {
        Ok(())
    } else {
        Err(SettingsError::OutOfRange {
            name,
            value,
            allowed,
        })
    }
}

impl AnalysisSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        let pct = |v: f64| (0.0..=100.0).contains(&v);
        check(
            "alpha",
            self.alpha,
            self.alpha > 0.0 && self.alpha < 1.0,
            "0 < alpha < 1",
        )?;
        check(
            "max_error_rate",
            self.max_error_rate_pct,
            pct(self.max_error_rate_pct),
            "0..=100 percent",
        )?;
        if let Some(v) = self.min_success_rate_pct {
            check("min_success_rate", v, pct(v), "0..=100 percent")?;
        }
        for (name, v) in [
            ("max_p95_ms", self.max_p95_ms),
            ("max_p99_ms", self.max_p99_ms),
        ] {
            if let Some(v) = v {
                check(name, v, v > 0.0, "a positive number of milliseconds")?;
            }
        }
        check(
            "max_latency_regression",
            self.max_latency_regression_pct,
            self.max_latency_regression_pct >= 0.0,
            "a percentage >= 0",
        )?;
        check(
            "allowed_error_increase",
            self.allowed_error_increase_pct,
            self.allowed_error_increase_pct.is_finite() && self.allowed_error_increase_pct >= 0.0,
            "a finite percentage >= 0",
        )?;
        check(
            "latency_tolerance",
            self.latency_tolerance_pct,
            self.latency_tolerance_pct.is_finite() && self.latency_tolerance_pct >= 0.0,
            "a finite percentage >= 0",
        )?;
        check(
            "latency_tolerance_ms",
            self.latency_tolerance_ms,
            self.latency_tolerance_ms.is_finite() && self.latency_tolerance_ms >= 0.0,
            "a finite number of milliseconds >= 0",
        )?;
        check(
            "error_rate_margin",
            self.error_rate_margin_pct,
            pct(self.error_rate_margin_pct),
            "0..=100 percentage points",
        )
    }

    pub fn threshold(&self) -> ThresholdSettings {
        ThresholdSettings {
            max_error_rate_pct: self.max_error_rate_pct,
            min_success_rate_pct: self.min_success_rate_pct,
            max_p95_ms: self.max_p95_ms,
            max_p99_ms: self.max_p99_ms,
            max_latency_regression_pct: self.max_latency_regression_pct,
            min_requests: self.min_requests,
        }
    }

    /// The error-rate ceiling of the sequential judge is the threshold judge's
    /// `max_error_rate`: one number in the configuration for "never this many errors".
    pub fn sequential(&self) -> SequentialSettings {
        SequentialSettings {
            alpha: self.alpha,
            allowed_error_increase_pct: self.allowed_error_increase_pct,
            latency_tolerance_pct: self.latency_tolerance_pct,
            latency_tolerance_ms: self.latency_tolerance_ms,
            error_rate_ceiling_pct: self.max_error_rate_pct,
            min_requests: self.min_requests,
            require_confidence: self.require_confidence,
            error_rate_margin_pct: self.error_rate_margin_pct,
            ..SequentialSettings::default()
        }
    }
}

/// A judge of the configured kind, after checking the settings.
pub fn build_judge(settings: &AnalysisSettings) -> Result<Box<dyn Judge>, SettingsError> {
    settings.validate()?;
    Ok(match settings.kind {
        JudgeKind::Sequential => Box::new(SequentialJudge::new(settings.sequential())),
        JudgeKind::Threshold => Box::new(ThresholdJudge::new(settings.threshold())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_configured_kind() {
        let seq = build_judge(&AnalysisSettings::default()).unwrap();
        assert_eq!(seq.name(), "sequential");
        let thr = build_judge(&AnalysisSettings {
            kind: JudgeKind::Threshold,
            ..AnalysisSettings::default()
        })
        .unwrap();
        assert_eq!(thr.name(), "threshold");
    }

    #[test]
    fn rejects_an_alpha_outside_zero_one_with_a_clear_message() {
        let err = build_judge(&AnalysisSettings {
            alpha: 1.5,
            ..AnalysisSettings::default()
        })
        .err()
        .unwrap();
        assert_eq!(err.to_string(), "alpha is 1.5, allowed: 0 < alpha < 1");
    }
}
