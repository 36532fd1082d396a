//! Runs known demand through the real `rampart-core` autoscaler with a simulated
//! clock and reports, per strategy: under-provisioned instance-seconds (fewer ready
//! instances than the demand needs at the 70 % target plus the 10 % tolerance, i.e.
//! busier than 77 %), saturated instance-seconds
//! (fewer than it needs at 100 %), over-provisioned instance-hours, total
//! instance-hours and scaling actions.
//!
//! Demand is in percent of one instance (100 = one instance fully busy). A new
//! instance takes `STARTUP` to become ready. Scenarios: a business-day cycle with
//! noise (measured on day 8, days 1–7 are the predictive mode's history), a sudden
//! ×3 spike, a slow ramp.
//!
//! Usage: rampart-autoscale-bench [--seed N]

use std::time::Duration;

use rampart_core::Timestamp;
use rampart_core::autoscale::forecast::DAILY_SEASON;
use rampart_core::autoscale::{
    AutoscaleSpec, Autoscaler, Extra, InstanceSample, LoadHistory, MetricKind, Mode, Observation,
    Target, forecast_instances,
};

const DAY: u64 = 24 * 3600;
const SYNC: u64 = 15;
const STARTUP: u64 = 45;
const TARGET: f64 = 70.0;
/// The HPA's tolerance: up to 77 % is on target.
const TOLERANCE: f64 = 0.1;
const MIN: u32 = 2;
const MAX: u32 = 40;
const T0_MS: u64 = 1_700_000_000_000 / 86_400_000 * 86_400_000;

/// A small deterministic generator (no dependencies): xorshift64*.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        x as f64 / (1u64 << 53) as f64
    }
}

