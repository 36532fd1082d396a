//! Request-smuggling and HTTP/1.1 framing conformance, byte for byte: raw requests to
//! the router, what the client gets back (statuses in order, whether the connection
//! is closed) and what the upstream receives. The expected answers are the ones the
//! router gave while hyper's HTTP/1 server and client carried every exchange; any own
//! codec must give the same.

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
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the upstream parsed it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Trailer fields of a chunked body.
    trailers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An upstream that records every request it receives and answers
/// `<method> <target> <body length>`.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let record = record.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let collected = body.collect().await;
                            let (body, trailers) = match collected {
                                Ok(collected) => {
                                    let trailers = collected
                                        .trailers()
                                        .map(|t| {
                                            t.iter()
                                                .map(|(n, v)| {
                                                    (
                                                        n.to_string(),
                                                        String::from_utf8_lossy(v.as_bytes())
                                                            .into_owned(),
                                                    )
                                                })
                                                .collect()
                                        })
                                        .unwrap_or_default();
                                    (collected.to_bytes().to_vec(), trailers)
                                }
                                Err(_) => (b"<body failed>".to_vec(), Vec::new()),
                            };
                            let answer = format!("{} {} {}", parts.method, parts.uri, body.len());
                            record.lock().unwrap().push(Seen {
                                method: parts.method.to_string(),
                                target: parts.uri.to_string(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(n, v)| {
                                        (
                                            n.to_string(),
                                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                        )
                                    })
                                    .collect(),
                                body,
                                trailers,
                            });
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
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
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the client got on one connection.
#[derive(Debug)]
struct Answer {
    /// Every response's status and body, in order.
    responses: Vec<(u16, String)>,
    /// Whether the router closed the connection.
    closed: bool,
    raw: String,
}

impl Answer {
    fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|(s, _)| *s).collect()
    }
}

/// Splits what arrived into responses (status, body), by their framing.
fn parse_responses(mut raw: &[u8]) -> Vec<(u16, String)> {
    let mut responses = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = response.parse(raw) else {
            return responses;
        };
        let status = response.code.unwrap_or(0);
        let length = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| {
                std::str::from_utf8(h.value)
                    .ok()?
                    .trim()
                    .parse::<usize>()
                    .ok()
            });
        let chunked = response.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("transfer-encoding")
                && String::from_utf8_lossy(h.value)
                    .to_ascii_lowercase()
                    .contains("chunked")
        });
        raw = &raw[head..];
        let mut body = Vec::new();
        if status == 100 || status == 101 || status == 204 || status == 304 {
        } else if chunked {
            loop {
                let Ok(httparse::Status::Complete((used, size))) = httparse::parse_chunk_size(raw)
                else {
                    responses.push((status, String::from_utf8_lossy(&body).into_owned()));
                    return responses;
                };
                raw = &raw[used..];
                if size == 0 {
                    let end = raw
                        .windows(2)
                        .position(|w| w == b"\r\n")
                        .map_or(raw.len(), |p| p + 2);
                    raw = &raw[end..];
                    break;
                }
                let take = (size as usize).min(raw.len());
                body.extend_from_slice(&raw[..take]);
                raw = &raw[(take + 2).min(raw.len())..];
            }
        } else {
            let take = length.unwrap_or(raw.len()).min(raw.len());
            body.extend_from_slice(&raw[..take]);
            raw = &raw[take..];
        }
        responses.push((status, String::from_utf8_lossy(&body).into_owned()));
    }
}

/// Sends `bytes` in one write and reads until the router closes the connection or
/// has been quiet for a while (then it counts as kept open).
async fn send_raw(router: SocketAddr, bytes: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(router).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_answer(&mut stream).await
}

async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 65536];
    let closed = loop {
        match tokio::time::timeout(Duration::from_millis(1500), stream.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
        }
    };
    Answer {
        responses: parse_responses(&raw),
        closed,
        raw: String::from_utf8_lossy(&raw).into_owned(),
    }
}

