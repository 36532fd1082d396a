//! Upstream keep-alive: connections are reused once a response has ended, and never
//! while one is cut short.

mod common;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use http_body_util::BodyExt;
use rampart_core::SystemClock;
use rampart_router::Router;

async fn start_one_worker(upstream: &TestUpstream) -> Router {
    Router::start_with_workers(
        vec![route(settings(), &[upstream], &[], 0.0)],
        Arc::new(SystemClock),
        NonZeroUsize::MIN,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let upstream = TestUpstream::start("u").await;
    let router = start_one_worker(&upstream).await;
    let addr = router.service("shop").unwrap().listen_addr();
    let client = client();
    for _ in 0..20 {
        assert_eq!(get(&client, addr, "/", &[]).await.status, 200);
        assert_eq!(
            get(&client, addr, "/download/100000", &[]).await.body.len(),
            100_000
        );
    }
    assert_eq!(upstream.hits(), 40);
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_response_cut_short_does_not_return_its_connection() {
    let upstream = TestUpstream::start("u").await;
    let router = start_one_worker(&upstream).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    assert_eq!(get(&client(), addr, "/", &[]).await.status, 200);

    // Read the head and the first bytes of a large download, then hang up.
    let partial = client();
    let request = http::Request::get(format!("http://{addr}/download/100000000"))
        .body(http_body_util::Empty::new().boxed())
        .unwrap();
    let response = partial.request(request).await.unwrap();
    let mut body = response.into_body();
    assert!(body.frame().await.is_some());
    drop(body);
    drop(partial);
    while handle.status().in_flight > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The upstream connection was mid-body: the next request needs a new one.
    let reply = get(&client(), addr, "/", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "u");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_new_canary_starts_with_warm_connections() {
    let stable = TestUpstream::start("stable").await;
    let router = start_one_worker(&stable).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    assert_eq!(get(&client(), addr, "/", &[]).await.status, 200);

    let canary = TestUpstream::start("canary").await;
    handle.set_canary(Some(rampart_router::UpstreamSet::new(
        "v2",
        vec![canary.addr],
    )));
    // Opened before any request is sent to it: two per worker.
    for _ in 0..500 {
        if canary.connections.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(canary.connections.load(Ordering::SeqCst), 2);
    assert_eq!(canary.hits(), 0);
    handle.set_weight(100.0).unwrap();
    let client = client();
    for _ in 0..10 {
        assert_eq!(get(&client, addr, "/", &[]).await.upstream(), "canary");
    }
    assert_eq!(
        canary.connections.load(Ordering::SeqCst),
        2,
        "the first requests used the warm connections"
    );
}
