//! `wss://` and `https://` upstreams: verified against a configured CA (or the system roots,
//! which do not know the test CA), SNI from the upstream's host name, and the explicit
//! `tls_verify = false` opt-out for self-signed upstreams.

mod support;

use std::{net::SocketAddr, sync::Arc};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use support::{Gateway, STEP, certs, net::*, tempdir};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tokio_rustls::TlsAcceptor;
use tokio_websockets::Message;

/// A gateway with TLS listeners bridging `/echo` to a TCP echo server: a real `wss://`
/// upstream for the proxy under test.
async fn wss_upstream() -> (Gateway, certs::TestPki) {
    let dir = tempdir("proxy-tls-upstream");
    let pki = certs::make(&dir);
    let echo = echo_server(false).await;
    let config = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n[[route]]\npath = \"/echo\"\nbridge = \"tcp://{echo}\"\n",
        pki.cert_path.display(),
        pki.key_path.display()
    );
    (Gateway::start(&config).await, pki)
}

/// A gateway proxying `/up` to `upstream` with `extra` route keys.
async fn proxy_to(upstream: &str, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[[route]]\npath = \"/up\"\nproxy = \"{upstream}\"\n{extra}\n"
    ))
    .await
}

/// One binary message through `url`, echoed back.
async fn echoes(url: &str) {
    let (mut client, _) = tokio::time::timeout(STEP, connect_url(url))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    client
        .send(Message::binary(&b"through tls"[..]))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(STEP, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.as_payload().to_vec(), b"through tls");
}

async fn connect_url(
    url: &str,
) -> Result<(support::Client, http::Response<()>), tokio_websockets::Error> {
    tokio_websockets::ClientBuilder::new()
        .uri(url)
        .unwrap()
        .connect()
        .await
}

#[tokio::test]
async fn a_wss_upstream_is_verified_against_the_configured_ca() {
    let (upstream, pki) = wss_upstream().await;
    let url = format!("wss://localhost:{}/echo", upstream.addr.port());
    let extra = format!("tls_ca = \"{}\"", pki.ca_path.display());
    for mode in ["", "mode = \"message\""] {
        let gateway = proxy_to(&url, &format!("{extra}\n{mode}")).await;
        echoes(&gateway.ws_url("/up")).await;
    }
}

#[tokio::test]
async fn an_unknown_ca_is_a_502_and_tls_verify_false_accepts_it() {
    let (upstream, _pki) = wss_upstream().await;
    let url = format!("wss://localhost:{}/echo", upstream.addr.port());
    // The system roots do not know the test CA.
    let strict = proxy_to(&url, "").await;
    let response = upgrade_request(strict.addr, "/up", "").await;
    assert_eq!(response.status, 502);
    assert_eq!(response.text(), "upstream TLS handshake failed\n");
    let trusting = proxy_to(&url, "tls_verify = false").await;
    echoes(&trusting.ws_url("/up")).await;
}

/// A one-shot HTTPS server that answers each request with the SNI name the client sent.
async fn sni_echo_server(pki: &certs::TestPki) -> SocketAddr {
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(&pki.cert_path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&pki.key_path).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                continue;
            };
            let sni = tls.get_ref().1.server_name().unwrap_or("-").to_string();
            let mut head = [0u8; 4096];
            let _ = tls.read(&mut head).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sni}",
                sni.len()
            );
            let _ = tls.write_all(response.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    addr
}

#[tokio::test]
async fn an_https_upstream_gets_its_host_name_as_sni() {
    let pki = certs::make(&tempdir("proxy-tls-sni"));
    let upstream = sni_echo_server(&pki).await;
    let url = format!("https://localhost:{}", upstream.port());
    let gateway = proxy_to(&url, &format!("tls_ca = \"{}\"", pki.ca_path.display())).await;
    let response = raw_request(gateway.addr, "GET /up/x HTTP/1.1\nHost: gw").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "localhost");
}
