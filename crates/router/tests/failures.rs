//! Failure handling: retries, outlier ejection, 502/504 problems, load shedding.

mod common;

use std::time::Duration;

use common::*;
use futures_util::future::join_all;
use rampart_router::InstanceState;

fn assert_problem(reply: &Reply, status: u16, problem: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(body["problem"], problem);
    assert!(body["title"].is_string() && body["detail"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upstream_is_retried_around_ejected_and_counted() {
    let a = TestUpstream::start("a").await;
    let b = TestUpstream::start("b").await;
    let (a_addr, b_addr) = (a.addr, b.addr);
    let mut cfg = settings();
    cfg.outlier_consecutive_failures = 3;
    let router = start(route(cfg, &[&a, &b], &[], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let client = client();

    let burst = |n: usize| {
        let client = client.clone();
        async move {
            let replies = join_all((0..n).map(|_| {
                let client = client.clone();
                async move { get(&client, addr, "/", &[]).await }
            }))
            .await;
            replies
                .into_iter()
                .map(|r| r.status.as_u16())
                .collect::<Vec<_>>()
        }
    };

    // Load in flight while `a` dies: every request still succeeds.
    let during = tokio::spawn(burst(400));
    tokio::time::sleep(Duration::from_millis(20)).await;
    a.kill().await;
    let mut statuses = during.await.unwrap();
    statuses.extend(burst(200).await);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");

    let status = handle.status();
    let a_status = status
        .stable
        .instances
        .iter()
        .find(|i| i.addr == a_addr)
        .unwrap();
    assert_eq!(a_status.state, InstanceState::Ejected);
    assert!(a_status.ejected_until.is_some());
    let b_status = status
        .stable
        .instances
        .iter()
        .find(|i| i.addr == b_addr)
        .unwrap();
    assert_eq!(
        b_status.state,
        InstanceState::Active,
        "the last instance is never ejected"
    );

    // With both gone, every request is a 502: exactly as many as were sent.
    b.kill().await;
    let mut bad = 0;
    for _ in 0..25 {
        let reply = get(&client, addr, "/", &[]).await;
        assert_problem(&reply, 502, "upstream_unreachable");
        bad += 1;
    }
    // Each request is counted once. Every error was a failed first attempt that was
    // retried: on `b` while `a` died (the client got b's answer), and on the ejected
    // `a` once both were gone (the client got the 502).
    let window = handle.window(Duration::from_secs(600));
    let retried = handle.status().stable.split.retries;
    assert!(retried > bad, "{retried}");
    assert_eq!(window.stable.errors, retried);
    assert_eq!(window.stable.requests, 600 + bad);
    let b_status = handle
        .status()
        .stable
        .instances
        .into_iter()
        .find(|i| i.addr == b_addr)
        .unwrap();
    assert_ne!(
        b_status.state,
        InstanceState::Ejected,
        "never eject the last available instance"
    );
}

#[tokio::test]
async fn a_dead_upstream_gets_a_quick_502_problem() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut route = route(settings(), &[], &[], 0.0);
    route.stable.instances = vec![dead];
    let router = start(route).await;
    let addr = router.service("shop").unwrap().listen_addr();
    let reply = tokio::time::timeout(Duration::from_secs(10), get(&client(), addr, "/", &[]))
        .await
        .expect("a dead upstream must not hang the client");
    assert_problem(&reply, 502, "upstream_unreachable");
}

#[tokio::test]
async fn a_slow_upstream_gets_a_504_problem() {
    let slow = TestUpstream::start("slow").await;
    let mut cfg = settings();
    cfg.request_timeout = rampart_config::Duration::from_millis(100);
    let router = start(route(cfg, &[&slow], &[], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let reply = get(&client(), handle.listen_addr(), "/sleep/2000", &[]).await;
    assert_problem(&reply, 504, "upstream_timeout");
    assert_eq!(handle.window(Duration::from_secs(60)).stable.errors, 1);
}

#[tokio::test]
async fn the_concurrency_limit_sheds_with_503_and_retry_after() {
    let upstream = TestUpstream::start("u").await;
    let mut cfg = settings();
    cfg.max_concurrency = Some(2);
    let router = start(route(cfg, &[&upstream], &[], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();

    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(&client(), addr, "/sleep/400", &[]).await }))
        .collect();
    while handle.status().in_flight < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let shed = get(&client(), addr, "/", &[]).await;
    assert_problem(&shed, 503, "overloaded");
    assert_eq!(shed.headers["retry-after"], "1");

    handle.set_max_concurrency(None);
    assert_eq!(get(&client(), addr, "/", &[]).await.status, 200);
    for task in slow {
        assert_eq!(task.await.unwrap().status, 200);
    }
    assert_eq!(handle.status().max_concurrency, None);
}

#[tokio::test]
async fn outlier_detection_can_be_switched_off_at_run_time() {
    let good = TestUpstream::start("good").await;
    let bad = TestUpstream::start("bad").await;
    let mut cfg = settings();
    cfg.outlier_consecutive_failures = 2;
    let router = start(route(cfg, &[&good], &[&bad], 100.0)).await;
    let handle = router.service("shop").unwrap();
    handle.set_outlier_detection(false);
    let addr = handle.listen_addr();
    for _ in 0..5 {
        let reply = get(&client(), addr, "/status/500", &[]).await;
        assert_eq!(reply.status, 500);
    }
    let canary = handle.status().canary.unwrap();
    assert_eq!(canary.instances[0].consecutive_failures, 5);
    assert_eq!(canary.instances[0].state, InstanceState::Active);
    assert!(!handle.status().outlier_detection);
}

/// The split's canary share, sent to a canary that swallows its requests: the client
/// is served by stable after a retry, and the judge sees every one as a canary error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_resets_connections_is_charged_for_it() {
    let stable = TestUpstream::start("stable").await;
    let resetting = ResettingUpstream::start().await;
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    for canary in [resetting.addr, refused] {
        let mut route = route(settings(), &[&stable], &[], 0.0);
        route.canary = Some(rampart_router::UpstreamSet::new("v2", vec![canary]));
        route.canary_weight = 50.0;
        let router = start(route).await;
        let handle = router.service("shop").unwrap();
        let addr = handle.listen_addr();
        let client = client();
        for _ in 0..200 {
            let reply = get(&client, addr, "/", &[]).await;
            assert_eq!(reply.status, 200, "the client is served by the retry");
            assert_eq!(reply.upstream(), "stable");
        }
        let window = handle.window(Duration::from_secs(600));
        assert_eq!(
            window.canary.requests, 100,
            "{canary}: the split's exact share"
        );
        assert_eq!(
            window.canary.errors, 100,
            "{canary}: every canary request failed"
        );
        assert_eq!(
            window.stable.requests, 100,
            "retries are not stable's evidence"
        );
        assert_eq!(window.stable.errors, 0);
        let status = handle.status();
        assert_eq!(status.canary.unwrap().split.retries, 100);
        router.shutdown(Duration::from_secs(1)).await;
    }
    assert!(resetting.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 100);
}

/// Without a retry (the request has a body) or with a timeout, the failure is the
/// chosen set's too, whatever the weights.
#[tokio::test]
async fn failures_without_a_retry_belong_to_the_chosen_set() {
    let stable = TestUpstream::start("stable").await;
    let slow = TestUpstream::start("slow-canary").await;
    let resetting = ResettingUpstream::start().await;
    let mut cfg = settings();
    cfg.request_timeout = rampart_config::Duration::from_millis(100);
    let router = start(route(cfg, &[&stable], &[&slow], 100.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let reply = get(&client(), addr, "/sleep/2000", &[]).await;
    assert_problem(&reply, 504, "upstream_timeout");

    handle.set_canary(Some(rampart_router::UpstreamSet::new(
        "v3",
        vec![resetting.addr],
    )));
    let request = http::Request::post(format!("http://{addr}/upload"))
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::from_static(b"payload"),
        )))
        .unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(
        response.status(),
        502,
        "a request with a body is never retried"
    );

    let window = handle.window(Duration::from_secs(600));
    assert_eq!((window.canary.requests, window.canary.errors), (2, 2));
    assert_eq!(window.stable.requests, 0);
}

/// A stable set that points back at the router itself: the first pass is forwarded,
/// the second is recognised by the router's own marker and refused.
#[tokio::test]
async fn an_upstream_that_is_the_router_itself_gets_508_not_a_loop() {
    let stable = TestUpstream::start("stable").await;
    let router = start(route(settings(), &[&stable], &[], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    handle.set_stable(rampart_router::UpstreamSet::new("v2", vec![addr]));
    for _ in 0..5 {
        let reply = tokio::time::timeout(Duration::from_secs(10), get(&client(), addr, "/", &[]))
            .await
            .expect("a loop must not hang");
        assert_problem(&reply, 508, "loop_detected");
    }
    // Each user request is counted once, as the error it is.
    let window = handle.window(Duration::from_secs(600));
    assert_eq!((window.stable.requests, window.stable.errors), (5, 5));
    assert_eq!(stable.hits(), 0);
}
