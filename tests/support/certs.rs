//! A throwaway certificate authority and a server certificate (for `localhost`, or names a test
//! picks), made with rcgen, plus a rustls client that trusts only that CA.

use std::{path::PathBuf, sync::Arc};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer};

/// PEM files of a test CA and a server certificate signed by it.
pub struct TestPki {
    /// The CA certificate (DER) clients trust.
    pub ca: CertificateDer<'static>,
    /// The CA certificate as a PEM file (for `tls_ca`).
    pub ca_path: PathBuf,
    /// Server certificate chain file.
    pub cert_path: PathBuf,
    /// Server key file.
    pub key_path: PathBuf,
    /// One file with certificate and key, as websockify's `self.pem`.
    pub combined_path: PathBuf,
}

/// Makes a CA and a `localhost` / `127.0.0.1` server certificate in `dir`.
pub fn make(dir: &std::path::Path) -> TestPki {
    make_for(dir, &["localhost", "127.0.0.1"])
}

/// Makes a CA and a server certificate whose subjectAltName holds `names` (DNS names,
/// wildcards, IP addresses) in `dir`.
pub fn make_for(dir: &std::path::Path, names: &[&str]) -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: with rcgen's default name on both, OpenSSL clients (curl) take the server
    // certificate for a self-signed one.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wsgate test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(ToString::to_string).collect();
    let mut server_params = CertificateParams::new(names).unwrap();
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let combined_path = dir.join("self.pem");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, server_cert.pem()).unwrap();
    std::fs::write(&key_path, server_key.serialize_pem()).unwrap();
    std::fs::write(
        &combined_path,
        format!("{}{}", server_cert.pem(), server_key.serialize_pem()),
    )
    .unwrap();
    TestPki {
        ca: ca.der().clone(),
        ca_path,
        cert_path,
        key_path,
        combined_path,
    }
}

impl TestPki {
    /// A rustls client config trusting only the test CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}
