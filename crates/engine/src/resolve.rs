//! Host names in static upstream addresses: resolved at start (a name that does not
//! resolve stops the start with an error naming it), again every `resolve_every`
//! for the stable set (a changed set is routed through the service's routing
//! writer; a name that stops resolving keeps the last good addresses and is audited),
//! and at each deploy for the configured canary set.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use rampart_config::{BackendConfig, ServiceConfig, UpstreamAddress};
use rampart_store::NewAuditEvent;

use crate::error::EngineError;
use crate::service::ServiceRuntime;
use crate::shared::{SYSTEM_ACTOR, Shared};

/// Turns addresses into socket addresses: [`resolve`] (the system resolver), or a
/// test's stand-in whose answers change on cue.
pub(crate) type Resolver = Arc<
    dyn Fn(
            Vec<UpstreamAddress>,
        ) -> Pin<Box<dyn Future<Output = Result<Vec<SocketAddr>, String>> + Send>>
        + Send
        + Sync,
>;

/// The system resolver.
pub(crate) fn system() -> Resolver {
    Arc::new(|addresses: Vec<UpstreamAddress>| Box::pin(async move { resolve(&addresses).await }))
}

/// Every address, names through the system resolver; in order, without repeats.
pub(crate) async fn resolve(addresses: &[UpstreamAddress]) -> Result<Vec<SocketAddr>, String> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for address in addresses {
        let found: Vec<SocketAddr> = match address {
            UpstreamAddress::Ip(addr) => vec![*addr],
            UpstreamAddress::Name { host, port } => {
                let mut found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("`{address}` does not resolve: {e}"))?
                    .collect();
                // The resolver's order varies between lookups; sorted, an unchanged
                // set compares equal.
                found.sort();
                if found.is_empty() {
                    return Err(format!("`{address}` resolves to no address"));
                }
                found
            }
        };
        for addr in found {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

/// The service's config with the static backend's host names replaced by what they
/// resolve to now: what the backend and the first routing table are built from.
pub(crate) async fn resolved_service(
    service: &ServiceConfig,
    resolver: &Resolver,
) -> Result<ServiceConfig, EngineError> {
    let BackendConfig::Static(upstreams) = &service.backend else {
        return Ok(service.clone());
    };
    if !upstreams
        .stable
        .iter()
        .chain(&upstreams.canary)
        .any(UpstreamAddress::is_name)
    {
        return Ok(service.clone());
    }
    let name = &service.name;
    let failed = |list: &str, e: String| {
        EngineError::InvalidRequest(format!(
            "service `{name}`: backend.{list}: {e}; fix the name or write the IP address in the config"
        ))
    };
    let stable = resolver(upstreams.stable.clone())
        .await
        .map_err(|e| failed("stable", e))?;
    let canary = resolver(upstreams.canary.clone())
        .await
        .map_err(|e| failed("canary", e))?;
    let mut resolved = upstreams.clone();
    resolved.stable = stable.into_iter().map(UpstreamAddress::Ip).collect();
    resolved.canary = canary.into_iter().map(UpstreamAddress::Ip).collect();
    let mut service = service.clone();
    service.backend = BackendConfig::Static(resolved);
    Ok(service)
}

/// Resolves the stable set's names every `resolve_every` while the configured stable
/// version serves, for the life of the engine.
pub(crate) async fn watch_stable_names(shared: Arc<Shared>, svc: Arc<ServiceRuntime>) {
    let BackendConfig::Static(upstreams) = &svc.config().backend else {
        return;
    };
    if !upstreams.stable.iter().any(UpstreamAddress::is_name) {
        return;
    }
    let mut every = tokio::time::interval(upstreams.resolve_every.get());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: start already resolved.
    every.tick().await;
    let mut failing = false;
    loop {
        every.tick().await;
        let version = &upstreams.stable_version;
        if svc.stable().version != *version {
            // A deployed version serves; its addresses came with its deploy.
            continue;
        }
        match (shared.resolver)(upstreams.stable.clone()).await {
            Ok(addrs) => {
                if failing {
                    failing = false;
                    audit(
                        &shared,
                        &svc,
                        "upstreams.resolved",
                        serde_json::json!({
                            "addresses": addrs, "reason": "the stable upstream names resolve again",
                        }),
                    )
                    .await;
                }
                let before = svc.stable().addresses;
                match svc.stable_instances_changed(version, addrs.clone()) {
                    Ok(true) => {
                        tracing::info!(service = %svc.name(), ?before, after = ?addrs, "stable upstream names resolve to a new set; routed");
                        audit(
                            &shared,
                            &svc,
                            "upstreams.changed",
                            serde_json::json!({
                                "before": before, "after": addrs,
                            }),
                        )
                        .await;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(service = %svc.name(), error = %e, "the router refused the re-resolved stable set; trying again at the next resolution")
                    }
                }
            }
            Err(e) => {
                // Keep routing to the last good addresses.
                tracing::warn!(service = %svc.name(), error = %e, "a stable upstream name no longer resolves; keeping the last good addresses");
                if !failing {
                    failing = true;
                    audit(
                        &shared,
                        &svc,
                        "upstreams.unresolved",
                        serde_json::json!({
                            "error": e,
                            "kept": svc.stable().addresses,
                        }),
                    )
                    .await;
                }
            }
        }
    }
}

async fn audit(shared: &Shared, svc: &ServiceRuntime, action: &str, details: serde_json::Value) {
    let entry = NewAuditEvent {
        actor: SYSTEM_ACTOR.into(),
        action: action.into(),
        subject: format!("service/{}", svc.name()),
        details,
    };
    if let Err(e) = shared.store.write(move |tx| tx.append_audit(&entry)).await {
        tracing::error!(error = %e, "cannot audit a change of resolved upstreams");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    use crate::engine::{Engine, Parts};
    use crate::fault_injection::TokioClock;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    type Answer = Arc<Mutex<Result<Vec<SocketAddr>, String>>>;

    /// An engine with one static service whose stable upstream is the name
    /// `app.internal:9001`, resolved by `answer` every second.
    async fn engine(
        answer: &Answer,
    ) -> Result<(Engine, rampart_store::Store, tempfile::TempDir), EngineError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[[service]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\n[service.backend]\nkind = \"static\"\nstable = [\"app.internal:9001\"]\nresolve_every = \"1s\"\n",
            data.display()
        );
        let config = rampart_config::parse(&toml, "test.toml").expect("valid config");
        let store = rampart_store::Store::open(&data).expect("store");
        let answer = answer.clone();
        let parts = Parts {
            resolver: Arc::new(move |_| {
                let reply = answer.lock().expect("answer").clone();
                Box::pin(async move { reply })
            }),
            ..Parts::real(rampart_backends::ProcessOptions::default())
        };
        let engine = Engine::start_with(
            &config,
            store.clone(),
            Arc::new(TokioClock::new()),
            dir.path().to_path_buf(),
            parts,
        )
        .await?;
        Ok((engine, store, dir))
    }

    async fn audited(store: &rampart_store::Store, action: &str) -> usize {
        let action = action.to_string();
        store
            .read(move |tx| {
                tx.list_audit(&rampart_store::AuditQuery {
                    action: Some(action),
                    ..Default::default()
                })
            })
            .await
            .expect("audit")
            .len()
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_set_is_routed_and_a_name_that_stops_resolving_keeps_the_last_good_one() {
        let answer: Answer = Arc::new(Mutex::new(Ok(vec![at(9001)])));
        let (engine, store, _dir) = engine(&answer).await.expect("engine starts");
        let svc = engine.runtime("web").expect("service").clone();
        assert_eq!(svc.table().stable.instances, vec![at(9001)]);

        *answer.lock().expect("answer") = Ok(vec![at(9001), at(9002)]);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(svc.table().stable.instances, vec![at(9001), at(9002)]);
        assert_eq!(svc.stable().addresses, vec![at(9001), at(9002)]);
        assert_eq!(audited(&store, "upstreams.changed").await, 1);

        *answer.lock().expect("answer") =
            Err("`app.internal:9001` does not resolve: no such host".into());
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(
            svc.table().stable.instances,
            vec![at(9001), at(9002)],
            "the last good addresses stay routed"
        );
        assert_eq!(
            audited(&store, "upstreams.unresolved").await,
            1,
            "audited once, not every look"
        );

        *answer.lock().expect("answer") = Ok(vec![at(9003)]);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(svc.table().stable.instances, vec![at(9003)]);
        assert_eq!(audited(&store, "upstreams.resolved").await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_that_does_not_resolve_at_start_stops_the_start() {
        let answer: Answer = Arc::new(Mutex::new(Err(
            "`app.internal:9001` does not resolve: no such host".into(),
        )));
        let Err(error) = engine(&answer).await else {
            panic!("the engine started with an unresolvable upstream");
        };
        let text = error.to_string();
        assert!(
            text.contains("service `web`: backend.stable: `app.internal:9001` does not resolve"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback_and_ips_stay_as_written() {
        let addresses: Vec<UpstreamAddress> =
            ["localhost:8081", "127.0.0.1:8082", "127.0.0.1:8082"]
                .iter()
                .map(|a| UpstreamAddress::parse(a).unwrap())
                .collect();
        let resolved = resolve(&addresses).await.unwrap();
        assert!(
            resolved
                .iter()
                .any(|a| *a == SocketAddr::from(([127, 0, 0, 1], 8081))),
            "{resolved:?}"
        );
        assert!(
            resolved.iter().all(|a| a.ip().is_loopback()),
            "{resolved:?}"
        );
        // Repeats are dropped.
        assert_eq!(resolved.iter().filter(|a| a.port() == 8082).count(), 1);
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_named_in_the_error() {
        // `.invalid` never resolves (RFC 2606).
        let addresses = [UpstreamAddress::parse("nowhere.invalid:80").unwrap()];
        let error = resolve(&addresses).await.unwrap_err();
        assert!(
            error.contains("`nowhere.invalid:80` does not resolve"),
            "{error}"
        );
    }
}
