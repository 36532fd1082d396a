//! Per-version metrics: exact counts per second window and per set, sane quantiles,
//! and the Prometheus exposition.

mod common;

use std::time::Duration;

use common::*;
use prometheus_client::registry::Registry;
use rampart_core::Clock;

#[tokio::test]
async fn known_traffic_gives_exact_counts_and_sane_quantiles() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let clock = manual_clock();
    let t0 = clock.now();
    let router = start_with_clock(
        route(settings(), &[&stable], &[&canary], 0.0),
        clock.clone(),
    )
    .await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let client = client();
    // The split steers (weights 0 and 100 are absolute): only its requests are judged.
    let to = |set: &str| {
        handle
            .set_weight(if set == "canary" { 100.0 } else { 0.0 })
            .unwrap()
    };

    // Second t0: 30 ok + 10 errors on stable, 20 slow successes on canary.
    to("stable");
    for _ in 0..30 {
        get(&client, addr, "/", &[]).await;
    }
    for _ in 0..10 {
        assert_eq!(get(&client, addr, "/status/503", &[]).await.status, 503);
    }
    to("canary");
    for _ in 0..20 {
        get(&client, addr, "/sleep/25", &[]).await;
    }
    // Second t0 + 1: 5 client errors on canary.
    clock.advance(Duration::from_secs(1));
    for _ in 0..5 {
        assert_eq!(get(&client, addr, "/status/404", &[]).await.status, 404);
    }
    to("stable");

    let first = handle.window_between(t0, t0.saturating_add(Duration::from_secs(1)));
    assert_eq!(first.stable.requests, 40);
    assert_eq!(first.stable.errors, 10);
    assert_eq!(first.canary.requests, 20);
    assert_eq!(first.canary.errors, 0);
    let canary_p50 = first.canary.latency.quantile_us(0.5).unwrap();
    let stable_p50 = first.stable.latency.quantile_us(0.5).unwrap();
    assert!(
        (25_000..1_000_000).contains(&canary_p50),
        "canary p50 {canary_p50} µs"
    );
    assert!(stable_p50 < canary_p50, "stable p50 {stable_p50} µs");
    assert_eq!(first.stable.latency.count(), 40);

    let last = handle.window(Duration::from_secs(1));
    assert_eq!((last.stable.requests, last.canary.requests), (0, 5));

    let both = handle.window_detail_between(t0, t0.saturating_add(Duration::from_secs(2)));
    assert_eq!(both.canary.responses_by_class, [0, 20, 0, 5, 0]);
    assert_eq!(both.stable.responses_by_class, [0, 30, 0, 0, 10]);

    // Ten minutes later the ring has moved on; the old seconds are gone, not misfiled.
    clock.advance(Duration::from_secs(700));
    get(&client, addr, "/", &[]).await;
    assert_eq!(handle.window(Duration::from_secs(600)).stable.requests, 1);

    // Switched off, nothing is recorded.
    handle.set_metrics_enabled(false);
    get(&client, addr, "/", &[]).await;
    assert_eq!(handle.window(Duration::from_secs(600)).stable.requests, 1);
    assert!(!handle.status().metrics_enabled);
}

