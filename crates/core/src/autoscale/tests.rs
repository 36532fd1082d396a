//! The HPA documentation's worked examples, replayed; stabilisation, policies,
//! missing and not-ready instances, limits, no flapping; the forecaster on a daily
//! cycle.

use std::time::Duration;

use super::*;
use crate::clock::Timestamp;

const T0: u64 = 1_700_000_000_000;

fn at(secs: u64) -> Timestamp {
    Timestamp(T0 + secs * 1000)
}

fn cpu(value: f64) -> Target {
    Target {
        metric: MetricKind::Cpu,
        value,
    }
}

/// `n` ready instances, each at `cpu` percent.
fn observe(n: u32, cpu: f64) -> Observation {
    Observation {
        current: n,
        instances: (0..n)
            .map(|i| InstanceSample {
                id: format!("v1-{i}"),
                ready: true,
                cpu_percent: Some(cpu),
                memory_mib: None,
            })
            .collect(),
        requests_per_second: None,
        p95_ms: None,
    }
}

fn instances(values: &[(bool, Option<f64>)]) -> Observation {
    Observation {
        current: values.len() as u32,
        instances: values
            .iter()
            .enumerate()
            .map(|(i, (ready, cpu))| InstanceSample {
                id: format!("v1-{i}"),
                ready: *ready,
                cpu_percent: *cpu,
                memory_mib: None,
            })
            .collect(),
        requests_per_second: None,
        p95_ms: None,
    }
}

fn scaler(min: u32, max: u32, targets: Vec<Target>) -> Autoscaler {
    Autoscaler::new(AutoscaleSpec::hpa_defaults(min, max, targets))
}

/// Decides and applies, like the engine.
fn step(s: &mut Autoscaler, now: Timestamp, obs: &Observation) -> Decision {
    let d = s.decide(now, obs, &Extra::default());
    s.applied(now, d.current, d.desired);
    d
}

#[test]
fn docs_example_double_at_200m_of_100m_and_halve_at_50m() {
    // "if the current metric value is 200m, and the desired value is 100m, the number
    // of replicas will be doubled ... If the current value is instead 50m, you'll
    // halve the number of replicas."
    let mut s = scaler(1, 100, vec![cpu(100.0)]);
    let up = s.decide(at(0), &observe(4, 200.0), &Extra::default());
    assert_eq!((up.recommendation, up.desired), (Some(8), 8));
    assert_eq!(up.action(), Action::ScaleUp);
    assert_eq!(up.metrics[0].ratio, Some(2.0));

    let mut s = scaler(1, 100, vec![cpu(100.0)]);
    let down = s.decide(at(0), &observe(4, 50.0), &Extra::default());
    // A new scaler remembers the current size for the scale-down window (as the HPA
    // does), so the halving comes once the window has passed.
    assert_eq!((down.recommendation, down.desired), (Some(2), 4));
    let down = s.decide(at(300), &observe(4, 50.0), &Extra::default());
    assert_eq!((down.recommendation, down.desired), (Some(2), 2));
    assert!(
        down.reason.starts_with("scale down 4 → 2"),
        "{}",
        down.reason
    );
}

#[test]
fn docs_example_within_tolerance_nothing_changes() {
    // "the control plane skips any scaling action if the ratio is sufficiently close
    // to 1.0 (within a configurable tolerance, 0.1 by default)".
    let mut s = scaler(1, 100, vec![cpu(100.0)]);
    for load in [91.0, 100.0, 109.0] {
        let d = s.decide(at(0), &observe(10, load), &Extra::default());
        assert_eq!(d.desired, 10, "{load}: {}", d.reason);
        assert!(d.reason.contains("within the tolerance"), "{}", d.reason);
    }
    let d = s.decide(at(0), &observe(10, 112.0), &Extra::default());
    assert_eq!(d.desired, 12);
}

