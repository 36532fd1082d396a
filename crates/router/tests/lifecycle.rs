//! Starting and stopping: all-or-nothing binds, graceful shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rampart_core::SystemClock;
use rampart_router::{Router, RouterError};

#[tokio::test]
async fn a_failed_bind_leaves_nothing_running_and_names_the_service() {
    let upstream = TestUpstream::start("u").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let free_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut first = route(settings(), &[&upstream], &[], 0.0);
    first.name = "first".into();
    first.listen = free_addr;
    let mut second = route(settings(), &[&upstream], &[], 0.0);
    second.name = "second".into();
    second.listen = taken_addr;

    let error = Router::start(vec![first, second], Arc::new(SystemClock))
        .await
        .unwrap_err();
    match &error {
        RouterError::Bind { service, addr, .. } => {
            assert_eq!(service, "second");
            assert_eq!(*addr, taken_addr);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(error.to_string().contains(&taken_addr.to_string()));
    // The first service's listener was released again.
    std::net::TcpListener::bind(free_addr).expect("the first listener must be closed");
}

#[tokio::test]
async fn duplicate_service_names_are_refused() {
    let upstream = TestUpstream::start("u").await;
    let a = route(settings(), &[&upstream], &[], 0.0);
    let b = route(settings(), &[&upstream], &[], 0.0);
    let error = Router::start(vec![a, b], Arc::new(SystemClock))
        .await
        .unwrap_err();
    assert!(matches!(error, RouterError::DuplicateService(name) if name == "shop"));
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_and_stops_accepting() {
    let upstream = TestUpstream::start("u").await;
    let router = start(route(settings(), &[&upstream], &[], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let slow = tokio::spawn(async move { get(&client(), addr, "/sleep/300", &[]).await });
    while handle.status().in_flight == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    router.shutdown(Duration::from_secs(10)).await;
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener must be closed after shutdown"
    );
}

#[tokio::test]
async fn a_service_added_while_running_serves_and_the_others_keep_theirs() {
    let first = TestUpstream::start("first").await;
    let second = TestUpstream::start("second").await;
    let router = start(route(settings(), &[&first], &[], 0.0)).await;
    let shop = router.service("shop").unwrap().listen_addr();

    let mut added = route(settings(), &[&second], &[], 0.0);
    added.name = "cart".into();
    let bound = router.bind(added).await.expect("bind");
    let cart = router.install(bound).expect("install").listen_addr();

    assert_eq!(get(&client(), cart, "/", &[]).await.upstream(), "second");
    assert_eq!(get(&client(), shop, "/", &[]).await.upstream(), "first");
    assert_eq!(router.services().len(), 2);
    router.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_removed_service_finishes_its_requests_then_its_port_closes() {
    let upstream = TestUpstream::start("u").await;
    let router = start(route(settings(), &[&upstream], &[], 0.0)).await;
    let other = {
        let mut r = route(settings(), &[&upstream], &[], 0.0);
        r.name = "other".into();
        router
            .install(router.bind(r).await.expect("bind"))
            .expect("install")
    };
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let slow = tokio::spawn(async move { get(&client(), addr, "/sleep/300", &[]).await });
    while handle.status().in_flight == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(router.remove("shop", Duration::from_secs(10)).await);
    assert_eq!(slow.await.unwrap().status, 200, "in flight finished");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the removed service's listener is closed"
    );
    assert!(router.service("shop").is_none());
    assert!(!router.remove("shop", Duration::ZERO).await, "removed once");
    // The other service was not disturbed.
    let reply = get(&client(), other.listen_addr(), "/", &[]).await;
    assert_eq!(reply.status, 200);
    router.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn new_settings_apply_to_the_next_request() {
    let upstream = TestUpstream::start("u").await;
    let router = start(route(settings(), &[&upstream], &[], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    assert_eq!(get(&client(), addr, "/sleep/300", &[]).await.status, 200);
    let mut tighter = settings();
    tighter.request_timeout = rampart_config::Duration::from_millis(100);
    tighter.max_concurrency = Some(7);
    handle.apply_settings(tighter.clone());
    assert_eq!(handle.settings(), tighter);
    assert_eq!(handle.status().max_concurrency, Some(7));
    assert_eq!(
        get(&client(), addr, "/sleep/300", &[]).await.status,
        504,
        "the shorter request timeout is in force"
    );
    router.shutdown(Duration::from_secs(1)).await;
}
