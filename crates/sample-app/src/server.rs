//! Listening, graceful shutdown, the deliberate crash, and the injected connection
//! resets.
//!
//! Connections are served with hyper-util rather than `axum::serve` because a reset
//! must close the connection without writing a response, which only a service error
//! at the hyper level does (an axum handler always answers).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::app::{AppState, router};
use crate::{SampleAppArgs, SampleAppError};

/// How long in-flight responses may finish once a crash is due, so the request that
/// reached `--crash-after` still gets its answer.
const CRASH_FLUSH: Duration = Duration::from_secs(1);

/// Runs the sample app as a process: binds `args.listen` and serves until `shutdown`
/// completes.
///
/// When `--crash-after` is reached this function exits the process with status 3
/// ([`SampleAppError::CRASH_EXIT_CODE`]), as a crashing service would; embedders that
/// must survive the crash use [`serve`] instead, which returns
/// [`SampleAppError::Crashed`].
pub async fn run(
    args: SampleAppArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SampleAppError> {
    args.validate()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| SampleAppError::Bind {
            addr: args.listen,
            source,
        })?;
    match serve(listener, args, shutdown).await {
        Err(crash @ SampleAppError::Crashed { .. }) => {
            eprintln!("sample-app: {crash}");
            std::process::exit(crash.exit_code());
        }
        other => other,
    }
}

/// Serves on an already bound listener until `shutdown` completes (then `Ok`) or
/// `--crash-after` is reached (then [`SampleAppError::Crashed`], with the listener
/// closed so new connections are refused). `args.listen` is ignored.
pub async fn serve(
    listener: TcpListener,
    args: SampleAppArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SampleAppError> {
    args.validate()?;
    let (state, mut crashed) = AppState::new(&args);
    let (stop_tx, mut stop_rx) = watch::channel(false);

    let mut crash_rx = crashed.clone();
    let stop_signal = async move {
        tokio::select! {
            () = shutdown => {}
            _ = crash_rx.wait_for(|c| *c) => {}
        }
        stop_tx.send_replace(true);
    };
    let server = serve_connections(listener, router(state.clone()), state.clone(), stop_signal);
    tokio::pin!(server);

    let crash_due = async {
        // Only a crash, never a normal shutdown, bounds the wait for in-flight work.
        let _ = crashed.wait_for(|c| *c).await;
        let _ = stop_rx.wait_for(|s| *s).await;
        tokio::time::sleep(CRASH_FLUSH).await;
    };

    tokio::select! {
        () = &mut server => {}
        () = crash_due => {}
    }
    if *crashed.borrow() {
        return Err(SampleAppError::Crashed {
            requests: state.requests(),
        });
    }
    Ok(())
}

/// The error a connection is closed with when `--reset-percent` picks its request.
#[derive(Debug, thiserror::Error)]
#[error("connection reset on purpose (--reset-percent)")]
struct InjectedReset;

/// Accepts and serves connections until `stop` completes, then stops accepting and
/// waits for the requests in flight.
async fn serve_connections(
    listener: TcpListener,
    app: Router,
    state: Arc<AppState>,
    stop: impl Future<Output = ()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors or a connection aborted while queued:
                    // keep serving the others, as axum::serve does.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let app = app.clone();
                let state = state.clone();
                let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                    let reset = state.roll_reset(request.uri().path());
                    let app = app.clone();
                    async move {
                        if reset {
                            return Err(InjectedReset);
                        }
                        let response = app.oneshot(request.map(axum::body::Body::new)).await;
                        Ok(match response {
                            Ok(response) => response,
                            Err(never) => match never {},
                        })
                    }
                });
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    // Resets end here on purpose; other errors are the client's doing.
                    let _ = watched.await;
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}
