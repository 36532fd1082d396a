//! Header/cookie match and mirroring through real HTTP: matching requests reach the
//! canary whatever the weight; mirrored copies reach it off the request path, are
//! judged, and never change or hold up what users get.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rampart_core::rollout::{MatchSource, RequestMatch, Steering, ValueMatch};
use rampart_router::{MIRROR_HEADER, ServiceHandle};
use tokio::net::TcpListener;

fn header_match(name: &str, value: &str) -> Steering {
    Steering {
        canary_match: Some(RequestMatch {
            source: MatchSource::Header,
            name: name.into(),
            value: ValueMatch::Exact(value.into()),
        }),
        mirror_percent: 0.0,
    }
}

fn mirror(percent: f64) -> Steering {
    Steering {
        canary_match: None,
        mirror_percent: percent,
    }
}

/// What a recording upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: Bytes,
    mirrored: bool,
}

/// A canary that records every request and answers with `status` (or never, when
/// `status` is 0).
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_task = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen_task.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            seen.lock().unwrap().push(Seen {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                body: body.unwrap_or_default(),
                                mirrored: parts.headers.contains_key(MIRROR_HEADER),
                            });
                            if status == 0 {
                                std::future::pending::<()>().await;
                            }
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("x-upstream", "recorder")
                                    .body(Full::new(Bytes::from_static(b"canary")).boxed())
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `count` requests have arrived.
    async fn wait_for(&self, count: usize) -> Vec<Seen> {
        for _ in 0..500 {
            if self.seen().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.seen()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A router with one stable upstream and the recorder as canary at weight 0.
async fn with_recorder(
    settings: rampart_config::RouterConfig,
    recorder: &Recorder,
) -> (rampart_router::Router, ServiceHandle, TestUpstream) {
    let stable = TestUpstream::start("stable").await;
    let mut route = route(settings, &[&stable], &[], 0.0);
    route.canary = Some(rampart_router::UpstreamSet::new("v2", vec![recorder.addr]));
    let router = start(route).await;
    let handle = router.service("shop").unwrap();
    (router, handle, stable)
}

async fn post(router: SocketAddr, path: &str, body: &'static [u8]) -> Reply {
    let client = client();
    let request = Request::post(format!("http://{router}{path}"))
        .body(Full::new(Bytes::from_static(body)).boxed())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_requests_that_match_reach_the_canary_and_the_weight_stays() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let router = start(route(settings(), &[&stable], &[&canary], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    handle
        .set_steering(header_match("x-tester", "yes"))
        .unwrap();
    assert_eq!(handle.table().canary_weight, 0.0);

    let client = client();
    for _ in 0..50 {
        let tester = get(&client, addr, "/", &[("x-tester", "yes")]).await;
        assert_eq!(tester.upstream(), "canary");
        let other = get(&client, addr, "/", &[("x-tester", "no")]).await;
        assert_eq!(other.upstream(), "stable");
        let plain = get(&client, addr, "/", &[]).await;
        assert_eq!(plain.upstream(), "stable");
    }
    let status = handle.status();
    let canary_status = status.canary.expect("canary set");
    assert_eq!(canary_status.matched.requests, 50);
    assert_eq!(canary_status.split.requests, 0);
    assert_eq!(status.stable.split.requests, 100);
    // Matched requests are the canary's evidence.
    let window = handle.window(Duration::from_secs(60));
    assert_eq!(window.canary.requests, 50);

    // A cookie match, with a prefix.
    handle
        .set_steering(Steering {
            canary_match: Some(RequestMatch {
                source: MatchSource::Cookie,
                name: "plan".into(),
                value: ValueMatch::Prefix("beta".into()),
            }),
            mirror_percent: 0.0,
        })
        .unwrap();
    let beta = get(&client, addr, "/", &[("cookie", "a=1; plan=beta-2")]).await;
    assert_eq!(beta.upstream(), "canary");
    let tester = get(&client, addr, "/", &[("x-tester", "yes")]).await;
    assert_eq!(tester.upstream(), "stable", "the header rule is gone");

    // Without a canary set a match has nothing to send to.
    handle.set_canary(None);
    assert!(handle.table().steering.is_none());
    let beta = get(&client, addr, "/", &[("cookie", "plan=beta")]).await;
    assert_eq!(beta.upstream(), "stable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_steering_is_refused_whole() {
    let stable = TestUpstream::start("stable").await;
    let canary = TestUpstream::start("canary").await;
    let router = start(route(settings(), &[&stable], &[&canary], 10.0)).await;
    let handle = router.service("shop").unwrap();
    assert!(handle.set_steering(mirror(101.0)).is_err());
    assert!(
        handle
            .set_steering(header_match("not a header", "x"))
            .is_err()
    );
    assert!(handle.table().steering.is_none());
    assert_eq!(handle.table().canary_weight, 10.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_share_of_stable_requests_is_mirrored_and_users_get_stable() {
    let recorder = Recorder::start(200).await;
    let (_router, handle, _stable) = with_recorder(settings(), &recorder).await;
    let addr = handle.listen_addr();
    handle.set_steering(mirror(20.0)).unwrap();

    let client = client();
    for _ in 0..500 {
        let reply = get(&client, addr, "/thing", &[]).await;
        assert_eq!(reply.upstream(), "stable");
        assert_eq!(reply.status, 200);
    }
    let seen = recorder.wait_for(100).await;
    // 500 requests are 5 whole blocks of exactly 20 copies each.
    assert_eq!(seen.len(), 100);
    assert!(seen.iter().all(|s| s.mirrored && s.path == "/thing"));
    let status = handle.status();
    assert_eq!(status.mirror.sent, 100);
    assert_eq!(status.stable.split.requests, 500);
    // The copies are the canary's evidence (once each has been recorded).
    for _ in 0..200 {
        if handle.window(Duration::from_secs(60)).canary.requests == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handle.window(Duration::from_secs(60)).canary.requests, 100);
    assert_eq!(status.canary.expect("canary").split.requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_fails_only_its_mirrored_copies() {
    let recorder = Recorder::start(500).await;
    let (_router, handle, _stable) = with_recorder(settings(), &recorder).await;
    let addr = handle.listen_addr();
    handle.set_steering(mirror(100.0)).unwrap();
    let client = client();
    for _ in 0..100 {
        assert_eq!(get(&client, addr, "/", &[]).await.status, 200);
    }
    recorder.wait_for(100).await;
    let mut window = handle.window(Duration::from_secs(60));
    for _ in 0..200 {
        if window.canary.requests == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        window = handle.window(Duration::from_secs(60));
    }
    assert_eq!(window.canary.requests, 100);
    assert_eq!(window.canary.errors, 100, "the judge sees the canary fail");
    assert_eq!(window.stable.errors, 0, "users saw none of it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_never_answers_holds_up_no_user_request() {
    // The canary accepts and never answers: copies pile up to the bound, the rest are
    // dropped, and users are served by stable all along.
    let recorder = Recorder::start(0).await;
    let settings = rampart_config::RouterConfig {
        mirror_max_in_flight: 4,
        ..settings()
    };
    let (_router, handle, _stable) = with_recorder(settings, &recorder).await;
    let addr = handle.listen_addr();
    handle.set_steering(mirror(100.0)).unwrap();
    let client = client();
    for _ in 0..50 {
        let reply = get(&client, addr, "/", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.upstream(), "stable");
    }
    let status = handle.status();
    assert_eq!(status.mirror.sent, 4);
    assert_eq!(status.mirror.dropped, 46);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_mirrored_only_for_allowed_methods_and_up_to_the_limit() {
    let recorder = Recorder::start(200).await;
    let (_router, handle, _stable) = with_recorder(settings(), &recorder).await;
    let addr = handle.listen_addr();
    handle.set_steering(mirror(100.0)).unwrap();

    // POST is not idempotent: not mirrored unless the service says so.
    let reply = post(addr, "/upload", b"order 1").await;
    assert_eq!(reply.text(), "7");
    let put = Request::put(format!("http://{addr}/upload"))
        .body(Full::new(Bytes::from_static(b"same again")).boxed())
        .unwrap();
    let response = client().request(put).await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = recorder.wait_for(1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(&seen[0].body[..], b"same again");
    assert_eq!(handle.status().mirror.skipped, 1);
    drop(_router);

    let recorder = Recorder::start(200).await;
    let settings = rampart_config::RouterConfig {
        mirror_non_idempotent: true,
        mirror_max_body_bytes: 16,
        ..settings()
    };
    let (_router, handle, _stable) = with_recorder(settings, &recorder).await;
    let addr = handle.listen_addr();
    handle.set_steering(mirror(100.0)).unwrap();
    assert_eq!(post(addr, "/upload", b"order 2").await.text(), "7");
    // Over the limit: the user's request goes through whole, the copy is skipped.
    let big = post(addr, "/upload", b"a body well over sixteen bytes").await;
    assert_eq!(big.text(), "30");
    let seen = recorder.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen_after = recorder.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen_after.len(), 1, "{seen_after:?}");
    assert_eq!(seen_after[0].method, "POST");
    assert_eq!(&seen_after[0].body[..], b"order 2");
    assert_eq!(handle.status().mirror.skipped, 1);
}
