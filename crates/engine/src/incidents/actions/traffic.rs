//! Actions on a service's routing: `shed_load` (a concurrency limit from what the
//! service handled well lately, 503 + Retry-After above it, lifted in steps),
//! `circuit_breaker` (eject failing instances, or a fast 503 when none is healthy)
//! and `isolate_instance` (out of routing, still running, for inspection).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rampart_core::Timestamp;
use rampart_router::{InstanceState, InstanceStatus, RouteTable};
use serde_json::json;

use super::{Context, Done, Undo};
use crate::Engine;

/// How far back "lately" reaches for `shed_load`.
const LOAD_LOOKBACK: Duration = Duration::from_secs(300);
/// Requests in flight counted as handled well while the error rate stayed below this.
const HEALTHY_ERROR_RATE: f64 = 1.0;
/// Default pause between two steps of lifting a shed limit.
const DEFAULT_LIFT_EVERY: Duration = Duration::from_secs(10);

/// Each service's in-flight requests at every tick of the last minutes, with
/// whether it was healthy then.
#[derive(Debug, Default)]
pub(crate) struct LoadHistory {
    samples: Mutex<HashMap<String, VecDeque<LoadSample>>>,
}

/// When, how many requests in flight, and whether the service was healthy then.
type LoadSample = (Timestamp, u64, bool);

impl LoadHistory {
    pub fn record(&self, service: &str, now: Timestamp, in_flight: u64, error_rate: Option<f64>) {
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ring = samples.entry(service.to_string()).or_default();
        ring.push_back((
            now,
            in_flight,
            error_rate.is_none_or(|e| e < HEALTHY_ERROR_RATE),
        ));
        while ring
            .front()
            .is_some_and(|(at, _, _)| now.since(*at) > LOAD_LOOKBACK)
        {
            ring.pop_front();
        }
    }

    /// The concurrency the service handled well lately: the 90th percentile of its
    /// in-flight requests while healthy; without healthy samples, half of now.
    pub fn handled_well(&self, service: &str, current: u64) -> u32 {
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut healthy: Vec<u64> = samples
            .get(service)
            .map(|ring| {
                ring.iter()
                    .filter(|(_, _, ok)| *ok)
                    .map(|(_, n, _)| *n)
                    .collect()
            })
            .unwrap_or_default();
        let level = if healthy.is_empty() {
            current / 2
        } else {
            healthy.sort_unstable();
            healthy[(healthy.len() * 9 / 10).min(healthy.len() - 1)]
        };
        u32::try_from(level.max(1)).unwrap_or(u32::MAX)
    }
}

pub(super) fn shed_load(cx: &Context<'_>) -> Result<Done, String> {
    let mut undo = Vec::new();
    let mut effect = Vec::new();
    for service in &cx.services {
        let Some(svc) = cx.engine.runtime(service) else {
            continue;
        };
        let status = svc.router.status();
        let limit = cx.load.handled_well(service, status.in_flight);
        let previous = status.max_concurrency;
        let limit = previous.map_or(limit, |p| p.min(limit));
        svc.router.set_max_concurrency(Some(limit));
        effect.push(json!({ "service": service, "max_concurrency": limit, "previous": previous, "in_flight": status.in_flight }));
        undo.push(Undo::ShedLoad {
            service: service.clone(),
            previous,
            set: limit,
            lift_every: cx.action.lift_every.map_or(DEFAULT_LIFT_EVERY, |d| d.get()),
        });
    }
    if undo.is_empty() {
        return Err("no service to shed load on".into());
    }
    Ok(Done {
        summary: format!("concurrency limited on {}", cx.services.join(", ")),
        details: json!({ "limits": effect }),
        undo,
    })
}

/// Doubles the limit every `lift_every` until it reaches `previous` (or four
/// doublings without one), then restores `previous`.
pub(super) fn lift_shed_load(
    engine: Engine,
    service: String,
    previous: Option<u32>,
    set: u32,
    lift_every: Duration,
) {
    tokio::spawn(async move {
        let Some(svc) = engine.runtime(&service) else {
            return;
        };
        let mut limit = set;
        for _ in 0..4 {
            tokio::time::sleep(lift_every).await;
            // Someone changed the limit meanwhile (by hand, another incident): theirs.
            if svc.router.status().max_concurrency != Some(limit) {
                return;
            }
            limit = limit.saturating_mul(2);
            if previous.is_some_and(|p| limit >= p) {
                break;
            }
            svc.router.set_max_concurrency(Some(limit));
        }
        if svc.router.status().max_concurrency == Some(limit)
            || previous.is_some_and(|p| limit >= p)
        {
            svc.router.set_max_concurrency(previous);
        }
        tracing::info!(service, ?previous, "shed load lifted");
    });
}

/// An instance the circuit breaker took out, and the set it came from.
#[derive(Debug, Clone)]
pub(crate) struct Ejected {
    pub addr: SocketAddr,
    pub version: String,
    pub canary: bool,
}

