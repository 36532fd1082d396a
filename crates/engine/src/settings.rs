//! From the configuration's vocabulary to core's: rollout specs and judge settings.

use std::time::Duration;

use rampart_config::{
    DeadlineAction as ConfigDeadline, HookKind, JudgeKind as ConfigJudge, ServiceConfig, StepPause,
    StrategyKind,
};
use rampart_core::judge::{AnalysisSettings, JudgeKind};
use rampart_core::rollout::{
    BlueGreenSpec, DeadlineAction, HookGates, PhaseDeadlines, RolloutSpec, Steering, Step, Strategy,
};

/// The sequential judge is valid however often it looks, so it looks every second:
/// that is what makes it fast. `analysis.interval` paces the threshold judge.
pub const SEQUENTIAL_EVALUATION_INTERVAL: Duration = Duration::from_secs(1);

/// Time a rollback is given beyond the drain grace to stop the canary's instances.
pub const ROLLBACK_STOP_MARGIN: Duration = Duration::from_secs(30);

pub fn rollout_spec(service: &ServiceConfig) -> RolloutSpec {
    let strategy = &service.strategy;
    let analysis_interval = match service.analysis.judge {
        ConfigJudge::Sequential => SEQUENTIAL_EVALUATION_INTERVAL,
        ConfigJudge::Threshold => service.analysis.interval.get(),
    };
    RolloutSpec {
        steps: strategy
            .steps
            .iter()
            .map(|s| Step {
                weight: s.weight,
                hold: s.hold().get(),
                steering: Steering {
                    canary_match: s.route_match.as_ref().and_then(|m| m.to_core()),
                    mirror_percent: s.mirror.unwrap_or(0.0),
                },
                until_promoted: s.pause == Some(StepPause::UntilPromoted),
                approve: s.approve.clone(),
            })
            .collect(),
        analysis_interval,
        progress_deadline: strategy.progress_deadline.get(),
        on_deadline: match strategy.on_deadline {
            ConfigDeadline::Fail => DeadlineAction::Fail,
            ConfigDeadline::Pause => DeadlineAction::Pause,
        },
        failure_limit: strategy.failure_limit,
        scale_down_delay: strategy.scale_down_delay.get(),
        strategy: strategy_of(strategy),
        deadlines: PhaseDeadlines {
            validation: strategy.validation_deadline.get(),
            start: strategy.start_deadline.get(),
            promotion: strategy.promotion_deadline.get(),
            // A rollback waits for the canary's requests to drain: never less than
            // the drain grace plus time to stop it.
            rollback: strategy
                .rollback_deadline
                .get()
                .max(service.router.drain_grace.get() + ROLLBACK_STOP_MARGIN),
        },
        hooks: hook_gates(service),
    }
}

/// The service's `[[service.analysis.metric]]`s, checked (the config check reported
/// every error already; this is the last line of defence).
pub fn metric_specs(
    service: &ServiceConfig,
) -> Result<Vec<rampart_core::analysis::MetricSpec>, String> {
    service
        .analysis
        .metrics
        .iter()
        .map(|metric| metric.spec(service.analysis.interval))
        .collect()
}

fn strategy_of(strategy: &rampart_config::StrategyConfig) -> Strategy {
    match strategy.kind {
        StrategyKind::Canary => Strategy::Canary,
        StrategyKind::BlueGreen => Strategy::BlueGreen(BlueGreenSpec {
            pre_promotion_analysis: strategy
                .pre_promotion_analysis
                .map_or(Duration::ZERO, |d| d.get()),
            auto_promotion_enabled: strategy.auto_promotion_enabled.unwrap_or(true),
            auto_promotion_after: Duration::from_secs(u64::from(
                strategy.auto_promotion_seconds.unwrap_or(0),
            )),
            post_promotion_analysis: strategy
                .post_promotion_analysis
                .map_or(Duration::ZERO, |d| d.get()),
        }),
    }
}

