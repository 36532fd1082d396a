//! SIGTERM and SIGINT both mean: stop accepting, finish what is in flight, exit.

use std::future::Future;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Resolves at the first SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives while the
/// server is still starting must shut it down, not kill it.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        async fn received(handler: std::io::Result<Signal>) {
            match handler {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = received(interrupt) => tracing::info!("SIGINT received, shutting down"),
            _ = received(terminate) => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}