#[tokio::test]
async fn metrics_exposition_has_the_labelled_series() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let router = start(route(settings(), &[&stable], &[&canary], 0.0)).await;
    let addr = router.service("shop").unwrap().listen_addr();
    let client = client();
    for _ in 0..7 {
        get(&client, addr, "/", &[]).await;
    }
    for _ in 0..3 {
        get(
            &client,
            addr,
            "/status/502",
            &[("x-rampart-version", "canary")],
        )
        .await;
    }

    // One request held in flight on the canary while we scrape.
    let handle = router.service("shop").unwrap();
    let slow = tokio::spawn(async move {
        get(
            &client,
            addr,
            "/sleep/300",
            &[("x-rampart-version", "canary")],
        )
        .await
    });
    while handle.status().in_flight == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let mut registry = Registry::default();
    registry.register_collector(Box::new(router.collector()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert_eq!(slow.await.unwrap().status, 200);

    // The header's requests are the client's choice: their own series.
    for line in [
        "# TYPE rampart_router_requests counter",
        r#"rampart_router_requests_total{service="shop",set="stable",version="v1"} 7"#,
        r#"rampart_router_requests_total{service="shop",set="canary",version="v2"} 0"#,
        r#"rampart_router_requests_total{service="shop",set="canary",version="v2",chosen_by="client"} 3"#,
        r#"rampart_router_requests_total{service="shop",set="stable",version="v1",chosen_by="client"} 0"#,
        r#"rampart_router_responses_total{service="shop",set="stable",version="v1",class="2xx"} 7"#,
        r#"rampart_router_responses_total{service="shop",set="canary",version="v2",chosen_by="client",class="5xx"} 3"#,
        r#"rampart_router_errors_total{service="shop",set="canary",version="v2",chosen_by="client"} 3"#,
        r#"rampart_router_errors_total{service="shop",set="canary",version="v2"} 0"#,
        r#"rampart_router_errors_total{service="shop",set="stable",version="v1"} 0"#,
        r#"rampart_router_in_flight{service="shop",set="stable",version="v1"} 0"#,
        r#"rampart_router_in_flight{service="shop",set="canary",version="v2",chosen_by="client"} 1"#,
        "# TYPE rampart_router_request_duration_seconds histogram",
        r#"rampart_router_request_duration_seconds_count{service="shop",set="stable",version="v1"} 7"#,
        r#"rampart_router_request_duration_seconds_bucket{le="+Inf",service="shop",set="canary",version="v2",chosen_by="client"} 3"#,
        r#"rampart_router_request_duration_seconds_bucket{le="10.0",service="shop",set="stable",version="v1"} 7"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn requests_that_pick_their_set_are_counted_apart_and_never_judged() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let router = start(route(settings(), &[&stable], &[&canary], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let client = client();
    for _ in 0..12 {
        let reply = get(
            &client,
            addr,
            "/status/500",
            &[("x-rampart-version", "canary")],
        )
        .await;
        assert_eq!(reply.upstream(), "canary");
    }
    for _ in 0..4 {
        get(&client, addr, "/", &[("x-rampart-version", "stable")]).await;
    }
    for _ in 0..5 {
        get(&client, addr, "/", &[]).await;
    }

    // The judge's sample holds only the split's five stable requests.
    let judged = handle.window(Duration::from_secs(60));
    assert_eq!((judged.stable.requests, judged.canary.requests), (5, 0));
    assert_eq!(judged.canary.errors, 0);
    let detail = handle.window_detail(Duration::from_secs(60));
    assert_eq!(detail.chosen_by_client.canary.sample.requests, 12);
    assert_eq!(detail.chosen_by_client.canary.sample.errors, 12);
    assert_eq!(detail.chosen_by_client.stable.sample.requests, 4);
    assert_eq!(detail.stable.sample.requests, 5);

    // The status says the same, per set.
    let status = handle.status();
    let canary_status = status.canary.unwrap();
    assert_eq!(canary_status.split.requests, 0);
    assert_eq!(canary_status.chosen_by_client.requests, 12);
    assert_eq!(canary_status.chosen_by_client.errors, 12);
    assert_eq!(status.stable.split.requests, 5);
    assert_eq!(status.stable.chosen_by_client.requests, 4);
    let json = serde_json::to_value(handle.window_detail(Duration::from_secs(60))).unwrap();
    assert_eq!(json["chosen_by_client"]["canary"]["sample"]["requests"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_runs_to_the_end_of_the_body_and_a_body_cut_short_is_an_error() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let router = start(route(settings(), &[&stable], &[&canary], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let client = client();
    for _ in 0..5 {
        assert_eq!(get(&client, addr, "/", &[]).await.text(), "stable");
    }
    // The canary answers its head at once and finishes its body 300 ms later.
    handle.set_weight(100.0).unwrap();
    for _ in 0..5 {
        let reply = get(&client, addr, "/slowbody/300", &[]).await;
        assert_eq!(reply.text(), "head start, slow end");
    }
    let window = handle.window(Duration::from_secs(600));
    let canary_p50 = window.canary.latency.quantile_us(0.5).unwrap();
    let stable_p50 = window.stable.latency.quantile_us(0.5).unwrap();
    assert!(canary_p50 >= 290_000, "canary p50 {canary_p50} µs");
    assert!(stable_p50 < canary_p50, "stable p50 {stable_p50} µs");
    assert_eq!(window.canary.errors, 0);

    // A body that stops short of its length fails the client's read and is an error.
    let request = http::Request::get(format!("http://{addr}/cutbody"))
        .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .is_err()
    );
    let mut window = handle.window(Duration::from_secs(600));
    for _ in 0..100 {
        if window.canary.requests == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        window = handle.window(Duration::from_secs(600));
    }
    assert_eq!((window.canary.requests, window.canary.errors), (6, 1));
}

/// Demand is counted when it arrives: requests held up by a stall of every instance
/// are in the arrivals of the seconds users sent them, while the judge's windows file
/// them under the second they finished (where a backlog would read as a burst).
#[tokio::test]
async fn arrivals_are_counted_in_the_second_they_arrive_whenever_they_finish() {
    let stable = TestUpstream::start("stable").await;
    let clock = manual_clock();
    let t0 = clock.now();
    let router = start_with_clock(route(settings(), &[&stable], &[], 0.0), clock.clone()).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let client = client();
    // Five requests arrive in second t0 and are held (the "stall") ...
    let held: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { get(&client, addr, "/sleep/400", &[]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ... and finish three seconds later.
    clock.advance(Duration::from_secs(3));
    for request in held {
        assert_eq!(request.await.unwrap().status, 200);
    }
    let second = |n: u64| {
        let start = t0.saturating_add(Duration::from_secs(n));
        (start, start.saturating_add(Duration::from_secs(1)))
    };
    let (start, end) = second(0);
    assert_eq!(handle.arrivals_between(start, end), (5, 0));
    assert_eq!(handle.window_between(start, end).stable.requests, 0);
    let (start, end) = second(3);
    assert_eq!(handle.arrivals_between(start, end), (0, 0));
    assert_eq!(handle.window_between(start, end).stable.requests, 5);
    // An empty or reversed span counts nothing.
    assert_eq!(handle.arrivals_between(end, start), (0, 0));
}