struct Setup {
    upstream: Recorder,
    router: rampart_router::Router,
    addr: SocketAddr,
}

async fn setup() -> Setup {
    let upstream = Recorder::start().await;
    let route = rampart_router::ServiceRoute {
        name: "shop".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        settings: settings(),
        stable: rampart_router::UpstreamSet::new("v1", vec![upstream.addr]),
        canary: None,
        canary_weight: 0.0,
        tls: None,
    };
    let router = start(route).await;
    let addr = router.service("shop").unwrap().listen_addr();
    Setup {
        upstream,
        router,
        addr,
    }
}

async fn case(bytes: &[u8]) -> (Answer, Vec<Seen>) {
    let setup = setup().await;
    let answer = send_raw(setup.addr, bytes).await;
    let seen = setup.upstream.seen();
    drop(setup.router);
    (answer, seen)
}

fn targets(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect()
}

/// What the upstream must have received: `METHOD target`, the body, and the framing
/// header it came with (`content-length` value, or `chunked`).
type Expected<'a> = &'a [(&'a str, &'a str, Option<&'a str>)];

/// Sends `bytes` in one write and checks the statuses (and bodies, which name what the
/// upstream answered to) the client got, whether the router closed the connection,
/// and what the upstream received. `None` as a body accepts any (the router's own
/// problem details).
async fn check(
    bytes: &[u8],
    responses: &[(u16, Option<&str>)],
    closed: bool,
    upstream: Expected<'_>,
) {
    let (answer, seen) = case(bytes).await;
    let context = format!(
        "answer {:?} closed {} (raw {:?}), upstream saw {:?}",
        answer.responses,
        answer.closed,
        answer.raw,
        targets(&seen)
    );
    assert_eq!(
        answer.statuses(),
        responses.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        "{context}"
    );
    for ((_, got), (_, want)) in answer.responses.iter().zip(responses) {
        if let Some(want) = want {
            assert_eq!(got, want, "{context}");
        }
    }
    assert_eq!(answer.closed, closed, "closed? {context}");
    assert_eq!(seen.len(), upstream.len(), "{context}");
    for (seen, (target, body, framing)) in seen.iter().zip(upstream) {
        assert_eq!(
            &format!("{} {}", seen.method, seen.target),
            target,
            "{context}"
        );
        assert_eq!(String::from_utf8_lossy(&seen.body), *body, "{context}");
        let seen_framing = match (
            seen.header("content-length"),
            seen.header("transfer-encoding"),
        ) {
            (Some(length), None) => Some(length),
            (None, Some(coding)) => Some(coding),
            (None, None) => None,
            (Some(_), Some(_)) => panic!("both framings reached the upstream: {context}"),
        };
        assert_eq!(seen_framing, *framing, "{context}");
        // Request trailers are dropped (hyper's client sends only declared ones, and
        // `Trailer` is stripped as hop-by-hop).
        assert!(seen.trailers.is_empty(), "{context}");
    }
}

macro_rules! conformance {
    ($($name:ident: $bytes:expr => $responses:expr, closed: $closed:expr, upstream: $upstream:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            check($bytes, &$responses, $closed, &$upstream).await;
        }
    )*};
}

const BAD: (u16, Option<&str>) = (400, None);
const NOTHING: [(&str, &str, Option<&str>); 0] = [];

conformance! {
    // Content-Length and Transfer-Encoding together: chunked wins, the length is not
    // forwarded, and the connection is closed after the response, so what follows the
    // chunked body is never taken as a request.
    content_length_then_chunked: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        => [(200, Some("POST /a 0"))], closed: true, upstream: [("POST /a", "", Some("chunked"))];
    chunked_then_content_length: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        => [(200, Some("POST /a 0"))], closed: true, upstream: [("POST /a", "", Some("chunked"))];
    duplicate_equal_content_length: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
        => [(200, Some("POST /a 3"))], closed: false, upstream: [("POST /a", "abc", Some("3"))];
    differing_content_lengths: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"
        => [BAD], closed: true, upstream: NOTHING;
    content_length_list: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"
        => [BAD], closed: true, upstream: NOTHING;
    content_length_differing_list: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 5\r\n\r\nabcde"
        => [BAD], closed: true, upstream: NOTHING;
    content_length_not_a_number: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3a\r\n\r\nabc"
        => [BAD], closed: true, upstream: NOTHING;
    content_length_with_plus: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"
        => [BAD], closed: true, upstream: NOTHING;
    content_length_negative: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\nabc"
        => [BAD], closed: true, upstream: NOTHING;
    content_length_empty: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    content_length_overflowing: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nabc"
        => [BAD], closed: true, upstream: NOTHING;
    // u64::MAX is hyper's "no length" marker: refused as too large.
    content_length_u64_max: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\nabc"
        => [(431, None)], closed: true, upstream: NOTHING;
    transfer_encoding_not_chunked: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc"
        => [BAD], closed: true, upstream: NOTHING;
    chunked_not_last: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    // Another coding before chunked: refused as nginx does (501), since only the
    // chunked framing is decoded, and forwarded the upstream would have taken the
    // gzip bytes for the body itself (hyper's forwarding dropped the gzip coding).
    chunked_last_after_another_coding: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        => [(501, None)], closed: true, upstream: NOTHING;
    chunked_then_identity_on_two_lines: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    chunked_in_capitals: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        => [(200, Some("POST /a 3"))], closed: false, upstream: [("POST /a", "abc", Some("chunked"))];
    chunked_in_http_1_0: b"POST /a HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    whitespace_before_colon_of_transfer_encoding: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc"
        => [BAD], closed: true, upstream: NOTHING;
    obs_fold: b"GET /a HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    obs_fold_of_transfer_encoding: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    // Bare LF ends lines (RFC 9112 §2.2 allows a recipient to), a bare CR is refused.
    bare_lf_line_endings: b"GET /a HTTP/1.1\nHost: a\n\n"
        => [(200, Some("GET /a 0"))], closed: false, upstream: [("GET /a", "", None)];
    bare_lf_after_one_header: b"GET /a HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n"
        => [(200, Some("GET /a 0"))], closed: false, upstream: [("GET /a", "", None)];
    bare_cr: b"GET /a HTTP/1.1\r\nHost: a\rX-A: 1\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    header_without_colon: b"GET /a HTTP/1.1\r\nHost: a\r\nX-No-Colon\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    whitespace_before_colon: b"GET /a HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    nul_in_header_value: b"GET /a HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    // A chunk size that overflows, or is no hex number, fails the body: the client
    // gets 400 (the router's client_failed) and the connection is closed.
    chunk_size_overflowing: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    chunk_size_not_hex: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nz\r\nabc\r\n0\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    chunk_size_negative: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    chunk_size_with_0x: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    chunk_extension: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0\r\n\r\n"
        => [(200, Some("POST /a 3"))], closed: false, upstream: [("POST /a", "abc", Some("chunked"))];
    chunk_extension_with_bare_lf: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    // Request trailers end the body; they are not forwarded.
    chunked_trailers: b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
        => [(200, Some("POST /a 3"))], closed: false, upstream: [("POST /a", "abc", Some("chunked"))];
    pipelined_two: b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
        => [(200, Some("GET /1 0")), (200, Some("GET /2 0"))], closed: false,
        upstream: [("GET /1", "", None), ("GET /2", "", None)];
    pipelined_four_with_bodies: b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: a\r\n\r\nPOST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\nGET /4 HTTP/1.1\r\nHost: a\r\n\r\n"
        => [(200, Some("POST /1 3")), (200, Some("GET /2 0")), (200, Some("POST /3 2")), (200, Some("GET /4 0"))],
        closed: false,
        upstream: [("POST /1", "abc", Some("3")), ("GET /2", "", None), ("POST /3", "xy", Some("chunked")), ("GET /4", "", None)];
    // HTTP/1.0: kept alive only while the client asks for it.
    http_1_0_keep_alive: b"GET /1 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\nHost: a\r\n\r\nGET /3 HTTP/1.0\r\nHost: a\r\n\r\n"
        => [(200, Some("GET /1 0")), (200, Some("GET /2 0"))], closed: true,
        upstream: [("GET /1", "", None), ("GET /2", "", None)];
    http_1_0: b"GET /1 HTTP/1.0\r\nHost: a\r\n\r\n"
        => [(200, Some("GET /1 0"))], closed: true, upstream: [("GET /1", "", None)];
    connection_close_ends_the_connection: b"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
        => [(200, Some("GET /1 0"))], closed: true, upstream: [("GET /1", "", None)];
    expect_100_continue: b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc"
        => [(100, None), (200, Some("POST /a 3"))], closed: false, upstream: [("POST /a", "abc", Some("3"))];
    // Absolute form: the upstream gets origin form; the Host header wins over the
    // URI's authority, which is the Host when there is none.
    absolute_form: b"GET http://example.com/a?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"
        => [(200, Some("GET /a?q=1 0"))], closed: false, upstream: [("GET /a?q=1", "", None)];
    absolute_form_without_host: b"GET http://example.com/a HTTP/1.1\r\n\r\n"
        => [(200, Some("GET /a 0"))], closed: false, upstream: [("GET /a", "", None)];
    invalid_method_token: b"G(T /a HTTP/1.1\r\nHost: a\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    // Methods are case-sensitive tokens: forwarded as they came.
    lower_case_method: b"get /a HTTP/1.1\r\nHost: a\r\n\r\n"
        => [(200, Some("get /a 0"))], closed: false, upstream: [("get /a", "", None)];
    extension_method: b"PURGE /a HTTP/1.1\r\nHost: a\r\n\r\n"
        => [(200, Some("PURGE /a 0"))], closed: false, upstream: [("PURGE /a", "", None)];
    unknown_version: b"GET /a HTTP/1.2\r\nHost: a\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    http_0_9: b"GET /a\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    space_in_target: b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"
        => [BAD], closed: true, upstream: NOTHING;
    empty_line_before_request: b"\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n"
        => [(200, Some("GET /a 0"))], closed: false, upstream: [("GET /a", "", None)];
    // CONNECT is not forwarded (an upstream that accepted it would turn the pooled
    // connection into a tunnel), and what follows it, meant for the tunnel, is never
    // read as a request. (hyper's forwarding sent it on and closed the client.)
    connect_is_not_tunnelled: b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        => [(501, None)], closed: true, upstream: NOTHING;
}

/// A chunk shorter than its size line says: the body fails, and what follows is never
/// taken as a request, neither by the router nor by the upstream.
#[tokio::test]
async fn chunk_shorter_than_its_size_smuggles_nothing() {
    let (answer, seen) = case(b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(answer.statuses(), [400], "{answer:?}");
    assert!(answer.closed);
    assert!(seen.len() <= 1, "{:?}", targets(&seen));
    for request in &seen {
        assert_eq!(request.target, "/a");
        assert_ne!(
            request.body, b"abc\r\n0\r\n\r\n",
            "the malformed body was not passed on as data"
        );
    }
}

#[tokio::test]
async fn without_host_the_upstream_gets_its_own_address() {
    let setup = setup().await;
    let answer = send_raw(setup.addr, b"GET /a HTTP/1.1\r\n\r\n").await;
    assert_eq!(answer.statuses(), [200]);
    assert!(!answer.closed);
    let seen = setup.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("host"),
        Some(setup.upstream.addr.to_string().as_str())
    );
}

#[tokio::test]
async fn headers_named_by_connection_are_not_forwarded() {
    let setup = setup().await;
    let answer = send_raw(
        setup.addr,
        b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: 2\r\n\r\n",
    )
    .await;
    assert_eq!(answer.statuses(), [200]);
    let seen = setup.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-secret"), None);
    assert_eq!(seen[0].header("keep-alive"), None);
    assert_eq!(seen[0].header("connection"), None);
    assert_eq!(seen[0].header("x-kept"), Some("2"));
}

#[tokio::test]
async fn a_request_line_too_long_is_refused() {
    let mut long = b"GET /".to_vec();
    long.extend(std::iter::repeat_n(b'a', 100_000));
    long.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    let (answer, seen) = case(&long).await;
    assert_eq!(answer.statuses(), [431]);
    assert!(answer.closed);
    assert!(seen.is_empty());
}

/// A request with a body, its response read, then another on the same connection:
/// each is answered, in order, and the upstream sees exactly the two.
#[tokio::test]
async fn a_body_then_another_request_on_a_kept_alive_connection() {
    let setup = setup().await;
    let mut stream = TcpStream::connect(setup.addr).await.unwrap();
    stream
        .write_all(b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let first = read_answer(&mut stream).await;
    assert_eq!(first.responses, [(200, "POST /1 5".to_owned())]);
    assert!(!first.closed);
    stream
        .write_all(b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let next = read_answer(&mut stream).await;
    assert_eq!(
        next.responses,
        [(200, "POST /2 2".to_owned()), (200, "GET /3 0".to_owned())]
    );
    assert!(!next.closed);
    let seen = setup.upstream.seen();
    assert_eq!(targets(&seen), ["POST /1", "POST /2", "GET /3"]);
    assert_eq!(seen[0].body, b"hello");
    assert_eq!(seen[1].body, b"hi");
}

/// The request body arrives in pieces, slower than the upstream reads: it is passed
/// on as it comes, and the next request on the connection is still answered.
#[tokio::test]
async fn a_body_sent_in_pieces() {
    let setup = setup().await;
    let mut stream = TcpStream::connect(setup.addr).await.unwrap();
    stream
        .write_all(b"PUT /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(b"world").await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.responses, [(200, "PUT /1 10".to_owned())]);
    assert!(!answer.closed);
    assert_eq!(setup.upstream.seen()[0].body, b"helloworld");
}

/// A request the first instance never answered is retried on another with the same
/// head: the encoded request is sent again, except that a request without a Host
/// gets the retry instance's own address as its Host, not the failed one's.
#[tokio::test]
async fn a_retried_request_reaches_the_other_instance_as_it_was_sent() {
    let upstream = Recorder::start().await;
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let route = rampart_router::ServiceRoute {
        name: "shop".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        settings: settings(),
        stable: rampart_router::UpstreamSet::new("v1", vec![upstream.addr]),
        canary: Some(rampart_router::UpstreamSet::new("v2", vec![refused])),
        canary_weight: 100.0,
        tls: None,
    };
    let router = start(route).await;
    let addr = router.service("shop").unwrap().listen_addr();

    let with_host = send_raw(
        addr,
        b"GET /a?x=1 HTTP/1.1\r\nHost: shop.example\r\nX-Custom: 1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(with_host.responses, [(200, "GET /a?x=1 0".to_owned())]);
    let without_host = send_raw(addr, b"GET /b HTTP/1.0\r\n\r\n").await;
    assert_eq!(without_host.responses, [(200, "GET /b 0".to_owned())]);

    let seen = upstream.seen();
    assert_eq!(targets(&seen), ["GET /a?x=1", "GET /b"]);
    assert_eq!(seen[0].header("host"), Some("shop.example"));
    assert_eq!(seen[0].header("x-custom"), Some("1"));
    assert_eq!(seen[0].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen[0].header("connection"), None, "hop-by-hop stays out");
    assert_eq!(
        seen[1].header("host"),
        Some(upstream.addr.to_string().as_str())
    );
    let status = router.service("shop").unwrap().status();
    assert_eq!(status.canary.unwrap().split.retries, 2);
}
