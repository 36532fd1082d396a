//! The stable/canary split through real HTTP: exact shares, overrides, stickiness.

mod common;

use common::*;
use futures_util::future::join_all;
use rampart_router::UpstreamSet;

async fn count_canary(router: std::net::SocketAddr, requests: usize) -> usize {
    let client = client();
    let mut canary = 0;
    // 16 concurrent streams of sequential requests: keeps the test quick while the
    // split still has to hold under concurrency.
    let per_task = requests / 16;
    let results = join_all((0..16).map(|_| {
        let client = client.clone();
        async move {
            let mut hits = 0;
            for _ in 0..per_task {
                let reply = get(&client, router, "/", &[]).await;
                assert_eq!(reply.status, 200);
                if reply.upstream().starts_with("canary") {
                    hits += 1;
                }
            }
            hits
        }
    }))
    .await;
    for hits in results {
        canary += hits;
    }
    canary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_of_ten_thousand_requests_reach_the_canary() {
    let stable = [
        TestUpstream::start("stable-a").await,
        TestUpstream::start("stable-b").await,
    ];
    let canary = TestUpstream::start("canary-a").await;
    let router = start(route(
        settings(),
        &[&stable[0], &stable[1]],
        &[&canary],
        10.0,
    ))
    .await;
    let addr = router.service("shop").unwrap().listen_addr();
    let canary_count = count_canary(addr, 10_000).await;
    assert!(
        (950..=1_050).contains(&canary_count),
        "canary got {canary_count} of 10000"
    );
    // 10 000 requests are 100 whole blocks of exactly 10 canary requests each.
    assert!(
        (999..=1_001).contains(&canary_count),
        "canary got {canary_count}"
    );
    assert_eq!(canary.hits() as usize, canary_count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_zero_and_hundred_are_absolute() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let router = start(route(settings(), &[&stable], &[&canary], 0.0)).await;
    let handle = router.service("shop").unwrap();
    assert_eq!(count_canary(handle.listen_addr(), 1_600).await, 0);
    handle.set_weight(100.0).unwrap();
    assert_eq!(count_canary(handle.listen_addr(), 1_600).await, 1_600);
    assert!(handle.set_weight(100.5).is_err());
    assert!(handle.set_weight(f64::NAN).is_err());
    assert_eq!(handle.status().canary_weight, 100.0);
}

#[tokio::test]
async fn the_version_header_overrides_the_split() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let router = start(route(settings(), &[&stable], &[&canary], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let client = client();
    for _ in 0..20 {
        let reply = get(&client, addr, "/", &[("x-rampart-version", "canary")]).await;
        assert_eq!(reply.upstream(), "canary");
    }
    handle.set_weight(100.0).unwrap();
    for _ in 0..20 {
        let reply = get(&client, addr, "/", &[("x-rampart-version", "Stable")]).await;
        assert_eq!(reply.upstream(), "stable");
    }
}

#[tokio::test]
async fn the_version_header_is_ignored_when_off_or_from_other_networks() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let off = rampart_config::RouterConfig::default();
    assert_eq!(off.version_header, None, "off by default");
    let mut elsewhere = settings();
    // The test client is 127.0.0.1, outside these networks.
    elsewhere.version_header_from = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    for cfg in [off, elsewhere] {
        let router = start(route(cfg, &[&stable], &[&canary], 0.0)).await;
        let handle = router.service("shop").unwrap();
        let client = client();
        for _ in 0..50 {
            let reply = get(
                &client,
                handle.listen_addr(),
                "/",
                &[("x-rampart-version", "canary")],
            )
            .await;
            assert_eq!(reply.upstream(), "stable");
        }
        let seen = handle.window(std::time::Duration::from_secs(600));
        assert_eq!((seen.stable.requests, seen.canary.requests), (50, 0));
        router.shutdown(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(canary.hits(), 0, "the canary at weight 0 got nothing");
}

#[tokio::test]
async fn a_sticky_client_stays_on_its_set_until_the_next_rollout() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let mut cfg = settings();
    cfg.sticky_cookie = Some("rampart_set".into());
    let router = start(route(cfg, &[&stable], &[&canary], 50.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let client = client();

    // First requests get a cookie naming the set they were sent to.
    let mut cookies = Vec::new();
    for _ in 0..10 {
        let reply = get(&client, addr, "/", &[]).await;
        let cookie = reply.headers["set-cookie"].to_str().unwrap().to_owned();
        let value = cookie.split(';').next().unwrap().to_owned();
        assert!(
            value.contains(&format!(".{}.", reply.upstream())),
            "{value}"
        );
        cookies.push((value, reply.upstream().to_owned()));
    }
    assert!(cookies.iter().any(|(_, set)| set == "canary"));
    assert!(cookies.iter().any(|(_, set)| set == "stable"));

    // With the cookie, a client stays put whatever the weight does.
    for weight in [0.0, 100.0, 50.0] {
        handle.set_weight(weight).unwrap();
        for (cookie, set) in &cookies {
            let reply = get(&client, addr, "/", &[("cookie", cookie)]).await;
            assert_eq!(reply.upstream(), set, "weight {weight}");
            assert!(!reply.headers.contains_key("set-cookie"));
        }
    }

    // A cookie the client wrote itself is not the split's decision: decided anew.
    handle.set_weight(0.0).unwrap();
    let generation = handle.status().generation;
    let forged = format!("rampart_set={generation}.canary.0123456789abcdef");
    let reply = get(&client, addr, "/", &[("cookie", &forged)]).await;
    assert_eq!(reply.upstream(), "stable");
    assert!(
        reply.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains(".stable.")
    );

    // A new canary version is a new rollout: old cookies are decided anew.
    handle.set_canary(Some(UpstreamSet::new("v3", vec![canary.addr])));
    handle.set_weight(0.0).unwrap();
    for (cookie, _) in &cookies {
        let reply = get(&client, addr, "/", &[("cookie", cookie)]).await;
        assert_eq!(reply.upstream(), "stable");
        assert!(
            reply.headers["set-cookie"]
                .to_str()
                .unwrap()
                .contains(".stable")
        );
    }
}
