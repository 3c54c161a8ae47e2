//! `wss://`: TLS on the listeners with rustls, checked with a client that trusts a test CA.

mod support;

use std::sync::Arc;

use rustls::pki_types::ServerName;
use support::{net::*, *};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_websockets::{ClientBuilder, WebSocketStream};

async fn tls_gateway(allow_plain: bool) -> (Gateway, certs::TestPki) {
    let dir = tempdir(if allow_plain { "tls-plain" } else { "tls" });
    let pki = certs::make(&dir);
    let echo = echo_server(true).await;
    let toml = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\nallow_plain = {allow_plain}\n[[route]]\npath = \"/vnc\"\nbridge = \"tcp://{echo}\"\n",
        pki.cert_path.display(),
        pki.key_path.display()
    );
    (Gateway::start(&toml).await, pki)
}

async fn wss_connect(
    gateway: &Gateway,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<WebSocketStream<impl AsyncRead + AsyncWrite + Unpin>> {
    let tcp = tokio::net::TcpStream::connect(gateway.addr).await?;
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let (client, _) = ClientBuilder::new()
        .uri("wss://localhost/vnc")
        .unwrap()
        .connect_on(tls)
        .await
        .map_err(std::io::Error::other)?;
    Ok(client)
}

#[tokio::test]
async fn wss_bridges_bytes_with_a_certificate_from_a_test_ca() {
    let (gateway, pki) = tls_gateway(false).await;
    let mut client = wss_connect(&gateway, pki.client_config()).await.unwrap();
    let data = random_bytes(1 << 20, 11);
    let (mut sink, mut stream) = futures_util::StreamExt::split(&mut client);
    let sent = data.clone();
    let writer = async move {
        use futures_util::SinkExt;
        for chunk in sent.chunks(16 * 1024) {
            sink.send(tokio_websockets::Message::binary(chunk.to_vec()))
                .await
                .unwrap();
        }
    };
    let (_, received) = tokio::join!(writer, read_bytes(&mut stream, data.len()));
    assert!(received == data);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails_the_handshake() {
    let (gateway, _pki) = tls_gateway(false).await;
    let other = certs::make(&tempdir("tls-other"));
    let error = wss_connect(&gateway, other.client_config())
        .await
        .err()
        .expect("handshake must fail");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
}

#[tokio::test]
async fn tls_only_listeners_do_not_answer_plain_http() {
    let (gateway, _pki) = tls_gateway(false).await;
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /vnc HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(STEP, stream.read_to_end(&mut reply))
        .await
        .expect("the connection is closed");
    assert!(
        !reply.starts_with(b"HTTP/1.1"),
        "plain HTTP answered on a TLS-only listener"
    );
}

#[tokio::test]
async fn allow_plain_serves_tls_and_plain_on_one_port() {
    let (gateway, pki) = tls_gateway(true).await;
    let mut secure = wss_connect(&gateway, pki.client_config()).await.unwrap();
    send_binary_generic(&mut secure, b"secure").await;
    assert_eq!(read_bytes(&mut secure, 6).await, b"secure");
    let mut plain = connect(&gateway.ws_url("/vnc"), "binary").await.unwrap();
    send_binary(&mut plain, b"plain").await;
    assert_eq!(read_bytes(&mut plain, 5).await, b"plain");
}

async fn send_binary_generic<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
    bytes: &[u8],
) {
    use futures_util::SinkExt;
    client
        .send(tokio_websockets::Message::binary(bytes.to_vec()))
        .await
        .unwrap();
}
