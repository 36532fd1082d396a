//! WebSocket pass-through, HTTP/2 (h2c prior knowledge) and header rewriting.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn websocket_echo_through_the_router() {
    let upstream = TestUpstream::start("ws").await;
    let router = start(route(settings(), &[&upstream], &[], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for text in ["hello", "through", "the router"] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    // The tunnel counts as in flight on the instance until it closes.
    assert_eq!(handle.status().stable.instances[0].in_flight, 1);
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    let window = handle.window(std::time::Duration::from_secs(60));
    assert_eq!(window.stable.requests, 1);
    assert_eq!(window.stable.errors, 0);
}

#[tokio::test]
async fn http2_prior_knowledge_through_the_router() {
    let upstream = TestUpstream::start("h2").await;
    let router = start(route(settings(), &[&upstream], &[], 0.0)).await;
    let addr = router.service("shop").unwrap().listen_addr();
    let client: Client<HttpConnector, TestBody> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    for _ in 0..3 {
        let request = http::Request::get(format!("http://{addr}/headers"))
            .body(BodyExt::boxed(http_body_util::Empty::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let seen = String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        // The upstream speaks HTTP/1.1 and gets the authority as Host.
        assert!(seen.contains(&format!("host: {addr}")), "{seen}");
    }
}

#[tokio::test]
async fn hop_by_hop_headers_go_and_forwarding_headers_come() {
    let upstream = TestUpstream::start("u").await;
    let router = start(route(settings(), &[&upstream], &[], 0.0)).await;
    let addr = router.service("shop").unwrap().listen_addr();
    let reply = get(
        &client(),
        addr,
        "/headers",
        &[
            ("connection", "x-private"),
            ("x-private", "secret"),
            ("proxy-authorization", "Basic eA=="),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-kept", "yes"),
        ],
    )
    .await;
    let seen = reply.text();
    assert!(!seen.contains("x-private"), "{seen}");
    assert!(!seen.contains("proxy-authorization"), "{seen}");
    assert!(seen.contains("x-kept: yes"), "{seen}");
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: http"), "{seen}");
    assert!(
        seen.contains(&format!(
            "forwarded: for=127.0.0.1;proto=http;host=\"{addr}\""
        )),
        "{seen}"
    );
}
