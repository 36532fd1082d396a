//! A small, fast upstream for `bench/router.sh`: answers every request over HTTP/1.1
//! keep-alive (or h2c) with a body whose size the path chooses: `/64k` gives
//! 65 536 bytes, anything else 1 024 bytes.
//!
//! `cargo run --release -p rampart-router --example bench_upstream -- 127.0.0.1:9001`

use std::convert::Infallible;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

const SMALL: usize = 1024;
const LARGE: usize = 64 * 1024;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let small = Bytes::from(vec![b'a'; SMALL]);
    let large = Bytes::from(vec![b'b'; LARGE]);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (small, large) = (small.clone(), large.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let body = if req.uri().path() == "/64k" {
                    large.clone()
                } else {
                    small.clone()
                };
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