#[test]
fn docs_example_scale_down_policies_80_to_72_to_64_then_pods_policy_below_40() {
    // behavior.scaleDown: Pods 4 / 60 s and Percent 10 / 60 s (selectPolicy Max):
    // "if there are 80 replicas and the target has to be scaled down to 10 replicas
    // then during the first step 8 replicas will be reduced. In the next iteration
    // when the number of replicas is 72, 10% of the pods is 7.2 but the number is
    // rounded up to 8. ... When the number of replicas falls below 40, the first
    // policy (Pods) is applied and 4 replicas will be reduced at a time."
    let mut spec = AutoscaleSpec::hpa_defaults(1, 100, vec![cpu(100.0)]);
    // The example is about policies; the window has long passed.
    spec.scale_down.stabilization = Duration::ZERO;
    spec.scale_down.policies = vec![
        Policy {
            amount: PolicyAmount::Instances(4),
            period: Duration::from_secs(60),
        },
        Policy {
            amount: PolicyAmount::Percent(10),
            period: Duration::from_secs(60),
        },
    ];
    let mut s = Autoscaler::new(spec);
    let mut current = 80;
    let mut sizes = vec![];
    let mut t = 0;
    // The load asks for 10 all along (12.5 % of target on 80).
    while current > 10 {
        let load = 100.0 * 10.0 / f64::from(current);
        let d = step(&mut s, at(t), &observe(current, load));
        assert_eq!(d.recommendation, Some(10));
        if d.desired > 10 {
            assert_eq!(d.limited_by, Some(Limit::ScaleDownRate), "{}", d.reason);
        }
        current = d.desired;
        sizes.push(current);
        t += 60;
    }
    assert_eq!(&sizes[..2], &[72, 64]);
    // 64 → 57 → 51 → 45 → 40 (10 % truncated), then 4 at a time.
    assert_eq!(&sizes[2..6], &[57, 51, 45, 40]);
    assert_eq!(&sizes[6..], &[36, 32, 28, 24, 20, 16, 12, 10]);
}

#[test]
fn within_a_period_the_policy_counts_what_was_already_removed() {
    let mut spec = AutoscaleSpec::hpa_defaults(1, 100, vec![cpu(100.0)]);
    spec.scale_down.policies = vec![Policy {
        amount: PolicyAmount::Instances(4),
        period: Duration::from_secs(60),
    }];
    spec.scale_down.stabilization = Duration::ZERO;
    let mut s = Autoscaler::new(spec);
    let d = step(&mut s, at(0), &observe(20, 10.0));
    assert_eq!(d.desired, 16);
    // 15 s later, same period: 4 already removed, so no more.
    let d = step(&mut s, at(15), &observe(16, 12.5));
    assert_eq!(d.desired, 16, "{}", d.reason);
    assert_eq!(d.limited_by, Some(Limit::ScaleDownRate));
    // After the period, 4 more.
    let d = step(&mut s, at(61), &observe(16, 12.5));
    assert_eq!(d.desired, 12);
}

#[test]
fn default_scale_up_is_4_instances_or_double_per_15s_whichever_is_more() {
    let mut s = scaler(1, 100, vec![cpu(50.0)]);
    // 1 instance at 500 % of a 50 % target asks for 10.
    let d = step(&mut s, at(0), &observe(1, 500.0));
    assert_eq!((d.recommendation, d.desired), (Some(10), 5));
    assert_eq!(d.limited_by, Some(Limit::ScaleUpRate));
    // Same period: no more.
    let d = step(&mut s, at(10), &observe(5, 100.0));
    assert_eq!(d.desired, 5);
    // Next period: 5 → max(5 + 4, 10) = 10.
    let d = step(&mut s, at(16), &observe(5, 100.0));
    assert_eq!(d.desired, 10);
    // At 20, doubling beats +4.
    let mut s = scaler(1, 100, vec![cpu(50.0)]);
    let d = step(&mut s, at(0), &observe(20, 150.0));
    assert_eq!((d.recommendation, d.desired), (Some(60), 40));
}

