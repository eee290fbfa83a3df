//! TLS on the listeners (rustls, ring provider): the `[tls]` settings and
//! the acceptor built from their PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::door::Door;
use crate::error::ServerError;

/// The `[tls]` table. TLS is on once `cert` and `key` are set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file: the server's certificate, then any intermediates.
    pub cert: Option<PathBuf>,
    /// PEM file: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// PEM file of CA certificates: when set, clients must present a
    /// certificate one of them signed.
    pub client_ca: Option<PathBuf>,
    /// The listeners that speak TLS (when it is on); the others stay plain.
    pub doors: Vec<Door>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            client_ca: None,
            doors: Door::ALL.to_vec(),
        }
    }
}

impl TlsConfig {
    /// Whether TLS is on (for `door`).
    pub fn on_for(&self, door: Door) -> bool {
        self.cert.is_some() && self.doors.contains(&door)
    }

    /// Refuses half a configuration.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match (&self.cert, &self.key) {
            (Some(_), None) | (None, Some(_)) => {
                Err("tls.cert and tls.key go together: set both, or neither".into())
            }
            (None, None) if self.client_ca.is_some() => {
                Err("tls.client_ca needs TLS on: set tls.cert and tls.key too".into())
            }
            _ => Ok(()),
        }
    }

    /// The acceptor, with the files read and checked; None when TLS is off.
    pub(crate) fn acceptor(&self) -> Result<Option<TlsAcceptor>, ServerError> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Ok(None);
        };
        let chain = certificates(cert)?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| tls_error(key, "no private key read", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in certificates(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| tls_error(ca, "a CA certificate is unusable", e))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| tls_error(ca, "cannot verify clients with it", e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, key).map_err(|e| {
            ServerError::Tls(format!(
                "the certificate and key do not make a server identity: {e}"
            ))
        })?;
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(path, "cannot read", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, "not PEM certificates", e))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{}: no certificate in it (expected PEM blocks 'BEGIN CERTIFICATE')",
            path.display()
        )));
    }
    Ok(certs)
}

fn tls_error(path: &Path, what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(format!("{}: {what}: {e}", path.display()))
}
