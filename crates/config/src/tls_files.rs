//! The certificate and key files of `[server.tls]` and `[service.tls]`: read, parsed
//! and checked to belong together. The config check, the listeners at start and every
//! certificate reload load them through [`load_certified_key`], so a file that passes
//! `rampart check-config` is a file the listener can serve, and a reload refuses what
//! a start would refuse.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use toml::de::DeTable;

use crate::diagnostic::{ConfigError, Finding, SourceMap};
use crate::locate::Locator;
use crate::model::{Config, TlsConfig};

/// Which of the two files a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
}

impl TlsFile {
    fn key_name(self) -> &'static str {
        match self {
            TlsFile::Cert => "cert",
            TlsFile::Key => "key",
        }
    }

    fn what(self) -> &'static str {
        match self {
            TlsFile::Cert => "certificate",
            TlsFile::Key => "private key",
        }
    }
}

/// A certificate or key file that cannot be served, with what is wrong and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS {} {}: {problem}; {fix}", file.what(), path.display())]
pub struct TlsFileError {
    pub file: TlsFile,
    pub path: PathBuf,
    pub problem: String,
    pub fix: String,
}

/// The crypto provider of every listener rampart terminates TLS on (ring: see the
/// workspace manifest for why).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads `tls.cert` (a PEM chain, server certificate first) and `tls.key` (a PEM
/// private key) and checks that the key is the certificate's.
pub fn load_certified_key(tls: &TlsConfig) -> Result<CertifiedKey, TlsFileError> {
    let cert_error = |problem: String, fix: &str| TlsFileError {
        file: TlsFile::Cert,
        path: tls.cert.clone(),
        problem,
        fix: fix.to_string(),
    };
    let key_error = |problem: String, fix: &str| TlsFileError {
        file: TlsFile::Key,
        path: tls.key.clone(),
        problem,
        fix: fix.to_string(),
    };

    let cert_pem = read(&tls.cert, TlsFile::Cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not valid PEM ({e})"), CERT_FIX))?;
    if chain.is_empty() {
        return Err(cert_error(
            "holds no `-----BEGIN CERTIFICATE-----` block".into(),
            CERT_FIX,
        ));
    }

    let key_pem = read(&tls.key, TlsFile::Key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => key_error(
            "holds no private key (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`)".into(),
            KEY_FIX,
        ),
        other => key_error(format!("not valid PEM ({other})"), KEY_FIX),
    })?;
    let signing_key = crypto_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| {
            key_error(
                format!("unusable private key ({e})"),
                "use an RSA (2048 bits or more), ECDSA P-256/P-384 or Ed25519 key",
            )
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // A key that cannot tell its public half is taken as it is (rustls does too).
        Ok(()) | Err(TlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(key_error(
            format!(
                "is not the key of the certificate in {}",
                tls.cert.display()
            ),
            "give the key the certificate was issued for (a renewed certificate usually comes with a new key: replace both files)",
        )),
        Err(e) => Err(cert_error(
            format!("its first certificate cannot be read ({e})"),
            CERT_FIX,
        )),
    }
}

const CERT_FIX: &str = "give the PEM certificate chain, the server's certificate first, then its intermediates (not the key, not DER)";
const KEY_FIX: &str = "give the PEM private key of the certificate (not the certificate, not DER)";

fn read(path: &Path, file: TlsFile) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| {
        let (problem, fix) = match e.kind() {
            ErrorKind::NotFound => (
                "no such file".to_string(),
                "check the path (a relative path starts at the config file's folder)",
            ),
            ErrorKind::PermissionDenied => (
                "not readable by rampart (permission denied)".to_string(),
                "let the user rampart runs as read it (for a key: owned by that user, mode 0600)",
            ),
            ErrorKind::IsADirectory => (
                "is a folder".to_string(),
                "give the path of the PEM file itself",
            ),
            _ => (
                format!("cannot be read ({e})"),
                "check the file and its folder",
            ),
        };
        TlsFileError {
            file,
            path: path.to_path_buf(),
            problem,
            fix: fix.to_string(),
        }
    })
}

/// Resolves relative `tls` paths against `folder` (the config file's), as for the
/// data dir, so the files are found whatever rampart's working directory.
pub(crate) fn resolve_paths(config: &mut Config, folder: &Path) {
    let tables = config
        .server
        .tls
        .iter_mut()
        .chain(config.services.iter_mut().filter_map(|s| s.tls.as_mut()));
    for tls in tables {
        for path in [&mut tls.cert, &mut tls.key] {
            if path.is_relative() {
                *path = folder.join(&*path);
            }
        }
    }
}

/// Loads every configured certificate and key; each problem points at the `cert` or
/// `key` value it is about.
pub(crate) fn check(config: &Config, source: &str, origin: &str) -> Result<(), ConfigError> {
    let tables =
        config
            .server
            .tls
            .iter()
            .map(|tls| ("server.tls".to_string(), tls))
            .chain(
                config.services.iter().enumerate().filter_map(|(i, s)| {
                    s.tls.as_ref().map(|tls| (format!("service.{i}.tls"), tls))
                }),
            );
    let problems: Vec<(String, TlsFileError)> = tables
        .filter_map(|(at, tls)| load_certified_key(tls).err().map(|e| (at, e)))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    let map = SourceMap::new(origin, source);
    let Ok(document) = DeTable::parse(source) else {
        // Parsed once already by `parse`; unreachable in practice.
        return Err(map.diagnose(Vec::new()));
    };
    let at = Locator::new(source, &document);
    let findings = problems
        .into_iter()
        .map(|(table, error)| {
            Finding::new(
                at.span(&format!("{table}.{}", error.file.key_name())),
                format!(
                    "cannot use {} as the TLS {}",
                    error.path.display(),
                    error.file.what()
                ),
                error.problem,
            )
            .help(error.fix)
        })
        .collect();
    Err(map.diagnose(findings))
}