#[test]
fn select_min_and_disabled() {
    let mut spec = AutoscaleSpec::hpa_defaults(1, 100, vec![cpu(50.0)]);
    spec.scale_up.select = Select::Min;
    let mut s = Autoscaler::new(spec.clone());
    // min(10 + 4, 20) = 14.
    assert_eq!(
        s.decide(at(0), &observe(10, 150.0), &Extra::default())
            .desired,
        14
    );
    spec.scale_up.select = Select::Disabled;
    let mut s = Autoscaler::new(spec.clone());
    let d = s.decide(at(0), &observe(10, 150.0), &Extra::default());
    assert_eq!(d.desired, 10);
    assert_eq!(d.limited_by, Some(Limit::ScaleUpRate));
    spec.scale_down.select = Select::Disabled;
    spec.scale_down.stabilization = Duration::ZERO;
    let mut s = Autoscaler::new(spec);
    assert_eq!(
        s.decide(at(0), &observe(10, 5.0), &Extra::default())
            .desired,
        10
    );
}

#[test]
fn scale_down_waits_for_the_highest_recommendation_of_the_last_5_minutes() {
    let mut s = scaler(1, 100, vec![cpu(50.0)]);
    // Busy: 10 instances are right.
    assert_eq!(step(&mut s, at(0), &observe(10, 50.0)).desired, 10);
    // The load halves: 5 would do, but the window remembers 10.
    let mut t = 15;
    while t < 300 {
        let d = step(&mut s, at(t), &observe(10, 25.0));
        assert_eq!(d.recommendation, Some(5));
        assert_eq!(d.desired, 10, "at {t}s: {}", d.reason);
        assert_eq!(d.limited_by, Some(Limit::ScaleDownStabilization));
        assert!(
            d.reason
                .contains("highest recommendation of the last 5 min"),
            "{}",
            d.reason
        );
        t += 15;
    }
    // Once the recommendation of 10 is older than 300 s, down it goes.
    let d = step(&mut s, at(300), &observe(10, 25.0));
    assert_eq!(d.desired, 5, "{}", d.reason);
}

#[test]
fn scale_up_is_immediate_by_default() {
    let mut s = scaler(1, 100, vec![cpu(50.0)]);
    step(&mut s, at(0), &observe(4, 25.0));
    let d = step(&mut s, at(15), &observe(4, 100.0));
    assert_eq!(d.desired, 8);
}

#[test]
fn missing_metrics_count_as_the_target_on_scale_down_and_zero_on_scale_up() {
    let mut s = scaler(1, 100, vec![cpu(70.0)]);
    // Three at 35 % (ratio 0.5), one without a reading: it is assumed at 70 %, so
    // ceil(4 × (35 × 3 + 70) / 4 / 70) = 3, not 2.
    let obs = instances(&[
        (true, Some(35.0)),
        (true, Some(35.0)),
        (true, Some(35.0)),
        (true, None),
    ]);
    let d = s.decide(at(0), &obs, &Extra::default());
    assert_eq!(d.metrics[0].missing, 1);
    assert_eq!(d.recommendation, Some(3), "{}", d.reason);

    // Three at 140 % (ratio 2), one missing assumed idle: ceil(4 × 420 / 4 / 70) = 6.
    let mut s = scaler(1, 100, vec![cpu(70.0)]);
    let obs = instances(&[
        (true, Some(140.0)),
        (true, Some(140.0)),
        (true, Some(140.0)),
        (true, None),
    ]);
    assert_eq!(s.decide(at(0), &obs, &Extra::default()).desired, 6);

    // Slightly high (ratio 1.2) with one missing: 3 × 84 / 4 = 63 → ratio 0.9, the
    // direction reverses, so no scaling.
    let mut s = scaler(1, 100, vec![cpu(70.0)]);
    let obs = instances(&[
        (true, Some(84.0)),
        (true, Some(84.0)),
        (true, Some(84.0)),
        (true, None),
    ]);
    let d = s.decide(at(0), &obs, &Extra::default());
    assert_eq!(d.desired, 4, "{}", d.reason);
}

