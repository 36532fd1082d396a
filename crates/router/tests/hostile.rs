//! Hostile and careless clients: slowloris, too many connections from one address,
//! idle connections, stalled request bodies, oversized heads.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: shop\r\n\r\n";

/// Reads until the peer closes (or resets); bounded so a bug shows as a failure, not
/// a hang.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the router never closed the connection"),
        }
    }
}

/// Sends one request on `stream` and reads the response head.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_slowloris_clients_are_cut_while_normal_traffic_flows() {
    let upstream = TestUpstream::start("stable").await;
    let mut cfg = settings();
    cfg.header_read_timeout = rampart_config::Duration::from_secs(1);
    // Every test client is 127.0.0.1: the per-client limit is not what is tested here.
    cfg.max_connections_per_client = 10_000;
    let router = start(route(cfg, &[&upstream], &[], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();

    // 2 000 connections that start a request head and then trickle a header line
    // every 300 ms, never finishing it.
    let cut = Arc::new(AtomicU64::new(0));
    let mut slow = Vec::new();
    for batch in 0..20 {
        let opened = join_all((0..100).map(|_| TcpStream::connect(addr))).await;
        for stream in opened {
            let mut stream = stream.unwrap_or_else(|e| panic!("batch {batch}: {e}"));
            let cut = cut.clone();
            slow.push(tokio::spawn(async move {
                if stream
                    .write_all(b"GET / HTTP/1.1\r\nhost: shop\r\n")
                    .await
                    .is_err()
                {
                    cut.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if stream.write_all(b"x-slow: 1\r\n").await.is_err() {
                        break;
                    }
                    let mut buf = [0u8; 1024];
                    // A closed connection reads as EOF (the 408 hyper may send first
                    // is read and ignored here).
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await
                    {
                        break;
                    }
                }
                cut.fetch_add(1, Ordering::SeqCst);
            }));
        }
    }

    // Meanwhile, ordinary clients see no errors at all.
    let client = client();
    let replies = join_all((0..8).map(|_| {
        let client = client.clone();
        async move {
            let mut failed = 0;
            for _ in 0..100 {
                if get(&client, addr, "/", &[]).await.status != 200 {
                    failed += 1;
                }
            }
            failed
        }
    }))
    .await;
    assert_eq!(replies.iter().sum::<u32>(), 0, "normal requests failed");

    // And every slow connection is cut by the header-read timeout.
    for task in slow {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a slow connection was never cut")
            .unwrap();
    }
    assert_eq!(cut.load(Ordering::SeqCst), 2_000);
    let window = handle.window(Duration::from_secs(600));
    assert_eq!((window.stable.requests, window.stable.errors), (800, 0));
}

#[tokio::test]
async fn connections_over_the_per_client_limit_are_closed_at_once() {
    let upstream = TestUpstream::start("stable").await;
    let mut cfg = settings();
    cfg.max_connections_per_client = 3;
    let router = start(route(cfg, &[&upstream], &[], 0.0)).await;
    let addr = router.service("shop").unwrap().listen_addr();

    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        assert!(
            exchange(&mut stream, REQUEST)
                .await
                .starts_with("HTTP/1.1 200")
        );
        held.push(stream);
    }
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    let _ = fourth.write_all(REQUEST).await;
    assert!(
        read_until_closed(&mut fourth).await.is_empty(),
        "closed unanswered"
    );

    // A closed connection frees its slot.
    drop(held.pop());
    let mut served = false;
    for _ in 0..100 {
        let mut again = TcpStream::connect(addr).await.unwrap();
        if exchange(&mut again, REQUEST)
            .await
            .starts_with("HTTP/1.1 200")
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the freed slot was never reused");
}

#[tokio::test]
async fn idle_connections_are_closed_and_stalled_bodies_get_408_uncharged() {
    let upstream = TestUpstream::start("stable").await;
    let mut cfg = settings();
    cfg.idle_timeout = rampart_config::Duration::from_millis(200);
    // Long, so that only the idle timeout can close the connection within the test.
    cfg.header_read_timeout = rampart_config::Duration::from_secs(60);
    cfg.body_read_timeout = rampart_config::Duration::from_millis(200);
    let router = start(route(cfg, &[&upstream], &[], 0.0)).await;
    let handle = router.service("shop").unwrap();
    let addr = handle.listen_addr();

    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(
        exchange(&mut idle, REQUEST)
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Nothing more is sent: the idle timeout closes it.
    read_until_closed(&mut idle).await;

    // A body that promises 100 bytes and stalls after 10.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /upload HTTP/1.1\r\nhost: shop\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&read_until_closed(&mut stalled).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("client_timeout"), "{answer}");

    // Neither is an error of the version: the 408 is the client's.
    let window = handle.window_detail(Duration::from_secs(600));
    assert_eq!(window.stable.sample.requests, 2);
    assert_eq!(window.stable.sample.errors, 0);
    assert_eq!(window.stable.responses_by_class[3], 1);
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let upstream = TestUpstream::start("stable").await;
    let mut cfg = settings();
    cfg.max_headers = 20;
    cfg.max_header_bytes = 16 * 1024;
    let router = start(route(cfg, &[&upstream], &[], 0.0)).await;
    let addr: SocketAddr = router.service("shop").unwrap().listen_addr();

    let mut many = String::from("GET / HTTP/1.1\r\nhost: shop\r\n");
    for i in 0..30 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let answer = exchange(&mut stream, many.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let big = format!(
        "GET / HTTP/1.1\r\nhost: shop\r\nx-big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let answer = exchange(&mut stream, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert!(
        exchange(&mut stream, REQUEST)
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert_eq!(upstream.hits(), 1);
}
