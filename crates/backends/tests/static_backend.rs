//! The static backend checks reachability of upstreams it does not run.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_backends::{
    Backend, BackendError, BackendEventKind, InstanceState, StaticBackend, VersionSpec,
};
use rampart_config::StaticBackendConfig;
use tokio::net::TcpListener;

async fn listening() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

async fn closed_address() -> SocketAddr {
    listening().await.1
}

fn backend(stable: Vec<SocketAddr>, canary: Vec<SocketAddr>) -> StaticBackend {
    StaticBackend::new(
        StaticBackendConfig {
            stable: stable.into_iter().map(Into::into).collect(),
            canary: canary.into_iter().map(Into::into).collect(),
            stable_version: "v1".into(),
            resolve_every: rampart_config::Duration::from_secs(30),
        },
        Duration::from_secs(2),
    )
}

#[tokio::test]
async fn stable_set_from_config_is_known_from_the_start() {
    let (_listener, stable) = listening().await;
    let backend = backend(vec![stable], Vec::new());
    assert_eq!(backend.kind(), "static");
    assert_eq!(backend.versions(), ["v1"]);
    let instances = backend.instances("v1");
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].addr, stable);
    assert_eq!(instances[0].state, InstanceState::Ready);
    assert_eq!(instances[0].pid, None);
}

#[tokio::test]
async fn start_accepts_listening_addresses_named_by_the_deploy() {
    let (_stable_listener, stable) = listening().await;
    let (_a, canary_a) = listening().await;
    let (_b, canary_b) = listening().await;
    let backend = backend(vec![stable], Vec::new());
    let mut events = backend.subscribe();

    let instances = backend
        .start(VersionSpec::new("v2", 0).with_addresses(vec![canary_a, canary_b]))
        .await
        .unwrap();

    let addrs: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();
    assert_eq!(addrs, [canary_a, canary_b]);
    assert!(instances.iter().all(|i| i.is_ready()));
    assert_eq!(backend.versions(), ["v1", "v2"]);
    let event = events.recv().await.unwrap();
    assert_eq!(event.kind, BackendEventKind::Started);
    assert_eq!(event.instances, instances);

    backend.stop("v2").await.unwrap();
    assert_eq!(backend.versions(), ["v1"]);
    assert_eq!(events.recv().await.unwrap().kind, BackendEventKind::Stopped);
}

#[tokio::test]
async fn start_falls_back_to_the_configured_canary_set() {
    let (_listener, canary) = listening().await;
    let backend = backend(Vec::new(), vec![canary]);
    let instances = backend.start(VersionSpec::new("v2", 1)).await.unwrap();
    assert_eq!(instances[0].addr, canary);
}

#[tokio::test]
async fn start_fails_clearly_for_a_closed_address_and_records_nothing() {
    let (_listener, open) = listening().await;
    let closed = closed_address().await;
    let backend = backend(Vec::new(), Vec::new());

    let err = backend
        .start(VersionSpec::new("v2", 2).with_addresses(vec![open, closed]))
        .await
        .unwrap_err();

    assert!(
        matches!(err, BackendError::Unreachable { addr, .. } if addr == closed),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&closed.to_string()), "{message}");
    assert!(message.contains("does not accept connections"), "{message}");
    assert!(backend.versions().is_empty());
}

#[tokio::test]
async fn start_without_any_addresses_says_where_to_put_them() {
    let backend = backend(Vec::new(), Vec::new());
    let err = backend.start(VersionSpec::new("v2", 1)).await.unwrap_err();
    assert!(err.to_string().contains("name them in the deploy"), "{err}");
}

#[tokio::test]
async fn cannot_scale_what_it_does_not_run() {
    let (_listener, stable) = listening().await;
    let backend = backend(vec![stable], Vec::new());
    assert_eq!(backend.scale("v1", 1).await.unwrap().len(), 1);
    let err = backend.scale("v1", 3).await.unwrap_err();
    assert!(
        err.to_string().contains("does not run these upstreams"),
        "{err}"
    );
    assert!(matches!(
        backend.scale("v7", 1).await,
        Err(BackendError::UnknownVersion { .. })
    ));
}
