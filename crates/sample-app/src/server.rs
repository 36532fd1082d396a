//! Listening, graceful shutdown, and the deliberate crash.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

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
    let server = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(stop_signal)
        .into_future();
    tokio::pin!(server);

    let crash_due = async {
        // Only a crash, never a normal shutdown, bounds the wait for in-flight work.
        let _ = crashed.wait_for(|c| *c).await;
        let _ = stop_rx.wait_for(|s| *s).await;
        tokio::time::sleep(CRASH_FLUSH).await;
    };

    let served = tokio::select! {
        served = &mut server => served,
        () = crash_due => Ok(()),
    };
    served.map_err(SampleAppError::Serve)?;
    if *crashed.borrow() {
        return Err(SampleAppError::Crashed {
            requests: state.requests(),
        });
    }
    Ok(())
}
