//! What upstreams answer, byte for byte, and what the client gets: every response
//! framing (length, chunked with extensions and trailers, close-delimited, none for
//! HEAD and 304), interim 100 responses, `Connection: close` and HTTP/1.0 answers,
//! malformed heads, an answer before the request body has been read, and pooled
//! connections the upstream closed while idle. Connection counts show when the router
//! keeps a connection and when it may not.

mod common;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use http_body_util::BodyExt;
use rampart_core::SystemClock;
use rampart_router::{Router, ServiceRoute, UpstreamSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that answers each request with the bytes `script` gives for its path,
/// and closes the connection after it when told to. It reads request heads only (and
/// a body of the declared length when `read_bodies`).
struct Scripted {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

type Script = fn(&str) -> (Vec<u8>, bool);

impl Scripted {
    async fn start(script: Script, read_bodies: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some((path, length, head)) = read_head(&mut stream, &mut buf).await
                        else {
                            return;
                        };
                        buf.drain(..head);
                        if read_bodies {
                            while buf.len() < length {
                                let mut more = [0u8; 65536];
                                match stream.read(&mut more).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buf.extend_from_slice(&more[..n]),
                                }
                            }
                            buf.drain(..length);
                        }
                        let (answer, close) = script(&path);
                        if stream.write_all(&answer).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The path and declared body length of the next request head, and the head's size.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, usize, usize)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = request.parse(buf) {
            let length = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .unwrap_or(0);
            return Some((request.path.unwrap_or("/").to_owned(), length, head));
        }
        let mut more = [0u8; 4096];
        match stream.read(&mut more).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&more[..n]),
        }
    }
}

fn answer(path: &str) -> (Vec<u8>, bool) {
    let keep = |bytes: &[u8]| (bytes.to_vec(), false);
    match path {
        "/length" => keep(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        // The answer to a HEAD: the length the GET would have, no body.
        "/head" => keep(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        "/chunked" => keep(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n",
        ),
        "/interim" => keep(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
        ),
        "/close-delimited" => (b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec(), true),
        "/connection-close" => (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            true,
        ),
        "/http10" => (
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            true,
        ),
        "/not-modified" => keep(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
        "/no-content" => keep(b"HTTP/1.1 204 No Content\r\n\r\n"),
        "/bad-length" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            true,
        ),
        "/garbage" => (b"HTTP/1.1 20x nonsense\r\n\r\n".to_vec(), true),
        "/bad-chunk" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            true,
        ),
        "/early" => (
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig".to_vec(),
            false,
        ),
        _ => keep(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    }
}

async fn router_for(upstream: SocketAddr) -> (Router, SocketAddr) {
    let route = ServiceRoute {
        name: "shop".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        settings: settings(),
        stable: UpstreamSet::new("v1", vec![upstream]),
        canary: None,
        canary_weight: 0.0,
        tls: None,
    };
    // One worker: one pool, so connection counts are exact.
    let router = Router::start_with_workers(vec![route], Arc::new(SystemClock), NonZeroUsize::MIN)
        .await
        .unwrap();
    let addr = router.service("shop").unwrap().listen_addr();
    (router, addr)
}

#[tokio::test]
async fn bodies_arrive_whole_and_connections_are_kept_only_when_they_may_be() {
    let upstream = Scripted::start(answer, true).await;
    let (_router, addr) = router_for(upstream.addr).await;
    let client = client();

    let reply = get(&client, addr, "/length", &[]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "hello")
    );
    let reply = get(&client, addr, "/chunked", &[]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "hello world")
    );
    let reply = get(&client, addr, "/interim", &[]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "final")
    );
    let reply = get(&client, addr, "/not-modified", &[]).await;
    assert_eq!((reply.status.as_u16(), reply.text().as_str()), (304, ""));
    let reply = get(&client, addr, "/no-content", &[]).await;
    assert_eq!((reply.status.as_u16(), reply.text().as_str()), (204, ""));
    assert_eq!(upstream.connections(), 1, "all on one kept connection");

    // A HEAD's answer has no body whatever its length says.
    let request = http::Request::head(format!("http://{addr}/head"))
        .body(http_body_util::Empty::new().boxed())
        .unwrap();
    let head = client.request(request).await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "5");
    drop(head);
    assert_eq!(get(&client, addr, "/", &[]).await.text(), "ok");
    assert_eq!(upstream.connections(), 1);

    // Each of these ends its connection: the next request needs a new one.
    let mut expected = 1;
    for path in ["/close-delimited", "/connection-close", "/http10"] {
        let reply = get(&client, addr, path, &[]).await;
        assert_eq!(reply.status, 200, "{path}");
        let text = if path == "/close-delimited" {
            "until the end"
        } else {
            "ok"
        };
        assert_eq!(reply.text(), text, "{path}");
        assert_eq!(get(&client, addr, "/", &[]).await.text(), "ok");
        expected += 1;
        assert_eq!(upstream.connections(), expected, "after {path}");
    }
}

