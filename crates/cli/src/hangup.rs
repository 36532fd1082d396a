//! SIGHUP means: read what can change without a restart again. Today that is every
//! TLS certificate and key ([`rampart_router::tls::reload_all`]): new connections get
//! the new certificate, established ones keep theirs, and a file that fails the
//! checks of a start leaves its listener on the certificate it had.

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

/// Installs the SIGHUP handler now (a SIGHUP from then on is a reload, never the
/// default action, which would end the process) and reloads on each one.
pub fn reload_on_hangup() -> std::io::Result<JoinHandle<()>> {
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received, reloading TLS certificates");
            let report = rampart_router::tls::reload_all();
            if report.is_ok() {
                tracing::info!("{report}");
            } else {
                tracing::error!("{report}");
            }
        }
    }))
}