#[test]
fn not_ready_instances_count_as_zero_on_scale_up() {
    let mut s = scaler(1, 100, vec![cpu(70.0)]);
    // Two ready at 140 %, two still starting: 2 × 140 / 4 = 70 → ratio 1.0, so the
    // starting instances are already the scale-up and nothing more happens.
    let obs = instances(&[
        (true, Some(140.0)),
        (true, Some(140.0)),
        (false, Some(5.0)),
        (false, Some(3.0)),
    ]);
    let d = s.decide(at(0), &obs, &Extra::default());
    assert_eq!(d.metrics[0].not_ready, 2);
    assert_eq!(d.desired, 4, "{}", d.reason);
    // Not ready, low load: they are simply left out of the average.
    let mut s = scaler(1, 100, vec![cpu(70.0)]);
    let obs = instances(&[
        (true, Some(14.0)),
        (true, Some(14.0)),
        (false, None),
        (false, Some(3.0)),
    ]);
    let d = s.decide(at(0), &obs, &Extra::default());
    assert_eq!(d.recommendation, Some(2), "{}", d.reason);
}

#[test]
fn the_largest_metric_wins_and_partial_metrics_never_scale_down() {
    let targets = vec![
        cpu(70.0),
        Target {
            metric: MetricKind::RpsPerInstance,
            value: 100.0,
        },
        Target {
            metric: MetricKind::P95Ms,
            value: 250.0,
        },
    ];
    let mut s = scaler(1, 100, targets.clone());
    let mut obs = observe(4, 35.0);
    obs.requests_per_second = Some(1000.0);
    obs.p95_ms = Some(300.0);
    let d = s.decide(at(0), &obs, &Extra::default());
    let proposals: Vec<Option<u32>> = d.metrics.iter().map(|m| m.proposal).collect();
    // cpu: ceil(4 × 0.5) = 2; rps: ceil(1000 / 100) = 10; p95: ceil(4 × 1.2) = 5.
    assert_eq!(proposals, vec![Some(2), Some(10), Some(5)]);
    assert_eq!(
        d.desired, 8,
        "10 asked, 4 + 4 allowed this period: {}",
        d.reason
    );
    assert!(
        d.reason.contains("rps_per_instance asks for 10"),
        "{}",
        d.reason
    );

    // No requests (no rps, no p95) and low CPU: CPU says down, the others could not be
    // computed, so stay.
    let mut s = scaler(1, 100, targets);
    let obs = observe(4, 10.0);
    let d = s.decide(at(0), &obs, &Extra::default());
    assert_eq!(d.desired, 4, "{}", d.reason);
    assert!(
        d.reason
            .contains("scale-down on partial metrics is skipped"),
        "{}",
        d.reason
    );
}

#[test]
fn min_max_and_the_budget_bound_the_size_and_say_so() {
    let mut s = scaler(2, 6, vec![cpu(50.0)]);
    let d = s.decide(at(0), &observe(4, 200.0), &Extra::default());
    assert_eq!((d.desired, d.limited_by), (6, Some(Limit::Max)));
    let d = s.decide(at(0), &observe(1, 10.0), &Extra::default());
    assert_eq!((d.desired, d.limited_by), (2, Some(Limit::Min)));

    let mut spec = AutoscaleSpec::hpa_defaults(2, 20, vec![cpu(50.0)]);
    spec.cost = Some(Cost {
        per_instance_hour: 0.5,
        max_per_hour: Some(2.6),
    });
    let mut s = Autoscaler::new(spec);
    let d = s.decide(at(0), &observe(4, 100.0), &Extra::default());
    assert_eq!(d.bounds.budget_max, Some(5));
    assert_eq!((d.desired, d.limited_by), (5, Some(Limit::Budget)));
    let cost = d.cost.unwrap();
    assert!(cost.binds);
    assert_eq!((cost.current_per_hour, cost.desired_per_hour), (2.0, 2.5));
    assert!(d.reason.contains("budget"), "{}", d.reason);
}

