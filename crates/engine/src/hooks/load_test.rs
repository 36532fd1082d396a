//! `kind = "load_test"`: steady requests through the service's own listener while the
//! canary takes traffic, so a service with no users yet still gives the judge
//! evidence (the router splits and measures them like any request). Only pacing is
//! needed here, not `rampart load`'s per-version tallies, so it is its own small loop.

use std::sync::Arc;
use std::time::Duration;

use rampart_config::LoadTestHook;
use rampart_core::rollout::Phase;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::service::ServiceRuntime;
use crate::shared::Shared;

/// Requests in flight at most, per requests-a-second of rate (a slow canary must not
/// make the load test pile up connections).
const IN_FLIGHT_PER_RATE: f64 = 2.0;

pub(super) fn start(
    shared: Arc<Shared>,
    svc: Arc<ServiceRuntime>,
    deployment_id: String,
    hook: LoadTestHook,
) {
    tokio::spawn(async move {
        let client = match super::call::client() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(hook = %hook.name, error = %e, "load test not started");
                return;
            }
        };
        let mut target = svc.router.listen_addr();
        if target.ip().is_unspecified() {
            // Listening on every address: reach it on loopback.
            target.set_ip(match target {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let url = format!("http://{target}{}", hook.path);
        let started = Instant::now();
        let ends = hook.duration.map(|d| started + d.get());
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / hook.rate));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let max_in_flight = ((hook.rate * IN_FLIGHT_PER_RATE).ceil() as usize).max(4);
        let mut in_flight = JoinSet::new();
        let (mut sent, mut failed, mut skipped) = (0u64, 0u64, 0u64);
        tracing::info!(service = %svc.name(), hook = %hook.name, rate = hook.rate, %url, "load test started");
        loop {
            ticker.tick().await;
            if ends.is_some_and(|end| Instant::now() >= end)
                || !canary_takes_traffic(&svc, &deployment_id)
            {
                break;
            }
            while let Some(done) = in_flight.try_join_next() {
                if !matches!(done, Ok(true)) {
                    failed += 1;
                }
            }
            if in_flight.len() >= max_in_flight {
                skipped += 1;
                continue;
            }
            let mut request = client.get(&url).timeout(hook.timeout.get());
            for (key, value) in &hook.headers {
                request = request.header(key, value);
            }
            sent += 1;
            in_flight.spawn(async move {
                request
                    .send()
                    .await
                    .is_ok_and(|r| !r.status().is_server_error())
            });
        }
        in_flight.abort_all();
        let message = format!(
            "load test `{}` stopped after {:.0}s: {sent} requests, {failed} failed, {skipped} skipped (canary too slow)",
            hook.name,
            started.elapsed().as_secs_f64()
        );
        tracing::info!(service = %svc.name(), "{message}");
        let event = rampart_store::NewDeploymentEvent {
            deployment_id,
            kind: "hook".into(),
            message,
            data: serde_json::json!({
                "hook": hook.name,
                "kind": "load_test",
                "sent": sent,
                "failed": failed,
                "skipped": skipped,
            }),
        };
        if let Err(e) = shared
            .store
            .write(move |tx| tx.append_deployment_event(&event).map(|_| ()))
            .await
        {
            tracing::error!(error = %e, "cannot record a load test's outcome");
        }
    });
}

/// The deployment is still the service's rollout and its canary takes traffic.
fn canary_takes_traffic(svc: &ServiceRuntime, deployment_id: &str) -> bool {
    let state = svc.lock();
    let active = state
        .active
        .as_ref()
        .is_some_and(|active| active.id == deployment_id);
    active
        && state.last_record.as_ref().is_some_and(|record| {
            record.id == deployment_id
                && matches!(
                    record.rollout.phase,
                    Phase::Progressing { .. } | Phase::Paused { .. }
                )
        })
}
