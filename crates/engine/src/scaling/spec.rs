//! `[service.autoscale]` as the core autoscaler's spec.

use rampart_config::{
    AutoscaleConfig, AutoscaleMetric, AutoscaleMode, PolicySelect, ScalingRulesConfig,
};
use rampart_core::autoscale::{
    AutoscaleSpec, Behavior, Cost, MetricKind, Mode, Policy, PolicyAmount, Select, Target,
};

pub fn autoscale_spec(config: &AutoscaleConfig) -> AutoscaleSpec {
    let targets = config
        .targets
        .iter()
        .map(|t| Target {
            metric: match t.metric {
                AutoscaleMetric::Cpu => MetricKind::Cpu,
                AutoscaleMetric::MemoryMib => MetricKind::MemoryMib,
                AutoscaleMetric::RpsPerInstance => MetricKind::RpsPerInstance,
                AutoscaleMetric::P95Ms => MetricKind::P95Ms,
            },
            value: t.value,
        })
        .collect();
    let mut spec = AutoscaleSpec::hpa_defaults(config.min.max(1), config.max, targets);
    spec.sync = config.sync.get();
    if let Some(rules) = &config.scale_up {
        spec.scale_up = behavior(rules, spec.scale_up.stabilization);
    }
    if let Some(rules) = &config.scale_down {
        spec.scale_down = behavior(rules, spec.scale_down.stabilization);
    }
    spec.scale_down.stabilization = config.scale_down_stabilization.get();
    spec.scale_up.stabilization = config
        .scale_up_stabilization
        .map(|d| d.get())
        .unwrap_or_default();
    spec.mode = match config.mode {
        AutoscaleMode::Reactive => Mode::Reactive,
        AutoscaleMode::Predictive => Mode::Predictive,
        AutoscaleMode::ForecastOnly => Mode::ForecastOnly,
    };
    spec.lead_time = config.lead_time.get();
    spec.cost = config.cost_per_instance_hour.map(|per_instance_hour| Cost {
        per_instance_hour,
        max_per_hour: config.max_cost_per_hour,
    });
    spec
}

fn behavior(rules: &ScalingRulesConfig, stabilization: std::time::Duration) -> Behavior {
    Behavior {
        policies: rules
            .policies
            .iter()
            .filter_map(|p| {
                let amount = match (p.instances, p.percent) {
                    (Some(n), None) => PolicyAmount::Instances(n),
                    (None, Some(pct)) => PolicyAmount::Percent(pct),
                    _ => return None,
                };
                Some(Policy {
                    amount,
                    period: p.period.get(),
                })
            })
            .collect(),
        select: match rules.select {
            PolicySelect::Max => Select::Max,
            PolicySelect::Min => Select::Min,
            PolicySelect::Disabled => Select::Disabled,
        },
        stabilization,
    }
}
