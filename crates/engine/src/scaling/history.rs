//! The load history the predictive mode forecasts from: each minute's mean total CPU
//! (percent of one core, over every instance of the service) and request rate,
//! written to the store so days of it survive a restart, kept for 8 days.

use std::time::Duration;

use rampart_core::Timestamp;
use rampart_core::autoscale::forecast::DAILY_SEASON;
use rampart_core::autoscale::{
    AutoscaleSpec, ForecastOutcome, LoadHistory, MetricKind, forecast_instances,
};
use rampart_store::LoadPoint;
use rampart_telemetry::Latest;

use super::sizing::{CachedHistory, MinuteLoad};
use crate::service::ServiceRuntime;
use crate::shared::Shared;

const MINUTE_MS: u64 = 60_000;
/// Kept history: a week for the daily season's fit plus a day of margin.
pub const HISTORY: Duration = Duration::from_secs(8 * 24 * 3600);
/// Decisions are kept as long.
const DECISIONS_KEPT: Duration = HISTORY;

const CPU: &str = "cpu";
const RPS: &str = "rps";

fn minute_of(at: Timestamp) -> u64 {
    at.0 / MINUTE_MS * MINUTE_MS
}

pub(crate) async fn record_minute(
    shared: &Shared,
    svc: &ServiceRuntime,
    latest: Option<&Latest>,
    window: Duration,
    now: Timestamp,
) {
    let cpu: Option<f64> = latest.map(|l| {
        l.instances
            .iter()
            .filter(|u| u.service == svc.name())
            .filter_map(|u| u.cpu_percent)
            .sum()
    });
    // Arrivals, as the reactive rate: a stall's backlog is no demand to forecast.
    let (stable, canary) = super::observe::sample_arrivals(svc, window, now);
    let rps = (stable + canary) as f64 / window.as_secs().max(1) as f64;
    let minute = minute_of(now);
    let finished = {
        let mut state = svc.sizing.state();
        let open = state.minute.get_or_insert(MinuteLoad {
            start_ms: minute,
            ..MinuteLoad::default()
        });
        let finished = (open.start_ms != minute).then(|| {
            let done = *open;
            *open = MinuteLoad {
                start_ms: minute,
                ..MinuteLoad::default()
            };
            done
        });
        if let Some(cpu) = cpu {
            open.cpu_total += cpu;
            open.cpu_samples += 1;
        }
        open.rps_total += rps;
        open.rps_samples += 1;
        finished
    };
    let Some(done) = finished else {
        return;
    };
    let mut points = Vec::new();
    if done.cpu_samples > 0 {
        points.push((CPU, done.cpu_total / f64::from(done.cpu_samples)));
    }
    if done.rps_samples > 0 {
        points.push((RPS, done.rps_total / f64::from(done.rps_samples)));
    }
    {
        let mut state = svc.sizing.state();
        if let Some(cache) = state.history.as_mut() {
            for (metric, value) in &points {
                let series = if *metric == CPU {
                    &mut cache.cpu
                } else {
                    &mut cache.rps
                };
                series.push((done.start_ms as i64, *value));
                let oldest = done.start_ms.saturating_sub(HISTORY.as_millis() as u64) as i64;
                series.retain(|(m, _)| *m >= oldest);
            }
        }
    }
    let service = svc.name().to_string();
    let prune = (done.start_ms / MINUTE_MS).is_multiple_of(60);
    let before_ms = done.start_ms.saturating_sub(HISTORY.as_millis() as u64) as i64;
    let decisions_before = shared.store.now()
        - chrono::Duration::from_std(DECISIONS_KEPT).unwrap_or(chrono::Duration::days(8));
    let written = shared
        .store
        .write(move |tx| {
            for (metric, value) in &points {
                tx.record_load(
                    &service,
                    metric,
                    LoadPoint {
                        minute_ms: done.start_ms as i64,
                        value: *value,
                    },
                )?;
            }
            if prune {
                tx.prune_autoscale(before_ms, decisions_before)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot record the load history");
    }
}

/// The forecast for the stable set, whose share of the traffic is `share` (1 outside
/// a rollout). Recomputed once a minute; from the store's history at first.
pub(crate) async fn forecast(
    shared: &Shared,
    svc: &ServiceRuntime,
    spec: &AutoscaleSpec,
    now: Timestamp,
    share: f64,
) -> ForecastOutcome {
    let minute = minute_of(now);
    if let Some((at, outcome)) = svc.sizing.state().forecast.clone()
        && at == minute
    {
        return outcome;
    }
    if svc.sizing.state().history.is_none() {
        let service = svc.name().to_string();
        let since = minute.saturating_sub(HISTORY.as_millis() as u64) as i64;
        let loaded = shared
            .store
            .read(move |tx| {
                Ok((
                    tx.load_history(&service, CPU, since)?,
                    tx.load_history(&service, RPS, since)?,
                ))
            })
            .await;
        let (cpu, rps) = loaded.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the load history; forecasting from what this run saw");
            (Vec::new(), Vec::new())
        });
        let pairs =
            |points: Vec<LoadPoint>| points.into_iter().map(|p| (p.minute_ms, p.value)).collect();
        svc.sizing.state().history = Some(CachedHistory {
            cpu: pairs(cpu),
            rps: pairs(rps),
        });
    }
    let share = share.clamp(0.01, 1.0);
    let histories: Vec<LoadHistory> = {
        let state = svc.sizing.state();
        let Some(cache) = state.history.as_ref() else {
            return ForecastOutcome {
                instances: None,
                metric: None,
                peak_load: None,
                lead_minutes: 0,
                history_minutes: 0,
                note: "no load history".into(),
            };
        };
        spec.targets
            .iter()
            .filter(|t| t.metric.forecastable())
            .map(|t| {
                let series = if t.metric == MetricKind::Cpu {
                    &cache.cpu
                } else {
                    &cache.rps
                };
                LoadHistory {
                    metric: t.metric,
                    // The stable set carries `share` of the service's load.
                    target: t.value / share,
                    minutes: by_minute(series, minute),
                }
            })
            .collect()
    };
    let lead = spec.lead_time.as_secs().div_ceil(60) + spec.sync.as_secs().div_ceil(60);
    let outcome = tokio::task::spawn_blocking(move || {
        forecast_instances(&histories, lead as u32, DAILY_SEASON)
    })
    .await
    .unwrap_or_else(|e| ForecastOutcome {
        instances: None,
        metric: None,
        peak_load: None,
        lead_minutes: lead as u32,
        history_minutes: 0,
        note: format!("the forecast failed: {e}"),
    });
    svc.sizing.state().forecast = Some((minute, outcome.clone()));
    outcome
}

/// One slot per minute from the first recorded minute up to (not including) `now_minute`.
fn by_minute(series: &[(i64, f64)], now_minute: u64) -> Vec<Option<f64>> {
    let Some(&(first, _)) = series.first() else {
        return Vec::new();
    };
    let first = first.max(0) as u64;
    if first >= now_minute {
        return Vec::new();
    }
    let len = ((now_minute - first) / MINUTE_MS) as usize;
    let mut out = vec![None; len];
    for &(m, v) in series {
        let m = m.max(0) as u64;
        if m >= first && m < now_minute {
            out[((m - first) / MINUTE_MS) as usize] = Some(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_laid_out_one_slot_a_minute_with_gaps() {
        let series = [(0, 1.0), (60_000, 2.0), (240_000, 5.0)];
        assert_eq!(
            by_minute(&series, 300_000),
            vec![Some(1.0), Some(2.0), None, None, Some(5.0)]
        );
        assert!(by_minute(&[], 300_000).is_empty());
    }
}
