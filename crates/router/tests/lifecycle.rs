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