fn failing(instance: &InstanceStatus, threshold: u32) -> bool {
    instance.state == InstanceState::Ejected || instance.consecutive_failures >= threshold
}

pub(super) fn circuit_breaker(cx: &Context<'_>) -> Result<Done, String> {
    let mut undo = Vec::new();
    let mut effect = Vec::new();
    for service in &cx.services {
        let Some(svc) = cx.engine.runtime(service) else {
            continue;
        };
        let status = svc.router.status();
        let threshold = svc.config().router.outlier_consecutive_failures.max(2);
        let mut ejected = Vec::new();
        let mut healthy = 0;
        let sets = std::iter::once((&status.stable, false))
            .chain(status.canary.as_ref().map(|c| (c, true)));
        for (set, canary) in sets {
            for instance in &set.instances {
                if failing(instance, threshold) {
                    ejected.push(Ejected {
                        addr: instance.addr,
                        version: set.version.clone(),
                        canary,
                    });
                } else if instance.state == InstanceState::Active {
                    healthy += 1;
                }
            }
        }
        let opened = healthy == 0;
        if opened {
            // None healthy: a fast 503 with Retry-After beats a slow failure.
            svc.router.set_max_concurrency(Some(0));
            ejected.clear();
        } else if !ejected.is_empty() {
            let addrs: Vec<SocketAddr> = ejected.iter().map(|e| e.addr).collect();
            if let Err(e) = svc.router.remove_instances(&addrs) {
                return Err(format!("{service}: {e}"));
            }
        }
        svc.router.set_outlier_detection(true);
        effect.push(json!({
            "service": service,
            "circuit_open": opened,
            "ejected": ejected.iter().map(|e| e.addr.to_string()).collect::<Vec<_>>(),
            "healthy": healthy,
        }));
        undo.push(Undo::CircuitBreaker {
            service: service.clone(),
            previous_limit: status.max_concurrency,
            previous_outlier: status.outlier_detection,
            opened,
            ejected,
        });
    }
    if undo.is_empty() {
        return Err("no service to break the circuit of".into());
    }
    Ok(Done {
        summary: format!("circuit breaker on {}", cx.services.join(", ")),
        details: json!({ "services": effect }),
        undo,
    })
}

/// Closes the circuit: restores the limit and outlier detection, and puts back the
/// ejected instances whose version still serves. Returns the instances put back.
pub(super) fn close_circuit(
    engine: &Engine,
    service: &str,
    previous_limit: Option<u32>,
    previous_outlier: bool,
    opened: bool,
    ejected: &[Ejected],
) -> Vec<String> {
    let Some(svc) = engine.runtime(service) else {
        return Vec::new();
    };
    if opened && svc.router.status().max_concurrency == Some(0) {
        svc.router.set_max_concurrency(previous_limit);
    }
    svc.router.set_outlier_detection(previous_outlier);
    let mut table: RouteTable = svc.router.table();
    let mut restored = Vec::new();
    for e in ejected {
        let set = if e.canary {
            table.canary.as_mut()
        } else {
            Some(&mut table.stable)
        };
        if let Some(set) = set.filter(|s| s.version == e.version && !s.instances.contains(&e.addr))
        {
            set.instances.push(e.addr);
            restored.push(e.addr.to_string());
        }
    }
    if !restored.is_empty() && svc.router.swap(table).is_err() {
        return Vec::new();
    }
    restored
}

pub(super) fn isolate_instance(cx: &Context<'_>) -> Result<Done, String> {
    let mut effect = Vec::new();
    for service in &cx.services {
        let Some(svc) = cx.engine.runtime(service) else {
            continue;
        };
        let status = svc.router.status();
        let candidates = status
            .stable
            .instances
            .iter()
            .chain(status.canary.iter().flat_map(|c| c.instances.iter()));
        let worst = candidates
            .filter(|i| i.state == InstanceState::Ejected || i.consecutive_failures > 0)
            .max_by_key(|i| (i.state == InstanceState::Ejected, i.consecutive_failures));
        let Some(worst) = worst else {
            return Err(format!("{service}: no failing instance to isolate"));
        };
        svc.router
            .remove_instances(&[worst.addr])
            .map_err(|e| format!("{service}: {e}"))?;
        effect.push(json!({ "service": service, "isolated": worst.addr.to_string(), "consecutive_failures": worst.consecutive_failures }));
    }
    Ok(Done {
        summary: "isolated the failing instance (still running, out of routing)".into(),
        details: json!({ "instances": effect }),
        undo: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handled_well_is_the_healthy_ninetieth_percentile() {
        let history = LoadHistory::default();
        for i in 0..100u64 {
            history.record("shop", Timestamp(i * 100), i, Some(0.0));
        }
        history.record("shop", Timestamp(10_000), 500, Some(30.0));
        assert_eq!(history.handled_well("shop", 500), 90);
        assert_eq!(
            history.handled_well("cart", 40),
            20,
            "no history: half of now"
        );
        assert_eq!(history.handled_well("cart", 0), 1, "never zero");
    }
}
