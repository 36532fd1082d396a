//! Summaries of the runs and the markdown table the benchmark prints.

use serde::Serialize;

use crate::run::Outcomes;
use crate::scenario::{Scenario, Truth};

#[derive(Debug, Clone, Serialize)]
pub struct JudgeSummary {
    pub runs: u64,
    pub rolled_back: u64,
    /// Share of runs rolled back, with a 95 % Wilson interval.
    pub rollback_rate: f64,
    pub rollback_rate_95: (f64, f64),
    /// Seconds by which half / 95 % of runs were rolled back; `None` = never within
    /// the scenario's duration.
    pub median_secs: Option<u64>,
    pub p95_secs: Option<u64>,
}

impl JudgeSummary {
    pub fn from_times(times: &[Option<u64>]) -> Self {
        let runs = times.len() as u64;
        let mut sorted: Vec<u64> = times.iter().map(|t| t.unwrap_or(u64::MAX)).collect();
        sorted.sort_unstable();
        let at = |q: f64| {
            if sorted.is_empty() {
                return None;
            }
            let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            (sorted[idx] != u64::MAX).then_some(sorted[idx])
        };
        let rolled_back = times.iter().filter(|t| t.is_some()).count() as u64;
        Self {
            runs,
            rolled_back,
            rollback_rate: rolled_back as f64 / runs.max(1) as f64,
            rollback_rate_95: rampart_core::judge::wilson_interval(rolled_back, runs, 1.96),
            median_secs: at(0.5),
            p95_secs: at(0.95),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioSummary {
    pub scenario: Scenario,
    pub sequential: JudgeSummary,
    pub threshold: JudgeSummary,
}

impl ScenarioSummary {
    pub fn new(scenario: Scenario, outcomes: &Outcomes) -> Self {
        Self {
            scenario,
            sequential: JudgeSummary::from_times(&outcomes.sequential),
            threshold: JudgeSummary::from_times(&outcomes.threshold),
        }
    }
}

fn secs(s: Option<u64>) -> String {
    s.map_or_else(|| "never".to_string(), |s| format!("{s} s"))
}

fn rate(j: &JudgeSummary) -> String {
    format!(
        "{:.1}% ({}/{}; 95% CI {:.1}–{:.1}%)",
        100.0 * j.rollback_rate,
        j.rolled_back,
        j.runs,
        100.0 * j.rollback_rate_95.0,
        100.0 * j.rollback_rate_95.1
    )
}

pub fn markdown(summaries: &[ScenarioSummary]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | truth | sequential: rolled back | median | p95 | threshold (Flagger default): rolled back | median | p95 |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for s in summaries {
        let truth = match s.scenario.truth {
            Truth::Healthy => "healthy",
            Truth::Regressed => "regressed",
        };
        out.push_str(&format!(
            "| {} | {truth} | {} | {} | {} | {} | {} | {} |\n",
            s.scenario.name,
            rate(&s.sequential),
            secs(s.sequential.median_secs),
            secs(s.sequential.p95_secs),
            rate(&s.threshold),
            secs(s.threshold.median_secs),
            secs(s.threshold.p95_secs),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_counts_as_later_than_any_time() {
        let s = JudgeSummary::from_times(&[Some(10), Some(20), None, None]);
        assert_eq!(s.rolled_back, 2);
        assert_eq!(s.median_secs, Some(20));
        assert_eq!(s.p95_secs, None);
        let all = JudgeSummary::from_times(&(1..=100).map(Some).collect::<Vec<_>>());
        assert_eq!((all.median_secs, all.p95_secs), (Some(50), Some(95)));
    }
}
