//! Test fixtures: in-process hyper upstreams on 127.0.0.1, a router in front of them,
//! and a pooled hyper client.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rampart_config::RouterConfig;
use rampart_core::{Clock, ManualClock, SystemClock, Timestamp};
use rampart_router::{Router, ServiceRoute, UpstreamSet};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub type TestBody = BoxBody<Bytes, Infallible>;

/// A small upstream that names itself in every response.
///
/// Paths: `/` answers its name; `/status/<code>` answers that status; `/sleep/<ms>`
/// waits first; `/upload` counts the request body's bytes; `/download/<bytes>`
/// streams that many bytes; `/slowbody/<ms>` sends its head and a first chunk at once
/// and the rest after that many ms; `/cutbody` promises 1000 bytes and closes after
/// 10; `/ws` is a WebSocket echo.
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub name: String,
    pub hits: Arc<AtomicU64>,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl TestUpstream {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, name)
    }

    /// Serves on an address the caller already holds (to revive a killed upstream).
    pub fn serve(listener: TcpListener, name: &str) -> Self {
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let name_owned = name.to_owned();
        let hits_task = hits.clone();
        let connections = Arc::new(AtomicU64::new(0));
        let connections_task = connections.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    Ok((stream, _)) = listener.accept() => {
                        connections_task.fetch_add(1, Ordering::SeqCst);
                        let name = name_owned.clone();
                        let hits = hits_task.clone();
                        connections.spawn(async move {
                            let service = service_fn(move |req| {
                                hits.fetch_add(1, Ordering::SeqCst);
                                respond(name.clone(), req)
                            });
                            let _ = auto::Builder::new(TokioExecutor::new())
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self {
            addr,
            name: name.to_owned(),
            hits,
            connections,
            task,
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection (aborting the task drops the
    /// listener and the connection set with it).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn respond(
    name: String,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let first = parts.next().unwrap_or("");
    let arg = parts.next().unwrap_or("");
    let text = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .header("x-upstream", name.as_str())
            .body(Full::new(Bytes::from(body)).boxed())
            .unwrap()
    };
    let response = match first {
        "status" => text(arg.parse().unwrap_or(500), name.clone()),
        "sleep" => {
            tokio::time::sleep(Duration::from_millis(arg.parse().unwrap_or(0))).await;
            text(200, name.clone())
        }
        "headers" => {
            let mut lines = String::new();
            for (k, v) in req.headers() {
                lines.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
            }
            text(200, lines)
        }
        "upload" => {
            let mut body = req.into_body();
            let mut total = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    total += data.len() as u64;
                }
            }
            text(200, total.to_string())
        }
        "download" => {
            let total: u64 = arg.parse().unwrap_or(0);
            let body = StreamBody::new(chunks(total).map(|c| Ok::<_, Infallible>(Frame::data(c))));
            Response::builder()
                .header("x-upstream", name.as_str())
                .header("content-length", total.to_string())
                .body(BodyExt::boxed(body))
                .unwrap()
        }
        "slowbody" => {
            let pause = Duration::from_millis(arg.parse().unwrap_or(0));
            let chunks = futures_util::stream::unfold(0u8, move |sent| async move {
                match sent {
                    0 => Some((Bytes::from_static(b"head start,"), 1)),
                    1 => {
                        tokio::time::sleep(pause).await;
                        Some((Bytes::from_static(b" slow end"), 2))
                    }
                    _ => None,
                }
            });
            Response::builder()
                .header("x-upstream", name.as_str())
                .body(BodyExt::boxed(StreamBody::new(
                    chunks.map(|c| Ok::<_, Infallible>(Frame::data(c))),
                )))
                .unwrap()
        }
        "cutbody" => {
            // The pause lets the head and first bytes go out before the short end.
            let short = futures_util::stream::unfold(false, |sent| async move {
                if sent {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    None
                } else {
                    Some((
                        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"0123456789"))),
                        true,
                    ))
                }
            });
            Response::builder()
                .header("x-upstream", name.as_str())
                .header("content-length", "1000")
                .body(BodyExt::boxed(StreamBody::new(short)))
                .unwrap()
        }
        "ws" => {
            let key = req
                .headers()
                .get("sec-websocket-key")
                .map(|k| tokio_tungstenite::tungstenite::handshake::derive_accept_key(k.as_bytes()))
                .unwrap_or_default();
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                let (sink, stream) = ws.split();
                let echo = stream.filter(|m| {
                    std::future::ready(m.as_ref().is_ok_and(|m| m.is_text() || m.is_binary()))
                });
                let _ = echo.forward(sink).await;
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", key)
                .body(Empty::new().boxed())
                .unwrap()
        }
        _ => text(200, name.clone()),
    };
    Ok(response)
}

/// `total` bytes in 64 KiB chunks, produced lazily.
pub fn chunks(total: u64) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    const CHUNK: u64 = 64 * 1024;
    let block = Bytes::from(vec![b'x'; CHUNK as usize]);
    futures_util::stream::unfold(total, move |left| {
        let block = block.clone();
        async move {
            (left > 0).then(|| {
                let n = left.min(CHUNK);
                (block.slice(..n as usize), left - n)
            })
        }
    })
}

/// The defaults, plus the version header for clients on 127.0.0.1 (every test client),
/// so tests can steer requests to a set.
/// An upstream that accepts connections, reads the request and closes without a
/// word, as a crashing instance does. Counts the requests it swallowed.
pub struct ResettingUpstream {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ResettingUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    drop(stream);
                });
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }
}

impl Drop for ResettingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn settings() -> RouterConfig {
    RouterConfig {
        version_header: Some("x-rampart-version".into()),
        version_header_from: vec!["127.0.0.1/32".parse().unwrap()],
        ..RouterConfig::default()
    }
}

pub fn route(
    settings: RouterConfig,
    stable: &[&TestUpstream],
    canary: &[&TestUpstream],
    weight: f64,
) -> ServiceRoute {
    ServiceRoute {
        name: "shop".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        settings,
        stable: UpstreamSet::new("v1", stable.iter().map(|u| u.addr).collect()),
        canary: (!canary.is_empty())
            .then(|| UpstreamSet::new("v2", canary.iter().map(|u| u.addr).collect())),
        canary_weight: weight,
        tls: None,
    }
}

pub async fn start(route: ServiceRoute) -> Router {
    Router::start(vec![route], Arc::new(SystemClock))
        .await
        .unwrap()
}

pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)))
}

pub async fn start_with_clock(route: ServiceRoute, clock: Arc<dyn Clock>) -> Router {
    Router::start(vec![route], clock).await.unwrap()
}

pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn upstream(&self) -> &str {
        self.headers
            .get("x-upstream")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn get(
    client: &Client<HttpConnector, TestBody>,
    router: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut builder = Request::get(format!("http://{router}{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = client
        .request(builder.body(Empty::new().boxed()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}