#[test]
fn an_operator_floor_raises_min_until_lifted() {
    let mut s = scaler(1, 10, vec![cpu(50.0)]);
    let extra = Extra {
        operator_min: Some(5),
        ..Extra::default()
    };
    let d = s.decide(at(0), &observe(2, 10.0), &extra);
    assert_eq!((d.desired, d.limited_by), (5, Some(Limit::OperatorMin)));
    // Never above max.
    let extra = Extra {
        operator_min: Some(50),
        ..Extra::default()
    };
    assert_eq!(s.decide(at(0), &observe(2, 10.0), &extra).desired, 10);
    // A canary's weight floor says so.
    let extra = Extra {
        weight_min: Some(3),
        ..Extra::default()
    };
    let d = s.decide(at(0), &observe(1, 10.0), &extra);
    assert_eq!((d.desired, d.limited_by), (3, Some(Limit::CanaryWeight)));
}

/// A deterministic noise source (no `rand` in core).
fn noise(i: u64, amplitude: f64) -> f64 {
    let x = (i
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 33) as f64
        / f64::from(1u32 << 31);
    (x * 2.0 - 1.0) * amplitude
}

#[test]
fn noisy_load_at_the_target_does_not_flap() {
    // ±9 % noise around the target: always within tolerance, never an action.
    let mut s = scaler(2, 50, vec![cpu(70.0)]);
    let mut current = 10;
    for i in 0..(4 * 240) {
        let d = step(
            &mut s,
            at(i * 15),
            &observe(current, 70.0 * (1.0 + noise(i, 0.09))),
        );
        current = d.desired;
    }
    assert_eq!(current, 10);

    // ±25 % noise on a steady total load of 10 instances' worth: the scaler may add
    // instances on a spike, but never reverses direction within the 5-minute window,
    // and settles no lower than needed.
    let mut s = scaler(2, 50, vec![cpu(70.0)]);
    let mut current: u32 = 10;
    let mut last_change: Option<(u64, Action)> = None;
    let mut actions = 0;
    for i in 0..(4 * 240) {
        let total = 700.0 * (1.0 + noise(i, 0.25));
        let d = step(
            &mut s,
            at(i * 15),
            &observe(current, total / f64::from(current)),
        );
        let action = d.action();
        if action != Action::None {
            actions += 1;
            if let Some((t, previous)) = last_change
                && previous != action
            {
                assert!(
                    i * 15 - t >= 300,
                    "reversed after {} s: {}",
                    i * 15 - t,
                    d.reason
                );
            }
            last_change = Some((i * 15, action));
        }
        current = d.desired;
        assert!(current >= 8, "{}", d.reason);
    }
    // An hour of 15 s syncs: a handful of actions, not dozens.
    assert!(actions <= 8, "{actions} actions");
}

