//! Weight changes, drains and whole-table swaps under steady load cost no request.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use rampart_router::{InstanceState, RouteTable, UpstreamSet};

struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(router: std::net::SocketAddr, workers: usize) -> Self {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client = client();
        let tasks = (0..workers)
            .map(|_| {
                let (ok, failed, stop, client) =
                    (ok.clone(), failed.clone(), stop.clone(), client.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let request = http::Request::get(format!("http://{router}/sleep/1"))
                            .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
                            .unwrap();
                        let result = client.request(request).await;
                        let good = match result {
                            Ok(response) => {
                                let status = response.status();
                                let body =
                                    http_body_util::BodyExt::collect(response.into_body()).await;
                                status == 200 && body.is_ok()
                            }
                            Err(_) => false,
                        };
                        if good {
                            ok.fetch_add(1, Ordering::SeqCst);
                        } else {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        Self {
            ok,
            failed,
            stop,
            tasks,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Lets at least `n` more requests complete.
    async fn run_for(&self, n: u64) {
        let target = self.ok() + n;
        while self.ok() < target && self.failed.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for task in std::mem::take(&mut self.tasks) {
            task.await.unwrap();
        }
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_changes_drains_and_swaps_under_load_fail_nothing() {
    let v1: Vec<TestUpstream> = futures_util::future::join_all(
        (0..3).map(|i| TestUpstream::start(Box::leak(format!("v1-{i}").into_boxed_str()))),
    )
    .await;
    let v2 = [
        TestUpstream::start("v2-0").await,
        TestUpstream::start("v2-1").await,
    ];
    let mut cfg = settings();
    cfg.drain_grace = rampart_config::Duration::from_secs(10);
    let router = start(route(
        cfg,
        &[&v1[0], &v1[1], &v1[2]],
        &[&v2[0], &v2[1]],
        0.0,
    ))
    .await;
    let handle = router.service("shop").unwrap();
    let load = Load::start(handle.listen_addr(), 8);
    load.run_for(200).await;

    for weight in [1.0, 5.0, 12.5, 25.0, 50.0, 75.0, 100.0, 30.0] {
        handle.set_weight(weight).unwrap();
        load.run_for(100).await;
    }

    // Scale the stable set down: the removed instance drains while traffic flows.
    let reports = handle.drain(&[v1[2].addr]).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].completed, "{reports:?}");
    let status = handle.status();
    assert_eq!(status.removed[0].state, InstanceState::Drained);
    let hits_after_drain = v1[2].hits();
    load.run_for(200).await;
    assert_eq!(
        v1[2].hits(),
        hits_after_drain,
        "a drained instance got traffic"
    );

    // Promote: v2 becomes stable in one swap, v1 leaves and drains.
    let removed = handle
        .swap(RouteTable::stable_only(UpstreamSet::new(
            "v2",
            vec![v2[0].addr, v2[1].addr],
        )))
        .unwrap();
    assert_eq!(removed.len(), 2);
    for addr in removed {
        assert!(handle.wait_drained(addr).await.unwrap().completed);
    }
    load.run_for(200).await;

    let (ok, failed) = load.stop().await;
    assert_eq!(failed, 0, "{failed} failed of {}", ok + failed);
    assert!(ok >= 1_400, "{ok}");
    assert_eq!(handle.status().stable.version, "v2");
}

#[tokio::test]
async fn a_removed_instance_finishes_its_request_before_it_is_drained() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let router = start(route(settings(), &[&stable], &[&canary], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();

    let slow = tokio::spawn(async move {
        get(
            &client(),
            addr,
            "/sleep/300",
            &[("x-rampart-version", "canary")],
        )
        .await
    });
    while handle.status().canary.unwrap().instances[0].in_flight == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let removed = handle.set_canary(None);
    assert_eq!(removed, vec![canary.addr]);
    assert_eq!(handle.status().removed[0].state, InstanceState::Draining);
    // New requests, even ones asking for the canary, go to stable now.
    let reply = get(&client(), addr, "/", &[("x-rampart-version", "canary")]).await;
    assert_eq!(reply.upstream(), "stable");

    let report = handle.wait_drained(canary.addr).await.unwrap();
    assert!(report.completed);
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, 200);
    assert_eq!(slow.upstream(), "canary");
    assert!(
        handle.wait_drained(stable.addr).await.is_err(),
        "stable is not draining"
    );
}