/// Smooth step from 0 to 1 between `a` and `b`.
fn ramp(x: f64, a: f64, b: f64) -> f64 {
    let t = ((x - a) / (b - a)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// A business day: 200 at night, up to 1,200 from 08:00 to 09:00, a lunch dip,
/// down from 18:00 to 21:00 (hours of the day).
fn business_day(hour: f64) -> f64 {
    200.0 + 1000.0 * ramp(hour, 8.0, 9.0) * (1.0 - ramp(hour, 18.0, 21.0))
        - 250.0 * ramp(hour, 12.0, 12.5) * (1.0 - ramp(hour, 13.0, 13.5))
}

/// Demand per second over a scenario, with multiplicative noise changing every 15 s.
struct Scenario {
    name: &'static str,
    seconds: u64,
    /// Seconds of history before the measured part (fed to the forecaster only).
    history: u64,
    demand: Vec<f64>,
}

fn with_noise(shape: impl Fn(u64) -> f64, seconds: u64, amplitude: f64, seed: u64) -> Vec<f64> {
    let mut noise = Noise(seed.max(1));
    let mut factor = 1.0;
    (0..seconds)
        .map(|t| {
            if t % 15 == 0 {
                factor = 1.0 + (noise.next() * 2.0 - 1.0) * amplitude;
            }
            shape(t) * factor
        })
        .collect()
}

fn scenarios(seed: u64) -> Vec<Scenario> {
    let days = 8;
    vec![
        Scenario {
            name: "daily cycle with noise (day 8 of 8)",
            seconds: DAY,
            history: (days - 1) * DAY,
            demand: with_noise(
                |t| business_day((t % DAY) as f64 / 3600.0),
                days * DAY,
                0.10,
                seed,
            ),
        },
        Scenario {
            name: "sudden ×3 spike (500 → 1,500 for 30 min)",
            seconds: 3 * 3600,
            history: 0,
            demand: with_noise(
                |t| {
                    if (3600..5400).contains(&t) {
                        1500.0
                    } else {
                        500.0
                    }
                },
                3 * 3600,
                0.05,
                seed,
            ),
        },
        Scenario {
            name: "slow ramp (200 → 1,400 over 6 h)",
            seconds: 8 * 3600,
            history: 0,
            demand: with_noise(
                |t| 200.0 + 1200.0 * (t as f64 / (6.0 * 3600.0)).min(1.0),
                8 * 3600,
                0.05,
                seed,
            ),
        },
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Strategy {
    RampartReactive,
    RampartPredictive,
    HpaDefaults,
    OriginalRule,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::RampartReactive => "rampart reactive",
            Strategy::RampartPredictive => "rampart predictive",
            Strategy::HpaDefaults => "HPA defaults",
            Strategy::OriginalRule => "original rule (80 %/80 % up, 20 %/30 % down)",
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    under_instance_seconds: f64,
    saturated_instance_seconds: f64,
    over_instance_seconds: f64,
    instance_seconds: f64,
    actions: u32,
}

/// Instances: the second each becomes ready.
struct Fleet {
    ready_at: Vec<u64>,
}

impl Fleet {
    fn ready(&self, t: u64) -> u32 {
        self.ready_at.iter().filter(|r| **r <= t).count() as u32
    }
    fn resize(&mut self, t: u64, to: u32) {
        let to = to as usize;
        if to > self.ready_at.len() {
            self.ready_at.resize(to, t + STARTUP);
        } else {
            // Not-yet-ready (newest) instances go first.
            self.ready_at.sort_unstable();
            self.ready_at.truncate(to);
        }
    }
}

fn spec(mode: Mode) -> AutoscaleSpec {
    let mut spec = AutoscaleSpec::hpa_defaults(
        MIN,
        MAX,
        vec![Target {
            metric: MetricKind::Cpu,
            value: TARGET,
        }],
    );
    spec.mode = mode;
    spec.lead_time = Duration::from_secs(STARTUP + 2 * SYNC);
    spec
}

fn observation(fleet: &Fleet, t: u64, cpu_per_ready: f64) -> Observation {
    Observation {
        current: fleet.ready_at.len() as u32,
        instances: fleet
            .ready_at
            .iter()
            .enumerate()
            .map(|(i, r)| InstanceSample {
                id: format!("i{i}"),
                ready: *r <= t,
                cpu_percent: Some(if *r <= t { cpu_per_ready } else { 3.0 }),
                memory_mib: None,
            })
            .collect(),
        requests_per_second: None,
        p95_ms: None,
    }
}

fn needed(demand: f64, per_instance: f64) -> f64 {
    (demand / per_instance).ceil()
}

fn simulate(scenario: &Scenario, strategy: Strategy) -> Stats {
    let start = scenario.history;
    let end = scenario.history + scenario.seconds;
    let demand = &scenario.demand;
    let first = needed(demand[start as usize], TARGET).clamp(f64::from(MIN), f64::from(MAX)) as u32;
    let mut fleet = Fleet {
        ready_at: vec![0; first as usize],
    };
    let mode = if strategy == Strategy::RampartPredictive {
        Mode::Predictive
    } else {
        Mode::Reactive
    };
    let mut scaler = Autoscaler::new(spec(mode));
    let mut stats = Stats::default();
    // Per-minute history for the forecaster (the engine stores the same).
    let mut minutes: Vec<Option<f64>> = (0..start / 60)
        .map(|m| {
            let s = (m * 60) as usize;
            Some(demand[s..s + 60].iter().sum::<f64>() / 60.0)
        })
        .collect();
    let mut forecast = None;
    let mut forecast_minute = u64::MAX;
    let mut rule_samples: Vec<(f64, f64)> = Vec::new();
    for t in start..end {
        let d = demand[t as usize];
        let ready = fleet.ready(t);
        let running = fleet.ready_at.len() as f64;
        stats.under_instance_seconds +=
            (needed(d, TARGET * (1.0 + TOLERANCE)) - f64::from(ready)).max(0.0);
        stats.saturated_instance_seconds += (needed(d, 100.0) - f64::from(ready)).max(0.0);
        stats.over_instance_seconds += (running - needed(d, TARGET)).max(0.0);
        stats.instance_seconds += running;
        if t % 60 == 59 && t >= start {
            let s = (t - 59) as usize;
            minutes.push(Some(demand[s..=t as usize].iter().sum::<f64>() / 60.0));
        }
        if t % SYNC != 0 {
            continue;
        }
        let now = Timestamp(T0_MS + t * 1000);
        // What each ready instance shows: rampart reads the latest 5 s collection,
        // the HPA a metrics-server reading of the last 30 s (its resolution and
        // scrape delay).
        let window = if strategy == Strategy::HpaDefaults {
            30
        } else {
            5
        };
        let recent = &demand[(t + 1).saturating_sub(window) as usize..=t as usize];
        let avg_demand = recent.iter().sum::<f64>() / recent.len() as f64;
        let cpu = (avg_demand / f64::from(ready.max(1))).min(100.0);
        let current = fleet.ready_at.len() as u32;
        let desired = match strategy {
            Strategy::OriginalRule => {
                // Memory follows load: 40 % idle, 80 % when CPU is at 80 %.
                rule_samples.push((cpu, (40.0 + cpu / 2.0).min(100.0)));
                if rule_samples.len() > 10 {
                    rule_samples.remove(0);
                }
                let n = rule_samples.len() as f64;
                let avg_cpu = rule_samples.iter().map(|s| s.0).sum::<f64>() / n;
                let avg_mem = rule_samples.iter().map(|s| s.1).sum::<f64>() / n;
                if rule_samples.len() == 10 && avg_cpu > 80.0 && avg_mem > 80.0 {
                    (current + 1).min(MAX)
                } else if rule_samples.len() == 10 && avg_cpu < 20.0 && avg_mem < 30.0 {
                    current.saturating_sub(1).max(MIN)
                } else {
                    current
                }
            }
            _ => {
                let minute = t / 60;
                if mode == Mode::Predictive && minute != forecast_minute {
                    forecast_minute = minute;
                    let keep = minutes.len().saturating_sub(7 * DAILY_SEASON);
                    forecast = Some(forecast_instances(
                        &[LoadHistory {
                            metric: MetricKind::Cpu,
                            target: TARGET,
                            minutes: minutes[keep..].to_vec(),
                        }],
                        (spec(mode).lead_time.as_secs().div_ceil(60) + 1) as u32,
                        DAILY_SEASON,
                    ));
                }
                let extra = Extra {
                    forecast: forecast.clone(),
                    ..Extra::default()
                };
                let decision = scaler.decide(now, &observation(&fleet, t, cpu), &extra);
                if decision.desired != current {
                    scaler.applied(now, current, decision.desired);
                }
                decision.desired
            }
        };
        if desired != current {
            stats.actions += 1;
            fleet.resize(t, desired);
        }
    }
    stats
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seed = 14;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => {
                seed = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                    eprintln!("--seed needs a number");
                    std::process::exit(2)
                })
            }
            "-h" | "--help" => {
                println!(
                    "rampart-autoscale-bench [--seed N]: simulated autoscaling on known demand"
                );
                return;
            }
            other => {
                eprintln!("unknown argument `{other}`; try --help");
                std::process::exit(2);
            }
        }
    }
    println!(
        "instances start in {STARTUP} s; decisions every {SYNC} s; target {TARGET} % CPU; min {MIN}, max {MAX}; seed {seed}\n"
    );
    for scenario in scenarios(seed) {
        println!("### {}\n", scenario.name);
        println!(
            "| strategy | under-provisioned instance-s (> 77 %: target + tolerance) | saturated instance-s (> 100 %) | over-provisioned instance-h | instance-h | actions |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for strategy in [
            Strategy::RampartReactive,
            Strategy::RampartPredictive,
            Strategy::HpaDefaults,
            Strategy::OriginalRule,
        ] {
            let s = simulate(&scenario, strategy);
            println!(
                "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {} |",
                strategy.name(),
                s.under_instance_seconds,
                s.saturated_instance_seconds,
                s.over_instance_seconds / 3600.0,
                s.instance_seconds / 3600.0,
                s.actions
            );
        }
        println!();
    }
}
