//! Standalone sample app, for tests and demos that need it as its own process.

use clap::Parser;
use rampart_sample_app::{SampleAppArgs, run};

#[derive(Debug, Parser)]
#[command(
    name = "rampart-sample-app",
    about = "A small HTTP service with injectable failures"
)]
struct Cli {
    #[command(flatten)]
    args: SampleAppArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(err) = run(cli.args, shutdown_signal()).await {
        eprintln!("rampart-sample-app: {err}");
        std::process::exit(err.exit_code());
    }
}

/// Completes on Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            // Without a SIGTERM handler the default action (exit) still stops us.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        // A failed Ctrl-C registration disables this branch instead of stopping at once.
        Ok(()) = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