#[tokio::test]
async fn malformed_answers_are_a_502_and_their_connection_is_dropped() {
    let upstream = Scripted::start(answer, true).await;
    let (_router, addr) = router_for(upstream.addr).await;
    let client = client();
    for path in ["/bad-length", "/garbage"] {
        let reply = get(&client, addr, path, &[]).await;
        assert_eq!(reply.status, 502, "{path}: {}", reply.text());
    }
    assert_eq!(get(&client, addr, "/", &[]).await.text(), "ok");
    assert_eq!(upstream.connections(), 3);

    // A chunked body that turns out malformed after the head: the client's response
    // is cut (its connection closed), never completed with wrong bytes.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /bad-chunk HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the router kept a broken response open"),
        }
    }
    let seen = String::from_utf8_lossy(&seen);
    // hyper's server may not even have flushed the head when the body failed.
    assert!(
        seen.is_empty() || seen.starts_with("HTTP/1.1 200"),
        "{seen}"
    );
    assert!(
        !seen.contains("0\r\n\r\n"),
        "a cut body never ends cleanly: {seen}"
    );
}

/// The upstream answers before reading the request body: the client gets that
/// answer, and the connection, with an unread body in it, is not used again.
#[tokio::test]
async fn an_answer_before_the_body_was_read_is_passed_on() {
    let upstream = Scripted::start(answer, false).await;
    let (_router, addr) = router_for(upstream.addr).await;
    let client = client();
    let body = vec![b'x'; 8 * 1024 * 1024];
    let request = http::Request::post(format!("http://{addr}/early"))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)).boxed())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .expect("the early answer arrives")
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(get(&client, addr, "/", &[]).await.text(), "ok");
    assert_eq!(upstream.connections(), 2);
}

/// An early answer to a client that is still sending its body: the router ends the
/// response with a FIN and keeps draining what the client sends (a lingering close),
/// instead of closing with unread data, which resets the connection and can destroy
/// the answer before the client has read it.
#[tokio::test]
async fn a_client_still_sending_gets_a_lingering_close() {
    let upstream = Scripted::start(answer, false).await;
    let (_router, addr) = router_for(upstream.addr).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 1073741824\r\n\r\n")
        .await
        .unwrap();
    let write_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed = write_failed.clone();
    let sending = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        loop {
            if writer.write_all(&chunk).await.is_err() {
                failed.store(true, Ordering::SeqCst);
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf)).await {
            Ok(Ok(0)) => break Ok(()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Ok(Err(error)) => break Err(error),
            Err(_) => panic!("the router neither answered nor closed"),
        }
    };
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.starts_with("HTTP/1.1 413") && seen.ends_with("big"),
        "{seen}"
    );
    assert!(
        end.is_ok(),
        "the answer ends with a FIN, not a reset: {end:?}"
    );
    // The router still takes the body it no longer needs, so the client is not reset
    // while it notices the answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !write_failed.load(Ordering::SeqCst),
        "the client was reset right after the answer"
    );
    sending.abort();
}

/// Pooled connections the upstream closed while they were idle are noticed and
/// replaced without an error for any request, whatever its method.
#[tokio::test]
async fn connections_the_upstream_closed_while_idle_are_replaced() {
    let upstream = TestUpstream::start("u").await;
    let (_router, addr) = router_for(upstream.addr).await;
    let client = client();
    assert_eq!(get(&client, addr, "/", &[]).await.status, 200);
    let first = upstream.connections.load(Ordering::SeqCst);
    // Restart the upstream on the same address: every pooled connection is closed.
    let listen = upstream.addr;
    upstream.kill().await;
    let listener = TcpListener::bind(listen).await.unwrap();
    let upstream = TestUpstream::serve(listener, "u");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let request = http::Request::post(format!("http://{addr}/upload"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"abc")).boxed())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "a POST is not failed by a stale connection"
    );
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    assert!(first >= 1);
}
