//! rustls server configuration from PEM files.

use std::{path::Path, sync::Arc};

use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

/// A certificate or key that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct TlsError {
    /// The file at fault.
    pub path: String,
    /// What was wrong with it.
    pub reason: String,
}

fn error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Builds a server config (HTTP/1.1 only, as WebSocket upgrades need) from a PEM certificate
/// chain and a PEM private key; both may be in one file, as websockify's `self.pem`.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| error(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| error(cert, e))?;
    if chain.is_empty() {
        return Err(error(cert, "no CERTIFICATE block found"));
    }
    crate::config::secret_file::warn_if_exposed("TLS key file", key);
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| error(key, format!("no usable private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| error(cert, e))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| error(key, format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
