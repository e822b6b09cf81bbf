//! TLS built in (`--tls-cert` / `--tls-key`), for a server with no reverse
//! proxy in front: rustls with the ring provider (no system library), HTTP/1.1
//! by ALPN. The same listener then carries HTTPS and the Socket.IO websocket
//! (wss) and polling; [`crate::serve_tls`] runs each handshake in the
//! connection's own task, under the header deadline.
//!
//! The files are read once, at start: a renewed certificate takes a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
pub use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {0}: {1}")]
    Cert(PathBuf, rustls::pki_types::pem::Error),
    #[error("{0} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")")]
    NoCert(PathBuf),
    #[error("cannot read the TLS key {0} (a PEM private key: PKCS#8, PKCS#1 or SEC1): {1}")]
    Key(PathBuf, rustls::pki_types::pem::Error),
    #[error("the TLS certificate {cert} and key {key} do not go together: {source}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// What the certificate file held, for the start-up log and `check`.
#[derive(Clone)]
pub struct Loaded {
    pub acceptor: TlsAcceptor,
    /// Certificates in the chain file (the server's first).
    pub chain_len: usize,
}

/// Reads a PEM certificate chain and its private key and makes the acceptor.
pub fn load(cert: &Path, key: &Path) -> Result<Loaded, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert(cert.to_path_buf(), e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.to_path_buf()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key(key.to_path_buf(), e))?;
    let chain_len = chain.len();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mismatch = |source| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(mismatch)?
        .with_no_client_auth()
        // Checks that the key is the certificate's.
        .with_single_cert(chain, private)
        .map_err(mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        chain_len,
    })
}