fn daily(minute: usize) -> f64 {
    // Quiet nights, a broad day peak: 100 ± 60 requests per second.
    let phase = (minute % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
    100.0 - 60.0 * phase.cos()
}

#[test]
fn holt_winters_forecasts_a_daily_cycle() {
    let history: Vec<f64> = (0..3 * 1440)
        .map(|m| daily(m) + noise(m as u64, 5.0))
        .collect();
    let model = HoltWinters::fit(&history, 1440).unwrap();
    for h in [1, 30, 60, 180] {
        let want = daily(3 * 1440 + h - 1);
        let got = model.forecast(h);
        assert!(
            (got - want).abs() < 8.0,
            "h={h}: forecast {got:.1}, truth {want:.1}"
        );
    }
    assert!(model.rmse < 6.0, "{}", model.rmse);
}

#[test]
fn the_forecast_asks_for_instances_ahead_of_the_morning_rise() {
    // History ends at 06:00 on day 4; demand rises through the morning.
    let end = 3 * 1440 + 360;
    let minutes: Vec<Option<f64>> = (0..end)
        .map(|m| Some(daily(m) + noise(m as u64, 3.0)))
        .collect();
    let histories = [LoadHistory {
        metric: MetricKind::RpsPerInstance,
        target: 20.0,
        minutes,
    }];
    let outcome = forecast_instances(&histories, 30, 1440);
    let peak = (end..end + 30).map(daily).fold(0.0, f64::max);
    let want = (peak / 20.0).ceil() as u32;
    let got = outcome.instances.unwrap();
    assert!(
        got.abs_diff(want) <= 1,
        "forecast {got}, truth {want}: {}",
        outcome.note
    );
    assert!(got > (daily(end - 1) / 20.0).ceil() as u32 - 1);
}

#[test]
fn too_little_history_means_reactive_only_said_plainly() {
    let histories = [LoadHistory {
        metric: MetricKind::Cpu,
        target: 70.0,
        minutes: vec![Some(100.0); 600],
    }];
    let outcome = forecast_instances(&histories, 5, 1440);
    assert_eq!(outcome.instances, None);
    assert!(
        outcome.note.contains("not enough history"),
        "{}",
        outcome.note
    );

    let mut spec = AutoscaleSpec::hpa_defaults(1, 10, vec![cpu(50.0)]);
    spec.mode = Mode::Predictive;
    let mut s = Autoscaler::new(spec);
    let d = s.decide(
        at(0),
        &observe(4, 50.0),
        &Extra {
            forecast: Some(outcome),
            ..Extra::default()
        },
    );
    assert_eq!(d.desired, 4);
    assert!(
        d.reason.contains("reactive only: not enough history"),
        "{}",
        d.reason
    );
}

fn forecast_of(instances: u32) -> Extra {
    Extra {
        forecast: Some(ForecastOutcome {
            instances: Some(instances),
            metric: Some(MetricKind::Cpu),
            peak_load: Some(f64::from(instances) * 50.0),
            lead_minutes: 5,
            history_minutes: 3 * 1440,
            note: "test".into(),
        }),
        ..Extra::default()
    }
}

#[test]
fn predictive_takes_the_larger_and_never_scales_in_on_a_forecast() {
    let mut spec = AutoscaleSpec::hpa_defaults(1, 20, vec![cpu(50.0)]);
    spec.mode = Mode::Predictive;
    spec.scale_down.stabilization = Duration::ZERO;
    let mut s = Autoscaler::new(spec.clone());
    // Live metrics are at target; the forecast sees 8 coming.
    let d = s.decide(at(0), &observe(4, 50.0), &forecast_of(8));
    assert_eq!((d.recommendation, d.desired), (Some(8), 8));
    assert!(d.reason.contains("the forecast asks for 8"), "{}", d.reason);
    // The forecast falls to 2 while live load is at target: stay (no forecast scale-in).
    let mut s = Autoscaler::new(spec.clone());
    let d = s.decide(at(0), &observe(4, 50.0), &forecast_of(2));
    assert_eq!(d.desired, 4, "{}", d.reason);
    // Forecast only: acts reactively, says what predictive would have done.
    spec.mode = Mode::ForecastOnly;
    let mut s = Autoscaler::new(spec);
    let d = s.decide(at(0), &observe(4, 50.0), &forecast_of(8));
    assert_eq!(d.desired, 4);
    assert!(
        d.reason
            .contains("forecast only: predictive would ask for 8"),
        "{}",
        d.reason
    );
}

#[test]
fn a_decision_serialises_with_its_numbers() {
    let mut s = scaler(1, 10, vec![cpu(50.0)]);
    let d = s.decide(at(0), &observe(2, 100.0), &Extra::default());
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["metrics"][0]["metric"], "cpu");
    assert_eq!(json["metrics"][0]["proposal"], 4);
    assert_eq!(json["desired"], 4);
    assert_eq!(json["mode"], "reactive");
}
