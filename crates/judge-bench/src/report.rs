//! Summaries of the runs and the markdown table the benchmark prints.

use serde::Serialize;

use crate::run::{RolloutEnd, Times};
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
    /// (contestant label, summary), in the benchmark's contestant order.
    pub judges: Vec<(String, JudgeSummary)>,
}

impl ScenarioSummary {
    pub fn new(scenario: Scenario, labels: &[String], times: &[Times]) -> Self {
        Self {
            scenario,
            judges: labels
                .iter()
                .cloned()
                .zip(times.iter().map(|t| JudgeSummary::from_times(t)))
                .collect(),
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
    let Some(first) = summaries.first() else {
        return out;
    };
    out.push_str("| scenario | truth |");
    for (label, _) in &first.judges {
        out.push_str(&format!(" {label}: rolled back | median | p95 |"));
    }
    out.push('\n');
    out.push_str("|---|---|");
    out.push_str(&"---|---|---|".repeat(first.judges.len()));
    out.push('\n');
    for s in summaries {
        let truth = match s.scenario.truth {
            Truth::Healthy => "healthy",
            Truth::Regressed => "regressed",
        };
        out.push_str(&format!("| {} | {truth} |", s.scenario.name));
        for (_, j) in &s.judges {
            out.push_str(&format!(
                " {} | {} | {} |",
                rate(j),
                secs(j.median_secs),
                secs(j.p95_secs)
            ));
        }
        out.push('\n');
    }
    out
}

/// How whole rollouts of one scenario ended, per contestant.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutSummary {
    pub scenario: Scenario,
    /// (contestant label, promoted, rolled back, stopped at the deadline) in runs.
    pub judges: Vec<(String, u64, u64, u64)>,
}

impl RolloutSummary {
    pub fn new(scenario: Scenario, labels: &[String], ends: &[Vec<RolloutEnd>]) -> Self {
        let count =
            |e: &[RolloutEnd], want: RolloutEnd| e.iter().filter(|&&x| x == want).count() as u64;
        Self {
            scenario,
            judges: labels
                .iter()
                .zip(ends)
                .map(|(l, e)| {
                    (
                        l.clone(),
                        count(e, RolloutEnd::Promoted),
                        count(e, RolloutEnd::RolledBack),
                        count(e, RolloutEnd::Deadline),
                    )
                })
                .collect(),
        }
    }
}

pub fn rollout_markdown(summaries: &[RolloutSummary]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | truth | judge | promoted | rolled back | held to the deadline |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for s in summaries {
        let truth = match s.scenario.truth {
            Truth::Healthy => "healthy",
            Truth::Regressed => "regressed",
        };
        for (label, promoted, rolled_back, deadline) in &s.judges {
            let runs = (promoted + rolled_back + deadline).max(1) as f64;
            let pct = |n: u64| format!("{:.1}% ({n})", 100.0 * n as f64 / runs);
            out.push_str(&format!(
                "| {} | {truth} | {label} | {} | {} | {} |\n",
                s.scenario.name,
                pct(*promoted),
                pct(*rolled_back),
                pct(*deadline)
            ));
        }
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
