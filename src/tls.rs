//! rustls server configuration from PEM files, and the host names the certificate is for.

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

/// A server's TLS: the rustls config, and the host names its certificate names.
pub struct ServerTls {
    /// What the listeners accept connections with.
    pub config: Arc<ServerConfig>,
    /// The exact DNS names in the leaf certificate's subjectAltName, canonical (lowercase, no
    /// trailing dot): names visitors reach the gateway by, which agents' host claims may not
    /// take. Wildcard names (`*.example.com`) are left out: a wildcard certificate commonly
    /// covers the agents' zone too, and it names no one host.
    pub host_names: Vec<String>,
}

/// Builds a server config (HTTP/1.1 only, as WebSocket upgrades need) from a PEM certificate
/// chain and a PEM private key; both may be in one file, as websockify's `self.pem`.
pub fn server(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| error(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| error(cert, e))?;
    let Some(leaf) = chain.first() else {
        return Err(error(cert, "no CERTIFICATE block found"));
    };
    let host_names = certificate_host_names(leaf).map_err(|e| error(cert, e))?;
    crate::secret::file::warn_if_exposed("TLS key file", key);
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
    Ok(ServerTls {
        config: Arc::new(config),
        host_names,
    })
}

/// The exact DNS names of a certificate's subjectAltName (see [`ServerTls::host_names`]).
pub(crate) fn certificate_host_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let parsed = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
    let mut names: Vec<String> = parsed
        .valid_dns_names()
        .filter(|name| !name.starts_with("*."))
        .map(|name| {
            let lower = name.to_ascii_lowercase();
            lower.strip_suffix('.').unwrap_or(&lower).to_string()
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificates_host_names_are_its_exact_dns_names_canonical() {
        let names = [
            "GW.Example.com",
            "*.wild.example.com",
            "127.0.0.1",
            "gw.example.com",
            "alt.example.com",
        ];
        let params = rcgen::CertificateParams::new(names.map(String::from).to_vec()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let got = certificate_host_names(cert.der()).unwrap();
        assert_eq!(got, ["alt.example.com", "gw.example.com"]);
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff]);
        assert!(certificate_host_names(&garbage).is_err());
    }
}
