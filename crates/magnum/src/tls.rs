//! HTTPS for the API when `[api] enabled_ssl` is set, with the certificate
//! chain and key from `[api] ssl_cert_file` and `ssl_key_file` (PEM).
//! Handshakes run in each connection's own task, bounded in time
//! ([`crate::http`]), so a slow or silent client never holds up the accept
//! loop.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS server configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read [api] ssl_cert_file {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad certificate in {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "[api] ssl_cert_file {} holds no certificate",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "cannot read a private key from [api] ssl_key_file {}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key of [api] do not match")?;
    Ok(Arc::new(config))
}