/// The hook points the rollout waits on; confirm hooks that said no are asked again
/// at the shortest of their intervals.
fn hook_gates(service: &ServiceConfig) -> HookGates {
    let has = |kind| service.hooks.iter().any(|h| h.kind() == kind);
    let mut gates = HookGates {
        pre_rollout: has(HookKind::PreRollout),
        confirm_traffic_increase: has(HookKind::ConfirmTrafficIncrease),
        confirm_promotion: has(HookKind::ConfirmPromotion),
        ..HookGates::default()
    };
    if let Some(interval) = service
        .hooks
        .iter()
        .filter_map(|h| h.confirm_interval())
        .map(|i| i.get())
        .min()
    {
        gates.confirm_interval = interval;
    }
    gates
}

pub fn analysis_settings(service: &ServiceConfig) -> AnalysisSettings {
    let a = &service.analysis;
    AnalysisSettings {
        kind: match a.judge {
            ConfigJudge::Sequential => JudgeKind::Sequential,
            ConfigJudge::Threshold => JudgeKind::Threshold,
        },
        max_error_rate_pct: a.max_error_rate,
        min_success_rate_pct: a.min_success_rate,
        max_p95_ms: a.max_p95_ms,
        max_p99_ms: a.max_p99_ms,
        max_latency_regression_pct: a.max_latency_regression,
        min_requests: a.min_requests,
        alpha: a.alpha,
        allowed_error_increase_pct: a.allowed_error_increase,
        latency_tolerance_pct: a.latency_tolerance,
        latency_tolerance_ms: a.latency_tolerance_ms,
        require_confidence: a.require_confidence,
        error_rate_margin_pct: a.error_rate_margin,
    }
}

/// How many canary instances a process-backend rollout starts with: enough that, at
/// the largest step, each canary instance carries no more traffic than each stable
/// instance does (so the judge compares like with like, not a busier canary), at
/// least one, at most full size. Promotion brings it to full size.
pub fn canary_instances(service: &ServiceConfig, full: u32) -> u32 {
    if service.strategy.kind == StrategyKind::BlueGreen {
        // The preview runs at full size unless told otherwise (Argo's
        // previewReplicaCount); the switch scales it to full anyway.
        return service
            .strategy
            .preview_instances
            .unwrap_or(full)
            .clamp(1, full.max(1));
    }
    let max_weight = service
        .strategy
        .steps
        .iter()
        .map(|s| s.weight)
        .fold(0.0_f64, f64::max)
        .clamp(0.0, 100.0);
    let full = full.max(1);
    if max_weight >= 50.0 {
        return full;
    }
    // canary share per instance <= stable share per instance:
    //   w / c <= (100 - w) / full  <=>  c >= full * w / (100 - w)
    let needed = (f64::from(full) * max_weight / (100.0 - max_weight)).ceil() as u32;
    needed.clamp(1, full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service_with_steps(weights: &[f64]) -> ServiceConfig {
        let mut toml = String::from(
            "[[service]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\n[service.backend]\nkind = \"static\"\nstable = [\"127.0.0.1:2\"]\n[service.strategy]\nsteps = [",
        );
        let steps: Vec<String> = weights
            .iter()
            .map(|w| format!("{{ weight = {w}, hold = \"1s\" }}"))
            .collect();
        toml.push_str(&steps.join(", "));
        toml.push_str("]\n");
        rampart_config::parse(&toml, "test.toml")
            .expect("valid config")
            .services
            .remove(0)
    }

    #[test]
    fn the_canary_is_never_busier_per_instance_than_stable() {
        assert_eq!(
            canary_instances(&service_with_steps(&[5.0, 25.0, 50.0]), 2),
            2
        );
        assert_eq!(canary_instances(&service_with_steps(&[10.0, 25.0]), 2), 1);
        assert_eq!(canary_instances(&service_with_steps(&[10.0, 25.0]), 6), 2);
        assert_eq!(canary_instances(&service_with_steps(&[5.0]), 20), 2);
        assert_eq!(canary_instances(&service_with_steps(&[1.0]), 1), 1);
        assert_eq!(canary_instances(&service_with_steps(&[100.0]), 3), 3);
    }
}
