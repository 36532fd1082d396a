//! The API over HTTPS (`[server.tls]`): HTTP/1.1 and h2 by ALPN on a TLS listener.
//!
//! The certificate is a [`rampart_router::tls::ReloadableCert`], read again by
//! [`reload_all`] (SIGHUP) like every router's. Each connection's handshake runs in
//! its own task, bounded by [`HANDSHAKE_TIMEOUT`], so a client that stalls it holds
//! neither the accept loop nor anyone else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rampart_router::tls::{ReloadableCert, TlsAcceptor};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

pub use rampart_router::tls::{ReloadReport, reload_all};

use crate::state::AppState;

/// A TLS handshake that takes longer is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The API's acceptor for `[server.tls]`; the error names the file and the fix.
pub fn acceptor(files: &rampart_config::TlsConfig) -> Result<TlsAcceptor, String> {
    let cert = ReloadableCert::load("the API", files).map_err(|e| e.to_string())?;
    cert.acceptor()
        .map_err(|e| format!("cannot serve TLS with {}: {e}", files.cert.display()))
}

/// Serves the API over TLS on `listener` until `shutdown` resolves, then finishes
/// in-flight requests (as [`crate::serve`] does for plain HTTP).
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    acceptor: TlsAcceptor,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (router, _) = crate::app(state);
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let acceptor = acceptor.clone();
                    let builder = Arc::clone(&builder);
                    let watcher = graceful.watcher();
                    // What `into_make_service_with_connect_info` gives plain HTTP:
                    // authentication limits failures per client address.
                    let service = router.clone().map_request(
                        move |mut request: axum::http::Request<Incoming>| {
                            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                            request
                        },
                    );
                    connections.spawn(async move {
                        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "API: TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "API: TLS handshake timed out");
                                return;
                            }
                        };
                        let connection = builder
                            .serve_connection_with_upgrades(
                                TokioIo::new(tls),
                                TowerToHyperService::new(service),
                            )
                            .into_owned();
                        if let Err(error) = watcher.watch(connection).await {
                            tracing::debug!(%peer, %error, "API: connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "API: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    connections.shutdown().await;
    Ok(())
}
