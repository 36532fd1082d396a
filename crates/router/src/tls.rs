//! TLS on rampart's listeners (a service's router, the API): the certificate each
//! serves, swapped in place when its files are read again.
//!
//! Every handshake asks the listener's [`ReloadableCert`] for the certificate to
//! present, which is one atomic load; [`reload_all`] reads every configured pair of
//! files again, checks them as at start, and swaps the ones that changed. A new
//! connection gets the new certificate; one already established keeps the session it
//! has. A file that fails the check leaves that listener on its old certificate.
//!
//! Sessions are not resumed: every connection makes a full handshake. A resumed
//! session skips the certificate, so a client resuming one made before a renewal (or
//! a rotation after a compromise) went on trusting the replaced certificate; the
//! SIGHUP test in `crates/cli/tests/tls.rs` saw it served for 20 s after a reload.
//! Emptying the session cache on reload was not enough to stop that in 1 of 4 runs;
//! with resumption off it passed every time.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;
use rampart_config::TlsConfig;
use rampart_config::tls_files::{TlsFileError, crypto_provider, load_certified_key};
use rustls::ServerConfig;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;

pub use tokio_rustls::TlsAcceptor;

/// A listener's certificate and where it was read from.
pub struct ReloadableCert {
    /// Who serves it, for logs and errors: "the API", "service `web`".
    owner: String,
    files: TlsConfig,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("owner", &self.owner)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadableCert {
    /// Loads the pair of files; the error names the file and the fix.
    pub fn load(owner: impl Into<String>, files: &TlsConfig) -> Result<Arc<Self>, TlsFileError> {
        let key = load_certified_key(files)?;
        let cert = Arc::new(Self {
            owner: owner.into(),
            files: files.clone(),
            current: ArcSwap::from_pointee(key),
        });
        register(&cert);
        Ok(cert)
    }

    /// Reads the files again; on success new handshakes present what they hold, on
    /// failure the certificate served until now stays.
    pub fn reload(&self) -> Result<(), TlsFileError> {
        let key = load_certified_key(&self.files)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// An acceptor presenting this certificate, offering h2 and HTTP/1.1 by ALPN.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Every certificate loaded in this process and still in use: what [`reload_all`]
/// reads again. Weak, so a listener that stopped is forgotten.
static LOADED: Mutex<Vec<Weak<ReloadableCert>>> = Mutex::new(Vec::new());

fn register(cert: &Arc<ReloadableCert>) {
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    loaded.retain(|c| c.strong_count() > 0);
    loaded.push(Arc::downgrade(cert));
}

/// What a [`reload_all`] did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Owners whose certificate was read again and is now served.
    pub reloaded: Vec<String>,
    /// Owners whose files failed the check and who keep their old certificate.
    pub failed: Vec<(String, TlsFileError)>,
}

impl ReloadReport {
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} TLS certificate(s) reloaded", self.reloaded.len())?;
        for (owner, error) in &self.failed {
            write!(f, "; {owner} keeps its old certificate: {error}")?;
        }
        Ok(())
    }
}

/// Reads every configured certificate and key again and swaps in those that pass the
/// checks of a start; each failure is logged and reported, and leaves its listener on
/// the certificate it had. This is what SIGHUP calls.
pub fn reload_all() -> ReloadReport {
    let certs: Vec<Arc<ReloadableCert>> = {
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        loaded.retain(|c| c.strong_count() > 0);
        loaded.iter().filter_map(Weak::upgrade).collect()
    };
    let mut report = ReloadReport::default();
    for cert in certs {
        match cert.reload() {
            Ok(()) => {
                tracing::info!(owner = %cert.owner, cert = %cert.files.cert.display(), "TLS certificate reloaded");
                report.reloaded.push(cert.owner.clone());
            }
            Err(error) => {
                tracing::error!(owner = %cert.owner, %error, "TLS certificate not reloaded; the old one is still served");
                report.failed.push((cert.owner.clone(), error));
            }
        }
    }
    report
}
